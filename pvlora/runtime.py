"""Runtime composition: every vector its own PEFT adapter, all active at once, re-weighted in place.

θ = θ_base + Σ_p η_p·φ_p is evaluated as base(x) + Σ_p η_p·B_p·A_p·x in each LoRA layer. Changing
η only rewrites each layer's ``scaling`` entry (a Python float): no weight is copied, nothing is
reloaded, so a sweep over η costs one model load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pvlora.artifacts import check_eta, read_adapter, verify_hashes
from pvlora.errors import ArtifactError


def _adapter_name(a, taken: set[str]) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", a.name) or "vector"
    base, i = name, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def load_composed(base: Any, vectors: dict[str, float], revision: str | None = None, allow_pickle: bool = False,
                  **model_kwargs):
    """Load ``base`` with each vector as a separate active adapter at weight η.

    ``base``: a Hub id, a local directory, ``"tiny"``, or an already loaded ``PreTrainedModel``.
    ``vectors``: {local path or Hub id (``org/name@rev``): η}. Returns (model, tokenizer); the
    adapter names (preference names) are the keys for :func:`set_weights`."""
    from peft import PeftModel

    from pvlora.compose import base_fingerprint_of, check_against_base, read_vectors

    items = read_vectors(vectors, allow_pickle)  # checks η, files, hashes and base agreement first
    tok = None
    if isinstance(base, (str, Path)):
        from pvlora.config import ModelConfig
        from pvlora.models import load_base

        check_against_base([a for a, _ in items], base_fingerprint_of(str(base), revision))
        cfg = ModelConfig(name_or_path=str(base), revision=revision, **model_kwargs)
        model, tok, _ = load_base(cfg)
    else:
        model = base
    taken: set[str] = set()
    names = []
    for i, (adapter, _) in enumerate(items):
        name = _adapter_name(adapter, taken)
        names.append(name)
        if i == 0:
            model = PeftModel.from_pretrained(model, str(adapter.path), adapter_name=name)
        else:
            model.load_adapter(str(adapter.path), adapter_name=name)
    model.base_model.set_adapter(names)  # all active at once (PeftModel.set_adapter takes one name)
    model.eval()
    set_weights(model, {n: w for n, (_, w) in zip(names, items)})
    return model, tok


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return [m for m in model.modules() if isinstance(m, LoraLayer)]


def set_weights(model, weights: dict[str, float]) -> None:
    """Set η for the named adapters in place (only the layers' scale floats change)."""
    layers = _lora_layers(model)
    known = set(getattr(model, "peft_config", {}) or {})
    for name, eta in weights.items():
        if name not in known:
            raise ArtifactError(f"no adapter named {name!r} in this model; loaded: {', '.join(sorted(known))}")
        value = check_eta(name, eta)
        for layer in layers:
            layer.set_scale(name, value)


def get_weights(model) -> dict[str, float]:
    """Current η of every adapter, read back from the layers' scales."""
    import math

    out: dict[str, float] = {}
    for layer in _lora_layers(model):
        for name, scaling in layer.scaling.items():
            if name in out:
                continue
            r, alpha = layer.r[name], layer.lora_alpha[name]
            unit = alpha / math.sqrt(r) if layer.use_rslora.get(name, False) else alpha / r
            out[name] = scaling / unit
    return out


__all__ = ["load_composed", "set_weights", "get_weights", "verify_hashes"]
