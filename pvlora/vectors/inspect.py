"""`pvlora inspect`: what a directory holds, its norms, and how similar several vectors are."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pvlora.core import lora_math
from pvlora.artifacts.peft_read import Adapter, read_adapter
from pvlora.artifacts.manifest import AdapterManifest, CompositionManifest, VectorManifest
from pvlora.artifacts.locate import resolve_artifact

_LAYER_RE = re.compile(r"\.layers\.(\d+)\.")


def per_layer_norms(adapter: Adapter) -> dict[str, float]:
    """Frobenius norm of ΔW per transformer layer (all modules of the layer together)."""
    sq: dict[str, float] = {}
    for key, lr in adapter.factors.items():
        m = _LAYER_RE.search(key)
        layer = m.group(1) if m else "other"
        sq[layer] = sq.get(layer, 0.0) + lora_math.norm(lr) ** 2
    return {k: v**0.5 for k, v in sorted(sq.items(), key=lambda kv: (not kv[0].isdigit(), int(kv[0]) if kv[0].isdigit() else 0))}


def describe(adapter: Adapter) -> dict[str, Any]:
    """What ``adapter`` is, as plain JSON values (``pvlora inspect --json`` prints it as is)."""
    m = adapter.manifest
    low_rank = m if isinstance(m, (VectorManifest, CompositionManifest)) else None
    composition = m if isinstance(m, CompositionManifest) else None
    return {
        "path": str(adapter.path), "kind": m.kind if m else "adapter (no pvlora.json)",
        "preference": m.preference if m else None,
        "direction": m.direction if isinstance(m, AdapterManifest) else None,
        "base": adapter.base_fingerprint.name_or_path if adapter.base_fingerprint else None,
        "rank": max(lr.rank for lr in adapter.factors.values()), "modules": len(adapter.factors),
        "norm": lora_math.total_norm(adapter.factors), "per_layer_norm": per_layer_norms(adapter),
        "compression": low_rank.compression.to_dict() if low_rank and low_rank.compression else None,
        "vectors": [v.to_dict() for v in composition.vectors] if composition else [],
        "recipe": composition.recipe() if composition else "",
    }


def inspect_dirs(paths: list[str | Path], allow_pickle: bool = False) -> dict[str, Any]:
    adapters = [read_adapter(resolve_artifact(str(p)), allow_pickle) for p in paths]
    cos = [[lora_math.cosine(a.factors, b.factors) for b in adapters] for a in adapters]
    return {"items": [describe(a) for a in adapters], "cosine": cos}


def render(report: dict[str, Any]) -> str:
    lines = []
    for it in report["items"]:
        lines.append(f"{it['path']}")
        lines.append(f"  kind: {it['kind']}   preference: {it['preference'] or '-'}   direction: {it['direction'] or '-'}")
        lines.append(f"  base: {it['base'] or '-'}   rank: {it['rank']}   modules: {it['modules']}   ‖ΔW‖_F: {it['norm']:.4g}")
        if it["compression"]:
            lines.append(f"  compressed to rank {it['compression']['rank']}: relative error {it['compression']['relative_error']:.3g}")
        if it["recipe"]:
            lines.append(f"  recipe: {it['recipe']}")
        lines.append("  per-layer norm: " + "  ".join(f"{k}:{v:.3g}" for k, v in it["per_layer_norm"].items()))
    if len(report["items"]) > 1:
        names = [Path(it["path"]).name[:12] for it in report["items"]]
        lines.append("")
        lines.append("cosine similarity (from the factors)")
        lines.append(" " * 13 + " ".join(f"{n:>12}" for n in names))
        for n, row in zip(names, report["cosine"]):
            lines.append(f"{n:>12} " + " ".join(f"{c:12.4f}" for c in row))
    return "\n".join(lines)
