"""Helpers shared by the tests (fixtures live in conftest.py)."""

import os
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from pvlora.data.sources import BUILTIN_SOURCES

# The 1,800 real HH-RLHF pairs shipped in the package; $PVLORA_HH_RLHF_FILE points the tests at
# other rows (the only way tests take external data; nothing outside the repository is read).
HH_FILE = Path(os.environ.get("PVLORA_HH_RLHF_FILE") or BUILTIN_SOURCES["hh-rlhf-harmless-base"])


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


def one_line_error(capsys, *needles):
    """The CLI's error path: one line on stderr holding every needle, no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    return err
