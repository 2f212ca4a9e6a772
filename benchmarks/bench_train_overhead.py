"""Training overhead: `pvlora train` against a bare TRL DPOTrainer script with identical settings
(same base, data, LoRA and DPO config) on the tiny base. Each runs in its own process; wall time
of the whole process, time inside trainer.train(), and peak RSS. Target: wall ratio <= 1.05.

    python benchmarks/bench_train_overhead.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from _common import save

BARE = r'''
import json, sys, time, torch
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
print(json.dumps({"train_seconds": time.perf_counter() - t}))
trainer.model.save_pretrained(sys.argv[1] + "/final")
'''

OURS = r'''
import json, sys
from pvlora.config import load_config
from pvlora.train import train_all
cfg = load_config(None, [f"output.dir={sys.argv[1]}"])
res = train_all(cfg, "harmless", "positive", log=lambda *a: None)[0]
print(json.dumps({"train_seconds": res.manifest["metrics"]["train_seconds"]}))
'''


def run(script: str) -> dict:
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        proc = subprocess.run([sys.executable, "-c", script, out], capture_output=True, text=True)
        wall = time.perf_counter() - t
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
        return {"wall": wall, "peak_rss_mb": max(rss, before) / 1024, **json.loads(last)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args(argv)
    from pvlora.tiny import ensure_tiny_base

    ensure_tiny_base(0)
    runs = {"trl": [], "pvlora": []}
    for _ in range(a.repeats):  # interleaved, so drift in machine load hits both alike
        runs["trl"].append(run(BARE))
        runs["pvlora"].append(run(OURS))
    med = {k: {m: statistics.median(r[m] for r in v) for m in ("wall", "train_seconds")} for k, v in runs.items()}
    # ru_maxrss of children is a running maximum over all children: report each process's own peak
    # by running one of each first would be cleaner; here the order TRL-then-pvlora bounds pvlora's.
    ratio = med["pvlora"]["wall"] / med["trl"]["wall"]
    print(f"{'':>8} {'wall s':>8} {'train() s':>10}")
    for k in ("trl", "pvlora"):
        print(f"{k:>8} {med[k]['wall']:>8.2f} {med[k]['train_seconds']:>10.2f}")
    print(f"wall-time ratio pvlora/TRL: {ratio:.3f}; train() ratio: {med['pvlora']['train_seconds'] / med['trl']['train_seconds']:.3f}")
    save("train_overhead", {"runs": runs, "median": med, "wall_ratio": ratio,
                            "train_ratio": med["pvlora"]["train_seconds"] / med["trl"]["train_seconds"],
                            "peak_rss_mb": {k: max(r["peak_rss_mb"] for r in v) for k, v in runs.items()}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
