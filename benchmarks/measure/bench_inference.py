"""Inference cost of runtime composition: tokens/s with 2 and 4 vectors active as separate LoRA
adapters (what `load_composed` gives, re-weightable) against the same composition merged into the
weights, on a mid-size random-init Llama on the CPU, at batch sizes 1, 4 and 16. Each vector has
rank 32, what extracting two r = 16 adapters gives. Target: <= 1.3x slower for 2 vectors.

    python benchmarks/measure/bench_inference.py [--new-tokens 32] [--batch 1 4 16]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save, timeit  # noqa: E402

RESULT_FILES = ("results/inference.json",)  # what this script writes, relative to benchmarks/


def main(argv=None) -> int:
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    import pvlora

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=8000, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                      num_attention_heads=16, num_key_value_heads=4)
    base = LlamaForCausalLM(cfg).eval()
    gen = dict(max_new_tokens=a.new_tokens, min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=0)
    lcfg = LoraConfig(r=32, lora_alpha=32, init_lora_weights=False,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    rows = []
    torch.set_flush_denormal(True)
    for n in (2, 4):
        model = get_peft_model(copy.deepcopy(base), lcfg, adapter_name="v0")
        for k in range(1, n):
            model.add_adapter(f"v{k}", lcfg)
        names = [f"v{k}" for k in range(n)]
        model.base_model.set_adapter(names)
        pvlora.set_weights(model, {nm: 0.5 + 0.25 * k for k, nm in enumerate(names)})
        model.eval()
        merged = copy.deepcopy(model).merge_and_unload()  # every active adapter at its scale, folded into W
        for batch in a.batch:
            ids = torch.randint(0, cfg.vocab_size, (batch, 32))
            with torch.no_grad():
                # interleave the two so drift in machine load hits both alike
                t_rt, t_m = [], []
                for _ in range(a.repeats):
                    t_rt.append(timeit(lambda ids=ids, m=model: m.generate(input_ids=ids, **gen), repeats=1))
                    t_m.append(timeit(lambda ids=ids, m=merged: m.generate(input_ids=ids, **gen), repeats=1))
            t_rt, t_m = statistics.median(t_rt), statistics.median(t_m)
            tok = batch * a.new_tokens  # new tokens only
            rows.append({"vectors": n, "batch": batch, "runtime_tokens_per_s": tok / t_rt,
                         "merged_tokens_per_s": tok / t_m, "slowdown": t_rt / t_m})
        del model, merged
    print(f"{'vectors':>7} {'batch':>5} {'runtime tok/s':>14} {'merged tok/s':>13} {'slowdown':>9}")
    for r in rows:
        print(f"{r['vectors']:>7} {r['batch']:>5} {r['runtime_tokens_per_s']:>14.1f} {r['merged_tokens_per_s']:>13.1f} "
              f"{r['slowdown']:>8.2f}x")
    save(RESULT_FILES[0], {"model": cfg.to_dict() | {"params": sum(p.numel() for p in base.parameters())},
                       "rank_per_vector": 32, "batches": a.batch, "new_tokens": a.new_tokens, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
