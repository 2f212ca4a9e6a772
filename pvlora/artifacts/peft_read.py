"""LoRA factors read from adapter / vector / composition directories (PEFT's files), and the vectors a
user names read and checked together. Writing is :mod:`pvlora.artifacts.peft_write`.

Weights are read from safetensors only unless pickle is explicitly allowed (then with
``weights_only=True``); configs are checked against PEFT's own types; every tensor is checked to
be finite before anything is written. Manifests live in :mod:`pvlora.artifacts.manifest`, atomic writes in
:mod:`pvlora.artifacts.atomic`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pvlora.artifacts.compat import PEFT_PREFIX, base_module_name, check_compatible
from pvlora.core.errors import ArtifactError
from pvlora.artifacts.safe_read import MAX_WEIGHT_BYTES, read_json, regular_file
from pvlora.artifacts.integrity import verify_hashes
from pvlora.artifacts.locate import resolve_artifact
from pvlora.core.eta import check_eta
from pvlora.core.lora_math import Factors, check_finite, from_lora
from pvlora.artifacts.fingerprint import BaseFingerprint
from pvlora.artifacts.manifest import (
    ADAPTER_CONFIG,
    PICKLE_WEIGHTS,
    SAFE_WEIGHTS,
    VECTOR_KINDS,
    Manifest,
    check_kind,
)
from pvlora.artifacts.lora_config import MAX_MODULE_NAME, PEFT_DEFAULT_R, check_config_types

_KEY_RE = re.compile(r"^(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.[^.]+)?\.weight$")


# ---------------------------------------------------------------- reading LoRA adapters


@dataclass
class Adapter:
    """A LoRA adapter read from disk: factors with scales folded in, plus its metadata."""

    path: Path
    config: dict[str, Any]
    factors: Factors
    manifest: Manifest | None = None

    @property
    def base_fingerprint(self) -> BaseFingerprint | None:
        """The base it was made on: the manifest's record, else the name PEFT's config gives."""
        if self.manifest and self.manifest.base:
            return self.manifest.base
        name = self.config.get("base_model_name_or_path")
        return BaseFingerprint(name_or_path=name, revision=self.config.get("revision")) if name else None

    @property
    def name(self) -> str:
        if self.manifest and self.manifest.preference:
            return self.manifest.preference
        return self.path.name

    def shapes(self) -> dict[str, tuple[int, int]]:
        return {k: v.shape for k, v in self.factors.items()}


def load_weights(directory: Path, allow_pickle: bool = False) -> tuple[dict[str, torch.Tensor], Path]:
    safe, pickled = directory / SAFE_WEIGHTS, directory / PICKLE_WEIGHTS
    if safe.exists() or safe.is_symlink():
        from safetensors.torch import load_file

        regular_file(safe, MAX_WEIGHT_BYTES)

        try:
            return load_file(str(safe)), safe
        except Exception as exc:  # safetensors raises SafetensorError / OSError for damaged files
            raise ArtifactError(f"{safe}: cannot read safetensors file ({exc})") from None
    if pickled.exists() or pickled.is_symlink():
        if not allow_pickle:
            raise ArtifactError(
                f"{pickled}: pickle weights can run arbitrary code when loaded and are refused; "
                "convert to safetensors, or pass allow_pickle=True if you trust the file"
            )
        regular_file(pickled, MAX_WEIGHT_BYTES)
        import pickle

        try:  # weights_only: PyTorch's restricted unpickler, which refuses anything but tensors and containers
            tensors = torch.load(str(pickled), map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ArtifactError(f"{pickled}: refused by torch.load(weights_only=True), which loads only tensors "
                                f"({first[:200]}); the file holds other objects or is damaged") from None
        if not isinstance(tensors, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                    for k, v in tensors.items()):
            raise ArtifactError(f"{pickled}: expected a dict of named tensors")
        return tensors, pickled
    raise ArtifactError(f"{directory}: no {SAFE_WEIGHTS} (or {PICKLE_WEIGHTS}) found")


def read_adapter(path: str | Path, allow_pickle: bool = False, verify: bool = True,
                 kinds: tuple[str, ...] | None = None, role: str = "this input") -> Adapter:
    """Read any PEFT LoRA adapter directory, with or without ``pvlora.json``. ``kinds``: the manifest
    kinds the caller takes (:func:`pvlora.artifacts.manifest.check_kind`, checked before any weight is read;
    ``role`` says what the directory was given as); None takes any."""
    from peft.utils.other import get_pattern_key

    directory = Path(path)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not a directory (expected a PEFT adapter directory)")
    cfg_path = directory / ADAPTER_CONFIG
    if not cfg_path.exists() and not cfg_path.is_symlink():
        raise ArtifactError(f"{directory}: missing {ADAPTER_CONFIG}; is this a PEFT adapter directory?")
    config = read_json(cfg_path)
    if config.get("peft_type", "LORA") != "LORA":
        raise ArtifactError(f"{cfg_path}: peft_type {config.get('peft_type')!r} is not LORA")
    if config.get("use_dora"):
        raise ArtifactError(f"{cfg_path}: DoRA adapters are not linear in their factors; use plain LoRA adapters")
    for key in ("lora_bias", "modules_to_save", "trainable_token_indices"):
        if config.get(key):
            raise ArtifactError(f"{cfg_path}: {key} is set; those trained weights are not part of ΔW = B·A and "
                                "would be lost in a vector. Train plain LoRA")
    check_config_types(config, cfg_path)
    manifest = Manifest.read(directory)
    if kinds is not None:
        check_kind(manifest, directory, kinds, role)
    if verify:
        verify_hashes(directory, manifest)
    tensors, file = load_weights(directory, allow_pickle)
    check_finite(tensors, file)
    peft_config = _peft_config(config, cfg_path)

    alpha = config.get("lora_alpha", 8)
    rslora = bool(config.get("use_rslora", False))
    rank_pat, alpha_pat = config.get("rank_pattern") or {}, config.get("alpha_pattern") or {}
    pieces: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        m = _KEY_RE.match(key)
        if not m:
            # A LoRA bias, a modules_to_save copy, a DoRA magnitude, trained embedding rows...: trained
            # weights that are not part of ΔW = B·A. Dropping them would silently change the model.
            raise ArtifactError(
                f"{file}: tensor {key!r} is not a linear LoRA factor (lora_A/lora_B weight); pvlora's vectors "
                "hold ΔW = B·A exactly and would lose it. Train plain LoRA (no lora_bias, modules_to_save, "
                "DoRA or trainable tokens)"
            )
        if not key.startswith(PEFT_PREFIX):  # PEFT would match no module of the model and load nothing
            raise ArtifactError(f"{file}: tensor {key!r:.120} does not start with PEFT's {PEFT_PREFIX!r}; PEFT would "
                                "load nothing from it (η would have no effect). Save the adapter with PEFT's "
                                "save_pretrained, or add the prefix to every key")
        if len(m["module"]) > MAX_MODULE_NAME:
            raise ArtifactError(f"{file}: tensor {key!r:.120}... names a module over {MAX_MODULE_NAME} characters long")
        pieces.setdefault(m["module"], {})[m["ab"]] = t
    factors: Factors = {}
    for module, ab in pieces.items():
        if set(ab) != {"A", "B"}:
            raise ArtifactError(f"{file}: module {module!r} has lora_{'A' if 'A' in ab else 'B'} but not its pair")
        A, B = ab["A"], ab["B"]  # (r, d_in), (d_out, r)
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
            raise ArtifactError(f"{file}: module {module!r} has mismatched LoRA shapes {tuple(A.shape)}, {tuple(B.shape)}")
        if 0 in A.shape or 0 in B.shape:
            raise ArtifactError(f"{file}: module {module!r} has empty LoRA factors {tuple(A.shape)}, {tuple(B.shape)} "
                                f"(rank {A.shape[0]}); the adapter is malformed")
        r = A.shape[0]
        target = base_module_name(module)
        if not _adapted_by_peft(peft_config, target):
            # PEFT would silently skip these weights on load while compose would apply them: two models
            raise ArtifactError(f"{file}: module {target!r} has LoRA weights but {ADAPTER_CONFIG}'s target_modules "
                                f"({config.get('target_modules')!r}) does not select it; the config and weights disagree")
        a = alpha_pat.get(get_pattern_key(list(alpha_pat), target), alpha)
        rank_key = get_pattern_key(list(rank_pat), target)
        configured_r = rank_pat[rank_key] if rank_key in rank_pat else config.get("r", PEFT_DEFAULT_R)
        if configured_r != r:  # PEFT would build the layer at configured_r and fail (or mis-scale) on load
            default = "" if "r" in config or rank_key in rank_pat else " (PEFT's default: it has no 'r')"
            raise ArtifactError(f"{file}: module {module!r} has rank {r} but {ADAPTER_CONFIG} says "
                                f"{configured_r}{default}")
        scale = a / math.sqrt(r) if rslora else a / r
        factors[module] = from_lora(A, B, scale)
    if not factors:
        raise ArtifactError(f"{file}: no LoRA factors (lora_A/lora_B weights) found")
    return Adapter(directory, config, factors, manifest)


def _peft_config(config: dict[str, Any], path: Path):
    import dataclasses

    from peft import LoraConfig

    known = {f.name for f in dataclasses.fields(LoraConfig)}
    try:
        return LoraConfig(**{k: v for k, v in config.items() if k in known and k not in ("peft_type", "task_type")})
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{path}: PEFT refuses this LoRA config ({exc})") from None


def _adapted_by_peft(peft_config, module: str) -> bool:
    """Would PEFT put this adapter's LoRA on ``module`` when loading it? (PEFT's own matcher.)"""
    from peft.tuners.tuners_utils import _ExcludedModule, check_target_module_exists

    if peft_config.target_modules is None:
        return True  # PEFT fills in the architecture's defaults; weights decide
    found = check_target_module_exists(peft_config, module)
    return bool(found) and not isinstance(found, _ExcludedModule)


# ---------------------------------------------------------------- writing LoRA adapters


def read_vectors(specs: dict[str, Any], allow_pickle: bool = False) -> list[tuple[Any, float]]:
    """{path or Hub id: η} -> [(adapter, η)], validating every η and every file before any write.
    Each must be a vector or a composition by its manifest (a trained adapter is refused: see
    :data:`pvlora.artifacts.manifest.VECTOR_KINDS`); a plain PEFT adapter without one is taken as it is."""
    items, seen = [], {}
    for spec, eta in specs.items():
        value = check_eta(spec, eta)
        where = resolve_artifact(spec)
        key = Path(where).resolve()
        if key in seen:  # one rule for every spelling (./v, v, /abs/v, a symlink): refuse, never sum or drop
            raise ArtifactError(f"{spec!r} and {seen[key]!r} are the same vector ({key}); give each vector once, "
                                "with its total weight")
        seen[key] = spec
        items.append((read_adapter(where, allow_pickle, kinds=VECTOR_KINDS, role="a vector to apply"), value))
    if not items:
        raise ArtifactError("no vector given: name at least one vector and its η")
    check_compatible([a for a, _ in items])
    return items
