"""Extract a preference vector φ = ΔW+ − ΔW− from two LoRA adapters and store it as one PEFT adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pvlora import lora_math
from pvlora.artifacts import Adapter, read_adapter, write_factors
from pvlora.atomic import atomic_dir
from pvlora.chat_templates import carry_template
from pvlora.compat import check_compatible
from pvlora.errors import ArtifactError
from pvlora.fs import portable
from pvlora.manifest import write_manifest


def _source_summary(a: Adapter) -> dict[str, Any]:
    m = a.manifest or {}
    return {
        "path": portable(a.path), "kind": m.get("kind", "adapter"), "preference": m.get("preference"),
        "direction": m.get("direction"), "r": a.config.get("r"), "lora_alpha": a.config.get("lora_alpha"),
        "use_rslora": bool(a.config.get("use_rslora")), "weights_sha256": m.get("weights_sha256"),
        "metrics": m.get("metrics"),
    }


def check_roles(pos: Adapter, neg: Adapter | None) -> None:
    """Refuse adapters whose manifests contradict the role they are given: swapped directions would
    write −φ under the preference's name, and two preferences would make a vector of neither."""
    for a, role in ((pos, "positive"), (neg, "negative")):
        said = (a.manifest or {}).get("direction") if a else None
        if said in ("positive", "negative") and said != role:
            raise ArtifactError(f"{a.path} is the {said} adapter (its pvlora.json says direction: {said}) but was given "
                                f"as the {role} one; swap the two (a vector of the reverse preference is −φ: "
                                "use a negative weight)")
    prefs = {(a.manifest or {}).get("preference") for a in (pos, neg) if a}
    prefs.discard(None)
    if len(prefs) > 1:
        raise ArtifactError(f"{pos.path} and {neg.path} were trained for different preferences "
                            f"({' and '.join(sorted(prefs))}); a vector takes both directions of one preference")


def extract_vector(
    positive: str | Path, negative: str | Path | None, out: str | Path, rank: int | None = None,
    positive_only: bool = False, overwrite: bool = False, allow_pickle: bool = False,
    preference: str | None = None, command: str | None = None,
) -> dict[str, Any]:
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
        The vector's manifest (``pvlora.json``).

    Raises:
        ArtifactError: swapped or mixed roles, adapters from different bases, a bad rank or name,
            an existing ``out`` without ``overwrite``, or anything :func:`read_adapter` refuses.
    """
    if rank is not None and rank <= 0:
        raise ArtifactError(f"rank must be a positive integer, got {rank}")
    if preference is not None:
        from pvlora.config import check_name

        check_name(preference, "preference")
    pos = read_adapter(positive, allow_pickle)
    neg = None if positive_only else read_adapter(negative, allow_pickle)
    adapters = [pos] + ([neg] if neg else [])
    check_roles(pos, neg)
    check_compatible(adapters)
    phi = pos.factors if neg is None else lora_math.difference(pos.factors, neg.factors)
    exact_rank = max(lr.rank for lr in phi.values())
    errors, rel_error = {}, 0.0
    if rank is not None and rank < exact_rank:
        phi, errors, rel_error = lora_math.compress(phi, rank)
    name = preference or pos.name
    base = pos.base_fingerprint.to_dict() if pos.base_fingerprint else None
    manifest = {
        "kind": "vector", "preference": name, "method": "positive_only" if positive_only else "difference",
        "base": base, "sources": {"positive": _source_summary(pos), **({"negative": _source_summary(neg)} if neg else {})},
        "exact_rank": exact_rank, "rank": rank if errors else exact_rank,
        "compression": {"rank": rank, "relative_error": rel_error, "per_module_relative_error": errors} if errors else None,
        "norm": lora_math.total_norm(phi),
        "positive_norm": lora_math.total_norm(pos.factors),
        "negative_norm": lora_math.total_norm(neg.factors) if neg else None,
    }
    with atomic_dir(out, overwrite, inputs=[a.path for a in adapters]) as tmp:
        manifest["rank"] = write_factors(tmp, phi, (base or {}).get("name_or_path"),
                                         rank=manifest["rank"], revision=(base or {}).get("revision"))
        carry_template([a.path for a in adapters], tmp)
        write_manifest(tmp, manifest, command)
    return manifest
