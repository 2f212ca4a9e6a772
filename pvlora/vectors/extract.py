"""Extract a preference vector φ = ΔW+ − ΔW− from two LoRA adapters and store it as one PEFT adapter."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pvlora.core import lora_math
from pvlora.artifacts.peft_read import Adapter, read_adapter
from pvlora.artifacts.peft_write import write_factors
from pvlora.artifacts.atomic import atomic_dir
from pvlora.core.chat_templates import carry_template
from pvlora.artifacts.compat import base_shapes, check_compatible, check_shapes
from pvlora.core.errors import ArtifactError, ConfigError
from pvlora.artifacts.safe_read import portable
from pvlora.artifacts.manifest import ADAPTER_KINDS, AdapterManifest, VectorManifest
from pvlora.artifacts.records import Compression
from pvlora.core.names import check_name
from pvlora.bases.load import loadable_name, resolve_base
from pvlora.config import ModelConfig


def _source_summary(a: Adapter) -> dict[str, Any]:
    m = a.manifest or AdapterManifest()  # a plain PEFT adapter: an adapter that records nothing
    return {
        "path": portable(a.path), "kind": m.kind, "preference": m.preference,
        "direction": m.direction, "r": a.config.get("r"), "lora_alpha": a.config.get("lora_alpha"),
        "use_rslora": bool(a.config.get("use_rslora")), "weights_sha256": m.weights_sha256,
        "metrics": m.metrics or None,
    }


logger = logging.getLogger(__name__)


def check_rank(rank: int | None) -> None:
    if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0):
        raise ConfigError(f"rank must be a positive integer, got {rank!r}")


def exact_rank(factors: lora_math.Factors) -> int:
    """The rank every module fits in without loss (the widest module's)."""
    return max(lr.rank for lr in factors.values())


def compress_to_rank(factors: lora_math.Factors, rank: int | None) -> tuple[lora_math.Factors, Compression | None]:
    """Shared by extract, compose and export: ``factors`` compressed to ``rank`` when it is below their
    exact rank (the best rank-``rank`` approximation, a truncated SVD from the factors) with the errors
    that costs, else unchanged and None (nothing lost). ``rank`` is checked by the callers before they
    read anything (:func:`check_rank`)."""
    if rank is None or rank >= exact_rank(factors):
        return factors, None
    factors, errors, rel_error = lora_math.compress(factors, rank)
    return factors, Compression(rank=rank, relative_error=rel_error, per_module_relative_error=errors)


def check_against_base(adapters: list[Adapter]) -> None:
    """Every module of ``adapters`` must exist, with their shapes, in the base they record (its config
    alone is read). A base that cannot be read here (a Hub id offline, a folder since moved) is said
    in a warning, and the check is left to whoever loads the vector onto a base."""
    fp = adapters[0].base_fingerprint
    if fp is None or not fp.name_or_path:
        logger.warning(f"[pvlora] note: {adapters[0].path} records no base; its modules are not checked against one")
        return
    try:
        seed = {"tiny_seed": fp.tiny_seed} if fp.tiny_seed is not None else {}  # the copy already built
        config = resolve_base(ModelConfig(name_or_path=loadable_name(fp), revision=fp.revision, **seed)).config
    except (ArtifactError, ConfigError) as exc:
        logger.warning(f"[pvlora] note: {adapters[0].path}: its modules are not checked against its base "
                       f"{fp.name_or_path} ({exc})")
        return
    check_shapes(adapters, base_shapes(config), fp.name_or_path + (f"@{fp.revision}" if fp.revision else ""))


def check_roles(pos: Adapter, neg: Adapter | None) -> None:
    """Refuse adapters whose manifests contradict the role they are given: swapped directions would
    write −φ under the preference's name, and two preferences would make a vector of neither."""
    for a, role in ((pos, "positive"), (neg, "negative")):
        said = a.manifest.direction if a and a.manifest else None
        if said in ("positive", "negative") and said != role:
            raise ArtifactError(f"{a.path} is the {said} adapter (its pvlora.json says direction: {said}) but was given "
                                f"as the {role} one; swap the two (a vector of the reverse preference is −φ: "
                                "use a negative weight)")
    prefs = {a.manifest.preference for a in (pos, neg) if a and a.manifest}
    prefs.discard(None)
    if len(prefs) > 1:
        raise ArtifactError(f"{pos.path} and {neg.path} were trained for different preferences "
                            f"({' and '.join(sorted(prefs))}); a vector takes both directions of one preference")


def extract_vector(
    positive: str | Path, negative: str | Path | None, out: str | Path, rank: int | None = None,
    positive_only: bool = False, overwrite: bool = False, allow_pickle: bool = False,
    preference: str | None = None, command: str | None = None,
) -> VectorManifest:
    """Write φ = ΔW+ − ΔW− (or ΔW+ alone with ``positive_only``) to ``out`` as a PEFT adapter.

    Exact by default (rank r+ + r−); ``rank`` compresses each module by a truncated SVD computed
    from the factors, recording per-module and overall relative Frobenius errors.

    Args:
        positive, negative: adapter directories (any PEFT LoRA; negative may be None with positive_only).
        out: the vector directory (written atomically).
        rank: compress to this rank (default: exact).
        positive_only: φ = ΔW+ (the paper's ablation).
        overwrite: replace an existing ``out`` (otherwise refused and kept).
        allow_pickle: also read ``adapter_model.bin``.
        preference: the name to record (default: the positive adapter's).
        command: the command line to record in the manifest.

    Returns:
        The vector's :class:`~pvlora.artifacts.manifest.VectorManifest` (as written to ``pvlora.json``).

    Raises:
        ArtifactError: swapped or mixed roles, a vector or composition given as an adapter,
            adapters from different bases, a bad name,
            an existing ``out`` without ``overwrite``, or anything :func:`read_adapter` refuses.
        ConfigError: a rank that is not a positive integer.
    """
    check_rank(rank)
    if preference is not None:
        check_name(preference, "preference")
    pos = read_adapter(positive, allow_pickle, kinds=ADAPTER_KINDS, role="extract's positive adapter")
    neg = None if positive_only else read_adapter(negative, allow_pickle, kinds=ADAPTER_KINDS,
                                                  role="extract's negative adapter")
    adapters = [pos] + ([neg] if neg else [])
    check_roles(pos, neg)
    check_compatible(adapters)
    check_against_base(adapters)
    exact = pos.factors if neg is None else lora_math.difference(pos.factors, neg.factors)
    phi, compression = compress_to_rank(exact, rank)
    base = pos.base_fingerprint
    with atomic_dir(out, overwrite, inputs=[a.path for a in adapters]) as tmp:
        written = write_factors(tmp, phi, base.name_or_path if base else None,
                                rank=compression.rank if compression else exact_rank(exact),
                                revision=base.revision if base else None)
        carry_template([a.path for a in adapters], tmp)
        manifest = VectorManifest(
            preference=preference or pos.name, base=base, method="positive_only" if positive_only else "difference",
            sources={"positive": _source_summary(pos), **({"negative": _source_summary(neg)} if neg else {})},
            exact_rank=exact_rank(exact), rank=written, compression=compression, norm=lora_math.total_norm(phi),
            positive_norm=lora_math.total_norm(pos.factors),
            negative_norm=lora_math.total_norm(neg.factors) if neg else None)
        manifest.write(tmp, command)
    return manifest


def extract_all(cfg, root: Path, fresh: bool = False, command: str | None = None) -> dict[str, Path]:
    """One vector per configured preference from ``root/adapters/{name}-{positive,negative}`` into
    ``root/vectors/{name}`` (and the positive-only ablation into ``root/vectors-positive-only``),
    skipping finished ones unless ``fresh``. Returns {preference: vector dir}."""
    adapters = root / "adapters"
    vectors = {}
    for p in cfg.preferences:
        for kind, sub in (("difference", "vectors"), ("positive_only", "vectors-positive-only")):
            out = root / sub / p.name
            if fresh or not (out / "pvlora.json").exists():
                m = extract_vector(adapters / f"{p.name}-positive", adapters / f"{p.name}-negative", out,
                                   positive_only=kind == "positive_only", overwrite=True, preference=p.name,
                                   command=command)
                logger.info(f"[pvlora] vector {p.name} ({kind}): rank {m.rank}, ‖φ‖_F {m.norm:.3g}")
            if kind == "difference":
                vectors[p.name] = out
    return vectors
