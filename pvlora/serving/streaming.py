"""Streaming replies while their batch is still generating: each row's new text goes to its own
request as it is made, as OpenAI-style server-sent events (``chat.completion.chunk``, then
``data: [DONE]``), which OpenAI clients read with ``stream=True``.

Our own streamer rather than ``transformers.TextIteratorStreamer``: that one takes a batch of one,
and a batch here holds many requests, each at its own mix. ``generate`` calls only ``put`` (first
the prompt ids, then one token per row per step) and ``end``, so a plain class does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

Sink = Callable[[str], None]


class RowStreamer:
    """Hands each row's new text to its sink (None: that row does not stream).

    The concatenated pieces equal the final reply, ``decode(tokens up to EOS).strip()``: leading
    whitespace is never sent, trailing whitespace waits until text follows it, and a piece that
    ends inside a multi-byte character (decoded as U+FFFD) waits for the rest."""

    def __init__(self, tok, sinks: list[Sink | None]):
        self.tok, self.sinks = tok, sinks
        self.ids: list[list[int]] = [[] for _ in sinks]
        self.sent = [""] * len(sinks)
        self.done = [False] * len(sinks)
        self.prompt_seen = False

    def put(self, value) -> None:  # value: (rows, prompt length) once, then (rows,) per step
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for i, token in enumerate(value.reshape(-1).tolist()):
            if self.done[i] or self.sinks[i] is None:
                continue
            self.ids[i].append(token)
            self.done[i] = token == self.tok.eos_token_id
            self._emit(i, final=self.done[i])

    def end(self) -> None:
        for i in range(len(self.sinks)):
            if self.sinks[i] is not None:
                self._emit(i, final=True)

    def _emit(self, i: int, final: bool) -> None:
        text = self.tok.decode(self.ids[i], skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return
        text = text.strip()
        # A piece once sent cannot be taken back: text that does not extend what was sent (a
        # tokenizer that re-spaces earlier text) waits until it does.
        if len(text) > len(self.sent[i]) and text.startswith(self.sent[i]):
            try:
                self.sinks[i](text[len(self.sent[i]):])
            except Exception:  # noqa: BLE001 — a gone client must not stop the batch: its row stops streaming
                self.sinks[i] = None
            self.sent[i] = text


_END = object()


async def chat_chunks(submit: Callable[[Any], Any], job, head: dict[str, Any], include_usage: bool) -> AsyncIterator[str]:
    """The server-sent events of one streamed chat completion.

    Args:
        submit: the batcher's ``submit`` (returns a ``concurrent.futures.Future`` of the
            :class:`pvlora.serving.batcher.Completion`).
        job: the request's :class:`pvlora.serving.batcher.Job`; its ``stream`` sink is set here.
        head: the fields every chunk carries (``id``, ``created``, ``model``, ``preference_weights``).
        include_usage: send a last chunk with ``usage`` and no choices (OpenAI's ``stream_options``).
    """
    loop, pieces = asyncio.get_running_loop(), asyncio.Queue()

    def event(choices: list[dict[str, Any]], **extra) -> str:
        return f"data: {json.dumps({**head, 'object': 'chat.completion.chunk', 'choices': choices, **extra})}\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> str:
        return event([{"index": 0, "delta": content, "finish_reason": finish}])

    # Called in the batcher's thread; call_soon_threadsafe keeps pieces and the end in their order.
    job.stream = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)
    future = submit(job)
    future.add_done_callback(lambda _: loop.call_soon_threadsafe(pieces.put_nowait, _END))
    yield delta({"role": "assistant", "content": ""})
    while (piece := await pieces.get()) is not _END:
        yield delta({"content": piece})
    try:
        out = future.result()
    except Exception as exc:  # noqa: BLE001 — the status line is sent; the error goes in the stream
        yield f"data: {json.dumps({'error': {'message': str(exc), 'type': 'server_error', 'param': None, 'code': None}})}\n\n"
    else:
        yield delta({}, out.finish_reason)
        if include_usage:
            yield event([], usage=out.usage())
    yield "data: [DONE]\n\n"
