"""The server's batcher: requests that arrive together are generated in one pass, each row at its own
request's mix (:mod:`pvlora.steering.rowwise`), in one worker thread fed by a queue.

A small batcher of our own rather than a serving engine's scheduler: the engines people run (vLLM,
TGI, SGLang) take one adapter per request and cannot apply several deltas at per-row weights, which
is the whole point here.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pvlora.serving.streaming import RowStreamer


@dataclass
class Job:
    """One request's work: its chat-templated prompt, its mix and how to decode."""

    text: str
    weights: dict[str, float]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int | None
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)
    stream: Callable[[str], None] | None = None  # gets the reply's new text while the batch generates

    @property
    def key(self) -> tuple:  # rows batched together must decode the same way
        return (self.max_tokens, self.temperature, self.top_p, self.seed)


@dataclass(frozen=True)
class Completion:
    """One request's reply, as its batch produced it: what the OpenAI response (or the last chunks of
    a streamed one) carries."""

    text: str  # the new tokens up to and including EOS, decoded without special tokens, stripped
    prompt_tokens: int  # the prompt's own tokens (its row's padding not counted)
    completion_tokens: int  # new tokens, the EOS included
    finish_reason: Literal["stop", "length"]  # stop: EOS was generated; length: max_tokens ran out first

    def usage(self) -> dict[str, int]:
        """OpenAI's ``usage`` block."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


def complete(model, tok, jobs: list[Job]) -> list[Completion]:
    """Generate every job's completion in one batch, row i at jobs[i].weights (same decoding for all)."""
    import torch

    from pvlora.steering.rowwise import row_weights

    j0 = jobs[0]
    side = tok.padding_side
    tok.padding_side = "left"  # decoder-only: the prompt flush against the new tokens
    try:
        enc = tok([j.text for j in jobs], return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = side
    kw: dict[str, Any] = {"max_new_tokens": j0.max_tokens, "pad_token_id": tok.pad_token_id,
                          "eos_token_id": tok.eos_token_id, "do_sample": j0.temperature > 0}
    if j0.temperature > 0:
        kw.update(temperature=j0.temperature, top_p=j0.top_p)
        if j0.seed is not None:
            torch.manual_seed(j0.seed)
    if any(j.stream for j in jobs):  # streaming and plain requests share a batch
        kw["streamer"] = RowStreamer(tok, [j.stream for j in jobs])
    with torch.no_grad(), row_weights(model, [j.weights for j in jobs]):
        ids = model.generate(**enc.to(next(model.parameters()).device), **kw)
    new = ids[:, enc["input_ids"].shape[1]:]  # (batch, ≤ max_tokens)
    out = []
    for i in range(len(jobs)):
        row = new[i].tolist()
        ended = tok.eos_token_id in row
        n = row.index(tok.eos_token_id) + 1 if ended else len(row)
        out.append(Completion(text=tok.decode(row[:n], skip_special_tokens=True).strip(),
                              prompt_tokens=int(enc["attention_mask"][i].sum()), completion_tokens=n,
                              finish_reason="stop" if ended else "length"))
    return out


class Batcher:
    """One worker thread owns the model; requests queue up and leave in batches of compatible rows."""

    def __init__(self, model, tok, max_batch: int, max_wait_s: float):
        self.model, self.tok, self.max_batch, self.max_wait_s = model, tok, max_batch, max_wait_s
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.batches: list[int] = []  # size of every batch run (for tests and the load benchmark)
        self.thread = threading.Thread(target=self._loop, name="pvlora-batcher", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> concurrent.futures.Future:
        self.queue.put(job)
        return job.future

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while (first := self.queue.get()) is not None:
            batch, deadline = [first], time.monotonic() + self.max_wait_s
            while len(batch) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                try:
                    job = self.queue.get(timeout=left)
                except queue.Empty:
                    break
                if job is None:
                    self.queue.put(None)  # finish this batch, then stop
                    break
                batch.append(job)
            groups: dict[tuple, list[Job]] = {}
            for job in batch:
                groups.setdefault(job.key, []).append(job)
            for jobs in groups.values():
                self.batches.append(len(jobs))
                try:
                    for job, result in zip(jobs, complete(self.model, self.tok, jobs)):
                        job.future.set_result(result)
                except Exception as exc:  # noqa: BLE001 — every waiting request gets the error, the server lives on
                    for job in jobs:
                        if not job.future.done():
                            job.future.set_exception(exc)
