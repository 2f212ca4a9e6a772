"""Real-size QLoRA DPO on an NVIDIA GPU: peak memory and tokens/s of `pvlora train`.

A Llama-3.1-8B-shaped model with random weights (memory and speed do not depend on the values, so
no download): built on the GPU in bf16, saved, then loaded back by pvlora's own loader in 4-bit NF4
with double quantisation and bf16 compute, and trained with pvlora's DPO stage (TRL DPOTrainer,
LoRA r=16 on all linear layers, batch 1, gradient checkpointing) at each sequence length.

    python benchmarks/bench_qlora_gpu.py --seq 512 1024 --steps 6

Needs a CUDA GPU with bitsandbytes, trl and datasets installed. Prints a table and writes
benchmarks/results/qlora_gpu.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from pathlib import Path

LLAMA_31_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, max_position_embeddings=131072, rope_theta=500000.0, rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)


def build_random_base(path: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from pvlora.tiny import build_tokenizer

    if (path / "config.json").exists():
        return
    cfg = LlamaConfig(**LLAMA_31_8B)
    with torch.device("meta"):
        model = LlamaForCausalLM(cfg)
    model = model.to_empty(device="cuda").to(torch.bfloat16)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)
    model.save_pretrained(path, safe_serialization=True)
    build_tokenizer().save_pretrained(path)  # any tokenizer with ids < vocab_size will do
    del model
    torch.cuda.empty_cache()


def write_pairs(path: Path, seq: int, n: int, tok) -> None:
    """Pairs whose prompt (40%) and each response (60%) fill exactly ``seq`` tokens together."""
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"]

    def text(k):
        ids = []
        while len(ids) < k:
            ids.extend(tok(" " + rng.choice(words), add_special_tokens=False)["input_ids"])
        return tok.decode(ids[:k])

    with open(path, "w") as fh:
        for _ in range(n):
            fh.write(json.dumps({"prompt": text(int(seq * 0.4)), "chosen": text(seq - int(seq * 0.4)),
                                 "rejected": text(seq - int(seq * 0.4))}) + "\n")


def run(seq: int, steps: int, base: Path, work: Path) -> dict:
    import torch

    from pvlora.config import load_config
    from pvlora.train import train_all

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    data = work / f"pairs-{seq}.jsonl"
    write_pairs(data, seq, steps + 2, tok)
    overrides = [
        f"model.name_or_path={base}", "model.quantization=nf4", "model.gradient_checkpointing=true",
        "lora.r=16", "lora.lora_alpha=32",
        "lora.target_modules=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj]",
        f"dpo.max_length={seq}", "dpo.per_device_train_batch_size=1", "dpo.gradient_accumulation_steps=1",
        f"dpo.max_steps={steps}", "dpo.bf16=true", "dpo.learning_rate=1e-6", "dpo.logging_steps=1",
        "dpo.save_strategy=no", f"output.dir={work / f'out-{seq}'}",
    ]
    cfg = load_config(None, overrides)
    cfg.preferences = [type(cfg.preferences[0])(name="bench", source=str(data), format="pairs", heldout_fraction=0.0)]
    import gc

    gc.collect()  # the previous run's model must be gone before the peak is reset
    torch.cuda.empty_cache()
    resident = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = train_all(cfg, "bench", "positive", overwrite=True)[0]
    wall = time.perf_counter() - t0
    m = res.manifest["metrics"]
    row = json.loads(data.read_text().splitlines()[0])
    n_tok = min(seq, len(tok(row["prompt"] + row["chosen"])["input_ids"])) + min(
        seq, len(tok(row["prompt"] + row["rejected"])["input_ids"]))
    return {
        "seq_len": seq, "steps": m["train_steps"], "tokens_per_step": n_tok,
        "peak_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "allocated_before_load_gib": resident / 2**30, "train_seconds": m["train_seconds"], "tokens_per_second": n_tok * m["train_steps"] / m["train_seconds"],
        "wall_seconds_with_load": wall,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq", type=int, nargs="+", default=[512, 1024])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--work", default="/tmp/pvlora-qlora-bench")
    p.add_argument("--out", default="benchmarks/results/qlora_gpu.json")
    a = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("bench_qlora_gpu: no CUDA GPU here; run this script on a GPU machine")
        return 2
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    base = work / "llama-3.1-8b-random"
    t = time.perf_counter()
    build_random_base(base)
    print(f"random Llama-3.1-8B-shaped base ready in {time.perf_counter() - t:.0f}s")
    run(256, 2, base, work)  # warm-up: CUDA context, kernels, allocator; not reported
    rows = [run(s, a.steps, base, work) for s in a.seq]
    print(f"\n{'seq':>6} {'peak alloc GiB':>15} {'peak reserved GiB':>18} {'tokens/s':>10}")
    for r in rows:
        print(f"{r['seq_len']:>6} {r['peak_allocated_gib']:>15.2f} {r['peak_reserved_gib']:>18.2f} {r['tokens_per_second']:>10.0f}")
    result = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "model": "Llama-3.1-8B shape, random",
              "lora": "r=16, alpha=32, all linear layers", "quantization": "nf4 + double quant, bf16 compute",
              "batch_size": 1, "gradient_checkpointing": True, "rows": rows,
              "date": time.strftime("%Y-%m-%d")}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2))
    shutil.rmtree(work / "out-512", ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
