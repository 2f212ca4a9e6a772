"""Vectors swapped in and out of a loaded model: :func:`add_vector` and :func:`remove_vector`.

A model from :func:`pvlora.load_composed` holds each vector as its own PEFT adapter; adding one is
PEFT's ``load_adapter`` after every check ``load_composed`` makes (η, files and hashes, kind =
vector, same base as the model, shapes, names), removing one is PEFT's ``delete_adapter``. Both
drop the per-row cache of stacked factors (:mod:`pvlora.steering.rowwise`), so the removed vector's
tensors are freed at once (:func:`lora_bytes` measures what LoRA tensors hold). The server splits an
add into :func:`check_vector` (reads and checks the files: slow, done while batches run) and
:func:`attach` (the PEFT call: milliseconds, done between batches).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvlora.artifacts.compat import check_compatible, check_shapes, linear_shapes, unverified
from pvlora.artifacts.fingerprint import BaseFingerprint
from pvlora.artifacts.peft_read import Adapter, read_vectors
from pvlora.core.errors import ArtifactError, RequestError
from pvlora.core.eta import check_eta
from pvlora.core.names import NAME_RE
from pvlora.steering.scales import set_weights


class NameTaken(RequestError):
    """A vector of that name is already loaded (field ``name``; the server answers 409)."""


@dataclass
class CheckedVector:
    """A vector read and checked against a model, not yet attached to it."""

    adapter: Adapter
    name: str  # the adapter name it will have (a key of get_weights)
    source: Path  # its directory, resolved (the same vector is never loaded twice)


def _record(model) -> dict[str, Any]:
    """What :func:`pvlora.load_composed` recorded on the model: its base's fingerprint and each
    vector's directory. A PeftModel built otherwise: its config hash alone, no directories."""
    rec = getattr(model, "_pvlora_loaded", None)
    if rec is None:
        from pvlora.bases.load import config_sha256

        sha = config_sha256(model.get_base_model().config)
        rec = {"base": BaseFingerprint(config_sha256=sha), "config_only": True, "sources": {},
               "label": f"the model object (config sha256 {sha[:12]})"}
        object.__setattr__(model, "_pvlora_loaded", rec)  # a plain attribute, not a submodule
    return rec


def _base_shapes(model) -> dict[str, tuple[int, int]]:
    """{module name in the base: (d_out, d_in)} of a PeftModel's linear layers (a LoRA-wrapped layer is
    listed under its own name, not its ``.base_layer``)."""
    shapes = linear_shapes(model.get_base_model())
    return {k[:-len(".base_layer")] if k.endswith(".base_layer") else k: v for k, v in shapes.items()}


def _check_model(model) -> None:
    if not hasattr(model, "peft_config") or not hasattr(model, "load_adapter"):
        raise RequestError(f"model must be a PeftModel from pvlora.load_composed, got {type(model).__name__}", "model")


def check_vector(model, spec: str | Path, name: str | None = None, allow_pickle: bool = False) -> CheckedVector:
    """Read ``spec`` (a directory or a Hub id ``org/name[@rev]``) and make every check
    :func:`pvlora.load_composed` makes against ``model``; nothing in the model changes.

    Raises:
        ArtifactError: a missing, altered or hostile file, a trained adapter (kind is not vector or
            composition), another base than the model's, shapes that do not fit, the vector already loaded.
        RequestError: a name that is not 1-64 letters, digits, '_' or '-', or is already loaded (field ``name``).
    """
    _check_model(model)
    rec = _record(model)
    if name is not None:  # a name given is checked before any file is read
        _check_name(model, name)
    [(adapter, _)] = read_vectors({str(spec): 0.0}, allow_pickle)  # kind, files, hashes
    base_name = repr(getattr(model.get_base_model().config, "_name_or_path", None) or "the base")
    check_compatible([adapter], rec["base"], rec.get("label"), config_only=rec["config_only"])
    for path in unverified([adapter]):
        warnings.warn(f"{path} has no pvlora.json, so no integrity check of its files was possible", stacklevel=3)
    check_shapes([adapter], _base_shapes(model), base_name)
    source = Path(adapter.path).resolve()
    for loaded, where in rec["sources"].items():
        if where == source:
            raise ArtifactError(f"{spec} is already loaded as {loaded!r} ({source}); remove it first or change "
                                "that vector's η with set_weights")
    if name is None:
        name = _check_name(model, re.sub(r"[^A-Za-z0-9_-]", "_", adapter.name).lstrip("_-")[:64] or "vector")
    return CheckedVector(adapter, name, source)


def _check_name(model, name: Any) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RequestError(f"vector name {name!r:.80} is not valid; use 1-64 letters, digits, '_' or '-', starting "
                           "with a letter or digit", "name")
    if name in model.peft_config:
        raise NameTaken(f"a vector named {name!r} is already loaded; remove it first or give another name", "name")
    return name


def attach(model, vec: CheckedVector, eta: float = 0.0) -> str:
    """Load a checked vector into ``model`` as an active adapter at η = ``eta``; returns its name.
    On any failure the model is left as it was."""
    value = check_eta(vec.name, eta, "eta")
    if vec.name in model.peft_config:  # checked again: another add may have taken the name meanwhile
        raise NameTaken(f"a vector named {vec.name!r} is already loaded", "name")
    names = list(model.peft_config)
    try:
        model.load_adapter(str(vec.adapter.path), adapter_name=vec.name)
        model.base_model.set_adapter(names + [vec.name])  # all active at once, as load_composed leaves them
        set_weights(model, {vec.name: value})
    except Exception as exc:
        if vec.name in model.peft_config:
            model.delete_adapter(vec.name)
        model.base_model.set_adapter(names)
        forget_caches(model)
        if isinstance(exc, (ArtifactError, RequestError)):
            raise
        raise ArtifactError(f"{vec.adapter.path}: PEFT could not load it ({type(exc).__name__}: {exc})") from None
    forget_caches(model)
    _record(model)["sources"][vec.name] = vec.source
    return vec.name


def add_vector(model, spec: str | Path, eta: float = 0.0, name: str | None = None, allow_pickle: bool = False) -> str:
    """Add a vector to a model from :func:`pvlora.load_composed`, in place, at η = ``eta``.

    Args:
        model: a PeftModel from ``load_composed`` (or any PeftModel with LoRA adapters).
        spec: the vector's directory, or a Hub id ``org/name[@revision]``.
        eta: its weight (default 0: the model's outputs do not change until it is set).
        name: its adapter name (default: its preference name, as ``load_composed`` names it).
        allow_pickle: also read ``adapter_model.bin`` (with ``weights_only=True``).

    Returns:
        The vector's name (a key of :func:`pvlora.get_weights`).

    Raises:
        EtaError, ArtifactError, RequestError: as :func:`check_vector`; nothing changes then.
    """
    check_eta(str(spec), eta, "eta")  # before any file is read
    return attach(model, check_vector(model, spec, name, allow_pickle), eta)


def remove_vector(model, name: str) -> None:
    """Remove vector ``name`` from the model, in place: its tensors are freed and the outputs equal
    a fresh :func:`pvlora.load_composed` of the others at their current η.

    Raises:
        RequestError: no such vector, or it is the model's last one (field ``name``).
    """
    _check_model(model)
    if not isinstance(name, str) or name not in model.peft_config:
        raise RequestError(f"no vector named {name!r:.80} is loaded; loaded: {', '.join(model.peft_config)}", "name")
    if len(model.peft_config) == 1:
        raise RequestError(f"{name!r} is the model's only vector; a model from load_composed keeps at least one "
                           "(set its η to 0 instead, or load the base alone)", "name")
    model.delete_adapter(name)
    model.base_model.set_adapter(list(model.peft_config))
    forget_caches(model)
    _record(model)["sources"].pop(name, None)


def forget_caches(model) -> None:
    """Drop the stacked factors of the per-row path (rebuilt on the next batch): they hold copies of
    every vector's factors, so a removed vector's memory returns only once they are gone."""
    model.__dict__.pop("_pvlora_rowwise", None)


def lora_bytes(model) -> dict[str, int]:
    """Bytes held by LoRA tensors: ``adapters`` (every adapter's lora_A / lora_B weights),
    ``rowwise_cache`` (the per-row path's stacked copies, once a per-row batch has run) and ``total``."""
    from peft.tuners.lora import LoraLayer

    seen, adapters = set(), 0
    for m in model.modules():
        if isinstance(m, LoraLayer):
            for d in (m.lora_A, m.lora_B):
                for sub in d.values():
                    for p in sub.parameters():
                        if p.data_ptr() not in seen:
                            seen.add(p.data_ptr())
                            adapters += p.numel() * p.element_size()
    cache = getattr(model, "_pvlora_rowwise", None)
    stacked = sum(t.numel() * t.element_size() for _, st in (cache[1] if cache else ()) for t in (st.A, st.B, st.unit))
    return {"adapters": adapters, "rowwise_cache": stacked, "total": adapters + stacked}


__all__ = ["CheckedVector", "NameTaken", "add_vector", "attach", "check_vector", "forget_caches", "lora_bytes", "remove_vector"]
