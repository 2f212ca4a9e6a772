"""The server's batcher: requests that arrive together are generated in one pass, each row at its own
request's mix (:mod:`pvlora.steering.rowwise`), in one worker thread fed by a queue.

A small batcher of our own rather than a serving engine's scheduler: the engines people run (vLLM,
TGI, SGLang) take one adapter per request and cannot apply several deltas at per-row weights, which
is the whole point here.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pvlora.core.errors import PvloraError, RequestError
from pvlora.serving.streaming import RowStreamer

logger = logging.getLogger(__name__)


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
    def key(self) -> tuple:  # rows batched together must decode the same way (each row samples with its own seed)
        return (self.max_tokens, self.temperature, self.top_p)


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
                          "eos_token_id": tok.eos_token_id, "do_sample": False}
    if j0.temperature > 0:  # each row draws from its own generator: its request's seed, or a fresh one
        from pvlora.steering.sampling import random_seed, row_sampling

        kw.update(row_sampling(model, [random_seed() if j.seed is None else j.seed for j in jobs],
                               {"temperature": j0.temperature, "top_p": j0.top_p}))
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
        # Held while a batch runs, so a vector swap (pvlora.serving.vectors_admin) happens between batches
        # and every batch sees one set of vectors; pending: vector -> queued or running jobs giving it η ≠ 0
        # (a removal waits for them).
        self.lock = threading.Lock()
        self.pending: collections.Counter[str] = collections.Counter()
        self._count = threading.Lock()
        # Set once the worker thread has died (pvlora.serving.batcher.Batcher._loop): every request then fails.
        self.error: Exception | None = None
        self._death = threading.Lock()
        self.thread = threading.Thread(target=self._loop, name="pvlora-batcher", daemon=True)
        self.thread.start()

    def submit(self, job: Job) -> concurrent.futures.Future:
        used = [n for n, v in job.weights.items() if v]
        with self._count:
            self.pending.update(used)
        job.future.add_done_callback(lambda _: self._finished(used))
        with self._death:  # a dead worker never leaves a request waiting: it fails at once
            if self.error is None:
                self.queue.put(job)
                return job.future
        job.future.set_exception(self.error)
        return job.future

    @property
    def alive(self) -> bool:
        return self.error is None and self.thread.is_alive()

    def _finished(self, used: list[str]) -> None:
        with self._count:
            self.pending.subtract(used)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        """The worker: batches until closed. If it dies (an error outside a batch's own handling), the
        requests it holds, those queued and every later one fail with the error instead of hanging."""
        held: list[Job] = []
        try:
            self._batches(held)
        except BaseException as exc:  # noqa: BLE001 — the thread ends here; its requests must not wait forever
            logger.error("[pvlora] the batcher stopped", exc_info=True)
            error = PvloraError(f"the batcher stopped ({type(exc).__name__}: {exc}); restart the server")
            with self._death:
                self.error = error
                while True:
                    try:
                        held.append(self.queue.get_nowait())
                    except queue.Empty:
                        break
            for job in held:
                if job is not None and not job.future.done():
                    job.future.set_exception(error)

    def _batches(self, held: list[Job]) -> None:
        while (first := self.queue.get()) is not None:
            held[:] = [first]
            batch = held  # what the worker holds: failed with the error should it die
            deadline = time.monotonic() + self.max_wait_s
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
                with self.lock:
                    self._run(admit(self.model, jobs))

    def _run(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        self.batches.append(len(jobs))
        try:
            for job, result in zip(jobs, complete(self.model, self.tok, jobs)):
                job.future.set_result(result)
        except Exception as exc:  # noqa: BLE001 — every waiting request gets the error, the server lives on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)


def admit(model, jobs: list[Job]) -> list[Job]:
    """The jobs that can run with the vectors loaded now. A vector removed after a job was accepted
    (removals wait for the jobs that use it, so this is rare) is dropped from the job when it gave it
    η = 0 (the same output); a job that gave it η ≠ 0 fails with a 400 naming it."""
    if not hasattr(model, "peft_config"):
        return jobs
    loaded, out = set(model.peft_config), []
    for job in jobs:
        gone = [n for n in job.weights if n not in loaded]
        used = [n for n in gone if job.weights[n]]
        if used:
            job.future.set_exception(RequestError(f"vector {used[0]!r} was removed from this server before the "
                                                  "request ran; send it again", "preference_weights"))
        elif gone:
            out.append(dataclasses.replace(job, weights={n: v for n, v in job.weights.items() if n in loaded}))
        else:
            out.append(job)
    return out
