"""Per-request η in one batch: every row of a batch at its own mix, exactly, in one forward pass.

A model from :func:`pvlora.load_composed` holds each vector as a PEFT adapter. PEFT adds them one
adapter at a time with one scale per layer, so a batch shares one mix; its ``adapter_names``
mixed-batch path picks one adapter per row, not a weighted sum. Here, in every LoRA layer, the
vectors' factors are stacked once into A (ΣR × d_in) and B (d_out × ΣR), and a batch carries an η
matrix (batch × vectors) expanded to per-row scales over the rank blocks, so each layer adds

    B · ((A·x) ⊙ s_row)        x: (batch, seq, d_in), s_row: (batch, 1, ΣR)

two matmuls for all vectors together, whatever their number. Row i then computes exactly
W·x + Σ_p η_ip·s_p·B_p·A_p·x, what :func:`pvlora.set_weights` at row i's mix computes.

HF ``generate`` repeats each prompt's row for beams and return sequences (``repeat_interleave``),
and beam search reorders beams only within a prompt's block, so the rows' weights follow them.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from pvlora.core.errors import ArtifactError, ConfigError, RequestError
from pvlora.steering.generate import generate as plain
from pvlora.steering.locks import model_lock
from pvlora.steering.prompts import prompt_texts, strings_as_raw_text
from pvlora.steering.logprobs import _pad_id, batch_tensors, completion_logprob_sums, encode, eval_mode
from pvlora.steering.scales import check_eta, scale_slots, unit_scale


@dataclass
class Stacked:
    """One LoRA layer's vectors side by side."""

    A: torch.Tensor  # (ΣR, d_in)
    B: torch.Tensor  # (d_out, ΣR)
    unit: torch.Tensor  # (P, ΣR): unit scale (alpha/r) of vector p on its own rank block, 0 elsewhere


def stack_layer(layer, names: Sequence[str]) -> Stacked:
    """Stack a PEFT ``LoraLayer``'s adapters ``names`` (those it lacks add no columns)."""
    As, Bs, blocks = [], [], []
    for p, name in enumerate(names):
        if name not in layer.lora_A:
            continue
        if name in getattr(layer, "lora_variant", {}):  # DoRA and friends are not a plain B·A
            raise ArtifactError(f"adapter {name!r} is a LoRA variant ({type(layer.lora_variant[name]).__name__}); "
                                "per-row weights need plain LoRA")
        if getattr(layer.lora_B[name], "bias", None) is not None:
            raise ArtifactError(f"adapter {name!r} trains a LoRA bias; per-row weights need plain LoRA")
        A, B = layer.lora_A[name].weight, layer.lora_B[name].weight  # (r, d_in), (d_out, r)
        As.append(A)
        Bs.append(B)
        blocks.append((p, A.shape[0], unit_scale(layer, name)))
    A = torch.cat(As, 0)
    unit = torch.zeros(len(names), A.shape[0], dtype=A.dtype, device=A.device)
    start = 0
    for p, r, u in blocks:
        unit[p, start:start + r] = u
        start += r
    return Stacked(A, torch.cat(Bs, 1), unit)


def rowwise_delta(x: torch.Tensor, st: Stacked, eta: torch.Tensor) -> torch.Tensor:
    """Σ_p η_ip·ΔW_p·x_i for every row i. x: (n·k, ..., d_in) with k copies of each of the n rows of
    ``eta`` (n, P) next to each other (beams, return sequences); returns (n·k, ..., d_out)."""
    scales = eta.to(st.unit.dtype) @ st.unit  # (n, ΣR)
    if x.shape[0] != scales.shape[0]:
        if x.shape[0] % scales.shape[0]:
            raise ArtifactError(f"a batch of {x.shape[0]} rows cannot carry {scales.shape[0]} rows of weights "
                                "(it must be a whole multiple: each row repeated for its beams)")
        scales = scales.repeat_interleave(x.shape[0] // scales.shape[0], 0)
    scales = scales.reshape(scales.shape[0], *([1] * (x.dim() - 2)), scales.shape[1])  # (n·k, 1.., ΣR)
    return ((x.to(st.A.dtype) @ st.A.T) * scales) @ st.B.T


def weight_matrix(names: Sequence[str], rows: Sequence[Mapping[str, float]]) -> torch.Tensor:
    """[{name: η}, ...] -> (rows, P) float64; a name left out of a row is η = 0 for that row."""
    if isinstance(rows, Mapping) or not isinstance(rows, Sequence) or not rows:
        raise RequestError("per-row weights must be a non-empty list with one {vector name: η} mapping per row",
                           "weights")
    eta = torch.zeros(len(rows), len(names), dtype=torch.float64)
    index = {n: i for i, n in enumerate(names)}
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise RequestError(f"weights row {i} must be a mapping {{vector name: η}}, got {type(row).__name__}",
                               f"weights[{i}]")
        for name, value in row.items():
            if name not in index:
                raise RequestError(f"weights row {i} names {name!r}, which is not loaded; loaded: {', '.join(names)}",
                                   name)
            eta[i, index[name]] = check_eta(name, value)
    return eta


def _layers(model) -> list[tuple[Any, Stacked]]:
    """Every LoRA layer with its stacked factors, cached on the model until an adapter or a weight
    changes (the key holds each factor's identity and in-place version counter)."""
    from peft.tuners.lora import LoraLayer

    names = adapter_names(model)
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    key = (tuple(names), tuple((id(w), w._version) for m in layers for n in names if n in m.lora_A
                               for w in (m.lora_A[n].weight, m.lora_B[n].weight)))
    cached = getattr(model, "_pvlora_rowwise", None)
    if cached is None or cached[0] != key:
        from peft.tuners.lora.layer import (
            Embedding,
            MultiheadAttention,
            ParamWrapper,
            _ConvNd,
        )

        for m in layers:
            if isinstance(m, (Embedding, MultiheadAttention, ParamWrapper, _ConvNd)):
                raise ArtifactError(f"per-row weights support LoRA on linear layers only, not on {type(m).__name__}")
        with torch.no_grad():
            cached = (key, [(m, stack_layer(m, names)) for m in layers if any(n in m.lora_A for n in names)])
        object.__setattr__(model, "_pvlora_rowwise", cached)  # a plain attribute, not a submodule
    return cached[1]


def adapter_names(model) -> list[str]:
    """The loaded vectors' adapter names, in load order (the columns of the η matrix)."""
    return list(scale_slots(model))


@contextlib.contextmanager
def row_weights(model, rows: Sequence[Mapping[str, float]]) -> Iterator[None]:
    """Inside this block every forward pass of ``model`` (from :func:`pvlora.load_composed`) runs row
    i of its batch at mix ``rows[i]``; PEFT's own one-mix path is off meanwhile, and restored after.

    Args:
        model: a PeftModel holding the vectors as adapters.
        rows: one {vector name: η} per batch row; names left out are η = 0 (row = base model).

    Raises:
        RequestError: rows that are not a list of mappings, or name a vector not loaded
            (:class:`~pvlora.core.errors.EtaError`: a bad η).
        ArtifactError: a LoRA variant or non-linear LoRA layer, or a batch whose size is not a whole
            multiple of ``len(rows)``.
    """
    names = adapter_names(model)
    eta = weight_matrix(names, rows)  # checks everything before any hook is attached
    handles = []

    def hook(module, args, output, st: Stacked):
        return output + rowwise_delta(args[0], st, eta.to(st.A.device)).to(output.dtype)

    with model_lock(model):  # the hooks and the disabled adapters are the model's state: one block at a time
        layers = _layers(model)
        try:
            with model.disable_adapter():  # the base path only; our hook adds every vector at each row's η
                for m, st in layers:
                    handles.append(m.register_forward_hook(lambda mod, a, o, st=st: hook(mod, a, o, st)))
                yield
        finally:
            for h in handles:
                h.remove()


@torch.no_grad()
def generate(model, tok, prompts: Sequence[Any], weights: Sequence[Mapping[str, float]],
             chat_template: bool | None = None, **kwargs: Any) -> list[str]:
    """Responses for ``prompts``, each generated at its own mix ``weights[i]``, in shared batches; each
    row equals that prompt generated alone at its mix (greedy, beams, and seeded sampling: every row
    draws from its own generator seeded ``seed``, so a prompt's sample does not depend on its batch).

    Args:
        model, tok: from :func:`pvlora.load_composed`.
        prompts: chat message lists (rendered with the tokenizer's chat template) or strings.
        weights: one {vector name: η} per prompt.
        chat_template: how strings are read. True: as one user message through the chat template (what
            ``pvlora serve`` does with a request's messages); False: as raw text (how pvlora trains and
            evaluates on string prompts). None (default): raw text, with a warning when the tokenizer
            has a chat template (an instruct model usually wants True).
        **kwargs: as :func:`pvlora.steering.generate.generate` (``max_new_tokens``, ``batch_size``,
            ``do_sample``, ``temperature``, ``seed``, ``num_beams``, ...).

    Returns:
        One response per prompt (with ``num_return_sequences`` k, k per prompt, in order).

    Raises:
        RequestError, ArtifactError: as :func:`row_weights`; RequestError when ``len(weights) != len(prompts)``,
            for an empty prompt, or for beam sampling (one generator for the whole batch).
    """
    if isinstance(weights, Mapping) or len(weights) != len(prompts):
        raise RequestError(f"weights must be a list with one mapping per prompt: {len(prompts)} prompts, "
                           f"got {'a single mapping' if isinstance(weights, Mapping) else len(weights)}", "weights")
    weight_matrix(adapter_names(model), weights)  # every row checked before any work
    if kwargs.get("do_sample") and int(kwargs.get("num_beams") or 1) > 1:
        raise RequestError("beam sampling (do_sample with num_beams > 1) draws every row from one generator, so a "
                           "row's sample would depend on its batch; sample without beams, or use beams greedily",
                           "num_beams")
    prompt_texts(tok, prompts, bool(chat_template))  # every prompt checked before any work (empty: refused)
    if chat_template is None:
        chat_template = strings_as_raw_text(tok, prompts)
    bs = kwargs.pop("batch_size", 64)
    if isinstance(bs, bool) or not isinstance(bs, numbers.Integral) or bs < 1:
        raise ConfigError(f"batch_size must be at least 1, got {bs!r}")
    out: list[str] = []
    for i in range(0, len(prompts), bs):
        with row_weights(model, weights[i:i + bs]):
            out += plain(model, tok, list(prompts[i:i + bs]), batch_size=bs, chat_template=chat_template, **kwargs)
    return out


@torch.no_grad()
def score(model, tok, prompts: Sequence[Any], completions: Sequence[Any], weights: Sequence[Mapping[str, float]],
          batch_size: int = 32, max_length: int = 512) -> torch.Tensor:
    """Σ log π(completion | prompt) of each example at its own mix ``weights[i]``, in shared batches.

    Args:
        prompts, completions: strings, or message lists (rendered with the chat template).
        weights: one {vector name: η} per example.

    Returns:
        (n,) float64 log-likelihoods, in input order.

    Raises:
        RequestError, ArtifactError: as :func:`row_weights`; RequestError when the three lists differ in length.
    """
    if isinstance(weights, Mapping) or not len(prompts) == len(completions) == len(weights):
        raise RequestError(f"need one completion and one weights mapping per prompt: {len(prompts)} prompts, "
                           f"{len(completions)} completions, "
                           f"{'a single mapping' if isinstance(weights, Mapping) else len(weights)} weights", "weights")
    weight_matrix(adapter_names(model), weights)  # every row checked before any work
    encoded = encode(tok, list(prompts), list(completions), max_length)
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for i in range(0, len(encoded), batch_size):
            ids, attn, cmask = batch_tensors(encoded[i:i + batch_size], _pad_id(tok))
            with row_weights(model, weights[i:i + batch_size]):
                out.append(completion_logprob_sums(model, ids.to(device), attn.to(device), cmask.to(device)))
    return torch.cat(out).double().cpu()


__all__ = ["generate", "row_weights", "rowwise_delta", "score", "stack_layer", "weight_matrix"]
