"""Weighted composition θ_base + Σ η_p·φ_p, written as one PEFT adapter or as a merged model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pvlora import lora_math
from pvlora.artifacts import (
    Adapter, atomic_dir, check_eta, check_same_base, read_adapter, write_factors, write_manifest,
)
from pvlora.errors import ArtifactError


def base_fingerprint_of(base: str, revision: str | None = None) -> dict[str, Any]:
    """Fingerprint of a base named by 'tiny', a local directory or a Hub id (reads only its config)."""
    from transformers import AutoConfig

    from pvlora.config import ModelConfig
    from pvlora.models import fingerprint, resolve_base_path

    cfg = ModelConfig(name_or_path=base, revision=revision)
    try:
        config = AutoConfig.from_pretrained(resolve_base_path(cfg), revision=revision)
    except OSError as exc:
        raise ArtifactError(f"cannot read the config of base {base!r}: {exc}") from None
    return fingerprint(cfg, config)


def check_against_base(adapters: list[Adapter], base_fp: dict[str, Any]) -> None:
    from pvlora.models import describe_base, same_base

    for a in adapters:
        fp = a.base_fingerprint
        if fp and fp.get("config_sha256") and not same_base(fp, base_fp):
            raise ArtifactError(
                f"{a.path} was made on {describe_base(fp)}, not on the base given, {describe_base(base_fp)}"
            )


def read_vectors(specs: dict[str, Any], allow_pickle: bool = False) -> list[tuple[Adapter, float]]:
    """{path or Hub id: η} -> [(adapter, η)], validating every η and every file before any write."""
    from pvlora.hub import resolve_artifact

    items = []
    for spec, eta in specs.items():
        value = check_eta(spec, eta)
        items.append((read_adapter(resolve_artifact(spec), allow_pickle), value))
    if not items:
        raise ArtifactError("no vector given; pass at least one --vector DIR=ETA")
    check_same_base([a for a, _ in items])
    return items


def compose(
    base: str, vectors: dict[str, float], out: str | Path, rank: int | None = None, merge: bool = False,
    overwrite: bool = False, allow_pickle: bool = False, revision: str | None = None,
) -> dict[str, Any]:
    """Write Σ η_p·φ_p to ``out`` as one PEFT adapter (exact, or truncated to ``rank``), or, with
    ``merge``, a full model with the composition merged into (unquantised) base weights."""
    if rank is not None and rank <= 0:
        raise ValueError(f"--rank must be a positive integer, got {rank}")
    items = read_vectors(vectors, allow_pickle)
    base_fp = base_fingerprint_of(base, revision)
    check_against_base([a for a, _ in items], base_fp)
    total = lora_math.weighted_sum([(a.factors, w) for a, w in items])
    exact_rank = max(lr.rank for lr in total.values())
    errors, rel_error = {}, 0.0
    if rank is not None and rank < exact_rank:
        total, errors, rel_error = lora_math.compress(total, rank)
    manifest: dict[str, Any] = {
        "kind": "composition", "base": base_fp, "method": "merged" if merge else "adapter",
        "vectors": [{"path": str(a.path), "preference": a.name, "weight": w,
                     "weights_sha256": (a.manifest or {}).get("weights_sha256")} for a, w in items],
        "exact_rank": exact_rank, "rank": rank if errors else exact_rank,
        "compression": {"rank": rank, "relative_error": rel_error, "per_module_relative_error": errors} if errors else None,
        "norm": lora_math.total_norm(total),
    }
    with atomic_dir(out, overwrite) as tmp:
        if merge:
            _write_merged(tmp, base, revision, total, manifest["rank"])
        else:
            manifest["rank"] = write_factors(tmp, total, base_fp["name_or_path"], rank=manifest["rank"],
                                             revision=revision)
        write_manifest(tmp, manifest)
    return manifest


def _write_merged(tmp: Path, base: str, revision: str | None, total: lora_math.Factors, rank: int) -> None:
    """Merge through PEFT (load the composed adapter, ``merge_and_unload``). The base is loaded
    unquantised: merging into 4-bit weights would re-quantise and change outputs, so a QLoRA
    user gets a bf16/fp32 merged model."""
    from peft import PeftModel

    from pvlora.config import ModelConfig
    from pvlora.models import load_base

    adapter_dir = tmp / "_adapter"
    adapter_dir.mkdir()
    write_factors(adapter_dir, total, base, rank=rank)
    model, tok, _ = load_base(ModelConfig(name_or_path=base, revision=revision))
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    import shutil

    shutil.rmtree(adapter_dir)
