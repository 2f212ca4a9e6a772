"""`pvlora serve` driven by the real OpenAI Python client, the way users call it: per-request mixes
through `extra_body`, streaming, concurrent clients at different mixes, and errors the client raises
as `BadRequestError` with our message."""

from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai", reason="the openai client is not installed (pip install openai; .ci/run installs it)")

import pvlora
from pvlora.serving.app import ServeSettings, build_app, load, running

DEFAULT = {"helpful": 1.0, "harmless": 0.5}
MIXES = [{"helpful": 0.8, "harmless": -0.4}, {"helpful": -1.5, "harmless": 2.0}, {"helpful": 0.0, "harmless": 0.0},
         {"harmless": 0.3}]
PROMPTS = ["a b c", "hello there friend", "x", "one two"]


@pytest.fixture(scope="module")
def client(random_base_dir, two_vectors):
    settings = ServeSettings(base=str(random_base_dir), vectors={two_vectors["helpful"]: DEFAULT["helpful"],
                                                                 two_vectors["harmless"]: DEFAULT["harmless"]},
                             max_batch=8, max_wait_ms=200, max_tokens=8, max_prompt_tokens=40)
    model, tok = load(settings)
    app = build_app(model, tok, settings, name="test-base")
    with running(app) as url:
        yield openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=60), model, tok


def offline(model, tok, prompt: str, mix: dict) -> str:
    return pvlora.generate(model, tok, [[{"role": "user", "content": prompt}]], [mix], max_new_tokens=8)[0]


def ask(c, prompt: str, mix: dict | None, **kw):
    extra = {"extra_body": {"preference_weights": mix}} if mix is not None else {}
    return c.chat.completions.create(model="test-base", messages=[{"role": "user", "content": prompt}],
                                     max_tokens=8, **extra, **kw)


def test_extra_body_weights_give_offline_generation_at_that_mix(client):
    c, model, tok = client
    r = ask(c, "hello there friend", {"helpful": -1.5, "harmless": 2.0})
    assert r.object == "chat.completion" and r.model == "test-base"
    assert r.choices[0].message.content == offline(model, tok, "hello there friend", {"helpful": -1.5, "harmless": 2.0})
    # the mix used is echoed as an extra field the client keeps
    assert r.model_extra["preference_weights"] == pytest.approx({"helpful": -1.5, "harmless": 2.0})
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    plain = ask(c, "hello there friend", None)  # no weights: the server's own η
    assert plain.choices[0].message.content == offline(model, tok, "hello there friend", DEFAULT)


def test_concurrent_clients_at_different_mixes(client):
    c, model, tok = client
    with ThreadPoolExecutor(len(PROMPTS)) as pool:
        replies = list(pool.map(lambda pm: ask(c, *pm), zip(PROMPTS, MIXES)))
    for prompt, mix, r in zip(PROMPTS, MIXES, replies):
        want = {**DEFAULT, **mix}  # names a request leaves out keep the server's η
        assert r.choices[0].message.content == offline(model, tok, prompt, want), (prompt, mix)


def test_streamed_pieces_add_up_to_the_plain_reply(client):
    c, model, tok = client
    mix = {"helpful": 0.8, "harmless": -0.4}
    stream = ask(c, "a b c", mix, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    pieces = [ch.choices[0].delta.content or "" for ch in chunks if ch.choices]
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert "".join(pieces) == offline(model, tok, "a b c", {**DEFAULT, **mix})
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1


@pytest.mark.parametrize("mix, needle", [
    ({"helpfull": 1.0}, "unknown vector 'helpfull'"),
    ({"helpful": "lots"}, "must be a number"),
])
def test_a_bad_weight_is_a_bad_request_naming_it_and_the_server_goes_on(client, mix, needle):
    c, model, tok = client
    with pytest.raises(openai.BadRequestError) as err:
        ask(c, "hi", mix)
    assert err.value.status_code == 400 and needle in str(err.value)
    with pytest.raises(openai.BadRequestError, match="unknown vector"):
        list(ask(c, "hi", {"nope": 1.0}, stream=True))
    assert ask(c, "x", {}).choices[0].message.content == offline(model, tok, "x", DEFAULT)
