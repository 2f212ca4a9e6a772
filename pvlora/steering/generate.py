"""Batched generation through the tokenizer's chat template."""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from pvlora.steering.logprobs import eval_mode, prompt_text


@torch.no_grad()
def generate(model, tok, prompts: list[Any], max_new_tokens: int = 64, batch_size: int = 64,
             do_sample: bool = False, temperature: float = 1.0, seed: int = 0, progress: bool = False,
             **generate_kwargs: Any) -> list[str]:
    """Responses for ``prompts`` (strings, or message lists rendered with the chat template);
    ``generate_kwargs`` (e.g. ``repetition_penalty``) go to ``model.generate``."""
    device = next(model.parameters()).device
    side = tok.padding_side
    tok.padding_side = "left"  # decoder-only generation needs the prompt flush against the new tokens
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    torch.manual_seed(seed)
    out: list[str] = []
    try:
        with eval_mode(model):
            batches = range(0, len(prompts), batch_size)
            for i in tqdm(batches, desc="generating", disable=not progress, leave=False):
                texts = [prompt_text(tok, p) for p in prompts[i:i + batch_size]]
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                                      "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id, **generate_kwargs}
                if do_sample:
                    kw["temperature"] = temperature
                ids = model.generate(**enc, **kw)
                out.extend(tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    finally:
        tok.padding_side = side
    return [s.strip() for s in out]
