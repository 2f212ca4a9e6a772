"""The typed sub-records of ``pvlora.json``: how an artifact was compressed (:class:`Compression`),
one line of a composition's recipe (:class:`RecipeEntry`) and what an export did (:class:`ExportRecord`).

Each is read from the JSON object after :mod:`pvlora.artifacts.manifest` has checked its shape with
the checks below (so the error names the manifest and the field), and is written back with the same
keys in the order pvlora has always written them; keys this version does not know are kept in
``extra`` and written back unchanged."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite number that converts to a float (a 400-digit JSON integer does not)."""
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    except OverflowError:
        return False


def _is_error_map(v: Any) -> bool:
    return isinstance(v, dict) and all(is_number(x) for x in v.values())


def is_recipe(v: Any) -> bool:
    """A composition's recipe: [{preference, weight, path?, weights_sha256?}], read by inspect and cards."""
    return isinstance(v, list) and all(
        isinstance(x, dict) and isinstance(x.get("preference"), str) and is_number(x.get("weight"))
        and isinstance(x.get("path", ""), (str, type(None))) and isinstance(x.get("weights_sha256"), (dict, type(None)))
        for x in v)


def is_compression(v: Any) -> bool:
    """{rank, relative_error, per_module_relative_error?}: what a compressed artifact reports."""
    return (isinstance(v, dict) and is_int(v.get("rank")) and is_number(v.get("relative_error"))
            and _is_error_map(v.get("per_module_relative_error", {})))


def is_export(v: Any) -> bool:
    """{format, rank, exact_rank, relative_error, per_module_relative_error, source}: what every
    ``pvlora export`` has written."""
    return (isinstance(v, dict) and isinstance(v.get("format"), str) and is_int(v.get("rank"))
            and is_int(v.get("exact_rank")) and is_number(v.get("relative_error"))
            and _is_error_map(v.get("per_module_relative_error")) and isinstance(v.get("source"), str))


def _split(cls, d: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments for record ``cls`` from a checked JSON object: its own keys as
    fields, the rest in ``extra``."""
    own = [f.name for f in fields(cls) if f.name not in ("extra", "nullable")]
    return {**{k: d[k] for k in own if k in d}, "extra": {k: v for k, v in d.items() if k not in own}}


@dataclass(frozen=True)
class Compression:
    """A vector or composition stored below its exact rank (a truncated SVD from the factors)."""

    rank: int  # the rank kept
    relative_error: float  # ‖ΔW − ΔW_k‖_F / ‖ΔW‖_F over all modules together
    per_module_relative_error: dict[str, float] | None = None  # the same per module (None: not recorded)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Compression:
        return cls(**_split(cls, d))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rank": self.rank, "relative_error": self.relative_error}
        if self.per_module_relative_error is not None:
            out["per_module_relative_error"] = self.per_module_relative_error
        return {**out, **self.extra}


@dataclass(frozen=True)
class RecipeEntry:
    """One vector of a composition and its weight η."""

    preference: str  # the vector's preference name (its directory name if it had no manifest)
    weight: float  # η, as given (checked finite and in range before anything was written)
    path: str | None = None  # where it was read from, without the local directory layout (portable)
    weights_sha256: dict[str, str] | None = None  # the vector's own hashes; None: it had no pvlora.json
    # The optional keys written even when None. compose writes a null weights_sha256 for a vector
    # without hashes; an entry read from a file keeps the keys it had (compositions made before the
    # recipe listed hashes have no weights_sha256 at all), so a rewrite adds and drops nothing.
    nullable: frozenset[str] = field(default=frozenset({"weights_sha256"}), repr=False, compare=False)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RecipeEntry:
        return cls(**_split(cls, d), nullable=frozenset(k for k in ("path", "weights_sha256") if k in d))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "preference": self.preference, "weight": self.weight,
                               "weights_sha256": self.weights_sha256}
        return {**{k: v for k, v in out.items() if v is not None or k in self.nullable}, **self.extra}


@dataclass(frozen=True)
class ExportRecord:
    """What ``pvlora export --format vllm`` did to the artifact it copied."""

    format: str  # "vllm"
    rank: int  # the rank written (one vLLM accepts)
    exact_rank: int  # the source's own rank
    relative_error: float  # 0 when padded (exact); the SVD tail over all modules when compressed
    per_module_relative_error: dict[str, float]  # {} when exact
    source: str  # the source directory's name (never a local path)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExportRecord:
        return cls(**_split(cls, d))

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "rank": self.rank, "exact_rank": self.exact_rank,
                "relative_error": self.relative_error, "per_module_relative_error": self.per_module_relative_error,
                "source": self.source, **self.extra}
