"""Helpers shared by the tests (fixtures live in conftest.py)."""

import os
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# 1,800 real HH-RLHF pairs kept beside the repository (not shipped in it); override the location
# with $PVLORA_HH_RLHF_FILE.
HH_FILE = Path(os.environ.get("PVLORA_HH_RLHF_FILE") or SHARED / "data" / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz")


def make_adapter(base_dir, out, seed, **lora_kw):
    """A PEFT LoRA adapter with random non-zero A and B, saved the ordinary PEFT way."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    cfg = LoraConfig(init_lora_weights=False, task_type="CAUSAL_LM", **lora_kw)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():  # make B non-negligible so the deltas are well-scaled
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(out)
    return out
