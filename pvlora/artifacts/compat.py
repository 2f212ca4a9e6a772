"""Which base an artifact was made on, and whether artifacts can be used together: one place decides.

:func:`check_compatible` is the one check before vectors are combined with each other or applied
to a base; it compares the :class:`~pvlora.artifacts.fingerprint.BaseFingerprint` each manifest records.
"""

from __future__ import annotations

from pvlora.core.errors import ArtifactError
from pvlora.artifacts.fingerprint import BaseFingerprint

PEFT_PREFIX = "base_model.model."  # PEFT's state-dict keys: this + the base model's module name


def base_module_name(key: str) -> str:
    """A module's name in the base model, from its key in a PEFT state dict."""
    return key[len(PEFT_PREFIX):] if key.startswith(PEFT_PREFIX) else key


def describe(fp: BaseFingerprint | None) -> str:
    return str(fp) if fp else "an unrecorded base"


def check_compatible(adapters: list, base: BaseFingerprint | None = None, base_label: str | None = None,
                     config_only: bool = False) -> None:
    """Refuse adapters made on different bases (by fingerprint, or by the shapes of shared modules),
    and, with ``base``, any made on another base than that one.

    Args:
        adapters: :class:`pvlora.artifacts.peft_read.Adapter` objects.
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
    """Paths read without a ``pvlora.json``, or with one that hashes nothing (no ``weights_sha256``):
    nothing could check their files' integrity."""
    return [str(a.path) for a in adapters if not a.manifest or a.manifest.weights_sha256 is None]


__all__ = ["BaseFingerprint", "base_shapes", "check_compatible", "check_shapes", "describe",
           "linear_shapes", "unverified"]
