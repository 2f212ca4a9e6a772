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

import contextlib
from typing import Any

import torch

from pvlora.core.errors import ConfigError, DataError


@contextlib.contextmanager
def eval_mode(model):
    """``model.eval()`` inside the block; the caller's train/eval mode comes back after, also on error."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


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


def encode(tok, prompts: list[Any], completions: list[Any], max_length: int = 512) -> list[tuple[tuple[int, ...], int]]:
    """(token ids of prompt + completion, number of completion tokens) per example. Tokenised
    separately then joined, as TRL does, so the prompt/completion boundary is exact."""
    out = []
    for p, c in zip(prompts, completions):
        p_text = prompt_text(tok, p)
        p_ids = tok(p_text, add_special_tokens=False)["input_ids"]
        c_ids = tok(completion_text(tok, p, c, p_text), add_special_tokens=False)["input_ids"]
        ids = (p_ids + c_ids)[-max_length:]
        out.append((tuple(ids), min(len(c_ids), len(ids))))
    return out


def _decoder_and_head(model):
    """(backbone, LM head) when the logits are a plain projection of the last hidden state, else
    (None, None). Through PEFT the LoRA layers sit inside these modules, and ``disable_adapter``
    still applies."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config.get_text_config() if hasattr(base.config, "get_text_config") else base.config
    if any(getattr(cfg, k, None) not in (None, 1.0) for k in
           ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier", "lm_head_multiplier")):
        return None, None  # logits are post-processed: use the model's own forward
    try:
        decoder, head = base.get_decoder(), base.get_output_embeddings()
    except (AttributeError, NotImplementedError, ValueError):
        return None, None
    if decoder is None or head is None or decoder is base:
        return None, None
    return decoder, head


def completion_logprob_sums(model, ids: torch.Tensor, attn: torch.Tensor, cmask: torch.Tensor,
                            chunk_tokens: int = 1024) -> torch.Tensor:
    """Σ log π(token) over the completion positions of each row, shape (b,).

    Only the completion positions are projected through the LM head, ``chunk_tokens`` at a time,
    and only each target token's log-probability is kept (the ``selective_log_softmax`` idea): memory
    is chunk × vocabulary floats, not batch × length × vocabulary (≈17 GB in fp32 for 64 rows of
    256 tokens and a 128k vocabulary)."""
    from trl.trainer.utils import selective_log_softmax

    b = ids.shape[0]
    keep = cmask[:, 1:].bool()  # (b, t-1): position t predicts token t+1
    targets = ids[:, 1:][keep]  # (n,)
    rows = torch.arange(b, device=ids.device)[:, None].expand_as(keep)[keep]  # (n,)
    decoder, head = _decoder_and_head(model)
    if decoder is not None:
        hidden = decoder(input_ids=ids, attention_mask=attn).last_hidden_state[:, :-1][keep]  # (n, d)
        project = lambda s: head(hidden[s]).float()  # noqa: E731  (chunk, V)
    else:
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1][keep]  # (n, V), post-processed
        project = lambda s: logits[s].float()  # noqa: E731
    logp = torch.empty(targets.shape[0], dtype=torch.float32, device=ids.device)  # (n,)
    for start in range(0, targets.shape[0], chunk_tokens):
        s = slice(start, start + chunk_tokens)
        logits_s = project(s)  # (chunk, V) fp32
        if logits_s.is_cuda:  # TRL's fused kernel: no second (chunk, V) buffer
            logp[s] = selective_log_softmax(logits_s, targets[s])
        else:  # TRL's CPU path loops over rows in Python; one vectorised pass is exact and ~1.5x faster
            logp[s] = logits_s.gather(-1, targets[s, None]).squeeze(-1) - torch.logsumexp(logits_s, -1)
    return torch.zeros(b, dtype=torch.float64, device=ids.device).index_add_(0, rows, logp.double())


@torch.no_grad()
def batch_tensors(rows: list[tuple[tuple[int, ...], int]], pad_id: int) -> tuple[torch.Tensor, ...]:
    """(ids, attention mask, completion mask), each (rows, longest), right-padded, rows in order."""
    width = max(len(x) for x, _ in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros_like(ids)
    cmask = torch.zeros_like(ids)
    for j, (x, n_c) in enumerate(rows):
        ids[j, : len(x)] = torch.tensor(x)
        attn[j, : len(x)] = 1
        cmask[j, len(x) - n_c : len(x)] = 1
    return ids, attn, cmask


# Scores only: without no_grad, a trainable adapter's forward keeps its autograd graph, every activation and
# each chunk's logits of a batch alive (a 15 GB peak in the SmolLM2 study's held-out pass).
@torch.no_grad()
def score_encoded(model, encoded: list[tuple[tuple[int, ...], int]], pad_id: int, batch_size: int = 64,
                  cache: dict | None = None, batch_tokens: int | None = None,
                  chunk_tokens: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ log π(completion tokens | prompt), number of completion tokens) per encoded example, each (n,).

    Batches are formed in order of length, so little compute goes to padding, with at most
    ``batch_size`` rows and ``batch_tokens`` padded tokens each. ``cache`` maps encoded examples to
    scores already computed by the *same* model (e.g. the base, shared by an adapter pair whose
    held-out sets hold the same texts); it is read and filled.
    """
    device = next(model.parameters()).device
    cache = {} if cache is None else cache  # keyed by the encoded example itself
    todo = sorted({e for e in encoded if e not in cache}, key=lambda e: len(e[0]))  # each sequence once
    start = 0
    while start < len(todo):
        rows = todo[start:start + batch_size]
        if batch_tokens:  # the longest row of this batch sets the padded width
            while len(rows) > 1 and len(rows) * len(rows[-1][0]) > batch_tokens:
                rows = rows[: max(1, min(len(rows) - 1, batch_tokens // len(rows[-1][0])))]
        start += len(rows)
        ids, attn, cmask = batch_tensors(rows, pad_id)
        sums = completion_logprob_sums(model, ids.to(device), attn.to(device), cmask.to(device), chunk_tokens)
        cache.update(zip(rows, sums.cpu().tolist()))
    logp = torch.tensor([cache[e] for e in encoded], dtype=torch.float64)
    counts = torch.tensor([float(n) for _, n in encoded], dtype=torch.float64)
    return logp, counts


def _pad_id(tok) -> int:
    return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id


def sequence_logprobs(model, tok, prompts: list[Any], completions: list[Any], batch_size: int = 32,
                      max_length: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ log π(completion tokens | prompt), number of completion tokens) per example, each (n,)."""
    return score_encoded(model, encode(tok, prompts, completions, max_length), _pad_id(tok), batch_size)


def encode_pairs(tok, pairs: list[dict[str, Any]], max_length: int = 512) -> list[tuple[tuple[int, ...], int]]:
    """Chosen then rejected sequences of every pair: 2n encoded examples."""
    prompts = [p["prompt"] for p in pairs]
    return (encode(tok, prompts, [p["chosen"] for p in pairs], max_length)
            + encode(tok, prompts, [p["rejected"] for p in pairs], max_length))


def pair_scores(model, encoded, pad_id: int, batch_size: int = 64, per_token: bool = True,
                cache: dict | None = None, **bounds) -> tuple[torch.Tensor, torch.Tensor]:
    """(score of chosen, score of rejected), each (n,), from :func:`encode_pairs` output. ``bounds``:
    ``batch_tokens`` / ``chunk_tokens`` of :func:`score_encoded`."""
    s, n = score_encoded(model, encoded, pad_id, batch_size, cache, **bounds)
    if per_token:
        s = s / n.clamp(min=1)
    half = len(encoded) // 2
    return s[:half], s[half:]


def _accuracy(margin: torch.Tensor) -> float:
    return float(((margin > 0).double() + 0.5 * (margin == 0).double()).mean())


def preference_accuracy(model, tok, pairs: list[dict[str, Any]], batch_size: int = 64,
                        reference: str | None = None, beta: float = 0.1) -> dict[str, float]:
    """Accuracy (ties count half) and mean margin on ``pairs`` (see the module docstring)."""
    if not pairs:
        raise DataError("no pairs to score")
    if reference not in (None, "disable_adapters"):
        raise ConfigError(f"reference must be None or 'disable_adapters', got {reference!r}")
    per_token = reference is None
    encoded = encode_pairs(tok, pairs)
    with eval_mode(model):
        w, l_ = pair_scores(model, encoded, _pad_id(tok), batch_size, per_token)
        if reference == "disable_adapters":
            with model.disable_adapter():
                rw, rl = pair_scores(model, encoded, _pad_id(tok), batch_size, per_token)
            margin = beta * ((w - rw) - (l_ - rl))
        else:
            margin = w - l_
    return {"accuracy": _accuracy(margin), "margin": float(margin.mean()), "n": len(pairs)}


def adapter_and_base_accuracy(peft_model, tok, pairs: list[dict[str, Any]], batch_size: int = 64,
                              base_cache: dict | None = None, max_length: int = 512,
                              **bounds) -> dict[str, float]:
    """Reference-free accuracy of a PEFT model and of its base (adapter disabled) on the same pairs,
    tokenised once. ``base_cache`` lets the second adapter of a pair reuse the base's scores."""
    encoded, pad = encode_pairs(tok, pairs, max_length), _pad_id(tok)
    with eval_mode(peft_model):
        w, l_ = pair_scores(peft_model, encoded, pad, batch_size, **bounds)
        with peft_model.disable_adapter():
            bw, bl = pair_scores(peft_model, encoded, pad, batch_size, cache=base_cache, **bounds)
    return {"accuracy": _accuracy(w - l_), "margin": float((w - l_).mean()),
            "base_accuracy": _accuracy(bw - bl), "base_margin": float((bw - bl).mean()), "n": len(pairs)}
