"""Per-request η in one batch (pvlora.steering.rowwise) against the two ways to do without it.

A batch of 16 prompts, each with its own mix of 3 vectors, on a random-init Llama of
SmolLM2-135M's shape (30 layers, hidden 576) with rank-32 vectors (two r = 16 adapters each) on all
seven linear modules, on the CPU:
  (a) loop: for each prompt, set_weights to its mix and run it alone (what PEFT allows today);
  (b) shared: the whole batch at one mix (the floor: what per-row weights cost on top of it);
  (c) rowwise: the batch once, row i at mix i.
Goals: (a)/(c) >= 8 and (c)/(b) <= 1.3, for scoring (one forward pass over 64 tokens) and for
greedy generation (16 new tokens). Then one layer alone: the stacked B·((A·x)⊙s) against PEFT's
active-adapter loop (one pair of matmuls per adapter, one shared mix) at 2, 4 and 8 vectors.
Timings are medians of interleaved rounds.

    python benchmarks/measure/bench_rowwise.py [--repeats 5]     # ~5 min on 2 cores; writes results/rowwise.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save, timeit  # noqa: E402

RESULT_FILES = ("results/rowwise.json",)  # what this script writes, relative to benchmarks/

SHAPE = {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
             "num_key_value_heads": 3, "max_position_embeddings": 512}
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def interleaved(fns: dict, repeats: int) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):  # one of each per round, so drift in machine load hits all alike
        for k, fn in fns.items():
            times[k].append(timeit(fn, repeats=1, warmup=0))
    return {k: {"median_s": statistics.median(v), "min_s": min(v), "max_s": max(v)} for k, v in times.items()}


def model_level(a) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    import pvlora

    torch.manual_seed(0)
    cfg = LlamaConfig(**SHAPE)
    lcfg = LoraConfig(r=32, lora_alpha=32, init_lora_weights=False, target_modules=MODULES)
    names = ["helpful", "harmless", "concise"]
    model = get_peft_model(LlamaForCausalLM(cfg), lcfg, adapter_name=names[0])
    for n in names[1:]:
        model.add_adapter(n, lcfg)
    model.base_model.set_adapter(names)
    model.eval()
    g = torch.Generator().manual_seed(1)
    mixes = [{n: float(v) for n, v in zip(names, torch.randn(3, generator=g).clamp(-2, 2))} for _ in range(a.batch)]
    ids = torch.randint(0, cfg.vocab_size, (a.batch, a.tokens), generator=g)
    gen = {"max_new_tokens": a.new_tokens, "min_new_tokens": a.new_tokens, "do_sample": False, "pad_token_id": 0}

    def loop(run):
        for i, mix in enumerate(mixes):
            pvlora.set_weights(model, mix)
            run(ids[i:i + 1])

    def shared(run):
        pvlora.set_weights(model, mixes[0])
        run(ids)

    def rowwise(run):
        with pvlora.row_weights(model, mixes):
            run(ids)

    def fwd(x):
        return model(input_ids=x).logits

    def generate(x):
        return model.generate(input_ids=x, attention_mask=torch.ones_like(x), **gen)

    out = {}
    with torch.no_grad():
        for task, run in (("scoring", fwd), ("generation", generate)):
            t = interleaved({"loop": lambda r=run: loop(r), "shared": lambda r=run: shared(r),
                             "rowwise": lambda r=run: rowwise(r)}, a.repeats)
            out[task] = {**t, "loop_over_rowwise": t["loop"]["median_s"] / t["rowwise"]["median_s"],
                         "rowwise_over_shared": t["rowwise"]["median_s"] / t["shared"]["median_s"]}
            print(f"{task:>10}: loop {t['loop']['median_s']:.2f}s  shared {t['shared']['median_s']:.2f}s  rowwise "
                  f"{t['rowwise']['median_s']:.2f}s  -> loop/rowwise {out[task]['loop_over_rowwise']:.1f}x, "
                  f"rowwise/shared {out[task]['rowwise_over_shared']:.2f}x", flush=True)
    return out


def layer_level(a) -> list[dict]:
    from peft import LoraConfig
    from peft.tuners.lora.layer import Linear

    from pvlora.steering.rowwise import (  # what row_weights' hook runs in each layer
        rowwise_delta,
        stack_layer,
    )

    torch.manual_seed(0)
    d, r = SHAPE["hidden_size"], 32
    x = torch.randn(a.batch, a.tokens, d)
    rows = []
    for n in (2, 4, 8):
        lcfg = LoraConfig(r=r, lora_alpha=r, init_lora_weights=False)
        layer = Linear(torch.nn.Linear(d, d, bias=False), "v0", lcfg, r=r, lora_alpha=r)
        names = [f"v{k}" for k in range(n)]
        for nm in names[1:]:
            layer.update_layer(nm, r, lora_alpha=r, config=lcfg)
        layer.set_adapter(names)
        layer.eval()
        st = stack_layer(layer, names)
        eta = torch.randn(a.batch, n, dtype=torch.float64)
        base = layer.base_layer

        with torch.no_grad():
            t = interleaved({"peft_active_loop": lambda f=layer: f(x),
                             "stacked_rowwise": lambda f=base, st=st, eta=eta: f(x) + rowwise_delta(x, st, eta),
                             "base_only": lambda f=base: f(x)}, a.repeats * 4)
        row = {"vectors": n, "rank_each": r, **{k: v["median_s"] * 1e3 for k, v in t.items()}}
        row["stacked_over_peft"] = row["stacked_rowwise"] / row["peft_active_loop"]
        rows.append(row)
        print(f"layer, {n} vectors: PEFT loop {row['peft_active_loop']:.2f} ms, stacked per-row "
              f"{row['stacked_rowwise']:.2f} ms ({row['stacked_over_peft']:.2f}x), base {row['base_only']:.2f} ms", flush=True)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tokens", type=int, default=64, help="prompt length")
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    torch.set_flush_denormal(True)
    layers = layer_level(a)
    models = model_level(a)
    save(RESULT_FILES[0], {"shape": SHAPE, "vectors": 3, "rank_each": 32, "batch": a.batch, "prompt_tokens": a.tokens,
                     "new_tokens": a.new_tokens, "repeats": a.repeats,
                     "goals": {"loop_over_rowwise": ">= 8", "rowwise_over_shared": "<= 1.3"},
                     "model": models, "layer_ms": layers})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
