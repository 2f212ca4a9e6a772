"""Composition and compression at Llama-3.1-8B layer shapes: pvlora against PEFT's add_weighted_adapter.

1. Exact composition Σ w_i·ΔW_i of 2 and 4 random r=16 LoRA adapters on one transformer layer's
   q/k/v/o/gate/up/down projections: pvlora (factor concatenation) vs PEFT `cat`, `svd` (with
   svd_rank = Σ r_i, its exact setting, and svd_full_matrices=False, its faster one: the truncated
   result is the same) and `linear`. Relative Frobenius error against the exact sum computed
   densely in float64 from the factors (s·B·A per adapter), the same reference for every method,
   and median time over the same start and end points for every method: from adapters loaded in a
   PEFT model to the composition installed in it as a new adapter (pvlora: read the factors, sum
   them exactly, add the adapter and copy the factors in; PEFT: add_weighted_adapter). The error of
   pvlora's float64 factors before they are stored in fp32 is reported too.
2. Compression to rank K: pvlora's factor SVD (QR + small SVD) vs PEFT `svd` with svd_rank=K, at
   equal (optimal) error. Target: >= 100x faster.

    python benchmarks/measure/bench_compose.py [--vectors 2 4] [--rank 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save, timeit  # noqa: E402

RESULT_FILES = ("results/compose.json",)  # what this script writes, relative to benchmarks/
from torch import nn

SHAPES = {  # Llama-3.1-8B: (d_out, d_in)
    "q_proj": (4096, 4096), "k_proj": (1024, 4096), "v_proj": (1024, 4096), "o_proj": (4096, 4096),
    "gate_proj": (14336, 4096), "up_proj": (14336, 4096), "down_proj": (4096, 14336),
}


class Layer(nn.Module):
    def __init__(self, modules):
        super().__init__()
        for name in modules:
            o, i = SHAPES[name]
            lin = nn.Linear(i, o, bias=False)
            nn.init.zeros_(lin.weight)
            setattr(self, name, lin)


def build(n: int, modules, r: int = 16):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=list(modules), init_lora_weights=False)
    model = get_peft_model(Layer(modules), cfg, adapter_name="a0")
    for k in range(1, n):
        model.add_adapter(f"a{k}", cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0, 0.02)
    return model


def factors_of(model, name):
    from peft.tuners.lora import LoraLayer

    from pvlora.core.lora_math import from_lora

    return {m_name: from_lora(m.lora_A[name].weight, m.lora_B[name].weight, m.scaling[name])
            for m_name, m in model.named_modules() if isinstance(m, LoraLayer)}


def dense_truth(model, names, weights):
    """Σ w·s·B·A per module, from the factors in float64 (not PEFT's fp32 deltas cast up)."""
    from peft.tuners.lora import LoraLayer

    return {m_name: sum(w * m.scaling[n] * (m.lora_B[n].weight.double() @ m.lora_A[n].weight.double())
                        for n, w in zip(names, weights))
            for m_name, m in model.named_modules() if isinstance(m, LoraLayer)}


def install(model, total, name: str, modules) -> None:
    """Add ``total`` (pvlora factors, ΔW = B·A) to the model as adapter ``name`` (scaling 1)."""
    from peft import LoraConfig
    from peft.tuners.lora import LoraLayer

    from pvlora.core.lora_math import pad_rank

    r = max(lr.rank for lr in total.values())
    model.add_adapter(name, LoraConfig(r=r, lora_alpha=r, target_modules=list(modules)))
    with torch.no_grad():
        for m_name, m in model.named_modules():
            if isinstance(m, LoraLayer) and name in m.lora_A:
                lr = pad_rank(total[m_name], r)
                m.lora_A[name].weight.copy_(lr.A)
                m.lora_B[name].weight.copy_(lr.B)


def peft_delta(model, name):
    from peft.tuners.lora import LoraLayer

    return {m_name: m.get_delta_weight(name).double() for m_name, m in model.named_modules() if isinstance(m, LoraLayer)}


def total_rel(got, truth):
    num = sum(float(torch.linalg.norm(got[k] - truth[k]) ** 2) for k in truth)
    den = sum(float(torch.linalg.norm(truth[k]) ** 2) for k in truth)
    return (num / den) ** 0.5


def main(argv=None) -> int:
    from pvlora.core import lora_math

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", type=int, nargs="+", default=[2, 4])
    p.add_argument("--rank", type=int, default=16, help="compression rank K")
    p.add_argument("--modules", nargs="+", default=list(SHAPES), choices=list(SHAPES),
                   help="projections to include (PEFT's svd takes minutes per 14336x4096 matrix on 2 cores)")
    a = p.parse_args(argv)
    started = time.perf_counter()
    rows, comp_rows = [], []
    for n in a.vectors:
        model = build(n, a.modules)
        names = [f"a{k}" for k in range(n)]
        weights = [1.0, -0.5, 0.7, 1.3][:n]
        truth = dense_truth(model, names, weights)
        facs = [factors_of(model, nm) for nm in names]

        def ours():
            return lora_math.weighted_sum(list(zip(facs, weights)))

        counter_ours = iter(range(10**6))
        mine = []

        def ours_installed():  # the same end point as add_weighted_adapter: an adapter in the model
            mine.append(f"pv{next(counter_ours)}")
            install(model, lora_math.weighted_sum([(factors_of(model, nm), w) for nm, w in zip(names, weights)]),
                    mine[-1], a.modules)

        t_ours = timeit(ours_installed, repeats=5)
        got64 = {k: v.dense() for k, v in ours().items()}
        rows.append({"vectors": n, "method": "pvlora (factor concat)", "seconds": t_ours,
                     "rel_error": total_rel(peft_delta(model, mine[-1]), truth),
                     "rel_error_float64_factors": total_rel(got64, truth)})
        for extra in mine:
            model.delete_adapter(extra)
        for ctype, kw, reps in (("cat", {}, 5), ("linear", {}, 5), ("svd", {"svd_rank": 16 * n, "svd_full_matrices": False}, 1)):
            counter = iter(range(10**6))
            made = []

            def theirs(ctype=ctype, kw=kw):
                made.append(f"{ctype}{next(counter)}")
                model.add_weighted_adapter(names, weights, made[-1], combination_type=ctype, **kw)

            # PEFT's svd path takes minutes per call at these shapes: one timed call, no warm-up
            t = timeit(theirs, repeats=reps, warmup=0 if ctype == "svd" else 1)
            rows.append({"vectors": n, "method": f"PEFT add_weighted_adapter({ctype})", "seconds": t,
                         "rel_error": total_rel(peft_delta(model, made[-1]), truth)})
            for extra in made:
                model.delete_adapter(extra)
        # compression to rank K at equal (optimal) error
        total = ours()
        t_c = timeit(lambda: lora_math.compress(total, a.rank), repeats=3)
        _, _, err_ours = lora_math.compress(total, a.rank)
        t_p = timeit(lambda: model.add_weighted_adapter(names, weights, "svdk", combination_type="svd",
                                                        svd_rank=a.rank, svd_full_matrices=False), repeats=1, warmup=0)
        err_peft = total_rel(peft_delta(model, "svdk"), truth)
        comp_rows.append({"vectors": n, "rank": a.rank, "pvlora_seconds": t_c, "peft_svd_seconds": t_p,
                          "speedup": t_p / t_c, "pvlora_rel_error": err_ours, "peft_rel_error": err_peft})
        model = None  # free it before the next size is built
    print(f"{'n':>2} {'method':<38} {'median s':>10} {'rel. error':>12}")
    for r in rows:
        print(f"{r['vectors']:>2} {r['method']:<38} {r['seconds']:>10.4f} {r['rel_error']:>12.2e}")
    print(f"\n{'n':>2} {'K':>3} {'pvlora s':>9} {'PEFT svd s':>11} {'speedup':>9} {'err pvlora':>11} {'err PEFT':>10}")
    for r in comp_rows:
        print(f"{r['vectors']:>2} {r['rank']:>3} {r['pvlora_seconds']:>9.4f} {r['peft_svd_seconds']:>11.2f} "
              f"{r['speedup']:>8.0f}x {r['pvlora_rel_error']:>11.4f} {r['peft_rel_error']:>10.4f}")
    save(RESULT_FILES[0], {"shapes": {m: SHAPES[m] for m in a.modules}, "r": 16, "composition": rows, "compression": comp_rows,
                     "script_seconds": time.perf_counter() - started})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
