"""Which base an artifact was made on: :class:`BaseFingerprint`, the ``base`` block of ``pvlora.json``.

Every manifest records one; :func:`pvlora.artifacts.compat.check_compatible` compares them before
vectors are mixed or applied, and :class:`pvlora.bases.load.ResolvedBase` carries the one of the
base in hand."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pvlora.core.errors import ArtifactError

_FIELDS = ("name_or_path", "revision", "config_sha256", "tiny_seed", "gguf_file")
# Written even when null, as every manifest has always had them; the other fields only when set.
_ALWAYS_WRITTEN = ("name_or_path", "revision", "config_sha256")


@dataclass(frozen=True)
class BaseFingerprint:
    name_or_path: str | None = None  # as the user named it (a built-in records its public name)
    revision: str | None = None
    config_sha256: str | None = None  # the architecture config, hashed: what "same base" means
    tiny_seed: int | None = None  # the built-in tiny base: same config, weights from this seed
    gguf_file: str | None = None  # a GGUF base: the file's name (never a local path)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, where: str = "pvlora.json") -> BaseFingerprint | None:
        """The ``base`` block checked field by field (errors name ``where`` and ``base.<field>``);
        None when there is none."""
        if not d:
            return None
        if not isinstance(d, dict):
            raise ArtifactError(f"{where}: base must be an object, got {type(d).__name__}")
        for k in ("name_or_path", "revision", "config_sha256", "gguf_file"):
            if d.get(k) is not None and not isinstance(d[k], str):
                raise ArtifactError(f"{where}: base.{k} must be a string, got {d[k]!r:.60}")
        if d.get("tiny_seed") is not None and (not isinstance(d["tiny_seed"], int) or isinstance(d["tiny_seed"], bool)):
            raise ArtifactError(f"{where}: base.tiny_seed must be an integer, got {d['tiny_seed']!r:.60}")
        return cls(**{k: d.get(k) for k in _FIELDS})

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``base`` block (optional fields only when set, as manifests always had it)."""
        return {k: v for k, v in asdict(self).items() if v is not None or k in _ALWAYS_WRITTEN}

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
