"""Batched generation: message lists through the tokenizer's chat template, strings as raw text unless
``chat_template=True`` (:mod:`pvlora.steering.prompts`); seeded sampling per row
(:mod:`pvlora.steering.sampling`)."""

from __future__ import annotations

import numbers
from typing import Any

import torch
from tqdm.auto import tqdm

from pvlora.core.errors import ConfigError
from pvlora.steering.locks import model_lock
from pvlora.steering.logprobs import eval_mode
from pvlora.steering.prompts import prompt_texts
from pvlora.steering.sampling import row_sampling


@torch.no_grad()
def generate(model, tok, prompts: list[Any], max_new_tokens: int = 64, batch_size: int = 64,
             do_sample: bool = False, temperature: float = 1.0, seed: int = 0, progress: bool = False,
             chat_template: bool = False, **generate_kwargs: Any) -> list[str]:
    """Responses for ``prompts`` (message lists rendered with the chat template; strings as raw text, or
    with ``chat_template=True`` as one user message each); ``generate_kwargs`` (e.g.
    ``repetition_penalty``) go to ``model.generate``.

    With ``do_sample`` every row draws from its own generator seeded ``seed`` (copy j of
    ``num_return_sequences`` from a seed derived from ``seed`` and j), so a prompt's sample is the same
    in any batch, at any ``batch_size``; beam sampling (``num_beams`` > 1) draws from torch's global
    generator, seeded once with ``seed``. Calls on one model from several threads take turns.

    Raises:
        RequestError: an empty prompt. ConfigError: ``batch_size`` < 1, a bad sampling setting.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size!r}")
    texts = prompt_texts(tok, prompts, chat_template)  # every prompt checked before any work
    device = next(model.parameters()).device
    beams = int(generate_kwargs.get("num_beams") or 1)
    copies = int(generate_kwargs.pop("num_return_sequences", None) or 1)
    out: list[str] = []
    with model_lock(model):
        side = tok.padding_side
        tok.padding_side = "left"  # decoder-only generation needs the prompt flush against the new tokens
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if do_sample and beams > 1:
            torch.manual_seed(seed)
        try:
            with eval_mode(model):
                batches = range(0, len(texts), batch_size)
                for i in tqdm(batches, desc="generating", disable=not progress, leave=False):
                    enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
                    kw: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                                          "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
                                          "num_return_sequences": copies, **generate_kwargs}
                    if do_sample:
                        kw["temperature"] = temperature
                        if beams == 1:  # each row its own generator (takes the sampling settings out of kw)
                            kw.update(row_sampling(model, [seed] * enc["input_ids"].shape[0], kw, copies))
                            # greedy takes no num_return_sequences: the copies are rows, as HF would expand them
                            k = kw.pop("num_return_sequences")
                            enc = {name: v.repeat_interleave(k, 0) for name, v in enc.items()}
                    ids = model.generate(**enc, **kw)
                    out.extend(tok.batch_decode(ids[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
        finally:
            tok.padding_side = side
    return [s.strip() for s in out]
