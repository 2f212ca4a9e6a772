"""Weighted composition θ_base + Σ η_p·φ_p, written as one PEFT adapter or as a merged model."""

from __future__ import annotations

from pathlib import Path

from pvlora.core import lora_math
from pvlora.artifacts.peft_write import write_factors
from pvlora.artifacts.atomic import atomic_dir
from pvlora.core.chat_templates import carry_template
from pvlora.artifacts.compat import (
    base_module_name,
    base_shapes,
    check_compatible,
    check_shapes,
    unverified,
)
from pvlora.core.errors import ConfigError, EtaError
from pvlora.artifacts.safe_read import portable
from pvlora.artifacts.manifest import CompositionManifest
from pvlora.artifacts.records import RecipeEntry
from pvlora.bases.load import ResolvedBase, load_model, load_tokenizer, resolve_base
from pvlora.config import ModelConfig
from pvlora.artifacts.peft_read import read_vectors
from pvlora.vectors.extract import check_rank, compress_to_rank, exact_rank


def compose(
    base: str, vectors: dict[str, float], out: str | Path, rank: int | None = None, merge: bool = False,
    overwrite: bool = False, allow_pickle: bool = False, revision: str | None = None, dtype: str | None = None,
    command: str | None = None,
) -> CompositionManifest:
    """Write Σ η_p·φ_p to ``out`` as one PEFT adapter (exact, or truncated to ``rank``), or, with
    ``merge``, a full model with the composition merged into (unquantised) base weights.

    Args:
        base: the base the vectors were made on (Hub id, directory, ``"tiny"``): only its config is
            read, unless ``merge``.
        vectors: {vector path or Hub id: η}.
        out: the composition directory (written atomically).
        rank: compress the sum to this rank (default: exact, rank Σ r_p).
        merge: write a full model instead of an adapter.
        overwrite, allow_pickle, revision: as for :func:`pvlora.extract_vector` and the base.
        dtype: the merged model's dtype (default: the base's own).
        command: the command line to record in the manifest.

    Returns:
        The composition's :class:`~pvlora.artifacts.manifest.CompositionManifest` (recipe, rank,
        compression error, norm).

    Raises:
        EtaError: a bad η. ConfigError: a bad rank or dtype.
        ArtifactError: vectors from different bases or another base, shapes that do not fit the
            base, an existing ``out`` without ``overwrite``.
    """
    if dtype is not None and not merge:
        raise ConfigError("dtype applies to a merged model only (merge=True)")
    check_rank(rank)
    items = read_vectors(vectors, allow_pickle)
    resolved = resolve_base(ModelConfig(name_or_path=base, revision=revision))  # its config only
    fp = resolved.fingerprint
    check_compatible([a for a, _ in items], fp)
    check_shapes([a for a, _ in items], base_shapes(resolved.config), str(fp))
    exact = lora_math.weighted_sum([(a.factors, w) for a, w in items])
    total, compression = compress_to_rank(exact, rank)
    check_float32(total, [(spec, w) for spec, (_, w) in zip(vectors, items)])
    recipe = [RecipeEntry(path=portable(spec), preference=a.name, weight=w,
                          weights_sha256=a.manifest.weights_sha256 if a.manifest else None)
              for spec, (a, w) in zip(vectors, items)]
    kept, merged_dtype = compression.rank if compression else exact_rank(exact), None
    inputs = [a.path for a, _ in items] + ([Path(base)] if Path(base).is_dir() else [])
    with atomic_dir(out, overwrite, inputs=inputs) as tmp:
        if merge:
            merged_dtype = merge_into_base(tmp, resolved, total, dtype)
        else:
            kept = write_factors(tmp, total, fp.name_or_path, rank=kept, revision=revision)
            carry_template([a.path for a, _ in items], tmp)
        manifest = CompositionManifest(
            base=fp, method="merged" if merge else "adapter", vectors=recipe, exact_rank=exact_rank(exact), rank=kept,
            compression=compression, norm=lora_math.total_norm(total),
            unverified=[portable(p) for p in unverified([a for a, _ in items])], dtype=merged_dtype)
        manifest.write(tmp, command)
    return manifest


def check_float32(total: lora_math.Factors, weights: list[tuple[str, float]]) -> None:
    """The weighted factors are written in float32: a value past its range would become Inf. Said as
    what it is, weights too large for these vectors, naming them (not as a corrupt file)."""
    import torch

    big = torch.finfo(torch.float32).max
    for key, lr in total.items():
        worst = max(float(lr.A.abs().max()), float(lr.B.abs().max()))
        if worst > big:
            spec, eta = max(weights, key=lambda sw: abs(sw[1]))
            raise EtaError(f"weight {eta:g} for {spec!r} (of {', '.join(f'{s}={w:g}' for s, w in weights)}) makes "
                           f"module {base_module_name(key)!r} too large for float32 (an entry of {worst:.3g}); "
                           "use smaller weights", spec)


def merge_into_base(out: Path, base: ResolvedBase, total: lora_math.Factors, dtype: str | None = None,
                    tok=None) -> str:
    """Load the base once in ``dtype`` and add each module's ΔW = B·A to its weight in place, one
    layer at a time (each ΔW is formed in fp32, then rounded once): peak memory is the base plus one
    layer, where PEFT's ``merge_and_unload`` path would first need the whole base in fp32 to keep
    precision. A 4-bit base is dequantised to ``dtype`` first: merging into 4-bit weights would
    re-quantise them and change outputs. ``base``: the resolved base (its quantization setting is
    ignored); ``tok``: the tokenizer to save with it (default: the base's). Returns the dtype written."""
    import dataclasses

    import torch

    base = dataclasses.replace(base, settings=dataclasses.replace(base.settings, quantization="none"))
    if dtype is None:
        own = getattr(base.config, "dtype", None)
        dtype = str(own).replace("torch.", "") if own is not None else "float32"
        if dtype not in ("float32", "bfloat16", "float16"):
            dtype = "float32"
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]
    model = load_model(base, dtype=torch_dtype)
    if getattr(model, "hf_quantizer", None) is not None:  # a checkpoint saved in 4-bit
        model = model.dequantize(dtype=torch_dtype)
        # transformers replays the load-time weight conversions in reverse on save; the 4-bit
        # deserialisation has no reverse (and nothing is left to re-quantise), so drop it.
        kept = []
        for conversion in getattr(model, "_weight_conversions", None) or []:
            try:
                conversion.reverse_transform()
                kept.append(conversion)
            except NotImplementedError:
                pass
        model._weight_conversions = kept
    modules = dict(model.named_modules())
    with torch.no_grad():
        for key, lr in total.items():
            weight = modules[base_module_name(key)].weight  # (d_out, d_in)
            delta = lr.B.float() @ lr.A.float()  # (d_out, d_in), this layer only
            merged = (weight.float() + delta.to(weight.device)).to(weight.dtype)
            if not torch.isfinite(merged).all():
                raise EtaError(f"merging makes module {base_module_name(key)!r} overflow {dtype}; use smaller weights "
                               "(or a wider dtype)")
            weight.copy_(merged)
            del delta
    model.save_pretrained(str(out), safe_serialization=True)
    (tok if tok is not None else load_tokenizer(base)).save_pretrained(str(out))
    return dtype
