"""How fine the SmolLM2 study's η grid is: candidate points scored on the VALIDATION prompts only.

The study's second run (grid 0, 0.25, 0.5 for η_harmless) found the harmless vector's whole rise
between η = 0 and 0.25 on validation (refusal of harmful prompts 0.02 -> 0.81, of benign ones
0.04 -> 0.55), so tune had no point where harmful prompts are refused and benign ones are not, and
the control check's span held one point of the rise. This scores the finer points below with the
study's trained vectors (runs/smollm2-study) and reports, per point, the figures tune and the
control check would see. The rule, fixed before running: the study adds every candidate η_harmless
to its grid (they cost ~40 s each per split); tune's objective and constraint are unchanged. The
test prompts are never scored here.

    python benchmarks/choose/choose_smollm2_tune_grid.py    # ~10 min on 2 cores; writes results/smollm2_tune_grid.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/smollm2_tune_grid.json",)  # what this script writes, relative to benchmarks/

HARMLESS = [0.05, 0.1, 0.15, 0.2]
HELPFUL = [0.0, 1.0, 2.0]
METRICS = ["refusal_harmful", "refusal_benign", "refusal_xstest", "compliance_benign", "heldout_nll"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="runs/smollm2-study", help="a finished study run (its config and vectors)")
    a = p.parse_args(argv)
    from tqdm.auto import tqdm

    from pvlora.config import load_config
    from pvlora.evaluation.evaluator import Evaluator

    run = Path(a.run)
    cfg = load_config(run / "pvlora-config.yaml")
    ev = Evaluator(cfg, {n: run / "vectors" / n for n in ("helpful", "harmless")}, "validation")
    points = []
    for h in tqdm([0.0, *HARMLESS], desc="validation points", unit="η_harmless"):
        for hp in HELPFUL if h else [0.0]:
            s = ev.score({"helpful": hp, "harmless": h})
            points.append({"eta_helpful": hp, "eta_harmless": h, **{m: s[m] for m in METRICS}})
            print(json.dumps(points[-1]), flush=True)
    save(RESULT_FILES[0], {"rule": "every candidate η_harmless joins the study's grid; tune unchanged",
                               "candidates": {"harmless": HARMLESS, "helpful": HELPFUL}, "validation": points})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
