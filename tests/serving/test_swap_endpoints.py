"""Vectors swapped into and out of a running `pvlora serve` (POST/DELETE /v1/vectors) over real HTTP:
off unless allowed, only from allowed places, every bad or hostile vector a 4xx naming the field with
the server still serving, and concurrent requests answered wholly with the old set or the new one."""

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import pvlora
from pvlora.artifacts.manifest import MANIFEST, AdapterManifest
from pvlora.serving.app import ServeSettings, build_app, load, running
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter

DEFAULT = {"helpful": 1.0, "harmless": 0.5}


def call(url: str, method: str, path: str, body=None) -> tuple[int, dict]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def chat(url: str, prompt: str, mix: dict | None = None, stream: bool = False) -> tuple[int, dict]:
    """(status, {"text", "weights"}) for plain and streamed replies alike (a stream's every chunk must
    carry the same preference_weights)."""
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8, "stream": stream}
    if mix is not None:
        body["preference_weights"] = mix
    if not stream:
        code, r = call(url, "POST", "/v1/chat/completions", body)
        return code, ({"text": r["choices"][0]["message"]["content"], "weights": r["preference_weights"]}
                      if code == 200 else r)
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        events = [json.loads(e[6:]) for e in r.read().decode().split("\n\n") if e.startswith("data: {")]
    if any("error" in e for e in events):
        return 500, events[-1]
    weights = [e["preference_weights"] for e in events]
    assert all(w == weights[0] for w in weights), weights
    return 200, {"text": "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]),
                 "weights": weights[0]}


@pytest.fixture(scope="module")
def vector_dir(random_base_dir, tmp_path_factory):
    """The allowed directory: a good vector "extra", a trained adapter, a NaN copy, a copy from another
    base, and a symlink out to a vector outside it."""
    d = tmp_path_factory.mktemp("allowed")
    work = tmp_path_factory.mktemp("work")
    p = make_adapter(random_base_dir, work / "extra-positive", 61, r=3, lora_alpha=6, target_modules=["q_proj", "v_proj"])
    n = make_adapter(random_base_dir, work / "extra-negative", 62, r=2, lora_alpha=2, target_modules=["v_proj", "up_proj"])
    for path, direction in ((p, "positive"), (n, "negative")):
        AdapterManifest(preference="extra", direction=direction).write(path)
    extract_vector(p, n, d / "extra", preference="extra")
    shutil.copytree(p, d / "trained")
    shutil.copytree(d / "extra", d / "nan")
    from safetensors.torch import load_file, save_file

    (d / "nan" / MANIFEST).unlink()
    t = load_file(d / "nan" / "adapter_model.safetensors")
    t[sorted(t)[0]][0, 0] = float("nan")
    save_file(t, d / "nan" / "adapter_model.safetensors")
    shutil.copytree(d / "extra", d / "other-base")
    m = json.loads((d / "other-base" / MANIFEST).read_text())
    m["base"] = {"name_or_path": "org/another", "config_sha256": "f" * 64}
    (d / "other-base" / MANIFEST).write_text(json.dumps(m))
    shutil.copytree(d / "extra", work / "outside")
    os.symlink(work / "outside", d / "link-out")
    return d


@pytest.fixture(scope="module")
def server(random_base_dir, two_vectors, vector_dir):
    settings = ServeSettings(base=str(random_base_dir), vectors={two_vectors["helpful"]: 1.0, two_vectors["harmless"]: 0.5},
                             max_batch=8, max_wait_ms=30, max_tokens=8, max_prompt_tokens=40, allow_vector_swap=True,
                             vector_dirs=(str(vector_dir),), vector_orgs=("pvlora-test",))
    model, tok = load(settings)
    app = build_app(model, tok, settings, name="test-base")
    with running(app) as url:
        yield url, model, tok


def served(url: str) -> dict:
    code, r = call(url, "GET", "/v1/models")
    assert code == 200
    return r["data"][0]["preference_weights"]


def test_swapping_is_off_without_the_flag(random_base_dir, two_vectors, vector_dir):
    settings = ServeSettings(base=str(random_base_dir), vectors={two_vectors["helpful"]: 1.0}, max_tokens=8)
    model, tok = load(settings)
    with running(build_app(model, tok, settings)) as url:
        for method, path, body in (("POST", "/v1/vectors", {"path": str(vector_dir / "extra")}),
                                   ("DELETE", "/v1/vectors/helpful", None)):
            code, r = call(url, method, path, body)
            assert code == 403 and "--allow-vector-swap" in r["error"]["message"], r
        assert call(url, "GET", "/v1/vectors")[1]["swap_allowed"] is False
        assert list(model.peft_config) == ["helpful"]


def test_load_use_and_remove_a_vector(server, random_base_dir, two_vectors, vector_dir):
    url, model, tok = server
    code, r = call(url, "POST", "/v1/vectors", {"path": str(vector_dir / "extra"), "eta": 0.7})
    assert code == 200 and r["name"] == "extra" and r["preference_weights"] == {**DEFAULT, "extra": 0.7}, r
    assert served(url) == {**DEFAULT, "extra": 0.7}
    fresh, _ = pvlora.load_composed(str(random_base_dir), {two_vectors["helpful"]: 1.0, two_vectors["harmless"]: 0.5,
                                                           str(vector_dir / "extra"): 0.7})
    for mix in ({"extra": 1.5}, {}):
        code, got = chat(url, "a b c", mix)
        want = pvlora.generate(fresh, tok, [[{"role": "user", "content": "a b c"}]], [{**DEFAULT, "extra": 0.7, **mix}],
                               max_new_tokens=8)[0]
        assert code == 200 and got["text"] == want and got["weights"] == {**DEFAULT, "extra": 0.7, **mix}
    code, r = call(url, "POST", "/v1/vectors", {"path": str(vector_dir / "extra"), "name": "extra"})
    assert code == 409 and r["error"]["param"] == "name", r
    code, r = call(url, "POST", "/v1/vectors", {"path": str(vector_dir / "extra"), "name": "again"})
    assert code == 400 and r["error"]["param"] == "path" and "already loaded as 'extra'" in r["error"]["message"]

    code, r = call(url, "DELETE", "/v1/vectors/extra")
    assert code == 200 and r["deleted"] and r["preference_weights"] == DEFAULT
    assert served(url) == DEFAULT and list(model.peft_config) == ["helpful", "harmless"]
    code, r = chat(url, "a b c", {"extra": 1.0})
    assert code == 400 and "unknown vector 'extra'" in r["error"]["message"] and r["error"]["param"] == "preference_weights"
    code, r = call(url, "DELETE", "/v1/vectors/extra")
    assert code == 404 and r["error"]["param"] == "name"
    assert chat(url, "a b c")[0] == 200


@pytest.mark.parametrize("body, status, param, needle", [
    ({"path": "/etc"}, 403, "path", "outside the directories"),
    ({"path": "LINK"}, 403, "path", "outside the directories"),  # a symlink in the allowed directory, out of it
    ({"path": "DIR/trained"}, 400, "path", "kind 'adapter'"),
    ({"path": "DIR/nan"}, 400, "path", "NaN or Inf"),
    ({"path": "DIR/other-base"}, 400, "path", "org/another"),
    ({"path": "DIR/missing"}, 400, "path", "no such directory"),
    ({"path": "DIR/extra\u0000x"}, 400, "path", "not a usable path"),
    ({"path": 5}, 400, "path", "string"),
    ({"hub_id": "someone-else/vec"}, 403, "hub_id", "not one this server downloads from"),
    ({"hub_id": "not a repo id"}, 400, "hub_id", "ORG/NAME"),
    ({"hub_id": "pvlora-test/missing"}, 400, "hub_id", "cannot get"),
    ({"path": "DIR/extra", "hub_id": "pvlora-test/x"}, 400, "hub_id", "exactly one"),
    ({}, 400, "path", "exactly one"),
    ({"path": "DIR/extra", "eta": "lots"}, 400, "eta", "must be a number"),
    ({"path": "DIR/extra", "eta": "2"}, 400, "eta", "must be a number"),
    ({"path": "DIR/extra", "eta": True}, 400, "eta", "must be a number"),
    ({"path": "DIR/extra", "eta": 1e9}, 400, "eta", "at most"),
    ({"path": "DIR/extra", "name": 7}, 400, "name", "string"),
    ({"path": "DIR/extra", "name": "../x"}, 400, "name", "not valid"),
    ({"path": "DIR/extra", "name": "helpful"}, 409, "name", "already loaded"),
    ({"path": "DIR/extra", "nmae": "x"}, 400, "nmae", "Extra inputs"),
])
def test_a_bad_or_hostile_vector_is_a_4xx_naming_the_field(server, vector_dir, offline_cache, body, status, param, needle):
    url, model, _ = server
    if isinstance(body.get("path"), str):
        body = {**body, "path": body["path"].replace("DIR", str(vector_dir)).replace("LINK", str(vector_dir / "link-out"))}
    code, r = call(url, "POST", "/v1/vectors", body)
    assert code == status and r["error"]["param"] == param and needle in r["error"]["message"], r
    assert served(url) == DEFAULT and list(model.peft_config) == ["helpful", "harmless"]
    assert chat(url, "a b c", {"harmless": 1.0})[0] == 200  # the server keeps serving


def test_the_last_vector_stays(random_base_dir, two_vectors):
    settings = ServeSettings(base=str(random_base_dir), vectors={two_vectors["helpful"]: 1.0}, max_tokens=8,
                             allow_vector_swap=True)
    model, tok = load(settings)
    with running(build_app(model, tok, settings)) as url:
        code, r = call(url, "DELETE", "/v1/vectors/helpful")
        assert code == 409 and "only vector" in r["error"]["message"]
        code, r = call(url, "POST", "/v1/vectors", {"path": two_vectors["harmless"]})
        assert code == 403 and r["error"]["param"] == "path" and "vector_dirs" in r["error"]["message"]


def test_requests_during_swaps_get_the_old_set_or_the_new_one_never_a_mix(server, random_base_dir, two_vectors,
                                                                           vector_dir):
    url, model, tok = server
    prompts = ["a b c", "hello there friend", "x", "one two"]
    new_mix = {**DEFAULT, "extra": 3.0}
    old_model, _ = pvlora.load_composed(str(random_base_dir), {two_vectors["helpful"]: 1.0, two_vectors["harmless"]: 0.5})
    new_model, _ = pvlora.load_composed(str(random_base_dir), {two_vectors["helpful"]: 1.0, two_vectors["harmless"]: 0.5,
                                                               str(vector_dir / "extra"): 3.0})
    msgs = [[{"role": "user", "content": p}] for p in prompts]
    old = dict(zip(prompts, pvlora.generate(old_model, tok, msgs, [DEFAULT] * 4, max_new_tokens=8)))
    new = dict(zip(prompts, pvlora.generate(new_model, tok, msgs, [new_mix] * 4, max_new_tokens=8)))
    assert sum(old[p] != new[p] for p in prompts) >= 3  # the two sets answer differently: a mix would show

    stop, results = threading.Event(), []

    def client(i):
        k = 0
        while not stop.is_set():
            prompt = prompts[(i + k) % 4]
            code, r = chat(url, prompt, None, stream=bool((i + k) % 2))
            results.append((prompt, code, r))
            k += 1

    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(client, i) for i in range(6)]
        time.sleep(0.3)
        for _ in range(3):
            assert call(url, "POST", "/v1/vectors", {"path": str(vector_dir / "extra"), "eta": 3.0})[0] == 200
            time.sleep(0.4)
            assert call(url, "DELETE", "/v1/vectors/extra")[0] == 200
            time.sleep(0.4)
        stop.set()
        for f in futures:
            f.result()
    seen = {"old": 0, "new": 0}
    for prompt, code, r in results:
        assert code == 200, r
        which = "new" if "extra" in r["weights"] else "old"
        assert r["weights"] == (new_mix if which == "new" else DEFAULT)
        assert r["text"] == (new if which == "new" else old)[prompt], (prompt, r)
        seen[which] += 1
    assert seen["old"] > 5 and seen["new"] > 5, seen


class Gate:
    """Holds the next batch at its first forward pass until opened: a batch in flight, on demand."""

    def __init__(self, model):
        self.entered, self.release, self.armed = threading.Event(), threading.Event(), False
        self.handle = model.get_base_model().register_forward_pre_hook(self.hook)

    def hook(self, module, args):
        if self.armed:
            self.armed = False
            self.entered.set()
            assert self.release.wait(60)

    def arm(self):
        self.entered.clear()
        self.release.clear()
        self.armed = True


def test_swaps_wait_for_the_batch_in_flight_and_a_removal_for_the_requests_using_it(server, vector_dir):
    url, model, tok = server
    extra = {"path": str(vector_dir / "extra"), "eta": 3.0}
    gate = Gate(model)
    try:
        with ThreadPoolExecutor(4) as pool:
            # an add while a batch runs: it lands after the batch, which ran with the old set
            gate.arm()
            running_req = pool.submit(chat, url, "a b c")
            assert gate.entered.wait(30)
            add = pool.submit(call, url, "POST", "/v1/vectors", extra)
            time.sleep(0.5)
            assert not add.done() and "extra" not in model.peft_config  # waiting for the batch
            gate.release.set()
            code, r = running_req.result(60)
            assert code == 200 and r["weights"] == DEFAULT
            assert add.result(60)[0] == 200 and served(url) == {**DEFAULT, "extra": 3.0}

            # a removal while a request using it runs and another waits in the queue: both answered
            # with the set they were accepted with, then it goes
            gate.arm()
            first = pool.submit(chat, url, "a b c")
            assert gate.entered.wait(30)
            queued = pool.submit(chat, url, "x", None, True)  # streamed
            time.sleep(0.2)
            remove = pool.submit(call, url, "DELETE", "/v1/vectors/extra")
            time.sleep(0.5)
            assert not remove.done() and "extra" in model.peft_config
            code, r = chat(url, "x", {"extra": 1.0})  # meanwhile: new requests naming it get a 400 at once
            assert code == 400 and "unknown vector 'extra'" in r["error"]["message"]
            gate.release.set()
            for fut in (first, queued):
                code, r = fut.result(60)
                assert code == 200 and r["weights"] == {**DEFAULT, "extra": 3.0}, r
            assert remove.result(60)[0] == 200 and "extra" not in model.peft_config
    finally:
        gate.release.set()
        gate.handle.remove()


def test_a_job_needing_a_removed_vector_fails_alone():
    from pvlora.core.errors import RequestError
    from pvlora.serving.batcher import Job, admit

    class Model:
        peft_config = {"helpful": None}

    gone, zero, fine = (Job("p", w, 4, 0.0, 1.0, None) for w in ({"helpful": 1.0, "extra": 2.0},
                                                                   {"helpful": 1.0, "extra": 0.0}, {"helpful": 1.0}))
    ran = admit(Model(), [gone, zero, fine])
    assert [j.weights for j in ran] == [{"helpful": 1.0}, {"helpful": 1.0}] and ran[0].future is zero.future
    with pytest.raises(RequestError, match="'extra' was removed") as e:
        gone.future.result(timeout=1)
    assert e.value.field == "preference_weights"


def test_serve_flags(capsys):
    from pvlora.cli import main

    assert main(["serve", "--base", "tiny", "--vector", "v=1", "--vector-dir", "."]) == 2
    assert "need --allow-vector-swap" in capsys.readouterr().err
