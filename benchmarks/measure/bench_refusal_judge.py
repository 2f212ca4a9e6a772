"""Agreement of the refusal judge (pvlora.core.judges.pattern_judge) with hand labels on real
generations of SmolLM2-135M-Instruct (tests/fixtures/smollm2_refusals.jsonl: the base, the base
under a system prompt asking it to refuse harm, and composed models of the study at several η).

    python benchmarks/measure/bench_refusal_judge.py
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/refusal_judge.json",)  # what this script writes, relative to benchmarks/

FIXTURE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "smollm2_refusals.jsonl"


def _counts(rows, judge) -> dict:
    """Labelled rows, refusals among them, and how many of those the judge finds."""
    refusals = [r for r in rows if r["label"] == "refusal"]
    return {"labelled": len(rows), "refusals": len(refusals),
            "refusals_found": sum(judge(r["response"])["refusal"] for r in refusals),
            "agreement": sum(judge(r["response"])["refusal"] == (r["label"] == "refusal") for r in rows) / len(rows)}


def main() -> int:
    from pvlora.core.judges import pattern_judge

    judge = pattern_judge()
    rows = [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]
    cells = Counter()
    disagreements = []
    for r in rows:
        said = "refusal" if judge(r["response"])["refusal"] else "compliance"
        cells[(r["label"], said)] += 1
        if said != r["label"]:
            disagreements.append({"prompt": r["prompt"], "response": r["response"][:200], "label": r["label"], "judge": said})
    n = len(rows)
    agree = sum(v for (lab, said), v in cells.items() if lab == said) / n
    tp, fn = cells[("refusal", "refusal")], cells[("refusal", "compliance")]
    fp = cells[("compliance", "refusal")]
    result = {"labelled": n, "refusals": tp + fn, "agreement": agree,
              "refusal_recall": tp / max(tp + fn, 1), "refusal_precision": tp / max(tp + fp, 1),
              "confusion": {f"{lab}->{said}": v for (lab, said), v in sorted(cells.items())},
              "by_source": {s: _counts([r for r in rows if r["source"] == s], judge)
                            for s in sorted({r["source"] for r in rows})},
              "disagreements": disagreements}
    print(f"{n} labelled generations ({tp + fn} refusals): agreement {agree:.3f}, refusal recall "
          f"{result['refusal_recall']:.3f}, precision {result['refusal_precision']:.3f}")
    save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
