"""Leakage by content in the SmolLM2 study: every training text against every evaluation prompt.

Training texts: every message of every pair ``study.yaml`` keeps (the 75 HH-RLHF rows that
``keep: refusal_contrast`` passes, the harmful, borderline, helpful and concise pairs; train and
held-out) and the requests of ``harmful_train.txt``. Evaluation prompts: the validation and test
prompts of ``prompts.txt``. Measure and threshold: :mod:`pvlora.data.leakage` (containment of a
prompt's adjacent content-word pairs in one training text; a prompt leaks at >= THRESHOLD).

Writes the count of evaluation prompts at or above the threshold per split, each such prompt with
its training text, and the 20 best-matching pairs. tests/data/test_leakage.py checks the figures
against this file, so a change in the data or the measure shows. No model is loaded.

    python benchmarks/measure/bench_leakage.py
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/smollm2_leakage.json",)  # what this script writes, relative to benchmarks/


def main() -> int:
    from pvlora.data import leakage
    from pvlora.worlds.smollm2.leakage import study_leakage

    result = study_leakage(top=20)
    result["measure"] = ("containment of an evaluation prompt's adjacent content-word pairs (function words and "
                         "request templates set aside, plural s folded) in one training text; prompts with fewer "
                         "than two content words use word 3-grams; pvlora.data.leakage")
    result["command"] = "python benchmarks/measure/bench_leakage.py"
    for split, r in result["splits"].items():
        print(f"{split}: {r['above']} of {r['eval_prompts']} evaluation prompts at or above {leakage.THRESHOLD}")
    print(f"\ntop pairs (of {result['train_texts']} training texts):")
    for m in result["top"]:
        print(f"  {m['containment']:.2f}  {m['eval_id']}: {m['eval_text']!r}\n        ~ {m['train_id']}: "
              f"{m['train_text'][:100]!r}")
    save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
