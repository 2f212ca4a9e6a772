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


def post(url: str, body, raw: bool = False, timeout: float = 60) -> tuple[int, dict]:
    """POST a chat-completions body (or raw bytes) to a running ``pvlora serve``: (status, JSON reply)."""
    import json
    import urllib.error
    import urllib.request

    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def body(prompt: str, mix: dict | None = None, **kw) -> dict:
    """A chat-completions request for one user prompt, at ``mix`` when given."""
    b = {"model": "test-base", "messages": [{"role": "user", "content": prompt}], "max_tokens": 8, **kw}
    if mix is not None:
        b["preference_weights"] = mix
    return b
