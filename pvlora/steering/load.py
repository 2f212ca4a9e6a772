"""Runtime composition: every vector loaded as its own PEFT adapter, all active at once.

θ = θ_base + Σ_p η_p·φ_p is evaluated as base(x) + Σ_p η_p·B_p·A_p·x in each LoRA layer. This module
loads (the base, the vectors, every check before they meet); changing η afterwards is
:mod:`pvlora.steering.scales`, which only rewrites each layer's ``scaling`` entry (a Python float): no weight
is copied, nothing is reloaded, so a sweep over η costs one model load.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pvlora.core.errors import ArtifactError
from pvlora.artifacts.peft_read import read_vectors  # noqa: F401  (re-exported)
from pvlora.steering.scales import check_eta, get_weights, set_weights  # noqa: F401  (re-exported: pvlora.steering.load's API)
from pvlora.artifacts.compat import BaseFingerprint, check_compatible, check_shapes, linear_shapes, unverified
from pvlora.bases.load import config_sha256, load_model, load_tokenizer, resolve_base
from pvlora.config import ModelConfig


def check_adapter_name(name: str, what: str) -> str:
    """``name`` if PEFT can use it as an adapter name, else an :class:`ArtifactError` naming ``what`` (the
    vector). PEFT keeps each layer's adapters in ``torch.nn.ModuleDict``/``ParameterDict`` entries, which
    refuse a key that is an attribute of the dict itself (``eval``, ``train``, ``keys``, ``to``, ``type``...)."""
    import torch

    if name in set(dir(torch.nn.ModuleDict())) | set(dir(torch.nn.ParameterDict())):
        raise ArtifactError(f"{what}: its name {name!r} cannot be a PEFT adapter name (PEFT keeps adapters in "
                            f"torch.nn.ModuleDict entries, where {name!r} is the dict's own attribute); extract it "
                            f"again under another preference name, e.g. {name}_v")
    return name


def _adapter_name(a, taken: set[str]) -> str:
    name = check_adapter_name(re.sub(r"[^A-Za-z0-9_-]", "_", a.name) or "vector", str(a.path))
    base, i = name, 1
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def load_composed(base: Any, vectors: dict[str, float], revision: str | None = None, allow_pickle: bool = False,
                  **model_kwargs):
    """Load ``base`` with each vector as a separate active adapter at weight η.

    Args:
        base: a Hub id, a local directory, ``"tiny"``, ``"smollm2-135m"``, or an already loaded
            ``PreTrainedModel`` (checked against each vector's recorded config hash).
        vectors: {local path or Hub id (``org/name@rev``): η}.
        revision: the base's revision on the Hub.
        allow_pickle: also read ``adapter_model.bin`` (with ``weights_only=True``).
        **model_kwargs: :class:`pvlora.config.ModelConfig` fields (``dtype``, ``quantization``, ...).

    Returns:
        (model, tokenizer): a ``PeftModel`` with every vector active (adapter names = preference
        names, the keys of :func:`set_weights`); the tokenizer is None when ``base`` is a model object.

    Raises:
        EtaError: a bad η.
        ArtifactError: a missing or altered file, a trained adapter given as a vector,
            vectors from different bases or from another base than ``base``, shapes that do not
            fit, the same vector twice.
    """
    from peft import PeftModel

    items = read_vectors(vectors, allow_pickle)  # checks η, files, hashes and base agreement first
    adapters = [a for a, _ in items]
    taken: set[str] = set()
    names = [_adapter_name(adapter, taken) for adapter in adapters]  # before the base loads: a name PEFT refuses
    tok = None
    if isinstance(base, (str, Path)):
        resolved = resolve_base(ModelConfig(name_or_path=str(base), revision=revision, **model_kwargs))
        check_compatible(adapters, resolved.fingerprint)
        tok = load_tokenizer(resolved)  # first: cheap, and fails before the weights load
        model = load_model(resolved)
        record = {"base": resolved.fingerprint, "config_only": False, "label": None}
    else:
        model = base
        sha = config_sha256(model.config)  # the object's own architecture config against each vector's record
        check_compatible(adapters, BaseFingerprint(config_sha256=sha), f"the model object given (config sha256 {sha[:12]})",
                         config_only=True)
        record = {"base": BaseFingerprint(config_sha256=sha), "config_only": True,
                  "label": f"the model object given (config sha256 {sha[:12]})"}
    for path in unverified(adapters):
        import warnings

        warnings.warn(f"{path} has no pvlora.json (or one without weights_sha256), so no integrity check of its "
                      "files was possible", stacklevel=2)
    check_shapes(adapters, linear_shapes(model), repr(getattr(model.config, "_name_or_path", None) or "the base"))
    for i, (adapter, name) in enumerate(zip(adapters, names)):
        if i == 0:
            model = PeftModel.from_pretrained(model, str(adapter.path), adapter_name=name)
        else:
            model.load_adapter(str(adapter.path), adapter_name=name)
    model.base_model.set_adapter(names)  # all active at once (PeftModel.set_adapter takes one name)
    model.eval()
    set_weights(model, {n: w for n, (_, w) in zip(names, items)})
    # What pvlora.add_vector checks later vectors against (pvlora.steering.swap): a plain attribute, not a submodule
    record["sources"] = {n: Path(a.path).resolve() for n, (a, _) in zip(names, items)}
    object.__setattr__(model, "_pvlora_loaded", record)
    return model, tok


__all__ = ["check_adapter_name", "load_composed", "set_weights", "get_weights"]
