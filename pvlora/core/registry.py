"""Built-in worlds by name: the bases, preference data, SFT data, evaluation prompts and judges a
config may name instead of a path or a Hub id (``model.name_or_path: tiny``, ``source: toy``,
``eval.prompts: smollm2``).

Each entry is a ``"module:attribute"`` reference imported on first use, so the core (data loading,
model loading, evaluation) never imports a world it is not asked for, and a world's package (the
toy world in :mod:`pvlora.worlds.toy`, the SmolLM2 study in :mod:`pvlora.worlds.smollm2`) may depend on the core
without a cycle. The shapes each kind provides:

- ``base``: a :class:`BuiltinBase`.
- ``preference_data``: ``fn(pref: PreferenceConfig, seed) -> (train pairs, held-out pairs)``; the world
  decides its own split (the toy world holds out whole topics).
- ``sft_data``: ``fn(seed) -> list of TRL prompt-completion examples``.
- ``prompts``: ``fn(split) -> list of {prompt, kind, style?, reference?}`` rows.
- ``judge``: ``fn() -> judge`` where a judge maps one response to ``{"refusal", "compliance"}``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvlora.core.errors import ConfigError

_REGISTRY: dict[str, dict[str, str]] = {
    "base": {"tiny": "pvlora.worlds.toy.base:BUILTIN"},
    "preference_data": {"toy": "pvlora.worlds.toy.entries:preference_split"},
    "sft_data": {"toy": "pvlora.worlds.toy.entries:sft_data"},
    # smollm2: the study's evaluation set; smollm2-first: its first set, spent (scored five times)
    "prompts": {"toy": "pvlora.worlds.toy.entries:eval_rows", "smollm2": "pvlora.worlds.smollm2.eval_set:eval_rows",
                "smollm2-first": "pvlora.worlds.smollm2.prompts:eval_rows"},
    "judge": {"toy": "pvlora.worlds.toy.entries:judge"},
}


@dataclass(frozen=True)
class BuiltinBase:
    """A base pvlora can make itself: ``build(model_config)`` returns its directory (building and
    caching it on first use); ``fingerprint_extra(model_config)`` adds what else identifies it (a
    seed) to the manifests; ``recorded_as`` is the name manifests record instead of a local path."""

    recorded_as: str
    build: Callable[[Any], Path]
    fingerprint_extra: Callable[[Any], dict[str, Any]]


def names(kind: str) -> list[str]:
    return sorted(_REGISTRY[kind])


def has(kind: str, name: Any) -> bool:
    return isinstance(name, str) and name in _REGISTRY[kind]


def get(kind: str, name: str) -> Any:
    """The built-in ``name`` of ``kind`` (imported now), or a ConfigError listing the ones there are."""
    if not has(kind, name):
        raise ConfigError(f"no built-in {kind.replace('_', ' ')} named {name!r}; built-in: {', '.join(names(kind))}")
    module, attribute = _REGISTRY[kind][name].split(":")
    return getattr(importlib.import_module(module), attribute)
