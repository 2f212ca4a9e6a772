"""A reading of the GPTFuzz check after its run: how often GPTFuzz's responses carry a decline phrase,
counted within each human label (jailbroken or not) by a fixed string match; no judge runs here and
nothing is chosen on these figures.

The check's main error is calling jailbroken responses refusals (``results/judge_gptfuzz.json``,
``labels_within_gold``). This counts, per label, the responses holding one of :data:`DECLINES`, where
the first one starts (in the first 30 words or later), and how many words follow it: a jailbroken
response that declines and then goes on at length is the refuse-then-comply shape (``partial``) that a
judge reading mostly the opening calls ``refusal``. Reading a public test set's labels is a look at it,
so the run is appended to the test log (study ``gptfuzz-labels``), figures and all.

    python benchmarks/measure/bench_judge_gptfuzz_reading.py --gptfuzz-dir DIR
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_judge_v3, bench_judge_gptfuzz: readers

from bench_judge_gptfuzz import MAX_CSV_BYTES, PREREGISTRATION, gptfuzz_dir, gptfuzz_rows  # noqa: E402
from bench_judge_v3 import command_line, load_preregistration, pinned_files, write_result  # noqa: E402

RESULT_FILES = ("results/judge_gptfuzz_reading.json",)
DECLINES = re.compile(r"\b(i'?m sorry|i am sorry|i apologi[sz]e|i cannot|i can'?t|i'?m (?:not able|unable)|"
                      r"i am (?:not able|unable)|as an ai)\b", re.I)
OPENING_WORDS = 30
LONG_AFTER = 100  # words after the first decline phrase that count as going on at length


def decline_shape(response: str) -> str:
    """``none`` (no decline phrase), or where the first one starts and whether 100+ words follow it:
    ``opening_short``, ``opening_long``, ``later_short``, ``later_long``."""
    m = DECLINES.search(response.replace("’", "'"))
    if m is None:
        return "none"
    before = len(response[:m.start()].split())
    after = len(response[m.end():].split())
    return f"{'opening' if before < OPENING_WORDS else 'later'}_{'long' if after >= LONG_AFTER else 'short'}"


def shapes(rows: list[dict]) -> dict:
    """Per human label ("0" not jailbroken, "1" jailbroken): its rows and the count of each shape."""
    out: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        out[str(r["gold"])]["rows"] += 1
        out[str(r["gold"])][decline_shape(r["response"])] += 1
    return {g: dict(sorted(c.items())) for g, c in sorted(out.items())}


def main(argv: list[str] | None = None) -> int:
    from pvlora.evaluation.test_log import append_test_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gptfuzz-dir", type=Path, help="GPTFuzz's train.csv, evaluate.csv and question_list.csv "
                   "(default: pvlora's cache)")
    p.add_argument("--out", type=Path, help="write the results here instead of benchmarks/" + RESULT_FILES[0])
    a = p.parse_args(argv)
    prereg = load_preregistration(PREREGISTRATION)
    directory = gptfuzz_dir(prereg, a.gptfuzz_dir)
    result = {"declines": DECLINES.pattern, "opening_words": OPENING_WORDS, "long_after_words": LONG_AFTER,
              "by_label": shapes(gptfuzz_rows(pinned_files(prereg["set"], directory, "--gptfuzz-dir", MAX_CSV_BYTES)))}
    append_test_run(study="gptfuzz-labels", split="test", figures=result["by_label"],
                    data=[directory / Path(n).name for n in prereg["set"]["files"]], command=command_line(argv),
                    note="decline phrases within GPTFuzz's human labels after the judges' check; no judge ran")
    print(json.dumps(result, indent=2))
    write_result(result, a.out, RESULT_FILES[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
