"""A composition built in memory with PEFT's own weighted merging: :func:`merge_weighted`.

PEFT's ``add_weighted_adapter(..., combination_type="cat")`` stacks the adapters' factors
(A_new = [w_1·s_1·A_1; w_2·s_2·A_2; ...], B_new = [B_1, B_2, ...], scale 1), which is exactly
Σ w_i·s_i·B_i·A_i for any signs and ranks: the same ΔW as ``pvlora compose`` writes, in the model,
without a file. Its traps are guarded here:

- a target name that already exists makes PEFT return silently, changing nothing: refused;
- it folds each source's *current* ``scaling`` into A, and in a pvlora model that scaling carries the
  source's η: the sources are set to η = 1 for the call and restored, so ``w`` is the composition's η
  for that vector, as in ``pvlora.compose``;
- rsLoRA (the result inherits the first source's scaling rule), DoRA (not B·A) and ``rank_pattern``
  (per-module ranks) adapters combine wrongly in some PEFT versions: refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping

from pvlora.core.errors import ArtifactError, RequestError
from pvlora.core.eta import check_eta
from pvlora.core.names import NAME_RE
from pvlora.steering.scales import get_weights, set_weights
from pvlora.steering.swap import forget_caches


def refuse_variants(model, names) -> None:
    """Refuse, by name, the adapters PEFT's weighted merging is known to combine wrongly."""
    from peft.tuners.lora import LoraLayer

    for name in names:
        cfg = model.peft_config[name]
        for flag, why in (("use_rslora", "rsLoRA (alpha/sqrt(r) scaling, which the result would inherit)"),
                          ("use_dora", "DoRA (not a plain B·A)"),
                          ("rank_pattern", "a rank_pattern (per-module ranks)")):
            if getattr(cfg, flag, None):
                raise ArtifactError(f"adapter {name!r} uses {why}; PEFT's add_weighted_adapter combines such adapters "
                                    "wrongly in some versions. Use pvlora.compose, which reads the factors exactly")
    for m in model.modules():
        if isinstance(m, LoraLayer):
            for name in names:
                if name in getattr(m, "lora_variant", {}) or name in getattr(m, "lora_embedding_A", {}):
                    raise ArtifactError(f"adapter {name!r} is a LoRA variant or embedding LoRA; not merged")


def merge_weighted(model, weights: Mapping[str, float], new_name: str, eta: float = 0.0) -> str:
    """Add ``new_name`` = Σ w·(vector's ΔW at η = 1), built by PEFT's ``add_weighted_adapter(cat)``.

    Args:
        model: a PeftModel from :func:`pvlora.load_composed` (or any PeftModel with LoRA adapters).
        weights: {loaded vector name: w}; any signs, any ranks (the result's rank is their sum).
        new_name: the composition's adapter name (must not exist yet).
        eta: the composition's η once added (default 0: the model's outputs do not change until it is
            set; ``set_weights(model, {new_name: 1, **{n: 0 for n in weights}})`` runs it in their place).

    Returns:
        ``new_name``, now an active adapter like the others (:func:`pvlora.remove_vector` removes it).

    Raises:
        RequestError: weights that are not a non-empty mapping of loaded names to finite numbers, or a
            ``new_name`` that is invalid or already taken (PEFT itself would return without a word).
        ArtifactError: an rsLoRA, DoRA or ``rank_pattern`` source, or PEFT refusing the combination.
    """
    if not isinstance(weights, Mapping) or not weights:
        raise RequestError("weights must be a non-empty mapping {loaded vector name: w}", "weights")
    if not hasattr(model, "add_weighted_adapter") and not hasattr(getattr(model, "base_model", None),
                                                                  "add_weighted_adapter"):
        raise RequestError(f"model must be a PeftModel with LoRA adapters, got {type(model).__name__}", "model")
    loaded = list(model.peft_config)
    values = {}
    for name, w in weights.items():
        if name not in loaded:
            raise RequestError(f"no vector named {name!r} is loaded; loaded: {', '.join(loaded)}", name)
        values[name] = check_eta(name, w)
    if not isinstance(new_name, str) or not NAME_RE.fullmatch(new_name):
        raise RequestError(f"new_name {new_name!r:.80} is not valid; use 1-64 letters, digits, '_' or '-'", "new_name")
    if new_name in loaded:  # PEFT returns silently here, leaving the old adapter as it was
        raise RequestError(f"an adapter named {new_name!r} already exists; PEFT would keep it unchanged. "
                           "Remove it first or choose another name", "new_name")
    value = check_eta(new_name, eta, "eta")
    refuse_variants(model, values)
    before = get_weights(model)
    set_weights(model, {n: 1.0 for n in values})  # PEFT folds the current scaling (η·alpha/r) into A
    try:
        model.base_model.add_weighted_adapter(list(values), list(values.values()), new_name, combination_type="cat")
    except (ValueError, TypeError, RuntimeError) as exc:
        if new_name in model.peft_config:
            model.delete_adapter(new_name)
        raise ArtifactError(f"PEFT's add_weighted_adapter refused {sorted(values)}: {exc}") from None
    finally:
        set_weights(model, {n: w for n, w in before.items() if n in values})
    model.base_model.set_adapter(loaded + [new_name])  # active with the others, as load_composed leaves them
    set_weights(model, {new_name: value})
    forget_caches(model)
    return new_name


__all__ = ["merge_weighted", "refuse_variants"]
