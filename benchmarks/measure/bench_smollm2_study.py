"""The SmolLM2 study end to end, timed: `pvlora demo --base smollm2` on this machine, its summary,
table, plot and every scored generation copied to benchmarks/results/smollm2_study/.

    python benchmarks/measure/bench_smollm2_study.py                 # runs the study (under an hour on 2 cores)
    python benchmarks/measure/bench_smollm2_study.py --from DIR      # copies a finished run's outputs

The HH-RLHF harmless-base rows come from $PVLORA_HH_RLHF_FILE or the copy shipped with pvlora.
The study scores the test prompts only under a committed pre-registration that matches it (none
exists now: the test prompts are spent), and the study itself appends each test evaluation to
results/test_log.jsonl. A run that scored validation only is not copied here.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import RESULTS, machine  # noqa: E402

# what this script writes, relative to benchmarks/ (the study itself appends test_log.jsonl, when it scores test)
# results/smollm2_study/ holds the first evaluation set's last test run (spent); a run on the second set
# (summary "prompt_set": "second") goes to results/smollm2_sealed/
RESULT_FILES = ("results/smollm2_study/summary.json", "results/smollm2_study/results.csv",
                "results/smollm2_study/generations.jsonl.gz", "results/smollm2_study/control.png",
                "results/smollm2_study/pvlora-config.yaml", "results/smollm2_sealed/summary.json",
                "results/smollm2_sealed/results.csv", "results/smollm2_sealed/generations.jsonl.gz",
                "results/smollm2_sealed/control.png", "results/smollm2_sealed/pvlora-config.yaml",
                "results/smollm2_sealed/public_generations.jsonl.gz", "results/test_log.jsonl")
FIRST, SEALED = RESULTS / "smollm2_study", RESULTS / "smollm2_sealed"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--from", dest="src", help="a finished study directory to copy instead of running one")
    p.add_argument("--out", default="runs/smollm2-study", help="where to run the study (default runs/smollm2-study)")
    a = p.parse_args(argv)
    src = Path(a.src or a.out)
    if not a.src:
        t = time.perf_counter()  # the HH rows: $PVLORA_HH_RLHF_FILE, read by the study itself, or the shipped copy
        subprocess.run([sys.executable, "-m", "pvlora.cli", "demo", "--base", "smollm2", "--out", str(src), "--fresh"],
                       check=True)
        print(f"wall {time.perf_counter() - t:.0f}s")
    summary = json.loads((src / "summary.json").read_text())
    OUT = SEALED if summary.get("prompt_set") == "second" else FIRST
    if not summary.get("test", {}).get("evaluated", True):
        # the results hold the last run that scored the test prompts (test_log.jsonl); a
        # validation-only run does not replace it
        print(f"{src} scored validation only ({summary['test']['gate']}); {OUT} left as it is", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "control.png", "pvlora-config.yaml"):
        shutil.copyfile(src / name, OUT / name)
    for name in ("generations.jsonl", "public_generations.jsonl"):
        if (src / name).exists():
            with (src / name).open("rb") as f, gzip.open(OUT / f"{name}.gz", "wb") as g:
                shutil.copyfileobj(f, g)
    summary["machine"] = machine()
    summary["out"] = str(OUT)
    (OUT / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
