"""Real-size QLoRA DPO with the shipped Llama-3.1-8B config: peak memory (held-out pass on), and
how much the LoRA weights move at the paper's lr 1e-6 against TRL's default handling.

    python benchmarks/measure/bench_qlora_gpu.py                  # on an NVIDIA GPU: Llama-3.1-8B shape
    python benchmarks/measure/bench_qlora_gpu.py --device cpu     # no GPU: a 2-layer proxy with the same 128k vocabulary

A model of the base's shape with random weights (memory and speed do not depend on the values, so
no download), a 128,256-token tokenizer with a chat template, and conversational pairs that fill
exactly ``seq`` tokens. Each run goes through `pvlora train` with the settings of
``configs/pku-saferlhf/llama-3.1-8b.yaml`` (QLoRA NF4 + double quantisation, bf16 compute, LoRA r=16
on all linear layers, batch 1, gradient checkpointing, default held-out pass), with
``gradient_accumulation_steps=1`` so that a step is one pair (memory does not depend on it).

Three measurements:

1. peak memory of the whole run, training and held-out pass separately, at max_length 512 and 1024
   (GPU: ``torch.cuda.max_memory_allocated``; CPU: resident set size sampled every 5 ms);
2. the held-out pass alone, pvlora's completion-only chunked scoring against full-vocabulary fp32
   logits + log-softmax (the previous implementation, kept here as the baseline), same batches;
3. the fraction of LoRA entries changed after 20 steps at lr 1e-6, pvlora (fp32 LoRA weights) against
   TRL's own QLoRA handling (bf16 LoRA weights), same data, same seed.

Writes benchmarks/results/qlora_gpu.json (GPU) or benchmarks/results/qlora_cpu.json (CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository
# what this script writes, relative to benchmarks/: on a GPU, and with --device cpu
RESULT_FILES = ("results/qlora_gpu.json", "results/qlora_cpu.json")
CONFIG = REPO / "configs/pku-saferlhf/llama-3.1-8b.yaml"
LLAMA_31_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
# Same vocabulary (the logits are what the held-out pass's memory is about), a sliver of the body.
CPU_PROXY = {**LLAMA_31_8B, "hidden_size": 256, "intermediate_size": 896, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2}
WORDS = 128000  # ordinary tokens; 256 more ids hold the special tokens


# ---------------------------------------------------------------- the base, the tokenizer, the data


def build_tokenizer():
    """A 128,256-id word-level tokenizer with ChatML special tokens and chat template (built, not downloaded)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from pvlora.core.chat_templates import BUILTIN

    vocab = {f"w{i}": i for i in range(WORDS)}
    specials = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"] + [f"<|reserved_{i}|>" for i in range(252)]
    vocab.update({s: WORDS + i for i, s in enumerate(specials)})
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", eos_token="<|im_end|>",
                                  additional_special_tokens=["<|im_start|>"])
    tok.chat_template = BUILTIN["chatml"]
    return tok


def build_random_base(path: Path, shape: dict, device: str) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if (path / "config.json").exists():
        return
    tok = build_tokenizer()
    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**shape, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    model = model.to_empty(device=device).to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    del model


def write_pairs(path: Path, seq: int, n: int, tok) -> None:
    """Conversational pairs whose templated prompt (~40%) and each response fill ``seq`` tokens together."""
    rng = random.Random(0)
    overhead = len(tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True,
                                           tokenize=True, return_dict=True)["input_ids"]) - 1

    def text(k):
        return " ".join(f"w{rng.randrange(WORDS)}" for _ in range(k))

    p_len = int(seq * 0.4) - overhead
    r_len = seq - int(seq * 0.4) - 1  # the end-of-turn token
    with open(path, "w") as fh:
        for _ in range(n):
            fh.write(json.dumps({"prompt": [{"role": "user", "content": text(p_len)}],
                                 "chosen": [{"role": "assistant", "content": text(r_len)}],
                                 "rejected": [{"role": "assistant", "content": text(r_len)}]}) + "\n")


# ---------------------------------------------------------------- memory probes


class PeakRSS:
    """Peak resident set size of this process, sampled every 5 ms, resettable (ru_maxrss is not)."""

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")
        threading.Thread(target=self._run, daemon=True).start()

    def now(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            time.sleep(0.005)

    def reset(self) -> None:
        self.peak = self.now()

    def read(self) -> float:
        return max(self.peak, self.now()) / 2**30


class Probe:
    def __init__(self, device: str):
        import torch

        self.cuda = device == "cuda"
        self.torch = torch
        self.rss = None if self.cuda else PeakRSS()

    def reset(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()
            self.torch.cuda.reset_peak_memory_stats()
        else:
            self.rss.reset()

    def peak_gib(self) -> float:
        return self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else self.rss.read()


# ---------------------------------------------------------------- runs


def config(base: Path, data: Path, out: Path, seq: int, steps: int, lr: float | None = None, heldout: bool = True):
    from pvlora.config import PreferenceConfig, load_config

    overrides = [f"model.name_or_path={base}", "model.chat_template=chatml", f"dpo.max_length={seq}",
                 f"dpo.max_steps={steps}", "dpo.gradient_accumulation_steps=1", "dpo.save_strategy=no",
                 "dpo.logging_steps=1", f"output.dir={out}"]
    if lr is not None:
        overrides.append(f"dpo.learning_rate={lr}")
        overrides.append("dpo.lr_scheduler_type=constant")  # 20 steps: no warm-up or decay to blur the comparison
    if not heldout:
        overrides.append("train.heldout_max_pairs=0")
    cfg = load_config(CONFIG, overrides)
    import torch

    if not torch.cuda.is_available():
        cfg.dpo.pop("bf16", None)  # CPU: transformers' bf16 autocast flag is GPU-only; compute is bf16 anyway
    cfg.preferences = [PreferenceConfig(name="bench", source=str(data), format="messages",
                                        heldout_fraction=0.5 if heldout else 0.0)]
    return cfg


def memory_run(base: Path, work: Path, seq: int, steps: int, heldout: int, probe: Probe, tok) -> dict:
    import pvlora.steering.logprobs as acc
    from pvlora.training.dpo import train_all

    data = work / f"pairs-{seq}.jsonl"
    write_pairs(data, seq, 2 * heldout, tok)  # half held out, all of them scored (at most 256 by default)
    phases, real = {}, acc.adapter_and_base_accuracy

    def timed_heldout(*a, **k):
        phases["train_peak_gib"] = probe.peak_gib()
        probe.reset()
        t = time.perf_counter()
        out = real(*a, **k)
        phases.update(heldout_peak_gib=probe.peak_gib(), heldout_seconds=time.perf_counter() - t, heldout_pairs=out["n"])
        return out

    acc.adapter_and_base_accuracy = timed_heldout
    try:
        probe.reset()
        res = train_all(config(base, data, work / f"out-{seq}", seq, steps), "bench", "positive", overwrite=True)[0]
    finally:
        acc.adapter_and_base_accuracy = real
    m = res.manifest.metrics
    return {"seq_len": seq, "steps": m["train_steps"], "train_seconds": m["train_seconds"],
            "tokens_per_second": 2 * seq * m["train_steps"] / m["train_seconds"], **phases}


def full_logits_scores(model, encoded, pad_id, batch_size):
    """The previous held-out scoring: full-vocabulary fp32 logits and log-softmax for whole batches."""
    import torch

    out = []
    for start in range(0, len(encoded), batch_size):
        rows = encoded[start:start + batch_size]
        width = max(len(x) for x, _ in rows)
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attn, cmask = torch.zeros_like(ids), torch.zeros_like(ids)
        for j, (x, n_c) in enumerate(rows):
            ids[j, :len(x)], attn[j, :len(x)], cmask[j, len(x) - n_c:len(x)] = torch.tensor(x), 1, 1
        dev = next(model.parameters()).device
        ids, attn, cmask = ids.to(dev), attn.to(dev), cmask.to(dev)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()  # (b, t-1, V)
            lp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
            out.append((lp * cmask[:, 1:]).sum(-1).double().cpu())
        del logits, lp
    return torch.cat(out)


def scoring_comparison(base: Path, work: Path, seq: int, n_pairs: int, batch: int, probe: Probe, tok) -> dict:
    """The held-out pass alone at one (batch, seq): pvlora's bounded scoring vs full logits."""
    import torch

    from pvlora.data import load_preference_data
    from pvlora.steering.logprobs import encode_pairs, score_encoded
    from pvlora.bases.load import load_base

    data = work / f"pairs-{seq}.jsonl"
    write_pairs(data, seq, 2 * n_pairs, tok)
    cfg = config(base, data, work / "unused", seq, 1)
    model, tok, _ = load_base(cfg.model)
    model.eval()
    loaded = load_preference_data(cfg.preferences[0])
    pairs = loaded.train + loaded.heldout
    encoded = encode_pairs(tok, pairs[:n_pairs], seq)
    row = {"seq_len": seq, "pairs": len(encoded) // 2, "batch_size": batch}
    probe.reset()
    resident = probe.peak_gib()
    t = time.perf_counter()
    ours, _ = score_encoded(model, encoded, tok.pad_token_id, batch, batch_tokens=cfg.train.heldout_batch_tokens,
                            chunk_tokens=cfg.train.heldout_chunk_tokens)
    row.update(pvlora_seconds=time.perf_counter() - t, pvlora_peak_gib=probe.peak_gib(), model_gib=resident)
    probe.reset()
    t = time.perf_counter()
    try:
        theirs = full_logits_scores(model, encoded, tok.pad_token_id, batch)
        row.update(full_logits_seconds=time.perf_counter() - t, full_logits_peak_gib=probe.peak_gib(),
                   max_abs_difference=float((ours - theirs).abs().max()))
    except torch.OutOfMemoryError:
        row.update(full_logits_peak_gib="out of memory")
    del model
    return row


def movement_run(base: Path, work: Path, seq: int, steps: int, fp32: bool, tok) -> dict:
    """Fraction of LoRA entries changed (all, and A alone) and update norm after ``steps`` at lr 1e-6."""
    from safetensors.torch import load_file

    import pvlora.training.dpo as T

    data = work / f"pairs-move-{seq}.jsonl"
    write_pairs(data, seq, steps, tok)
    init, real = {}, T.cast_trainable_to_fp32

    def hook(model):
        if fp32:
            real(model)
        init.update({n.replace(".default.", "."): p.detach().float().clone()
                     for n, p in model.named_parameters() if p.requires_grad})
        init["_dtype"] = str(next(p for p in model.parameters() if p.requires_grad).dtype)

    T.cast_trainable_to_fp32 = hook
    try:
        res = T.train_all(config(base, data, work / f"move-{fp32}", seq, steps, lr=1e-6, heldout=False),
                          "bench", "positive", overwrite=True)[0]
    finally:
        T.cast_trainable_to_fp32 = real
    final = {k: v.float() for k, v in load_file(res.path / "adapter_model.safetensors").items()}
    changed = {k: int((final[k] != init[k]).sum()) for k in final}
    a_keys = [k for k in final if "lora_A" in k]
    return {"lora_weights_dtype": init["_dtype"], "steps": res.manifest.metrics["train_steps"],
            "changed_fraction": sum(changed.values()) / sum(v.numel() for v in final.values()),
            "changed_fraction_A": sum(changed[k] for k in a_keys) / sum(final[k].numel() for k in a_keys),
            "update_norm": sum(float(((final[k] - init[k]) ** 2).sum()) for k in final) ** 0.5}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", choices=["cuda", "cpu"], help="default: cuda when available")
    p.add_argument("--seq", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--steps", type=int, default=None, help="training steps of the memory runs (GPU 10, CPU 3)")
    p.add_argument("--move-steps", type=int, default=20)
    p.add_argument("--heldout-pairs", type=int, default=None,
                   help="held-out pairs scored (GPU 256, the default pass's maximum; CPU 16: two full batches at 1024)")
    p.add_argument("--work", default="/tmp/pvlora-qlora-bench")
    a = p.parse_args(argv)
    import torch

    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        print("bench_qlora_gpu: no CUDA GPU here; run with --device cpu for the CPU proxy")
        return 2
    shape = LLAMA_31_8B if device == "cuda" else CPU_PROXY
    steps = a.steps or (10 if device == "cuda" else 3)
    heldout = a.heldout_pairs or (256 if device == "cuda" else 16)
    work = Path(a.work) / device
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base"
    t = time.perf_counter()
    build_random_base(base, shape, device)
    tok = build_tokenizer()
    print(f"random {'Llama-3.1-8B-shaped' if device == 'cuda' else 'proxy'} base ready in {time.perf_counter() - t:.0f}s")
    probe = Probe(device)
    if device == "cuda":
        memory_run(base, work, 256, 2, 8, probe, tok)  # warm-up: CUDA context, kernels, allocator; not reported
    memory = [memory_run(base, work, s, steps, heldout, probe, tok) for s in a.seq]
    # the previous scoring's batch of 64 would need ~84 GB at 1024 tokens (bf16 + fp32 logits + log-softmax): batch 8 on the CPU
    scoring = [scoring_comparison(base, work, s, heldout, 8 if device == "cpu" else 64, probe, tok) for s in a.seq]
    move_seq = min(a.seq)
    movement = {"pvlora (fp32 LoRA weights)": movement_run(base, work, move_seq, a.move_steps, True, tok),
                "TRL default (bf16 LoRA weights)": movement_run(base, work, move_seq, a.move_steps, False, tok)}

    print(f"\n{'seq':>6} {'train peak GiB':>15} {'held-out peak GiB':>18} {'tokens/s':>10}")
    for r in memory:
        print(f"{r['seq_len']:>6} {r['train_peak_gib']:>15.2f} {r['heldout_peak_gib']:>18.2f} {r['tokens_per_second']:>10.0f}")
    print(f"\nheld-out pass alone, {scoring[0]['pairs']} pairs: pvlora vs full logits (peak GiB)")
    for r in scoring:
        print(f"  seq {r['seq_len']}, batch {r['batch_size']}: {r['pvlora_peak_gib']:.2f} vs {r['full_logits_peak_gib']}")
    print(f"\nafter {a.move_steps} steps at lr 1e-6 (seq {move_seq}):")
    for k, v in movement.items():
        print(f"  {k:32s} changed {v['changed_fraction']:.3f} (A: {v['changed_fraction_A']:.3f}), "
              f"update norm {v['update_norm']:.3g}")
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
        "model": ("Llama-3.1-8B shape" if device == "cuda" else "CPU proxy: Llama-3.1-8B vocabulary (128,256), "
                  "hidden 256, 2 layers") + ", random weights", "config": str(CONFIG.relative_to(REPO)),
        "settings": "nf4 + double quant, bf16 compute, LoRA r=16 alpha=32 on all linear layers, batch 1, "
                    "gradient checkpointing, gradient_accumulation_steps=1, held-out pass with the default train.*",
        "memory_unit": "torch.cuda.max_memory_allocated" if device == "cuda" else "process RSS (sampled every 5 ms)",
        "memory": memory, "heldout_scoring": scoring, "lora_movement_lr_1e-6": movement,
        "date": time.strftime("%Y-%m-%d"),
    }
    out = REPO / "benchmarks" / RESULT_FILES[0 if device == "cuda" else 1]
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
