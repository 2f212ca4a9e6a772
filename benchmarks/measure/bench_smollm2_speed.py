"""Speed engineering for real DPO on a CPU, each measure against bare TRL on the same data.

SmolLM2-135M-Instruct (the GGUF base) on real HH-RLHF harmless-base pairs; one preference, both
directions (positive and reversed), a fixed number of steps each. Every variant runs in its own
process; the figure is wall seconds of ``trainer.train()`` summed over the two directions (TRL's
reference pre-computation, where used, happens inside it), divided into the bare TRL time.

  trl            bare TRL DPOTrainer + PEFT, two scripts (one per direction): LoRA r=8 on all
                 linear layers of all 30 blocks, max_length 256, the reference re-computed each step
  short          as trl, max_length 160 (truncation keep_end: the last turns and the answer)
  top_half       as trl, LoRA on blocks 15-29 only: the backward pass stops at block 15
  bf16           as trl, bf16 autocast (this CPU has avx512_bf16)
  shared_ref     `pvlora train` with train.share_reference_logps: the base scores each pair once,
                 the reversed direction reuses the numbers swapped (otherwise trl's settings)
  study          `pvlora train` with the SmolLM2 study's settings (short + top_half + shared_ref)

    python benchmarks/measure/bench_smollm2_speed.py [--steps 4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/smollm2_speed.json",)  # what this script writes, relative to benchmarks/

BARE = r'''
import json, sys, time, torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
from trl import DPOConfig, DPOTrainer
from pvlora.config import load_config
from pvlora.data import load_preference_data
from pvlora.bases.load import resolve_base_path
from pvlora.training.dpo import DPO_DEFAULTS
cfg = load_config(sys.argv[2], sys.argv[3:])
pref = cfg.preferences[0]
total = 0.0
for direction in ("positive", "negative"):  # two plain scripts, one per direction
    data = load_preference_data(pref, direction, seed=cfg.seed)
    set_seed(cfg.seed)
    path = resolve_base_path(cfg.model)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(path)
    args = DPOConfig(**{**DPO_DEFAULTS, **cfg.dpo, "output_dir": sys.argv[1] + "/" + direction, "seed": cfg.seed,
                        "use_cpu": True, "save_strategy": "no"})
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(data.train), processing_class=tok,
                         peft_config=LoraConfig(task_type="CAUSAL_LM", **cfg.lora))
    t = time.perf_counter()
    trainer.train()
    total += time.perf_counter() - t
print(json.dumps({"train_seconds": total, "pairs": 2 * trainer.state.global_step * args.per_device_train_batch_size}))
'''
OURS = r'''
import json, sys
from pvlora.config import load_config
from pvlora.training.dpo import train_all
cfg = load_config(sys.argv[2], [f"output.dir={sys.argv[1]}", "train.heldout_max_pairs=0", "dpo.save_strategy=no",
                                *sys.argv[3:]])
res = train_all(cfg, cfg.preferences[0].name, "both", log=lambda *a: None)
m = [r.manifest.metrics for r in res]
print(json.dumps({"train_seconds": sum(x["train_seconds"] for x in m),
                  "pairs": sum(x["train_steps"] for x in m) * cfg.dpo["per_device_train_batch_size"]}))
'''
STUDY = "pvlora/worlds/smollm2/study.yaml"
# the bare-TRL starting point: the study's data and DPO settings without its speed measures
BASELINE = ["lora.layers_to_transform=null", "dpo.max_length=256", "dpo.truncation_mode=keep_start",
            "train.share_reference_logps=false"]
VARIANTS = {
    "trl": (BARE, BASELINE),
    "short": (BARE, BASELINE + ["dpo.max_length=160", "dpo.truncation_mode=keep_end"]),
    "top_half": (BARE, BASELINE + ["lora.layers_to_transform=[15,16,17,18,19,20,21,22,23,24,25,26,27,28,29]"]),
    "bf16": (BARE, BASELINE + ["dpo.bf16=true"]),
    "shared_ref": (OURS, BASELINE + ["train.share_reference_logps=true"]),
    "study": (OURS, []),
}


def run(script: str, config: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", script, out, *config], capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        last = [line for line in proc.stdout.splitlines() if line.startswith("{")][-1]
        return {"wall": time.perf_counter() - t, **json.loads(last)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=4, help="DPO steps per direction (batch 8)")
    p.add_argument("--only", nargs="*", choices=list(VARIANTS), help="run these variants (trl always runs)")
    a = p.parse_args(argv)
    from pvlora.config import load_config
    from pvlora.bases.load import resolve_base_path

    hh = os.environ.get("PVLORA_HH_RLHF_FILE") or "hh-rlhf-harmless-base"  # the rows shipped with pvlora
    # the harmless preference only (the study lists three), exactly steps × 8 training pairs (10% of
    # the limit is held out)
    prefs = (f"preferences=[{{name: harmless, source: {hh}, format: hh_rlhf, "
             f"limit: {a.steps * 8 * 10 // 9 + 1}, heldout_fraction: 0.1}}]")
    resolve_base_path(load_config(STUDY, []).model)  # convert the GGUF once, outside the timings
    names = ["trl"] + [k for k in VARIANTS if k != "trl" and (not a.only or k in a.only)]
    runs = {}
    for k in names:
        script, extra = VARIANTS[k]
        cfg = [STUDY, prefs, f"dpo.max_steps={a.steps}", *extra]
        runs[k] = run(script, cfg)
        print(f"{k:>11}: {runs[k]['train_seconds']:.1f}s for {runs[k]['pairs']} pairs", flush=True)
    base = runs["trl"]["train_seconds"] / runs["trl"]["pairs"]
    speedup = {k: base / (r["train_seconds"] / r["pairs"]) for k, r in runs.items() if k != "trl"}
    for k, s in speedup.items():
        print(f"{k:>11}: {s:.2f}x bare TRL (seconds per trained pair)")
    save(RESULT_FILES[0], {"steps_per_direction": a.steps, "runs": runs, "speedup_vs_trl": speedup})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
