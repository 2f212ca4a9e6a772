"""`pvlora serve` over real HTTP on loopback: concurrent requests at different mixes, streamed or not,
return what offline generation at each mix returns, and bad requests get a 400 that leaves the others
alone."""

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import pvlora
from pvlora.serving.app import ServeSettings, build_app, load, running
from tests.helpers import body, post

MIXES = [{"helpful": 0.8, "harmless": -0.4}, {"helpful": -1.5, "harmless": 2.0}, {"helpful": 0.0, "harmless": 0.0},
         {"harmless": 0.3}, {"helpful": 3.0}, {}]
PROMPTS = ["a b c", "hello there friend", "x", "one two", "z z z z", "q"]


@pytest.fixture(scope="module")
def server(random_base_dir, two_vectors):
    settings = ServeSettings(base=str(random_base_dir), vectors={two_vectors["helpful"]: 1.0, two_vectors["harmless"]: 0.5},
                             max_batch=8, max_wait_ms=200, max_tokens=8, max_prompt_tokens=40)
    model, tok = load(settings)
    app = build_app(model, tok, settings, name="test-base")
    with running(app) as url:
        yield url, model, tok, app


def test_concurrent_requests_at_different_mixes_match_offline_generation(server):
    url, model, tok, app = server
    before = len(app.state.batcher.batches)
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        replies = list(pool.map(lambda pm: post(url, body(*pm)), zip(PROMPTS, MIXES)))
    assert all(code == 200 for code, _ in replies), replies
    assert max(app.state.batcher.batches[before:]) > 1  # they were batched together, not one by one
    default = {"helpful": 1.0, "harmless": 0.5}
    for prompt, mix, (_, r) in zip(PROMPTS, MIXES, replies):
        want = {**default, **mix}  # names a request leaves out keep the server's η
        assert r["preference_weights"] == pytest.approx(want)
        alone = pvlora.generate(model, tok, [[{"role": "user", "content": prompt}]], [want], max_new_tokens=8)
        assert r["choices"][0]["message"]["content"] == alone[0], (prompt, mix)
        assert r["object"] == "chat.completion" and r["model"] == "test-base"
        assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
        assert r["choices"][0]["finish_reason"] in ("stop", "length")
    texts = {r["choices"][0]["message"]["content"] for _, r in replies}
    assert len(texts) > 1


@pytest.mark.parametrize("make, status, needle", [
    (lambda: body("hi", {"helpfull": 1.0}), 400, "unknown vector 'helpfull' in preference_weights; this server has: helpful, harmless"),
    (lambda: body("hi", {"helpful": 1e6}), 400, "at most"),
    (lambda: body("hi", {"helpful": "lots"}), 400, "must be a number"),
    (lambda: b'{"messages": [{"role": "user", "content": "hi"}], "preference_weights": {"helpful": NaN}}', 400, "must be finite"),
    (lambda: b'{"messages": [', 400, "JSON"),
    (lambda: b'{"messages": [{"role": "user", "content": "hi"}], "preference_weights": {"helpful": 1' + b"0" * 400 + b"}}",
     400, "too large"),
    (lambda: {"messages": []}, 400, "messages"),
    (lambda: {"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
    (lambda: body("hi", max_tokens=9), 400, "max_tokens 9 is over this server's limit of 8"),
    (lambda: body("hi", seed=2**70, temperature=0.7), 400, "seed: Input should be less than"),
    (lambda: body("word " * 60), 400, "over this server's limit of 40"),
    (lambda: body("w" * 2_000_000), 400, "characters, over this server's limit of 40 tokens"),
    (lambda: body("hi", {"helpfull": 1.0}, stream=True), 400, "unknown vector 'helpfull'"),  # checked before streaming
    (lambda: body("hi", {"/etc/passwd": 1.0}), 400, "unknown vector '/etc/passwd'"),
])
def test_bad_requests_get_a_400_and_leave_others_alone(server, make, status, needle):
    url, *_ = server
    req = make()
    code, r = post(url, req, raw=isinstance(req, bytes))
    assert code == status and needle in r["error"]["message"], r
    code, ok = post(url, body("a b c", {"harmless": 1.0}))  # the server still answers
    assert code == 200 and ok["choices"][0]["message"]["content"] is not None


@pytest.mark.parametrize("make, param", [
    (lambda: body("hi", {"helpful": "lots"}), "preference_weights.helpful"),
    (lambda: body("hi", {"harmless": 1e6}), "preference_weights.harmless"),
    (lambda: body("hi", {"helpfull": 1.0}), "preference_weights"),
    (lambda: body("hi", max_tokens=9), "max_tokens"),
    (lambda: body("word " * 60), "messages"),
    (lambda: body("hi", n=2), "n"),
])
def test_a_bad_value_gets_a_400_naming_its_field(server, make, param):
    url, *_ = server
    code, r = post(url, make())
    assert code == 400 and r["error"]["type"] == "invalid_request_error" and r["error"]["param"] == param, r


def test_a_bad_request_in_a_concurrent_burst_does_not_touch_the_good_ones(server):
    url, model, tok, _ = server
    reqs = [body("a b c", {"helpful": 2.0}), body("hi", {"nope": 1.0}), body("one two", {"harmless": -1.0})]
    with ThreadPoolExecutor(3) as pool:
        (c1, r1), (c2, _r2), (c3, _r3) = pool.map(lambda b: post(url, b), reqs)
    assert (c1, c2, c3) == (200, 400, 200)
    want = pvlora.generate(model, tok, [[{"role": "user", "content": "a b c"}]], [{"helpful": 2.0, "harmless": 0.5}],
                           max_new_tokens=8)
    assert r1["choices"][0]["message"]["content"] == want[0]


def stream(url: str, body: dict) -> list:
    """A streamed reply's server-sent events, parsed (the last one is the "[DONE]" string)."""
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        events = [e for e in r.read().decode().split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e[6:] if e == "data: [DONE]" else json.loads(e[6:]) for e in events]


def test_streamed_replies_equal_plain_replies_and_offline_generation(server):
    url, model, tok, app = server
    mixes = [{"helpful": 2.0, "harmless": -1.0}, {"helpful": -1.0}, {"harmless": 1.5}]
    prompts = ["a b c d", "hello there", "z z"]
    before = len(app.state.batcher.batches)
    with ThreadPoolExecutor(6) as pool:  # streamed and plain requests arrive together and share batches
        streamed = pool.map(lambda pm: stream(url, body(*pm, stream=True, stream_options={"include_usage": True})),
                            zip(prompts, mixes))
        plain = pool.map(lambda pm: post(url, body(*pm)), zip(prompts, mixes))
        streamed, plain = list(streamed), list(plain)
    assert max(app.state.batcher.batches[before:]) > 1
    pieces_seen = 0
    for prompt, mix, events, (code, reply) in zip(prompts, mixes, streamed, plain):
        want = {"helpful": 1.0, "harmless": 0.5, **mix}
        alone = pvlora.generate(model, tok, [[{"role": "user", "content": prompt}]], [want], max_new_tokens=8)[0]
        *chunks, usage, done = events
        assert done == "[DONE]" and code == 200
        assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks + [usage])
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:-1]]
        assert all(pieces) and "".join(pieces) == alone == reply["choices"][0]["message"]["content"], (prompt, pieces)
        pieces_seen += len(pieces)
        assert chunks[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": reply["choices"][0]["finish_reason"]}
        assert usage["choices"] == [] and usage["usage"] == reply["usage"]
        assert chunks[0]["preference_weights"] == pytest.approx(want)
    assert pieces_seen > len(prompts)  # text arrives in pieces, not as one block at the end


def test_a_client_that_leaves_mid_stream_leaves_the_server_answering(server):
    import http.client
    from urllib.parse import urlparse

    url, *_ = server
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps(body("a b c", stream=True)),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.readline().startswith(b"data: {")  # the first event, then gone
    conn.close()
    code, r = post(url, body("one two", {"harmless": 1.0}))
    assert code == 200 and r["choices"][0]["message"]["content"] is not None
    assert stream(url, body("x", stream=True))[-1] == "[DONE]"


def test_a_failed_batch_is_a_json_500_or_an_error_event(server, monkeypatch):
    import pvlora.serving.batcher

    url, *_ = server

    def fail(model, tok, jobs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(pvlora.serving.batcher, "complete", fail)
    code, r = post(url, body("a b c"))
    assert code == 500 and r["error"] == {"message": "generation failed: CUDA out of memory", "type": "server_error",
                                          "param": None, "code": None}
    events = stream(url, body("a b c", stream=True))
    assert events[1]["error"]["message"] == "CUDA out of memory" and events[-1] == "[DONE]"
    monkeypatch.undo()
    assert post(url, body("a b c"))[0] == 200  # the server lives on


def test_models_lists_the_default_mix(server):
    url, *_ = server
    with urllib.request.urlopen(f"{url}/v1/models", timeout=10) as r:
        data = json.loads(r.read())["data"][0]
    assert data["id"] == "test-base" and data["preference_weights"] == {"helpful": 1.0, "harmless": 0.5}


def test_settings_are_checked_before_loading(random_base_dir, two_vectors):
    from pvlora.core.errors import ConfigError

    with pytest.raises(ConfigError, match="max_batch must be at least 1"):
        load(ServeSettings(base=str(random_base_dir), vectors={two_vectors["helpful"]: 1.0}, max_batch=0))
    with pytest.raises(ConfigError, match="at least one vector"):
        load(ServeSettings(base=str(random_base_dir), vectors={}))
