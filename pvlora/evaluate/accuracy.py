"""Preference accuracy from log-probabilities (no generation).

For a pair (x, y_w, y_l) a model prefers y_w when it scores y_w higher. Two scores:

- reference-free (default): the mean log-probability per completion token, so the base model
  gets a meaningful score too. Per-token rather than summed: a summed log-probability prefers
  whichever response is shorter (a refusal, a short answer) whatever the model has learnt.
- ``reference="disable_adapters"``: DPO's implicit reward β·(log π − log π_ref) summed over the
  completion, against the same PEFT model with its adapters off (what DPO's ``rewards/accuracies``
  reports during training).
"""

from __future__ import annotations

from typing import Any

import torch


def prompt_text(tok, prompt: Any) -> str:
    if isinstance(prompt, list):
        return tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return prompt


def completion_text(tok, prompt: Any, completion: Any, p: str) -> str:
    """The completion as it appears after the prompt text ``p`` in the chat-templated conversation."""
    if isinstance(prompt, list):
        full = tok.apply_chat_template(prompt + completion, tokenize=False)
        if full.startswith(p):
            return full[len(p):]
        return tok.apply_chat_template(completion, tokenize=False)
    return completion


@torch.no_grad()
def sequence_logprobs(model, tok, prompts: list[Any], completions: list[Any], batch_size: int = 32,
                      max_length: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ log π(completion tokens | prompt), number of completion tokens) per example, each (n,)."""
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out, counts = [], []
    for i in range(0, len(prompts), batch_size):
        ids_list, mask_list = [], []
        for p, c in zip(prompts[i:i + batch_size], completions[i:i + batch_size]):
            # Tokenised separately then joined, as TRL does, so the prompt/completion boundary is exact.
            p_text = prompt_text(tok, p)
            p_ids = tok(p_text, add_special_tokens=False)["input_ids"]
            c_ids = tok(completion_text(tok, p, c, p_text), add_special_tokens=False)["input_ids"]
            ids = (p_ids + c_ids)[-max_length:]
            n_c = min(len(c_ids), len(ids))
            ids_list.append(ids)
            mask_list.append([0] * (len(ids) - n_c) + [1] * n_c)
        width = max(len(x) for x in ids_list)
        ids = torch.full((len(ids_list), width), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        cmask = torch.zeros_like(ids)
        for j, (x, m) in enumerate(zip(ids_list, mask_list)):  # right padding
            ids[j, : len(x)] = torch.tensor(x)
            attn[j, : len(x)] = 1
            cmask[j, : len(m)] = torch.tensor(m)
        ids, attn, cmask = ids.to(device), attn.to(device), cmask.to(device)
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()  # (b, t-1, V)
        logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (b, t-1)
        out.append((logp * cmask[:, 1:]).sum(-1).double().cpu())
        counts.append(cmask[:, 1:].sum(-1).double().cpu())
    if not out:
        return torch.zeros(0, dtype=torch.float64), torch.zeros(0, dtype=torch.float64)
    return torch.cat(out), torch.cat(counts)


def _pair_logprobs(model, tok, pairs, batch_size, per_token: bool):
    prompts = [p["prompt"] for p in pairs]
    (w, nw), (l_, nl) = (sequence_logprobs(model, tok, prompts, [p[k] for p in pairs], batch_size)
                         for k in ("chosen", "rejected"))
    if per_token:
        return w / nw.clamp(min=1), l_ / nl.clamp(min=1)
    return w, l_


def preference_accuracy(model, tok, pairs: list[dict[str, Any]], batch_size: int = 32,
                        reference: str | None = None, beta: float = 0.1) -> dict[str, float]:
    """Accuracy (ties count half) and mean margin on ``pairs`` (see the module docstring)."""
    if not pairs:
        raise ValueError("no pairs to score")
    was_training = model.training
    model.eval()
    per_token = reference is None
    w, l_ = _pair_logprobs(model, tok, pairs, batch_size, per_token)
    if reference == "disable_adapters":
        with model.disable_adapter():
            rw, rl = _pair_logprobs(model, tok, pairs, batch_size, per_token)
        margin = beta * ((w - rw) - (l_ - rl))
    elif reference is None:
        margin = w - l_
    else:
        raise ValueError(f"reference must be None or 'disable_adapters', got {reference!r}")
    if was_training:
        model.train()
    acc = float(((margin > 0).double() + 0.5 * (margin == 0).double()).mean())
    return {"accuracy": acc, "margin": float(margin.mean()), "n": len(pairs)}
