"""Hostile input to `pvlora serve` and `pvlora.generate`, round three (issue 30): server settings out of
bounds (refused before the model loads), a dead batcher (requests fail with a 500, never hang), η that is
not a JSON number, seeded sampling that must not depend on the batch, two threads on one model, plain
string prompts and the chat template, preference names PyTorch reserves, empty prompts, error messages
that name their field, and SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import pvlora
from pvlora.cli import main
from pvlora.core.errors import ArtifactError, ConfigError, EtaError, PvloraError, RequestError
from pvlora.core.eta import check_eta
from pvlora.serving import batcher as serving_batcher
from pvlora.serving.app import ServeSettings, build_app, load, running
from tests.helpers import body, post
from pvlora.serving.batcher import Batcher, Job

DEFAULT = {"helpful": 1.0, "harmless": 0.5}


@pytest.fixture(scope="module")
def settings(random_base_dir, two_vectors):
    return ServeSettings(base=str(random_base_dir), vectors={two_vectors["helpful"]: 1.0, two_vectors["harmless"]: 0.5},
                         max_batch=8, max_wait_ms=300, max_tokens=8, max_prompt_tokens=40)


@pytest.fixture(scope="module")
def loaded(settings):
    return load(settings)


@pytest.fixture(scope="module")
def server(loaded, settings):
    model, tok = loaded
    app = build_app(model, tok, settings, name="test-base")
    with running(app) as url:
        yield url, app


def text(reply: dict) -> str:
    return reply["choices"][0]["message"]["content"]


def no_loading(monkeypatch):
    """Fail the test if anything tries to load the model."""
    from pvlora.steering import load as runtime

    monkeypatch.setattr(runtime, "load_composed", lambda *a, **k: pytest.fail("loaded the model before checking"))


# ---------------------------------------------------------------- settings: bounds before loading


@pytest.mark.parametrize("change, needles", [
    ({"max_wait_ms": float("inf")}, ["max_wait_ms", "between 0 and 10000"]),
    ({"max_wait_ms": 1e12}, ["max_wait_ms", "between 0 and 10000", "1e+12"]),
    ({"max_wait_ms": float("nan")}, ["max_wait_ms", "between 0 and 10000"]),
    ({"max_wait_ms": -1}, ["max_wait_ms", "between 0 and 10000"]),
    ({"port": 70000}, ["port", "at least 1 and at most 65535", "70000"]),
    ({"port": -1}, ["port", "at least 1 and at most 65535"]),
    ({"port": True}, ["port", "an integer"]),
    ({"max_batch": 0}, ["max_batch", "at least 1 and at most 4096"]),
    ({"max_batch": 2.5}, ["max_batch", "an integer"]),
    ({"max_tokens": 0}, ["max_tokens", "at least 1"]),
    ({"temperature": float("nan")}, ["temperature", "finite", "between 0 and 2"]),
    ({"temperature": 3.0}, ["temperature", "between 0 and 2"]),
])
def test_settings_out_of_bounds_are_refused_before_loading(settings, monkeypatch, change, needles):
    no_loading(monkeypatch)
    with pytest.raises(ConfigError) as e:
        load(ServeSettings(**{**settings.__dict__, **change}))
    for needle in needles:
        assert needle in str(e.value), e.value


@pytest.mark.parametrize("flags, needle", [
    (["--max-wait-ms", "inf"], "max_wait_ms must be a finite number between 0 and 10000"),
    (["--max-wait-ms", "1e12"], "max_wait_ms must be a finite number between 0 and 10000"),
    (["--port", "70000"], "port must be at least 1 and at most 65535, got 70000"),
])
def test_serve_cli_refuses_bad_settings_in_one_line_before_loading(settings, monkeypatch, capsys, flags, needle):
    import uvicorn

    no_loading(monkeypatch)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served"))
    argv = ["serve", "--base", settings.base, *[x for v in settings.vectors for x in ("--vector", v)], *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err and err.count("\n") == 1, err


# ---------------------------------------------------------------- a dead batcher never leaves clients waiting


class Boom(BaseException):
    """Not an Exception: what the old worker loop did not catch (an OverflowError outside its try did the same)."""


def test_a_dead_batcher_fails_every_request_instead_of_hanging(loaded):
    model, tok = loaded
    batcher = Batcher(model, tok, 4, float("inf"))  # queue.get(timeout=inf) raises OverflowError in the worker
    try:
        first = batcher.submit(Job("a b", DEFAULT, 4, 0.0, 1.0, None))
        with pytest.raises(PvloraError, match="the batcher stopped"):
            first.result(timeout=20)
        later = batcher.submit(Job("a b", DEFAULT, 4, 0.0, 1.0, None))  # after its death: at once
        with pytest.raises(PvloraError, match="the batcher stopped"):
            later.result(timeout=5)
    finally:
        batcher.close()


def test_a_dead_batcher_answers_500_and_health_says_so(loaded, settings, monkeypatch):
    model, tok = loaded

    def boom(*a, **k):
        raise Boom("worker killed")

    monkeypatch.setattr(serving_batcher, "complete", boom)
    app = build_app(model, tok, settings, name="test-base")
    with running(app) as url:
        code, r = post(url, body("a b c"), timeout=20)
        assert code == 500 and "the batcher stopped" in r["error"]["message"] and r["error"]["type"] == "server_error", r
        code, r = post(url, body("a b c"), timeout=20)  # the next one too, at once
        assert code == 500, r
        try:
            urllib.request.urlopen(f"{url}/health", timeout=10)
            pytest.fail("health said ok with a dead batcher")
        except urllib.error.HTTPError as e:
            assert e.code == 503


# ---------------------------------------------------------------- η in a request: a JSON number


@pytest.mark.parametrize("raw", [b'"1_000"', b"true", b"false", b'" 2 "', b'"2"', b"null", b"[1]"])
def test_eta_in_a_request_must_be_a_json_number(server, raw):
    url, _ = server
    req = b'{"messages": [{"role": "user", "content": "hi"}], "preference_weights": {"helpful": ' + raw + b"}}"
    code, r = post(url, req, raw=True)
    assert code == 400 and r["error"]["param"] == "preference_weights.helpful", r
    assert "must be a number (a JSON number" in r["error"]["message"], r


def test_eta_rule_strict_for_json_and_lenient_for_text():
    assert check_eta("h", 2, strict=True) == 2.0 and check_eta("h", -0.5, strict=True) == -0.5
    for bad in ("1_000", " 2 ", "2", True, None):
        with pytest.raises(EtaError, match=r"must be a number \(a JSON number"):
            check_eta("h", bad, strict=True)
    assert check_eta("h", "-2.5") == -2.5  # text from a command line or a file still parses
    with pytest.raises(EtaError, match="must be a number, not a boolean"):
        check_eta("h", True)  # never a weight, in any mode
    from pvlora.cli.grammar import vector_specs

    assert vector_specs(["vectors/helpful=1.5", "harmless=-2"]) == {"vectors/helpful": 1.5, "harmless": -2.0}


# ---------------------------------------------------------------- seeded sampling: a row's draws are its own


SAMPLE = {"do_sample": True, "temperature": 1.5, "max_new_tokens": 8, "chat_template": False}
PROMPTS = ["a b c", "hello there friend", "x", "one two"]
MIXES = [{"helpful": 0.8}, {"harmless": 2.0}, {}, {"helpful": -1.0, "harmless": 0.3}]


def test_seeded_sampling_in_a_batch_equals_each_prompt_alone(loaded):
    model, tok = loaded
    batched = pvlora.generate(model, tok, PROMPTS, MIXES, seed=7, **SAMPLE)
    alone = [pvlora.generate(model, tok, [p], [m], seed=7, **SAMPLE)[0] for p, m in zip(PROMPTS, MIXES)]
    assert batched == alone
    assert pvlora.generate(model, tok, PROMPTS, MIXES, seed=7, batch_size=3, **SAMPLE) == alone  # any batch size
    assert pvlora.generate(model, tok, PROMPTS, MIXES, seed=8, **SAMPLE) != alone  # the seed matters
    copies = pvlora.generate(model, tok, ["a b c"], [{}], seed=7, num_return_sequences=4, **SAMPLE)
    assert len(set(copies)) > 1  # return sequences of one prompt are different draws


def test_beam_sampling_with_per_row_weights_is_refused(loaded):
    model, tok = loaded
    with pytest.raises(RequestError, match="beam sampling"):
        pvlora.generate(model, tok, PROMPTS, MIXES, seed=7, num_beams=2, **SAMPLE)


def test_a_tiny_temperature_samples_the_greedy_answer(loaded):
    model, tok = loaded
    greedy = pvlora.generate(model, tok, PROMPTS, MIXES, max_new_tokens=8, chat_template=False)
    assert pvlora.generate(model, tok, PROMPTS, MIXES, max_new_tokens=8, chat_template=False, do_sample=True, temperature=1e-300) == greedy


def test_served_seeded_sampling_does_not_depend_on_the_batch(server):
    url, app = server
    reqs = [body(p, m, seed=11, temperature=1.5) for p, m in zip(PROMPTS, MIXES)]
    alone = [text(post(url, r)[1]) for r in reqs]
    before = len(app.state.batcher.batches)
    with ThreadPoolExecutor(len(reqs)) as pool:
        together = [text(r) for _, r in pool.map(lambda r: post(url, r), reqs)]
    assert max(app.state.batcher.batches[before:]) > 1  # they shared a batch
    assert together == alone
    # different seeds batch together too, each with its own draws
    mixed = [body("a b c", seed=s, temperature=1.5) for s in (1, 2, 3, 4)]
    with ThreadPoolExecutor(4) as pool:
        replies = [text(r) for _, r in pool.map(lambda r: post(url, r), mixed)]
    assert replies == [text(post(url, r)[1]) for r in mixed]


def test_served_temperature_edge_cases(server):
    url, _ = server
    greedy = text(post(url, body("hello there friend"))[1])
    code, r = post(url, body("hello there friend", temperature=1e-300, seed=3))
    assert code == 200 and text(r) == greedy, r  # the limit of sampling as T -> 0: the greedy answer
    code, r = post(url, b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', raw=True)
    assert code == 400 and r["error"]["param"] == "temperature" and "finite" in r["error"]["message"], r


# ---------------------------------------------------------------- two threads on one model


def test_two_threads_generating_on_one_model_get_their_own_results(loaded):
    model, tok = loaded
    jobs = [(PROMPTS, MIXES), (PROMPTS[::-1], [{"helpful": 3.0}, {"harmless": -2.0}, {"helpful": 2.0}, {}])]
    want = [pvlora.generate(model, tok, p, m, max_new_tokens=8, chat_template=False) for p, m in jobs]
    got: list[list] = [[], []]
    start = threading.Barrier(2)

    def worker(i):
        start.wait()
        for _ in range(6):
            got[i].append(pvlora.generate(model, tok, jobs[i][0], jobs[i][1], max_new_tokens=8, chat_template=False))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert got[0] == [want[0]] * 6 and got[1] == [want[1]] * 6


def test_set_weights_waits_for_a_generation_in_another_thread(loaded):
    model, tok = loaded
    from pvlora.steering.locks import model_lock

    pvlora.set_weights(model, DEFAULT)
    with model_lock(model):
        t = threading.Thread(target=pvlora.set_weights, args=(model, {"helpful": 2.0}))
        t.start()
        t.join(timeout=1)
        assert t.is_alive() and pvlora.get_weights(model)["helpful"] == 1.0  # waits for the lock
    t.join(timeout=30)
    assert pvlora.get_weights(model)["helpful"] == 2.0
    pvlora.set_weights(model, DEFAULT)


# ---------------------------------------------------------------- plain strings and the chat template


def test_plain_strings_with_chat_template_equal_serve(server, loaded):
    url, _ = server
    model, tok = loaded
    as_chat = pvlora.generate(model, tok, ["hello there friend"], [DEFAULT], max_new_tokens=8, chat_template=True)
    as_messages = pvlora.generate(model, tok, [[{"role": "user", "content": "hello there friend"}]], [DEFAULT],
                                  max_new_tokens=8)
    assert as_chat == as_messages == [text(post(url, body("hello there friend"))[1])]
    raw = pvlora.generate(model, tok, ["hello there friend"], [DEFAULT], max_new_tokens=8, chat_template=False)
    assert raw != as_chat
    with pytest.warns(UserWarning, match="chat_template=True"):  # the default: raw text, said once
        assert pvlora.generate(model, tok, ["hello there friend"], [DEFAULT], max_new_tokens=8) == raw


def test_chat_template_true_without_a_template_is_refused(loaded):
    import copy

    model, tok = loaded
    bare = copy.copy(tok)
    bare.chat_template = None
    with pytest.raises(ConfigError, match="no chat template"):
        pvlora.generate(model, bare, ["hi"], [{}], max_new_tokens=2, chat_template=True)


def test_serve_refuses_to_start_with_a_base_that_has_no_chat_template(loaded, settings):
    """Every request is a chat: without a template the server would answer each with a 500."""
    import copy

    model, tok = loaded
    bare = copy.copy(tok)
    bare.chat_template = None
    with pytest.raises(ConfigError, match=f"tokenizer of {settings.base} has no chat template"):
        build_app(model, bare, settings)
    build_app(model, tok, settings)  # the same model with its template starts


# ---------------------------------------------------------------- preference names PyTorch reserves


@pytest.fixture(scope="module")
def pos_neg(random_base_dir, tmp_path_factory):
    from tests.helpers import make_adapter

    d = tmp_path_factory.mktemp("reserved")
    return (make_adapter(random_base_dir, d / "pos", 31, r=2, lora_alpha=2, target_modules=["q_proj"]),
            make_adapter(random_base_dir, d / "neg", 32, r=2, lora_alpha=2, target_modules=["q_proj"]), d)


@pytest.mark.parametrize("name", ["eval", "train", "keys", "half", "to", "type", "cuda", "forward", "items"])
def test_reserved_preference_names_are_refused_before_loading(random_base_dir, pos_neg, monkeypatch, name):
    from pvlora.steering import load as runtime
    from pvlora.vectors.extract import extract_vector

    pos, neg, d = pos_neg
    vec = d / f"v-{name}"
    extract_vector(pos, neg, vec, preference=name)
    monkeypatch.setattr(runtime, "load_model", lambda *a, **k: pytest.fail("loaded the base before checking names"))
    with pytest.raises(ArtifactError) as e:
        pvlora.load_composed(str(random_base_dir), {str(vec): 1.0})
    assert f"{name!r}" in str(e.value) and str(vec) in str(e.value) and "torch.nn" in str(e.value), e.value


def test_names_near_reserved_ones_load(random_base_dir, pos_neg):
    from pvlora.vectors.extract import extract_vector

    pos, neg, d = pos_neg
    vec = d / "v-eval_v"
    extract_vector(pos, neg, vec, preference="eval_v")
    model, _ = pvlora.load_composed(str(random_base_dir), {str(vec): 0.5})
    assert pvlora.get_weights(model) == pytest.approx({"eval_v": 0.5})


# ---------------------------------------------------------------- empty prompts


@pytest.mark.parametrize("prompts, where", [([""], "prompts[0]"), (["a b", ""], "prompts[1]"), (["  \n"], "prompts[0]"),
                                            ([[{"role": "user", "content": ""}]], "prompts[0]")])
def test_generate_refuses_an_empty_prompt(loaded, prompts, where):
    model, tok = loaded
    with pytest.raises(RequestError, match=r"is empty") as e:
        pvlora.generate(model, tok, prompts, [{}] * len(prompts), max_new_tokens=2, chat_template=False)
    assert e.value.field == where and where in str(e.value)


@pytest.mark.parametrize("messages", [[{"role": "user", "content": ""}],
                                      [{"role": "system", "content": " "}, {"role": "user", "content": "\n"}]])
def test_serve_refuses_an_empty_prompt(server, messages):
    url, _ = server
    code, r = post(url, {"messages": messages})
    assert code == 400 and r["error"]["param"] == "messages" and "empty" in r["error"]["message"], r


def test_batch_size_zero_is_refused(loaded):
    model, tok = loaded
    with pytest.raises(ConfigError, match="batch_size must be at least 1"):
        pvlora.generate(model, tok, ["a"], [{}], max_new_tokens=2, batch_size=0, chat_template=False)


# ---------------------------------------------------------------- errors that name their field


@pytest.mark.parametrize("raw, param, needle", [
    (b'{"messages": [', None, "not valid JSON"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2,}', None, "not valid JSON"),
    (b'{"messages": [{"role": "user", "content": "hi"}, {"role": "wizard", "content": "x"}]}', "messages.1.role", "messages.1.role"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": "0.5"}', "temperature", "valid number"),
    (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": true}', "max_tokens", "valid integer"),
])
def test_json_errors_name_the_field_not_a_position(server, raw, param, needle):
    url, _ = server
    code, r = post(url, raw, raw=True)
    assert code == 400 and r["error"]["param"] == param and needle in r["error"]["message"], r
    assert not r["error"]["message"].split(":")[0].isdigit(), r


# ---------------------------------------------------------------- SIGTERM


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_sigterm_stops_serve_cleanly_like_sigint(settings, sig):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [sys.executable, "-m", "pvlora.cli", "serve", "--base", settings.base, "--port", str(port), "--max-tokens", "4",
            *[x for v in settings.vectors for x in ("--vector", f"{v}=1")]]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                time.sleep(0.3)
        code, r = post(f"http://127.0.0.1:{port}", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4})
        assert code == 200, r
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # uvicorn shuts down gracefully on either signal; the batcher is closed and the command ends normally
    assert proc.returncode == 0 and "server stopped" in out and "Traceback" not in err, (proc.returncode, out, err)
