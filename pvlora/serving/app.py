"""`pvlora serve`: an OpenAI-compatible chat-completions server where every request carries its own mix.

The base and the vectors are loaded once, at start, from the command line; a request names vectors
only by their loaded names (``preference_weights: {name: η}``), so no request can make the server
read a file. Requests that arrive together are batched (up to ``max_batch``, waiting at most
``max_wait_ms`` for company) and generated in one pass with per-row weights
(:mod:`pvlora.steering.rowwise`): each row at its own request's mix, exactly as if it ran alone. A request
with ``stream: true`` gets its text as server-sent events while the batch generates
(:mod:`pvlora.serving.streaming`).

FastAPI + uvicorn: the stack vLLM's and SGLang's OpenAI-compatible servers use, so clients and
proxies behave as they expect; pydantic validates the body (a malformed one is a 400 naming the
field, before it reaches the model), and uvicorn is the maintained reference ASGI server. The model
runs in one worker thread fed by a queue, so the event loop never blocks on a forward pass.
"""

# No ``from __future__ import annotations``: FastAPI reads the request model from the handler's
# annotation at run time, and the model class is local to build_app (pydantic stays an optional import).
import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pvlora.serving.batcher import Batcher, Job, complete  # noqa: F401  (complete: part of this module's API)
from pvlora.core.errors import ConfigError, PvloraError, RequestError
from pvlora.core.eta import check_eta
from pvlora import __version__
from pvlora.serving.guards import body_error, check_settings
from pvlora.serving.streaming import chat_chunks
from pvlora.serving.vectors_admin import add_vector_routes
from pvlora.steering.scales import get_weights

logger = logging.getLogger(__name__)
INSTALL = "pip install 'pvlora[serve]'  (FastAPI and uvicorn)"
# A prompt of more characters than this per allowed token is over the limit for any vocabulary whose
# tokens are shorter (SmolLM2's longest is 81 characters), so it is refused before tokenising.
CHARS_PER_TOKEN = 256


@dataclass
class ServeSettings:
    """What ``pvlora serve`` loads and how it batches; one field per command-line flag."""

    base: str
    vectors: dict[str, float]  # vector path or Hub id -> default η (a request's names override theirs)
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 16  # rows generated together
    max_wait_ms: float = 10.0  # how long the first request of a batch waits for others
    max_tokens: int = 256  # the most new tokens a request may ask for (and its default)
    max_prompt_tokens: int = 2048  # longer prompts are refused with a 400
    temperature: float = 0.0  # default when a request gives none: 0 = greedy
    revision: str | None = None
    # POST/DELETE /v1/vectors (pvlora.serving.vectors_admin): off unless allowed; loading only from these
    allow_vector_swap: bool = False
    vector_dirs: tuple[str, ...] = ()  # directories (and below) a vector may be loaded from
    vector_orgs: tuple[str, ...] = ()  # Hub organisations a vector may be downloaded from


def build_app(model, tok, settings: ServeSettings, name: str | None = None):
    """The FastAPI app around a loaded model (from :func:`pvlora.load_composed`)."""
    try:
        from fastapi import FastAPI, Request
        from fastapi.exceptions import RequestValidationError
        from fastapi.responses import JSONResponse
        from pydantic import BaseModel, ConfigDict, Field
    except ImportError as exc:
        raise PvloraError(f"pvlora serve needs FastAPI and uvicorn: {INSTALL}") from exc
    from typing import Literal

    from pvlora.steering.logprobs import prompt_text
    from pvlora.steering.prompts import has_chat_template, is_blank

    check_settings(settings)
    # Every request is a chat: without a template each one would fail with a 500 from inside the
    # tokenizer; refuse to start instead, naming the base.
    if not has_chat_template(tok):
        raise ConfigError(f"pvlora serve answers chat completions, but the tokenizer of {settings.base} has no chat "
                          "template: serve an instruct (chat) base, or give the tokenizer one (set "
                          "tokenizer.chat_template and save it with the base) before serving")
    default = get_weights(model)  # the server's mix: η per loaded vector name
    served = name or str(settings.base)
    batcher = Batcher(model, tok, settings.max_batch, settings.max_wait_ms / 1000)

    class Message(BaseModel):
        model_config = ConfigDict(strict=True)  # a string is a string: no number or boolean turned into one
        role: Literal["system", "user", "assistant"]
        content: str

    class ChatRequest(BaseModel):
        # OpenAI clients send fields a server may ignore; strict: a number is a JSON number, not "0.5" or true
        model_config = ConfigDict(extra="ignore", strict=True)
        model: str | None = None
        messages: list[Message] = Field(min_length=1)
        max_tokens: int | None = Field(None, ge=1)
        max_completion_tokens: int | None = Field(None, ge=1)
        temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
        top_p: float = Field(1.0, gt=0, le=1, allow_inf_nan=False)
        seed: int | None = Field(None, ge=-2**63, lt=2**64)  # what torch.manual_seed takes
        n: int = 1
        stream: bool = False
        stream_options: dict[str, Any] | None = None  # {"include_usage": true}: a last chunk with usage
        preference_weights: dict[str, Any] | None = None

    app = FastAPI(title="pvlora serve", version=_version())
    app.state.batcher = batcher

    def error(status: int, message: str, param: str | None = None) -> JSONResponse:
        kind = "invalid_request_error" if status < 500 else "server_error"
        return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": None}},
                            status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError):
        return error(400, *body_error(exc.errors()))  # the field's path; no param for a body that is not JSON

    @app.exception_handler(RequestError)  # a request's value: the 400 names its field (OpenAI's "param")
    async def bad_field(request: Request, exc: RequestError):
        return error(400, str(exc), exc.field)

    @app.exception_handler(PvloraError)
    async def bad_value(request: Request, exc: PvloraError):
        return error(400, str(exc))

    @app.get("/health")
    async def health():  # 503 once the batcher has died: every request would get a 500
        return {"status": "ok"} if batcher.alive else error(503, "the batcher stopped; restart the server")

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": served, "object": "model", "owned_by": "pvlora",
                                            "preference_weights": default}]}

    @app.post("/v1/chat/completions")
    async def chat(req: ChatRequest):
        if req.n != 1:
            raise RequestError(f"n must be 1, got {req.n}", "n")
        weights = dict(default)
        for vec, eta in (req.preference_weights or {}).items():
            if vec not in default:
                raise RequestError(f"unknown vector {vec!r} in preference_weights; this server has: "
                                   f"{', '.join(default)}", "preference_weights")
            weights[vec] = check_eta(vec, eta, f"preference_weights.{vec}", strict=True)  # a JSON number in range
        max_tokens = req.max_completion_tokens or req.max_tokens or settings.max_tokens
        if max_tokens > settings.max_tokens:
            raise RequestError(f"max_tokens {max_tokens} is over this server's limit of {settings.max_tokens}",
                               "max_tokens")
        if is_blank([m.model_dump() for m in req.messages]):
            raise RequestError("the prompt is empty: every message's content is blank", "messages")
        text = prompt_text(tok, [m.model_dump() for m in req.messages])
        if len(text) > CHARS_PER_TOKEN * settings.max_prompt_tokens:
            raise RequestError(f"the prompt is {len(text)} characters, over this server's limit of "
                               f"{settings.max_prompt_tokens} tokens", "messages")
        n_prompt = len(tok(text, add_special_tokens=False)["input_ids"])
        if n_prompt > settings.max_prompt_tokens:
            raise RequestError(f"the prompt is {n_prompt} tokens, over this server's limit of "
                               f"{settings.max_prompt_tokens}", "messages")
        temperature = settings.temperature if req.temperature is None else req.temperature
        job = Job(text, weights, max_tokens, temperature, req.top_p, req.seed)
        head = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": served,
                "preference_weights": weights}
        if req.stream:  # every check above has passed: from here on, errors travel in the stream
            from fastapi.responses import StreamingResponse

            usage = bool((req.stream_options or {}).get("include_usage"))
            return StreamingResponse(chat_chunks(batcher.submit, job, head, usage), media_type="text/event-stream")
        try:
            out = await asyncio.wrap_future(batcher.submit(job))
        except RequestError:  # a vector it uses was removed before it ran (pvlora.serving.batcher.admit): a 400
            raise
        except Exception as exc:  # noqa: BLE001 — the batch failed (e.g. out of memory): say so, as OpenAI does
            return error(500, f"generation failed: {exc}")
        return {
            **head, "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": out.text},
                         "finish_reason": out.finish_reason}],
            "usage": out.usage(),
        }

    add_vector_routes(app, batcher, default, settings)  # POST/DELETE /v1/vectors, off unless allowed
    return app


def _version() -> str:
    return __version__


def load(settings: ServeSettings):
    """(model, tokenizer) for the settings: the base and every vector, loaded once."""
    from pvlora.steering.load import load_composed

    if not settings.vectors:
        raise ConfigError("the server needs at least one vector (vectors: {path or Hub id: η})")
    check_settings(settings)  # bounds (pvlora.serving.guards) before anything loads
    model, tok = load_composed(settings.base, settings.vectors, revision=settings.revision)
    if tok is None:
        raise ConfigError("pvlora serve needs a base given by name or directory (it loads the tokenizer too)")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model, tok


@contextlib.contextmanager
def running(app, host: str = "127.0.0.1", port: int = 0, timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread (port 0: a free one) while the block runs;
    yields its base URL, then stops the server and the batcher. For tests and load benchmarks."""
    import socket

    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="pvlora-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise PvloraError(f"the server did not start on {host}:{port} within {timeout:g} s")
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
        app.state.batcher.close()


def serve(settings: ServeSettings) -> None:
    """Load once, then serve until interrupted (``pvlora serve`` stops on SIGTERM as on SIGINT:
    :func:`pvlora.serving.guards.sigterm_as_interrupt`)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise PvloraError(f"pvlora serve needs FastAPI and uvicorn: {INSTALL}") from exc
    model, tok = load(settings)
    app = build_app(model, tok, settings)
    logger.info(f"[pvlora] serving {settings.base} with {', '.join(app.state.batcher.model.peft_config)} on "
                f"http://{settings.host}:{settings.port}/v1/chat/completions")
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    finally:
        app.state.batcher.close()
        logger.info("[pvlora] server stopped")


__all__ = ["ServeSettings", "build_app", "complete", "load", "running", "serve"]
