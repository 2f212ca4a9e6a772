"""Which base an artifact was made on, and whether artifacts can be used together: one place decides.

A :class:`BaseFingerprint` is what every manifest records under ``base`` (as PEFT's LoraConfig
round-trips ``adapter_config.json``, it round-trips that block). :func:`check_compatible` is the
one check before vectors are combined with each other or applied to a base.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pvlora.errors import ArtifactError

_FIELDS = ("name_or_path", "revision", "config_sha256", "tiny_seed", "gguf_file")
PEFT_PREFIX = "base_model.model."  # PEFT's state-dict keys: this + the base model's module name


def base_module_name(key: str) -> str:
    """A module's name in the base model, from its key in a PEFT state dict."""
    return key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key


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
        return cls(**{k: d.get(k) for k in _FIELDS})

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


def describe(fp: BaseFingerprint | None) -> str:
    return str(fp) if fp else "an unrecorded base"


def check_compatible(adapters: list, base: BaseFingerprint | None = None, base_label: str | None = None,
                     config_only: bool = False) -> None:
    """Refuse adapters made on different bases (by fingerprint, or by the shapes of shared modules),
    and, with ``base``, any made on another base than that one.

    Args:
        adapters: :class:`pvlora.artifacts.Adapter` objects.
        base: the base they are about to be used with.
        base_label: how to name ``base`` in the error (default: "the base given, <base>").
        config_only: compare the config hash only (``base`` is a loaded model object).

    Raises:
        ArtifactError: naming both artifacts (or the artifact and the base).
    """
    first = adapters[0] if adapters else None
    for other in adapters[1:]:
        fa, fb = first.base_fingerprint, other.base_fingerprint
        if fa and not fa.matches(fb):
            raise ArtifactError(f"{first.path} was made on {describe(fa)} but {other.path} on {describe(fb)}; "
                                "vectors from different bases cannot be combined")
        a, b = first.shapes(), other.shapes()
        for key in sorted(set(a) & set(b)):
            if a[key] != b[key]:
                raise ArtifactError(f"{first.path} and {other.path} disagree on module {key!r} ({a[key]} vs {b[key]}): "
                                    "they were made on different base models")
    if base is None:
        return
    for a in adapters:
        fp = a.base_fingerprint
        if fp and not fp.matches(base, config_only):
            raise ArtifactError(f"{a.path} was made on {describe(fp)}, not on "
                                f"{base_label or f'the base given, {describe(base)}'}")


def linear_shapes(model) -> dict[str, tuple[int, int]]:
    """{module name: (d_out, d_in)} of every linear layer of a model (plain, 4-bit or LoRA-wrapped)."""
    shapes = {}
    for name, mod in model.named_modules():
        base = getattr(mod, "base_layer", mod)  # a PEFT LoRA wrapper: the layer it wraps
        if hasattr(base, "in_features") and hasattr(base, "out_features") and base is mod:
            shapes[name] = (int(base.out_features), int(base.in_features))
    return shapes


def base_shapes(config) -> dict[str, tuple[int, int]]:
    """Linear-layer shapes of a base from its transformers config alone (the model is built on the
    meta device: no weights are read or allocated)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return linear_shapes(model)


def check_shapes(adapters: list, shapes: dict[str, tuple[int, int]], base_name: str) -> None:
    """Every adapted module must exist in the base with the LoRA factors' shapes, whatever the
    manifests say (a plain PEFT adapter carries no fingerprint at all)."""
    for a in adapters:
        for module, lr in a.factors.items():
            name = base_module_name(module)
            if name not in shapes:
                raise ArtifactError(f"{a.path}: module {name!r} does not exist in {base_name} (or is not a linear "
                                    "layer); the vector was made for a different base")
            if tuple(lr.shape) != shapes[name]:
                raise ArtifactError(
                    f"{a.path}: module {name!r} has shape {tuple(lr.shape)} (d_out, d_in) but {base_name} has "
                    f"{shapes[name]}; the vector was made for a different base"
                )


def unverified(adapters: list) -> list[str]:
    """Paths read without a ``pvlora.json``: nothing could check their files' integrity."""
    return [str(a.path) for a in adapters if not a.manifest]


__all__ = ["BaseFingerprint", "base_shapes", "check_compatible", "check_shapes", "describe",
           "linear_shapes", "unverified"]
