"""The ``lora:`` and ``dpo:`` blocks are not re-declared by pvlora: their keys are checked against
PEFT's ``LoraConfig`` and TRL's ``DPOConfig`` fields, so every option those libraries have is
available under its own name and a misspelled key fails loudly (with the closest field suggested)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pvlora.core.errors import ConfigError

# Plain LoRA only: the vector step is exact for B·A·alpha/r (and rsLoRA's alpha/sqrt(r)). Anything
# else an adapter can train is not part of B·A and would be silently lost when a vector is extracted,
# so it is refused here, before a run starts (and again when an adapter is read).
_LORA_FORBIDDEN = {
    "use_dora": "DoRA adapters are not linear in their factors; train plain LoRA",
    "lora_bias": "a trained LoRA bias is not part of ΔW = B·A and would be lost in the vector; leave it false",
    "modules_to_save": "fully trained module copies are not low-rank and would be lost in the vector; remove it",
    "trainable_token_indices": "trained embedding rows are not part of ΔW = B·A and would be lost in the vector",
    "target_parameters": "LoRA on raw parameters (e.g. MoE experts) is not supported by the vector math",
}


def validate_lora_keys(lora: dict[str, Any], where: str = "lora") -> None:
    from peft import LoraConfig  # light: peft config module only

    allowed = {f.name for f in dataclasses.fields(LoraConfig)}
    for key, value in lora.items():
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: not a peft.LoraConfig field{suggest(key, allowed)}")
        if key in _LORA_FORBIDDEN and value:
            raise ConfigError(f"{where}.{key}: {_LORA_FORBIDDEN[key]}")
        if key == "bias" and value != "none":
            raise ConfigError(f"{where}.bias: {value!r} trains the base's biases, which are not part of ΔW = B·A "
                              "and would be lost in the vector; use 'none'")


def validate_dpo_keys(dpo: dict[str, Any], where: str = "dpo") -> None:
    allowed = _dpo_fields()
    for key in dpo:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: not a trl.DPOConfig field{suggest(key, allowed)}")
    if "output_dir" in dpo:
        raise ConfigError(f"{where}.output_dir: set output.dir instead; pvlora places each adapter itself")


def _dpo_fields() -> set[str]:
    return trl_fields("DPOConfig")


def trl_fields(name: str) -> set[str]:
    # trl.DPOConfig / SFTConfig = transformers.TrainingArguments + their own fields. Importing trl
    # costs seconds, so read the field names only when a config actually sets some.
    import trl

    return {f.name for f in dataclasses.fields(getattr(trl, name))}


def suggest(key: str, allowed: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
