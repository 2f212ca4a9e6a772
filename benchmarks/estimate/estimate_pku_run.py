"""How long a full PKU-SafeRLHF adapter takes at the measured real-size QLoRA throughput.

Reads the GPU measurement (benchmarks/results/qlora_gpu.json, written by bench_qlora_gpu.py) and the
shipped config, and writes benchmarks/results/pku_run_estimate.json:

    python benchmarks/estimate/estimate_pku_run.py

PKU-SafeRLHF's train split has 73,907 rows (the paper's 73.9k); the config holds out
``heldout_fraction`` of them and trains ``num_train_epochs``. At batch 1 the measured step time is
nearly the same at 512 and 1024 tokens (per-step overhead dominates), so the estimate uses the
measured seconds per pair at the config's max_length; `pvlora train` prints the real token count and
a timed estimate after its first steps.
"""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # the repository
RESULT_FILES = ("results/pku_run_estimate.json",)  # what this script writes, relative to benchmarks/
PKU_TRAIN_ROWS = 73907


def main() -> int:
    from pvlora.config import load_config

    gpu = json.loads((REPO / "benchmarks/results/qlora_gpu.json").read_text())
    cfg = load_config(REPO / "configs/pku-saferlhf/llama-3.1-8b.yaml")
    max_length = cfg.dpo["max_length"]
    rows = {r["seq_len"]: r for r in (gpu.get("rows") or gpu.get("memory"))}
    row = rows[max_length]
    per_pair = row["train_seconds"] / row["steps"]  # batch 1, one pair per measured step
    pref = cfg.preferences[0]
    pairs = round(PKU_TRAIN_ROWS * (1 - pref.heldout_fraction))
    seconds = pairs * cfg.dpo["num_train_epochs"] * per_pair
    out = {
        "device": gpu["device"], "measured": gpu["date"], "max_length": max_length,
        "seconds_per_pair": per_pair, "train_pairs": pairs, "epochs": cfg.dpo["num_train_epochs"],
        "hours_per_adapter": seconds / 3600, "adapters_for_two_preferences": 2 * len(cfg.preferences),
        "hours_for_all_adapters": seconds * 2 * len(cfg.preferences) / 3600,
    }
    path = REPO / "benchmarks" / RESULT_FILES[0]
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{pairs} pairs x {out['epochs']} epochs x {per_pair:.2f} s/pair on {gpu['device']}: "
          f"{out['hours_per_adapter']:.1f} h per adapter, {out['hours_for_all_adapters']:.0f} h for all "
          f"{out['adapters_for_two_preferences']} adapters\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
