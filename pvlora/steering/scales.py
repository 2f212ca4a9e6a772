"""Steering a loaded model in place: η per adapter read and written through the LoRA layers' scale
floats (no weight is copied, nothing reloads) (the rule for what an η may be is
:mod:`pvlora.core.eta`). Model objects
only: loading bases and vectors from disk or the Hub is :mod:`pvlora.steering.load`."""

from __future__ import annotations

import math
from typing import Any

from pvlora.core.errors import ArtifactError, RequestError
from pvlora.core.eta import MAX_ETA, check_eta  # noqa: F401  (re-exported)
from pvlora.steering.locks import model_lock


def unit_scale(layer, name: str) -> float:
    """η = 1 scale of adapter ``name`` in a LoRA layer: the same unit as ``LoraLayer.set_scale``
    (alpha/r, or alpha/sqrt(r) for rsLoRA), so a PEFT user's set_scale agrees with ours."""
    r, alpha = layer.r[name], layer.lora_alpha[name]
    return alpha / math.sqrt(r) if layer.use_rslora.get(name, False) else alpha / r


def scale_slots(model) -> dict[str, list[tuple[dict, float]]]:
    """{adapter: [(a LoRA layer's ``scaling`` dict, its unit scale alpha/r), ...]}, built once per set
    of adapters and cached on the model: re-weighting is then one float write per layer, where
    walking every module and calling ``set_scale`` each time would cost more than the change."""
    from peft.tuners.lora import LoraLayer

    # Keyed on everything the cached units depend on: an adapter replaced through PEFT under the same
    # name (delete_adapter + load_adapter) has a new config object, rank or alpha, and is re-read.
    key = tuple(sorted((name, id(c), repr(getattr(c, "r", None)), repr(getattr(c, "lora_alpha", None)),
                        repr(getattr(c, "use_rslora", None)), repr(getattr(c, "rank_pattern", None)),
                        repr(getattr(c, "alpha_pattern", None)))
                       for name, c in (getattr(model, "peft_config", {}) or {}).items()))
    cached = getattr(model, "_pvlora_scale_slots", None)
    if cached is None or cached[0] != key:
        slots: dict[str, list[tuple[dict, float]]] = {}
        for m in model.modules():
            if isinstance(m, LoraLayer):
                for name in m.scaling:
                    unit = unit_scale(m, name)
                    if unit == 0:
                        raise ArtifactError(f"adapter {name!r} has lora_alpha 0: its ΔW is zero at every η, "
                                            "so no weight can be set or read; re-create it")
                    slots.setdefault(name, []).append((m.scaling, unit))
        cached = (key, slots)
        object.__setattr__(model, "_pvlora_scale_slots", cached)  # a plain attribute, not a submodule
    return cached[1]


def set_weights(model, weights: dict[str, float]) -> None:
    """Set η for the named adapters in place (only the layers' scale floats change; nothing reloads).

    Args:
        model: from :func:`pvlora.load_composed` (or any PeftModel with LoRA adapters).
        weights: {adapter name: η}; adapters not named keep their η.

    Returns:
        None: the model is changed in place (read the weights back with :func:`get_weights`).

    Raises:
        RequestError: ``weights`` is not a mapping, or names no adapter of the model;
            :class:`~pvlora.core.errors.EtaError` (a RequestError): an η that is not a finite number
            of at most 1000 in size. Nothing is changed then.
    """
    from collections.abc import Mapping

    if not isinstance(weights, Mapping):
        raise RequestError(f"weights must be a mapping {{adapter name: η}}, got {type(weights).__name__}", "weights")
    with model_lock(model):  # not while another thread generates with the model
        slots = scale_slots(model)
        values = {}
        for name, eta in weights.items():  # validate everything before changing anything
            if name not in slots:
                raise RequestError(f"no adapter named {name!r} in this model; loaded: {', '.join(sorted(slots))}", name)
            values[name] = check_eta(name, eta)
        for name, value in values.items():
            for scaling, unit in slots[name]:
                scaling[name] = value * unit


def get_weights(model) -> dict[str, float]:
    """Current η of every adapter, read back from the layers' scales.

    Args:
        model: from :func:`pvlora.load_composed` (or any PeftModel with LoRA adapters).

    Returns:
        {adapter name: η}.

    Raises:
        ArtifactError: an adapter with ``lora_alpha`` 0 (its η cannot be read).
    """
    return {name: entries[0][0][name] / entries[0][1] for name, entries in scale_slots(model).items()}


__all__ = ["check_eta", "set_weights", "get_weights"]
