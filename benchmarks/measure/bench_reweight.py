"""Re-weighting: `pvlora.set_weights` on a model with >= 100 LoRA layers against three PEFT ways:
  - like for like: PEFT's own `LoraLayer.set_scale(adapter, η)` on every LoRA layer, (a) walking
    `model.modules()` each time, (b) over a layer list built once (what set_weights caches);
  - rebuilding the composition: `add_weighted_adapter(cat)` + `set_adapter`.
Each PEFT way is checked to leave the same scales as set_weights. Target vs the rebuild: >= 1000x.

    python benchmarks/measure/bench_reweight.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save, timeit  # noqa: E402

RESULT_FILES = ("results/reweight.json",)  # what this script writes, relative to benchmarks/


def main() -> int:
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora import LoraLayer
    from transformers import LlamaConfig, LlamaForCausalLM

    import pvlora

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=256, intermediate_size=688, num_hidden_layers=16,
                                        num_attention_heads=8, num_key_value_heads=4))
    cfg = LoraConfig(r=16, lora_alpha=16, init_lora_weights=False,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(base, cfg, adapter_name="helpful")
    model.add_adapter("harmless", cfg)
    model.base_model.set_adapter(["helpful", "harmless"])
    n_layers = sum(isinstance(m, LoraLayer) for m in model.modules())
    grid = itertools.cycle([(1.0, 0.5), (0.5, 1.0), (1.5, -0.5)])

    def ours():
        h, s = next(grid)
        pvlora.set_weights(model, {"helpful": h, "harmless": s})

    counter = itertools.count()

    def theirs():
        h, s = next(grid)
        name = f"mix{next(counter)}"
        model.add_weighted_adapter(["helpful", "harmless"], [h, s], name, combination_type="cat")
        model.set_adapter(name)
        model.delete_adapter(name)  # keep memory flat across repeats

    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]

    def set_scale(mods, h, s):
        for m in mods:
            m.set_scale("helpful", h)
            m.set_scale("harmless", s)

    def walking():
        set_scale((m for m in model.modules() if isinstance(m, LoraLayer)), *next(grid))

    def cached():
        set_scale(layers, *next(grid))

    # the PEFT ways leave exactly the scales set_weights leaves
    pvlora.set_weights(model, {"helpful": 0.7, "harmless": -0.3})
    ref = [dict(m.scaling) for m in layers]
    set_scale(layers, 0.7, -0.3)
    assert all(m.scaling == want for m, want in zip(layers, ref)), "set_scale disagrees with set_weights"

    t_ours = timeit(ours, repeats=200, warmup=5)
    t_walk = timeit(walking, repeats=50, warmup=2)
    t_cached = timeit(cached, repeats=200, warmup=5)
    t_theirs = timeit(theirs, repeats=10, warmup=1)
    print(f"LoRA layers: {n_layers}")
    print(f"pvlora.set_weights:                           {t_ours * 1e6:10.1f} µs")
    print(f"PEFT set_scale, walking model.modules():      {t_walk * 1e6:10.1f} µs  ({t_walk / t_ours:.1f}x)")
    print(f"PEFT set_scale over a cached layer list:      {t_cached * 1e6:10.1f} µs  ({t_cached / t_ours:.1f}x)")
    print(f"PEFT add_weighted_adapter(cat) + set_adapter: {t_theirs * 1e6:10.1f} µs  ({t_theirs / t_ours:.0f}x)")
    save(RESULT_FILES[0], {"lora_layers": n_layers, "set_weights_seconds": t_ours,
                      "peft_set_scale_walking_seconds": t_walk, "peft_set_scale_cached_seconds": t_cached,
                      "peft_rebuild_seconds": t_theirs,
                      "speedup_vs_set_scale_walking": t_walk / t_ours, "speedup_vs_set_scale_cached": t_cached / t_ours,
                      "speedup": t_theirs / t_ours})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
