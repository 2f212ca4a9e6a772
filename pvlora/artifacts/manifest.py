"""``pvlora.json``: what an artifact is, one type per kind (:class:`AdapterManifest`,
:class:`VectorManifest`, :class:`CompositionManifest`, each a :class:`Manifest`), read and written here
as PEFT's ``LoraConfig`` reads and writes ``adapter_config.json``: :meth:`Manifest.read` checks every
field's type and builds the type the file's ``kind`` names. The base it was made on is a
:class:`~pvlora.artifacts.fingerprint.BaseFingerprint`, its sub-records are in
:mod:`pvlora.artifacts.records`, and checking its hashes on load is :mod:`pvlora.artifacts.integrity`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from pvlora import __version__
from pvlora.artifacts.atomic import atomic_file
from pvlora.artifacts.fingerprint import BaseFingerprint
from pvlora.artifacts.records import Compression, ExportRecord, RecipeEntry
from pvlora.artifacts.schema import KEY_ORDER, SCHEMA, check_fields
from pvlora.artifacts.safe_read import plain_name, read_json, sha256_file
from pvlora.core.errors import ArtifactError
from pvlora.core.names import NAME_RE

MANIFEST = "pvlora.json"
# PEFT's own file names (peft.utils.constants CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME),
# spelled out because importing peft costs seconds; tests/artifacts/test_manifest.py checks they are PEFT's.
ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
# What each command takes, by kind (check_kind). A composition is a vector-shaped adapter (scaling 1,
# holding Σ η_p·φ_p; "Files" in docs/artifacts-and-security.md), so whatever applies vectors at a weight applies it exactly.
# A trained adapter holds ΔW+ (or ΔW−) alone: applied as a vector it would silently be the positive-only
# ablation under the preference's name, which extract writes only when asked to (positive_only).
ADAPTER_KINDS = ("adapter",)
VECTOR_KINDS = ("vector", "composition")


def weight_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file that decides the math: the weights and ``adapter_config.json`` (its
    ``lora_alpha``, ``r`` and ``target_modules`` scale and place ΔW as much as the weights do)."""
    return {p.name: sha256_file(p) for p in sorted(Path(directory).iterdir())
            if (p.suffix in (".safetensors", ".bin") or p.name == ADAPTER_CONFIG) and p.is_file() and not p.is_symlink()}


# field -> how its checked JSON value becomes its typed record
_RECORDS = {"compression": Compression.from_dict, "export": ExportRecord.from_dict,
            "vectors": lambda v: [RecipeEntry.from_dict(x) for x in v]}


def _json(value: Any) -> Any:
    """A field's value as JSON: a typed record (or a list of them) by its ``to_dict``."""
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value.to_dict() if hasattr(value, "to_dict") else value


@dataclass
class Manifest:
    """What every kind of artifact records (``pvlora.json``); round-trips the file as PEFT's
    ``LoraConfig`` round-trips ``adapter_config.json``. :meth:`read` and :meth:`from_dict` return the
    type the file's ``kind`` names (:class:`AdapterManifest`, :class:`VectorManifest`,
    :class:`CompositionManifest`). Absent optional fields are None (or empty) and are not written;
    keys this kind does not own are kept in ``extra`` and written back unchanged."""

    kind: ClassVar[str] = ""  # set by each kind's type: the file's "kind"
    schema: int = SCHEMA
    pvlora_version: str | None = None  # the version that wrote it (set by write)
    preference: str | None = None  # the preference's name ("sft" for the SFT stage)
    base: BaseFingerprint | None = None  # the base it was made on (written as null when unknown)
    export: ExportRecord | None = None  # on the copy ``pvlora export`` writes, whatever the kind
    metrics: dict[str, Any] = field(default_factory=dict)  # training metrics (written even when empty)
    command: str | None = None  # the `pvlora ...` line that made it
    weights_sha256: dict[str, str] | None = None  # None: unhashed (a hand-made manifest); {} hashes nothing
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.kind:
            raise TypeError("Manifest is the part every kind shares; build an AdapterManifest, VectorManifest "
                            "or CompositionManifest")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = MANIFEST) -> Manifest:
        """Check every known field's type (naming ``where`` and the field) and build the manifest of
        the kind ``d`` names (an adapter when it names none, as manifests before kinds were)."""
        check_fields(d, where)
        if d.get("preference") is not None and not NAME_RE.fullmatch(d["preference"]):
            raise ArtifactError(f"{where}: preference {d['preference']!r:.80} is not a valid preference name "
                                "(letters, digits, '_' or '-')")
        kind = d["kind"] if d.get("kind") is not None else "adapter"
        typ = MANIFEST_TYPES[kind]
        if cls is not Manifest and typ is not cls:
            raise ArtifactError(f"{where}: kind is '{kind}', not '{cls.kind}'")
        own = {f.name for f in fields(typ)} - {"extra", "base"}
        kwargs = {k: _RECORDS.get(k, lambda v: v)(v) for k, v in d.items() if k in own and v is not None}
        # Another kind's field, empty, is dropped as pvlora has always dropped empty fields.
        extra = {k: v for k, v in d.items()
                 if k not in own and k not in ("kind", "base") and not (k in KEY_ORDER and v in (None, [], {}))}
        return typ(**kwargs, base=BaseFingerprint.from_dict(d.get("base"), where), extra=extra)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, **self.extra}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "base" or (f.name != "extra" and value is not None and value != []
                                    and (value != {} or f.name == "metrics")):
                out[f.name] = _json(value)
        place = {k: i for i, k in enumerate(KEY_ORDER)}  # unknown keys last, in the order they were read
        return dict(sorted(out.items(), key=lambda kv: place.get(kv[0], len(place))))

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
        direction positive``); each kind says it its own way."""
        raise NotImplementedError

    def write(self, directory: Path, command: str | None = None) -> None:
        """Write ``pvlora.json`` with this version, ``command`` (when the manifest has none yet) and
        the sha256 of every file that changes the math (this manifest's fields are updated to match)."""
        self.pvlora_version, self.schema = __version__, SCHEMA
        self.command = self.command or command or None
        self.weights_sha256 = weight_hashes(directory)
        with atomic_file(Path(directory) / MANIFEST) as fh:  # a rewrite never leaves half a manifest
            fh.write(json.dumps(self.to_dict(), indent=2, default=str) + "\n")


@dataclass
class AdapterManifest(Manifest):
    """A trained LoRA adapter (``pvlora train``, ``pvlora sft``); a plain PEFT adapter is taken for one."""

    kind: ClassVar[str] = "adapter"
    direction: str | None = None  # positive (trained on D+) or negative (on D-); None for the SFT stage
    stage: str | None = None  # "sft" for the SFT stage's adapter
    seed: int | None = None
    data: dict[str, Any] | None = None  # the data's fingerprint (source, rows, split sizes)
    training: dict[str, Any] | None = None  # LoRA, DPO/SFT settings, quantisation, trainer

    def describe(self) -> str:
        said = (f"{k} {v}" for k, v in (("preference", self.preference), ("direction", self.direction)) if v)
        return ", ".join(["a trained LoRA adapter", *said])


@dataclass
class VectorManifest(Manifest):
    """A preference vector φ = ΔW+ − ΔW− (``pvlora extract``), stored as a scaling-1 LoRA adapter."""

    kind: ClassVar[str] = "vector"
    method: str | None = None  # difference, or positive_only (φ = ΔW+: the ablation)
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)  # its positive/negative adapters, summarised
    exact_rank: int | None = None  # r+ + r−
    rank: int | None = None  # the rank written: the exact one unless compressed
    compression: Compression | None = None  # None: exact
    norm: float | None = None  # ‖φ‖_F over all modules
    positive_norm: float | None = None  # ‖ΔW+‖_F
    negative_norm: float | None = None  # ‖ΔW−‖_F (None for positive_only)

    def describe(self) -> str:
        return "a preference vector" + (f", preference {self.preference}" if self.preference else "")


@dataclass
class CompositionManifest(Manifest):
    """Σ η_p·φ_p (``pvlora compose``): a vector-shaped adapter, or a full model with it merged in."""

    kind: ClassVar[str] = "composition"
    method: str | None = None  # adapter, or merged (a full model)
    vectors: list[RecipeEntry] = field(default_factory=list)  # the recipe: each vector and its η
    exact_rank: int | None = None  # Σ r_p
    rank: int | None = None  # the rank written: the exact one unless compressed
    compression: Compression | None = None  # None: exact
    norm: float | None = None  # ‖Σ η_p·φ_p‖_F over all modules
    unverified: list[str] = field(default_factory=list)  # inputs with no pvlora.json to check
    dtype: str | None = None  # merged: the weights' dtype

    def recipe(self) -> str:
        """The weights as ``helpful=1, harmless=-0.5``."""
        return ", ".join(f"{v.preference}={v.weight:g}" for v in self.vectors)

    def describe(self) -> str:
        what = "a composition" + (f" of {self.recipe()}" if self.vectors else "")
        return ", ".join([what, *(["merged into a full model"] if self.method == "merged" else [])])


MANIFEST_TYPES: dict[str, type[Manifest]] = {t.kind: t for t in (AdapterManifest, VectorManifest, CompositionManifest)}


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
