"""``pvlora.json``: what an artifact is (:class:`Manifest`), the base it was made on
(:class:`BaseFingerprint`, its ``base`` block) and the sha256 of every file that changes its math,
read and written here as PEFT's ``LoraConfig`` reads and writes ``adapter_config.json``. Checking
those hashes on load is :mod:`pvlora.artifacts.integrity`."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pvlora import __version__
from pvlora.artifacts.atomic import atomic_file
from pvlora.core.errors import ArtifactError
from pvlora.artifacts.safe_read import plain_name, read_json, sha256_file

MANIFEST = "pvlora.json"
# PEFT's own file names (peft.utils.constants CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME),
# spelled out because importing peft costs seconds; tests/test_manifest.py checks they are PEFT's.
ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
# The layout of pvlora.json. A manifest without "schema" predates it (schema 1); a larger one was
# written by a newer pvlora and may mean things this one would misread: refused, never guessed at.
SCHEMA = 1
KINDS = ("adapter", "vector", "composition")
# What each command takes, by kind (check_kind). A composition is a vector-shaped adapter (scaling 1,
# holding Σ η_p·φ_p; the README's "Files"), so whatever applies vectors at a weight applies it exactly.
# A trained adapter holds ΔW+ (or ΔW−) alone: applied as a vector it would silently be the positive-only
# ablation under the preference's name, which extract writes only when asked to (positive_only).
ADAPTER_KINDS = ("adapter",)
VECTOR_KINDS = ("vector", "composition")


def weight_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file that decides the math: the weights and ``adapter_config.json`` (its
    ``lora_alpha``, ``r`` and ``target_modules`` scale and place ΔW as much as the weights do)."""
    return {p.name: sha256_file(p) for p in sorted(Path(directory).iterdir())
            if (p.suffix in (".safetensors", ".bin") or p.name == ADAPTER_CONFIG) and p.is_file() and not p.is_symlink()}


_HEX64 = re.compile(r"[0-9a-f]{64}")
_BASE_FIELDS = ("name_or_path", "revision", "config_sha256", "tiny_seed", "gguf_file")


@dataclass(frozen=True)
class BaseFingerprint:
    name_or_path: str | None = None
    revision: str | None = None
    config_sha256: str | None = None  # the architecture config, hashed: what "same base" means
    tiny_seed: int | None = None  # the built-in tiny base: same config, weights from this seed
    gguf_file: str | None = None  # a GGUF base: the file's name (never a local path)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "pvlora.json") -> BaseFingerprint | None:
        if not d:
            return None
        if not isinstance(d, dict):
            raise ArtifactError(f"{where}: base must be an object, got {type(d).__name__}")
        for k in ("name_or_path", "revision", "config_sha256", "gguf_file"):
            if d.get(k) is not None and not isinstance(d[k], str):
                raise ArtifactError(f"{where}: base.{k} must be a string, got {d[k]!r:.60}")
        if d.get("tiny_seed") is not None and (not isinstance(d["tiny_seed"], int) or isinstance(d["tiny_seed"], bool)):
            raise ArtifactError(f"{where}: base.tiny_seed must be an integer, got {d['tiny_seed']!r:.60}")
        return cls(**{k: d.get(k) for k in _BASE_FIELDS})

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``base`` block (optional fields only when set, as manifests always had it)."""
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None or k in ("name_or_path", "revision", "config_sha256")}

    @property
    def hashed(self) -> bool:
        return bool(self.config_sha256)

    def matches(self, other: BaseFingerprint | None, config_only: bool = False) -> bool:
        """Same base: the architecture configs hash the same (names may differ: a local copy of a Hub
        model is the same base) and, for the tiny base, the same seed. Unrecorded = no objection
        (shape checks still apply). ``config_only``: compare the config hash alone (a loaded model
        object knows no seed)."""
        if not self.hashed or other is None or not other.hashed:
            return True
        return self.config_sha256 == other.config_sha256 and (config_only or self.tiny_seed == other.tiny_seed)

    def __str__(self) -> str:
        rev = f"@{self.revision}" if self.revision else ""
        seed = f", tiny_seed {self.tiny_seed}" if self.tiny_seed is not None else ""  # same config, other weights
        return f"{self.name_or_path}{rev} (config sha256 {str(self.config_sha256)[:12]}{seed})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite number that converts to a float (a 400-digit JSON integer does not)."""
    try:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    except OverflowError:
        return False


def _is_recipe(v: Any) -> bool:
    """A composition's recipe: [{preference, weight, path?, weights_sha256?}], read by inspect and cards."""
    return isinstance(v, list) and all(
        isinstance(x, dict) and isinstance(x.get("preference"), str) and is_number(x.get("weight"))
        and isinstance(x.get("path", ""), (str, type(None))) and isinstance(x.get("weights_sha256"), (dict, type(None)))
        for x in v)


def _is_compression(v: Any) -> bool:
    """{rank, relative_error, per_module_relative_error?}: what a compressed artifact reports."""
    per_module = v.get("per_module_relative_error", {}) if isinstance(v, dict) else None
    return (isinstance(v, dict) and _is_int(v.get("rank")) and is_number(v.get("relative_error"))
            and isinstance(per_module, dict) and all(is_number(x) for x in per_module.values()))


# field -> (check, what the check wants): every field a manifest may carry, checked on read
_TYPES: dict[str, tuple[Any, str]] = {
    "pvlora_version": (lambda v: isinstance(v, str), "be a string"),
    "preference": (lambda v: isinstance(v, str), "be a string"),
    "stage": (lambda v: isinstance(v, str), "be a string"),
    "method": (lambda v: isinstance(v, str), "be a string"),
    "seed": (_is_int, "be an integer"),
    "data": (lambda v: isinstance(v, dict), "be an object"),
    "training": (lambda v: isinstance(v, dict), "be an object"),
    "sources": (lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()), "be an object of objects"),
    "vectors": (_is_recipe, "be a list of {preference: string, weight: finite number} objects"),
    "exact_rank": (_is_int, "be an integer"),
    "rank": (_is_int, "be an integer"),
    "compression": (_is_compression, "be an object with an integer rank and a finite relative_error"),
    "norm": (is_number, "be a number"),
    "positive_norm": (is_number, "be a number"),
    "negative_norm": (is_number, "be a number"),
    "unverified": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "be a list of strings"),
    "dtype": (lambda v: isinstance(v, str), "be a string"),
    "export": (lambda v: isinstance(v, dict), "be an object"),
    "metrics": (lambda v: isinstance(v, dict), "be an object"),
    "command": (lambda v: isinstance(v, str), "be a string"),
    "weights_sha256": (lambda v: isinstance(v, dict) and all(isinstance(x, str) and _HEX64.fullmatch(x)
                                                          for x in v.values()), "map file names to sha256 hex digests"),
}


@dataclass
class Manifest:
    """What an artifact is (``pvlora.json``), typed; round-trips the file as PEFT's ``LoraConfig``
    round-trips ``adapter_config.json``. Absent optional fields are None (or empty) and are not
    written; keys this version does not know are kept in ``extra`` and written back unchanged."""

    kind: str = "adapter"  # adapter | vector | composition
    schema: int = SCHEMA
    pvlora_version: str | None = None
    preference: str | None = None
    direction: str | None = None  # adapters: positive (trained on D+) or negative (on D-)
    stage: str | None = None  # "sft" for the SFT stage's adapter
    method: str | None = None  # vector: difference | positive_only; composition: adapter | merged
    base: BaseFingerprint | None = None
    seed: int | None = None
    data: dict[str, Any] | None = None  # adapters: the data's fingerprint (source, rows, split sizes)
    training: dict[str, Any] | None = None  # adapters: LoRA, DPO/SFT settings, quantisation, trainer
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # vector: its positive/negative adapters
    vectors: list[dict[str, Any]] = field(default_factory=list)  # composition: the recipe {path, preference, weight}
    exact_rank: int | None = None
    rank: int | None = None
    compression: dict[str, Any] | None = None  # {rank, relative_error, per_module_relative_error}
    norm: float | None = None  # ‖ΔW‖_F over all modules
    positive_norm: float | None = None
    negative_norm: float | None = None
    unverified: list[str] = field(default_factory=list)  # composition: inputs with no manifest to check
    dtype: str | None = None  # merged composition: the weights' dtype
    export: dict[str, Any] | None = None  # an export's format, rank and error
    metrics: dict[str, Any] = field(default_factory=dict)
    command: str | None = None  # the `pvlora ...` line that made it
    weights_sha256: dict[str, str] | None = None  # None: unhashed (a hand-made manifest); {} hashes nothing
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = MANIFEST) -> Manifest:
        """Check every known field's type (naming ``where`` and the field) and build the manifest."""
        schema = d.get("schema", 1)  # a manifest without "schema" predates it: schema 1
        if not _is_int(schema) or schema < 1:
            raise ArtifactError(f"{where}: schema must be a positive integer, got {schema!r:.40}")
        if schema > SCHEMA:
            raise ArtifactError(f"{where}: written by a newer pvlora ({d.get('pvlora_version', '?')!s:.20}, manifest "
                                f"schema {schema}); this pvlora reads schema {SCHEMA}: upgrade pvlora to use it")
        for key, allowed in (("kind", KINDS), ("direction", ("positive", "negative"))):
            if d.get(key) is not None and d[key] not in allowed:
                raise ArtifactError(f"{where}: {key} {d[key]!r:.40} is not one of {', '.join(allowed)}")
        for key, (ok, wanted) in _TYPES.items():
            if d.get(key) is not None and not ok(d[key]):
                raise ArtifactError(f"{where}: {key} must {wanted}, got {d[key]!r:.80}")
        if d.get("preference") is not None:
            from pvlora.core.names import NAME_RE

            if not NAME_RE.fullmatch(d["preference"]):
                raise ArtifactError(f"{where}: preference {d['preference']!r:.80} is not a valid preference name "
                                    "(letters, digits, '_' or '-')")
        known = {f.name for f in fields(cls)} - {"extra", "base"}
        kwargs = {k: v for k, v in d.items() if k in known and v is not None}
        return cls(**kwargs, base=BaseFingerprint.from_dict(d.get("base"), where),
                   extra={k: v for k, v in d.items() if k not in known and k != "base"})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                out.update(value)
            elif f.name == "base":
                out["base"] = value.to_dict() if value is not None else None
            elif value is not None and value != [] and (value != {} or f.name == "metrics"):
                out[f.name] = value
        return out

    def recipe(self) -> str:
        """A composition's weights as ``helpful=1, harmless=-0.5`` (empty for other kinds)."""
        return ", ".join(f"{v['preference']}={v['weight']:g}" for v in self.vectors)

    @classmethod
    def read(cls, directory: Path) -> Manifest | None:
        """``directory/pvlora.json`` checked (bounded read, no symlink out, field types), or None when
        there is none. The names in ``weights_sha256`` must be plain files of the directory."""
        path = Path(directory) / MANIFEST
        if not path.exists() and not path.is_symlink():
            return None
        manifest = cls.from_dict(read_json(path), str(path))
        for name in manifest.weights_sha256 or {}:
            plain_name(Path(directory), name, f"{path} (weights_sha256)")
        return manifest

    def describe(self) -> str:
        """What the artifact is, in words, for errors (``a trained LoRA adapter, preference helpful,
        direction positive``)."""
        if self.kind == "composition":
            what = "a composition" + (f" of {self.recipe()}" if self.vectors else "")
            extras = ["merged into a full model"] if self.method == "merged" else []
        else:
            what = {"adapter": "a trained LoRA adapter", "vector": "a preference vector"}.get(self.kind, self.kind)
            extras = [f"{k} {v}" for k, v in (("preference", self.preference), ("direction", self.direction)) if v]
        return ", ".join([what, *extras])

    def write(self, directory: Path, command: str | None = None) -> None:
        """Write ``pvlora.json`` with this version, ``command`` (when the manifest has none yet) and
        the sha256 of every file that changes the math (this manifest's fields are updated to match)."""
        self.pvlora_version, self.schema = __version__, SCHEMA
        self.command = self.command or command or None
        self.weights_sha256 = weight_hashes(directory)
        with atomic_file(Path(directory) / MANIFEST) as fh:  # a rewrite never leaves half a manifest
            fh.write(json.dumps(self.to_dict(), indent=2, default=str) + "\n")


# kind a command needs -> what to do instead, for the error that refuses another kind
_INSTEAD = {
    "adapter": "extract takes the two adapters that `pvlora train` (or PEFT's training) wrote, one trained on the "
               "preference data and one on the reversed data, not something already made from them",
    "vector": "make the vector from the preference's positive and negative adapters first (pvlora extract, "
              "pvlora.extract_vector), and give that",
}


def check_kind(manifest: Manifest | None, directory: Path, accepted: tuple[str, ...], role: str) -> None:
    """Refuse an artifact whose ``pvlora.json`` says it is a kind that ``role`` does not take, naming
    the kind it is and the kind needed. A plain PEFT adapter (no manifest) says nothing, so it passes;
    callers report it as unverified. The one place every command's kind rule is applied."""
    if manifest is None or manifest.kind in accepted:
        return
    need = " or ".join(f"'{k}'" for k in accepted)
    instead = _INSTEAD["adapter" if "adapter" in accepted else "vector"]
    raise ArtifactError(f"{directory}: its {MANIFEST} says kind '{manifest.kind}' ({manifest.describe()}), but "
                        f"{role} must be kind {need}; {instead}")
