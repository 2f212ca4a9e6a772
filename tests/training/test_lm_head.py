"""Memory of the DPO stage on the tiny base, measured in tensor bytes (deterministic, unlike RSS or time).

- The compact LM head (training/lm_head.py) trains exactly like TRL's own: same losses, same LoRA
  updates within fp32 rounding, the same reference log-probs in the pre-computation pass.
- Logit-sized tensors: no vocabulary-wide tensor has more rows than ``token_chunk``, and a step
  allocates logits for completion positions only.
- Peak live tensor bytes of one DPO step (forward + backward) and of the held-out pass stay under
  bounds that TRL's CPU head and a held-out pass with autograd on both exceed.
"""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from pvlora.bases.load import load_model, load_tokenizer, resolve_base
from pvlora.config import load_config
from pvlora.data import load_preference_data
from pvlora.training.dpo import DPO_DEFAULTS
from pvlora.training.runs import trainer_kwargs

VOCAB = 384  # the tiny base's vocabulary: the last dimension of every logit-sized tensor


def peak_tensor_bytes(fn) -> tuple[object, int]:
    """(fn(), the peak of tensor bytes alive at once while it ran, above what was alive before), from the
    profiler's record of every CPU allocation and free: the same on any machine load."""
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    sizes = []

    def collect(e):
        if e.tag == _EventType.Allocation:
            sizes.append((e.start_time_ns, e.extra_fields.alloc_size))
        for c in e.children:
            collect(c)

    for e in prof.profiler.kineto_results.experimental_event_tree():
        collect(e)
    live = peak = 0
    for _, size in sorted(sizes, key=lambda s: s[0]):
        live += size
        peak = max(peak, live)
    return out, peak


class LogitRows(TorchDispatchMode):
    """Every tensor an op returns whose last dimension is the vocabulary: rows and bytes (backward too)."""

    def __init__(self):
        super().__init__()
        self.rows: list[int] = []
        self.bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.dim() >= 2 and t.shape[-1] == VOCAB and not func.is_view \
                    and not func._schema.is_mutable:  # new memory only: no views, no in-place results
                self.rows.append(t.numel() // VOCAB)
                self.bytes += t.numel() * t.element_size()
        return out


@pytest.fixture(scope="module")
def setting(tiny_base_dir):
    cfg = load_config(None, ["dpo.max_length=64"])  # the tiny demo's settings, batch 16
    base = resolve_base(cfg.model)
    data = load_preference_data(cfg.preference("helpful"), "positive", seed=0)
    return cfg, base, load_tokenizer(base), data.train[:32]


def make_trainer(setting, tmp_path, token_chunk: int | None, **dpo):
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from pvlora.core.logs import quieted
    from pvlora.training.lm_head import CompactDPOTrainer

    cfg, base, tok, rows = setting
    kw = trainer_kwargs(DPO_DEFAULTS, {**cfg.dpo, "save_strategy": "no", "disable_tqdm": True,
                                       "logging_steps": 1, **dpo}, tmp_path / "run", cfg)
    # a fingerprint of its own: TRL caches pre-computed reference log-probs by dataset fingerprint and
    # weights, and another trainer's cache would hide this one's head
    data = Dataset(Dataset.from_list(rows).data, fingerprint=f"test-dpo-memory-{token_chunk}-{sorted(dpo.items())}")
    set_seed(cfg.seed)
    cls, extra = (CompactDPOTrainer, {"token_chunk": token_chunk}) if token_chunk else (DPOTrainer, {})
    with quieted("transformers"):
        return cls(model=load_model(base), args=DPOConfig(**kw), train_dataset=data,
                   processing_class=tok, peft_config=LoraConfig(task_type="CAUSAL_LM", **cfg.lora), **extra)


def lora_weights(trainer) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("precompute", [False, True])
def test_compact_head_trains_like_trl_s_own(setting, tmp_path, precompute):
    """A DPO step's loss and LoRA gradients (batch 16 pairs), then two SGD steps (losses, metrics, LoRA
    weights after): the same within fp32 rounding, and with the reference pre-computed the same
    reference log-probs. token_chunk 7: many calls per batch. (SGD, as AdamW's first update is
    lr x sign(g) per element and so turns rounding-level differences of near-zero gradients into
    whole-lr ones: the step-2 loss then differs by ~1e-4 relative whichever head is used.)"""
    runs = {}
    for chunk in (None, 7):
        tr = make_trainer(setting, tmp_path / str(chunk), chunk, max_steps=2, optim="sgd",
                          precompute_ref_log_probs=precompute)
        if chunk:  # in place before the pre-computation pass, which runs inside DPOTrainer.__init__
            assert tr.model.get_base_model().forward.pvlora_token_chunk == chunk
        batch, _ = _one_step(tr)
        loss = tr.compute_loss(tr.model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in tr.model.named_parameters() if p.grad is not None}
        tr.model.zero_grad(set_to_none=True)
        before = lora_weights(tr)
        tr.train()
        after = lora_weights(tr)
        assert any(not torch.equal(before[k], after[k]) for k in after)  # the steps moved the adapter
        runs[chunk] = (float(loss), grads, tr.state.log_history, after,
                       list(tr.train_dataset["ref_chosen_logps"]) + list(tr.train_dataset["ref_rejected_logps"])
                       if precompute else None)
    (loss_trl, g_trl, log_trl, w_trl, ref_trl), (loss_ours, g_ours, log_ours, w_ours, ref_ours) = runs[None], runs[7]
    assert loss_ours == pytest.approx(loss_trl, rel=1e-6)
    assert g_ours.keys() == g_trl.keys() and len(g_trl) == 2 * 7 * 4  # A and B of 7 modules in 4 layers
    scale = max(float(g.abs().max()) for g in g_trl.values())
    for k in g_trl:
        torch.testing.assert_close(g_ours[k], g_trl[k], rtol=1e-4, atol=1e-5 * scale)
    for a, b in zip(log_trl, log_ours, strict=True):
        for k in ("loss", "rewards/margins", "logps/chosen", "logps/rejected", "entropy", "logits/chosen",
                  "mean_token_accuracy", "grad_norm"):
            if k in a:
                assert b[k] == pytest.approx(a[k], rel=1e-4, abs=1e-6), k
    for k in w_trl:
        torch.testing.assert_close(w_ours[k], w_trl[k], rtol=1e-5, atol=1e-7)
    if precompute:
        torch.testing.assert_close(torch.tensor(ref_ours), torch.tensor(ref_trl), rtol=1e-6, atol=1e-5)


def _one_step(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()

    def step():
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        trainer.model.zero_grad(set_to_none=True)
        return loss.item()

    return batch, step


def test_a_dpo_step_allocates_logits_for_completion_positions_only(setting, tmp_path):
    chunk = 16
    counts = {}
    for token_chunk in (None, chunk):
        tr = make_trainer(setting, tmp_path / str(token_chunk), token_chunk)
        batch, step = _one_step(tr)
        with LogitRows() as rec:
            step()
        counts[token_chunk] = rec
    positions = batch["input_ids"].shape[0] * (batch["input_ids"].shape[1] - 1)
    completion = int(batch["completion_mask"][:, 1:].sum())
    assert completion < positions / 2  # the prompts are most of each sequence: the test can tell
    assert max(counts[None].rows) == positions  # TRL's CPU head: every position of the batch at once
    assert max(counts[chunk].rows) <= chunk  # ours: a bounded tile
    # the same work per scored token (a few dozen vocabulary-wide rows over forward and backward), on
    # completion tokens only: ~30 rows per completion token against ~27 per position
    assert sum(counts[chunk].rows) <= 32 * completion
    assert sum(counts[chunk].rows) / completion <= 1.2 * sum(counts[None].rows) / positions
    assert counts[chunk].bytes <= 32 * completion * VOCAB * 4 < counts[None].bytes


def test_dpo_step_and_heldout_pass_peak_tensor_bytes(setting, tmp_path):
    """Bounds in bytes: one DPO step at batch 16 pairs (activations of 4 layers and the LM head) and the
    held-out pass over 64 sequences. TRL's CPU head and a held-out pass that keeps autograd's graph
    (the old behaviour) exceed them."""
    from pvlora.steering.logprobs import _pad_id, encode_pairs, score_encoded

    peaks = {}
    for token_chunk in (None, 16):
        tr = make_trainer(setting, tmp_path / str(token_chunk), token_chunk)
        _, step = _one_step(tr)
        step()  # warm-up: lazily built buffers are not the step's
        _, peaks[token_chunk] = peak_tensor_bytes(step)
    # measured 93 MB (activations, mostly) against 369 MB: TRL's buffer is 32,768 entries wide per position
    assert peaks[16] <= 120_000_000 < peaks[None]

    _, _, tok, rows = setting
    encoded, pad = encode_pairs(tok, rows), _pad_id(tok)
    model = tr.model  # trainable LoRA weights, as in train_one's held-out pass
    assert any(p.requires_grad for p in model.parameters())
    with torch.enable_grad():
        (ours, _), lean = peak_tensor_bytes(lambda: score_encoded(model, encoded, pad, 64, chunk_tokens=64))
        (old, _), kept = peak_tensor_bytes(lambda: score_encoded.__wrapped__(model, encoded, pad, 64, chunk_tokens=64))
    torch.testing.assert_close(ours, old)
    assert lean <= 60_000_000 < kept  # measured 42 MB against 233 MB
