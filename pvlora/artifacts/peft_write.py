"""Writing LoRA factors as a plain PEFT adapter directory (what extract, compose and export save)."""

from __future__ import annotations

from pathlib import Path

import torch

from pvlora.artifacts.compat import PEFT_PREFIX, base_module_name
from pvlora.artifacts.manifest import SAFE_WEIGHTS
from pvlora.core.lora_math import Factors, check_finite, pad_rank


def write_factors(
    directory: Path, factors: Factors, base_name: str | None, rank: int | None = None,
    task_type: str | None = "CAUSAL_LM", revision: str | None = None,
) -> int:
    """Save ``factors`` (ΔW = B·A, scale folded) as a plain PEFT LoRA adapter with scaling 1.

    Modules of smaller rank are zero-padded to one uniform rank ``r`` with ``lora_alpha = r``: the
    same ΔW, and one config that PEFT, vLLM and other runtimes all read without rank patterns.
    Returns the rank written."""
    from peft import LoraConfig
    from safetensors.torch import save_file

    r = rank or max(lr.rank for lr in factors.values())
    tensors = {}
    for module, lr in factors.items():
        lr = pad_rank(lr, r)
        key = module if module.startswith(PEFT_PREFIX) else PEFT_PREFIX + module
        tensors[f"{key}.lora_A.weight"] = lr.A.to(torch.float32).contiguous()  # (r, d_in)
        tensors[f"{key}.lora_B.weight"] = lr.B.to(torch.float32).contiguous()  # (d_out, r)
    check_finite(tensors, directory / SAFE_WEIGHTS)
    targets = sorted(base_module_name(m) for m in factors)
    config = LoraConfig(
        r=r, lora_alpha=r, target_modules=targets, lora_dropout=0.0, bias="none", task_type=task_type,
        base_model_name_or_path=base_name, revision=revision,
    )
    config.save_pretrained(str(directory))
    save_file(tensors, str(directory / SAFE_WEIGHTS), metadata={"format": "pt"})
    return r
