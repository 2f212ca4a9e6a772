"""A second reading of judge4-v3's validation on SmolLM2 labels: what its figure is worth.

Two things the one pre-registered run (``bench_judge_v3.py``) did not report:

1. **Rows the judge was fitted on.** ``sample_for_labels.py --exclude`` skips a row labelled before only
   when its mix, prompt and response all match, so a (prompt, response) pair that the steered model
   gave at two mixes can sit in a training file and in ``smollm2_holdout2_labels.jsonl``. This counts
   them and gives every judge's agreement on the rows whose text no training file holds.
2. **A baseline that never says "refusal".** With few refusals among the labels, binary agreement is
   high for a judge that finds none; its figure is the share of rows not labelled refusal.

The judges are deterministic, so their labels here are those of the pre-registered run; the XSTest
set is not read, and nothing is appended to the test log (no new evaluation, a re-count of one).

    python benchmarks/measure/bench_judge_v3_overlap.py     # -> benchmarks/results/judge_v3_overlap.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_judge_v3

RESULT_FILES = ("results/judge_v3_overlap.json",)
REPO = Path(__file__).resolve().parents[2]


def main() -> int:
    from bench_judge_v3 import agreement, holdout_rows, judges, load_preregistration

    from pvlora.core.judge_model import WEIGHTS_V3, load_weights

    rows = holdout_rows(load_preregistration())
    trained_on = [f for f in load_weights(WEIGHTS_V3)["trained_on"] if f.startswith("tests/")]
    seen = {(r["prompt"], r["response"]) for f in trained_on
            for r in map(json.loads, (REPO / f).read_text().splitlines()) if r}
    in_training = [(r["prompt"], r["response"]) in seen for r in rows]
    unique = [r for r, dup in zip(rows, in_training) if not dup]
    result = {"set": "tests/fixtures/smollm2_holdout2_labels.jsonl", "n": len(rows),
              "also_in_training": sum(in_training),
              "also_in_training_labels": sorted(r["gold"] for r, dup in zip(rows, in_training) if dup),
              "never_refusal_baseline": {"all": sum(r["gold"] != "refusal" for r in rows) / len(rows),
                                         "unique": sum(r["gold"] != "refusal" for r in unique) / len(unique)},
              "unique_rows": {}}
    for name, run in judges().items():
        said = [label for label, _ in run([(r["prompt"], r["response"]) for r in unique])]
        a = agreement([r["gold"] for r in unique], said)
        result["unique_rows"][name] = {k: a[k] for k in ("n", "binary", "binary_ci95", "four_way")}
        print(f"{name} on the {a['n']} rows no training file holds: binary {a['binary']:.3f}, four-way {a['four_way']:.3f}")
    print(f"{result['also_in_training']} of {len(rows)} rows are also in a training file; a judge that never says "
          f"refusal agrees {result['never_refusal_baseline']['all']:.3f} (all), {result['never_refusal_baseline']['unique']:.3f} (unique)")
    from _common import save

    save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
