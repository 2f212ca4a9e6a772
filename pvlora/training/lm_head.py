"""DPO's log-probabilities through TRL's fused LM head, completion positions only, a bounded tile at a time.

TRL (1.16) patches the policy so that ``model(..., labels=labels, fused_lm_head=True)`` returns each
token's log-probability without the ``(batch, length, vocabulary)`` logits: the LM head runs in tiles
of up to 4,096 tokens x 32,768 vocabulary entries, folded into an online log-sum-exp. On CUDA it
projects only the positions that have a label (the completion); on any other device (a CPU) it
projects *every* position, prompt and padding included, in one tile. At the SmolLM2 study's settings
(8 pairs = 16 sequences x 160 tokens, ~500 of them completion tokens) that tile is 2,544 x 32,768 fp32
= 333 MB, and the torch fallback of TRL's kernel holds up to nine buffers of that size at once in the
backward pass: 3 GB of the 5.7 GB of tensors a step on 16 full-length rows holds at its peak (torch's
profiler); the resident peak of DPO steps falls from 5.0 to 2.7 GB (benchmarks/measure/bench_dpo_memory.py).

:func:`compact_head` wraps that forward: the backbone runs as before, then only completion positions go
through TRL's own ``ChunkedLogProbFunction``, ``token_chunk`` of them per call, with TRL's vocabulary
tiles, so each token's numbers are computed exactly as TRL computes them (the loss, the gradients and
the logged metrics agree within fp32 rounding; tests/training/test_lm_head.py). Models whose logits are
post-processed (soft-capping, logit scales), MoE routers, pre-shifted labels and sharded heads keep
TRL's forward unchanged.
"""

from __future__ import annotations

import functools
import types

import torch
from torch.distributed.tensor import DTensor
from trl import DPOTrainer
from trl.kernels.chunked_logprob import ChunkedLogProbFunction
from trl.trainer import utils as trl_utils

TOKEN_CHUNK = 256  # completion positions per LM-head call: 256 x 32,768 fp32 = 34 MB a buffer
_POSTPROCESSED = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier",
                  "lm_head_multiplier")


def _plain_head(model) -> bool:
    """True when the logits are the LM head's output as it is (no scaling, capping or routing)."""
    cfg = model.config.get_text_config()
    if getattr(cfg, "output_router_logits", False):
        return False
    if any(getattr(cfg, k, None) not in (None, 1.0) for k in _POSTPROCESSED):
        return False
    head = model.get_output_embeddings()
    return head is not None and not isinstance(head.weight, DTensor)


def _outputs(trainer) -> tuple[str, ...]:
    # the per-token fields DPOTrainer asks TRL's head for (its __init__: metrics, and WPO's weights)
    return ("log_probs", "entropy", "mean_logits", "is_top1") + (
        ("log_sum_sq_probs",) if getattr(trainer, "use_weighting", False) else ())


def compact_head(trainer, token_chunk: int = TOKEN_CHUNK) -> bool:
    """Make the policy's fused LM head (patched by ``DPOTrainer``) score completion positions only,
    ``token_chunk`` at a time. Idempotent; returns whether the head is (now) compact."""
    model = trainer.model
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    trl_forward = base.forward
    if getattr(trl_forward, "pvlora_token_chunk", None) is not None:
        return True
    if not _plain_head(base):
        return False
    outputs = _outputs(trainer)

    @functools.wraps(trl_forward)
    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head or shift_labels is not None or kwargs.get("output_router_logits"):
            return trl_forward(*args, fused_lm_head=fused_lm_head, labels=labels, shift_labels=shift_labels,
                               num_items_in_batch=num_items_in_batch, **kwargs)
        kwargs["use_cache"] = False
        hidden = self.base_model(*args, **kwargs).last_hidden_state[:, :-1]
        head = self.get_output_embeddings()
        hidden, labels = hidden.to(head.weight.device), labels[:, 1:].to(head.weight.device)
        mask = labels != -100
        h, targets = hidden[mask], labels[mask]  # (n, d), (n,): the completion positions only
        # TRL's vocabulary tile; its buffer is that wide even for a smaller vocabulary (the same numbers either way)
        vocab_chunk = min(trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, head.weight.shape[0])
        parts = []
        with trl_utils.maybe_gather_lm_head_ctx(head.weight, head.bias):
            for s in range(0, max(len(targets), 1), token_chunk):  # one (empty) call when no label is valid
                parts.append(ChunkedLogProbFunction.apply(
                    h[s:s + token_chunk], head.weight, head.bias, targets[s:s + token_chunk], 1.0, vocab_chunk,
                    None, 1.0, outputs))
        # masked_scatter keeps the output connected to the graph even with no valid label (as TRL does)
        fields = [None if p[0] is None else torch.cat(p).new_zeros(mask.shape).masked_scatter(mask, torch.cat(p))
                  for p in zip(*parts)]
        log_probs, entropy, log_sum_sq_probs, mean_logits, is_top1 = fields
        loss = -log_probs.sum() / (mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch)
        return trl_utils.FusedCausalLMOutput(
            loss=loss, log_probs=log_probs, entropy=entropy, log_sum_sq_probs=log_sum_sq_probs,
            mean_logits=mean_logits, is_top1=is_top1, label_mask=mask)

    forward.pvlora_token_chunk = token_chunk
    base.forward = types.MethodType(forward, base)
    return True


class CompactDPOTrainer(DPOTrainer):
    """``DPOTrainer`` with :func:`compact_head` in place from the reference pre-computation on (it runs
    inside ``DPOTrainer.__init__``, after TRL patches the head). ``token_chunk``: positions per call."""

    token_chunk = TOKEN_CHUNK

    def __init__(self, *args, token_chunk: int = TOKEN_CHUNK, **kwargs):
        self.token_chunk = token_chunk
        super().__init__(*args, **kwargs)
        compact_head(self, self.token_chunk)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        compact_head(self, self.token_chunk)
        return super()._precompute_ref_logps(dataset, name, batch_size)
