"""Training overhead: `pvlora train` against a bare TRL DPOTrainer script with identical settings
(same base, data, LoRA and DPO config) on the tiny base. Each runs in its own process; wall time
of the whole process, time inside trainer.train(), and the process's own peak RSS.
Target: wall ratio <= 1.05.

pvlora runs twice: as configured by default (after training it scores up to
``train.heldout_max_pairs`` held-out pairs with and without the adapter for the manifest, work
the bare script does not do) and with that pass off (``train.heldout_max_pairs=0``), which is the
like-for-like comparison of the training path.

    python benchmarks/bench_train_overhead.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time

from _common import save

BARE = r'''
import json, resource, sys, time, torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import DPOConfig, DPOTrainer
from pvlora.config import load_config
from pvlora.data import load_preference_data
from pvlora.models import resolve_base_path
from pvlora.train import DPO_DEFAULTS
cfg = load_config(None)
pref = cfg.preference("harmless")
data = load_preference_data(pref, "positive", seed=cfg.seed)
set_seed(cfg.seed)
path = resolve_base_path(cfg.model)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(path)
args = DPOConfig(**{**DPO_DEFAULTS, **cfg.dpo, "output_dir": sys.argv[1], "seed": cfg.seed, "data_seed": cfg.seed,
                    "use_cpu": True})
trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(data.train), processing_class=tok,
                     peft_config=LoraConfig(task_type="CAUSAL_LM", **cfg.lora))
t = time.perf_counter()
trainer.train()
seconds = time.perf_counter() - t
trainer.model.save_pretrained(sys.argv[1] + "/final")
print(json.dumps({"train_seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

OURS = r'''
import json, resource, sys
from pvlora.config import load_config
from pvlora.train import train_all
cfg = load_config(None, [f"output.dir={sys.argv[1]}", *sys.argv[2:]])
res = train_all(cfg, "harmless", "positive", log=lambda *a: None)[0]
print(json.dumps({"train_seconds": res.manifest["metrics"]["train_seconds"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''
VARIANTS = {  # name: (script, extra arguments)
    "trl": (BARE, []),
    "pvlora": (OURS, []),
    "pvlora_no_heldout": (OURS, ["train.heldout_max_pairs=0"]),
}


def run(script: str, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", script, out, *extra], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
        return {"wall": wall, **json.loads(last)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args(argv)
    from pvlora.tiny import ensure_tiny_base

    ensure_tiny_base(0)
    names = list(VARIANTS)
    runs: dict[str, list[dict]] = {k: [] for k in names}
    for i in range(a.repeats):
        # interleaved, and the order rotates each round, so drift in machine load and any
        # first-or-last position effect hit every variant alike
        for k in names[i % len(names):] + names[: i % len(names)]:
            runs[k].append(run(*VARIANTS[k]))
            print(f"round {i + 1}/{a.repeats} {k}: wall {runs[k][-1]['wall']:.2f}s", flush=True)
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "train_seconds", "peak_rss_mb")}
           for k, v in runs.items()}
    ratios = {k: {"wall": med[k]["wall"] / med["trl"]["wall"],
                  "train": med[k]["train_seconds"] / med["trl"]["train_seconds"],
                  "peak_rss": med[k]["peak_rss_mb"] / med["trl"]["peak_rss_mb"]} for k in names if k != "trl"}
    print(f"\n{'':>18} {'wall s':>8} {'train() s':>10} {'peak RSS MiB':>13}  (medians of {a.repeats})")
    for k in names:
        print(f"{k:>18} {med[k]['wall']:>8.2f} {med[k]['train_seconds']:>10.2f} {med[k]['peak_rss_mb']:>13.0f}")
    for k, r in ratios.items():
        print(f"{k}/trl: wall {r['wall']:.3f}, train() {r['train']:.3f}, peak RSS {r['peak_rss']:.3f}")
    save("train_overhead", {"runs": runs, "median": med, "ratios": ratios})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
