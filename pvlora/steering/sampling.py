"""Seeded sampling where every row of a batch draws from its own generator, so a row's sample depends on
its prompt, its mix and its seed, never on the rows it shares a batch with.

HF ``generate(do_sample=True)`` draws every row from torch's one global generator: row i's draws then
depend on how many rows come before it and on how many steps they run, so the same prompt and seed give
another sample in another batch (and two threads sampling at once share the stream). Here ``generate``
runs greedy (``do_sample=False``) with :class:`RowSampler` as the last logits processor: it applies the
same warpers HF's sampling would (temperature, then top-k, top-p, min-p), draws each row's token with that
row's own ``torch.Generator``, and leaves only that token finite, which greedy then picks.

Temperature is applied as ``(logits - max) / T`` in float64: the same distribution as ``softmax(logits / T)``,
without the overflow that makes HF's sampler fail for tiny T; as T -> 0 it is the greedy answer.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import Any

import torch
from transformers.generation.logits_process import (
    LogitsProcessor,
    LogitsProcessorList,
    MinPLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from pvlora.core.errors import ConfigError

KNOBS = ("temperature", "top_k", "top_p", "min_p")  # what RowSampler applies, in HF's order
UNSUPPORTED = ("typical_p", "epsilon_cutoff", "eta_cutoff", "top_h")  # HF warpers RowSampler does not apply
SEEDS = 2**64  # torch.Generator.manual_seed takes [0, 2**64)
_GOLDEN = 0x9E3779B97F4A7C15  # spreads copy numbers over the seed space


def row_seed(seed: int, copy: int = 0) -> int:
    """The generator seed of copy ``copy`` (a ``num_return_sequences`` copy) of a row seeded ``seed``;
    copy 0 is the seed itself (negative seeds wrap, as ``torch.manual_seed`` takes them)."""
    return (int(seed) + copy * _GOLDEN) % SEEDS


def random_seed() -> int:
    """A fresh seed for a row that asked for none (independent of torch's global generator)."""
    return secrets.randbits(64)


class RowSampler(LogitsProcessor):
    """Draws row i's next token with generator i; returns scores that are -inf except at that token."""

    def __init__(self, seeds: Sequence[int], temperature: float, top_k: int | None = None, top_p: float | None = None,
                 min_p: float | None = None):
        self.seeds, self.temperature = [row_seed(s) for s in seeds], float(temperature)
        self.warpers: list[LogitsProcessor] = []
        if top_k:
            self.warpers.append(TopKLogitsWarper(top_k=int(top_k)))
        if top_p is not None and top_p < 1.0:
            self.warpers.append(TopPLogitsWarper(top_p=float(top_p)))
        if min_p is not None:
            self.warpers.append(MinPLogitsWarper(min_p=float(min_p)))
        self.generators: list[torch.Generator] | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if scores.shape[0] != len(self.seeds):
            raise ConfigError(f"per-row sampling got {scores.shape[0]} rows for {len(self.seeds)} seeds")
        if self.generators is None:  # on the device the logits are on, seeded once per generate call
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        x = scores.double()
        x = (x - x.max(-1, keepdim=True).values) / self.temperature  # <= 0 everywhere, the top token at 0
        for warp in self.warpers:
            x = warp(input_ids, x)
        probs = torch.softmax(x, -1)
        picks = torch.cat([torch.multinomial(probs[i], 1, generator=g) for i, g in enumerate(self.generators)])
        out = torch.full_like(scores, -math.inf)
        out[torch.arange(out.shape[0], device=out.device), picks] = 0.0
        return out


def _knob(model, kwargs: dict[str, Any], name: str) -> Any:
    """A sampling setting as HF resolves it: the call's, else the model's generation config, else HF's default."""
    if name in kwargs:
        return kwargs.pop(name)
    value = getattr(getattr(model, "generation_config", None), name, None)
    if value is None:
        from transformers import GenerationConfig

        defaults = getattr(GenerationConfig, "_get_default_generation_params", lambda: {"top_k": 50})()
        value = defaults.get(name)
    return value


def row_sampling(model, seeds: Sequence[int], kwargs: dict[str, Any], copies: int = 1) -> dict[str, Any]:
    """The ``model.generate`` arguments for seeded per-row sampling.

    Args:
        seeds: one seed per prompt row.
        kwargs: the call's other generate arguments; the sampling settings (``temperature``, ``top_k``,
            ``top_p``, ``min_p``) and ``logits_processor`` are taken out of it.
        copies: ``num_return_sequences`` (copy j of a row draws from ``row_seed(seed, j)``).

    Raises:
        ConfigError: a temperature that is not a finite number above 0, or a sampling setting this
            sampler does not apply.
    """
    unsupported = [k for k in UNSUPPORTED if kwargs.get(k) not in (None, 1.0)]
    if unsupported:
        raise ConfigError(f"{', '.join(unsupported)}: not supported with per-row seeded sampling; "
                          "use temperature, top_k, top_p or min_p")
    temperature = _knob(model, kwargs, "temperature")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) \
            or temperature <= 0:
        raise ConfigError(f"temperature must be a finite number above 0 when sampling, got {temperature!r} "
                          "(for greedy decoding, do not sample)")
    knobs = {k: _knob(model, kwargs, k) for k in KNOBS[1:]}
    sampler = RowSampler([row_seed(s, j) for s in seeds for j in range(copies)], temperature, **knobs)
    processors = LogitsProcessorList(kwargs.pop("logits_processor", None) or [])
    processors.append(sampler)  # last: after every processor the call or the model configures
    return {"do_sample": False, "logits_processor": processors}


__all__ = ["RowSampler", "random_seed", "row_sampling", "row_seed"]
