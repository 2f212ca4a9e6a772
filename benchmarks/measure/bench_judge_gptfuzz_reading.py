"""A reading of the GPTFuzz check after its run: how often GPTFuzz's responses carry a decline phrase,
counted within each human label (jailbroken or not) by a fixed string match, and each file's label
counts; no judge runs here and nothing is chosen on these figures.

judge4-v3 and -v4 err mostly by calling jailbroken responses refusals (``results/judge_gptfuzz.json``,
``labels_within_gold``). This counts, per label, the responses holding one of :data:`DECLINES`, whether
the first one starts within the first 30 words, and whether 100 words or more follow it. Each file's
label counts give the agreement of always saying "not jailbroken" on that file, beside the judges'
agreement by file. Reading a public test set's labels is a look at it, so each run is appended to the
test log (study ``gptfuzz-labels``), figures and all, and a second run needs ``--again REASON``.

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

from bench_judge_gptfuzz import PREREGISTRATION, gptfuzz_dir, read_set  # noqa: E402
from bench_judge_v3 import command_line, first_look, load_preregistration, write_result  # noqa: E402

RESULT_FILES = ("results/judge_gptfuzz_reading.json",)
STUDY = "gptfuzz-labels"
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


def by_file(rows: list[dict]) -> dict:
    """Per file: its rows, its label counts, and the agreement of always giving its more common label."""
    out = {}
    for split in sorted({r["split"] for r in rows}):
        gold = Counter(str(r["gold"]) for r in rows if r["split"] == split)
        n = sum(gold.values())
        out[split] = {"rows": n, "gold_counts": dict(sorted(gold.items())), "majority_agreement": max(gold.values()) / n}
    return out


def main(argv: list[str] | None = None) -> int:
    from pvlora.evaluation.test_log import append_test_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gptfuzz-dir", type=Path, help="GPTFuzz's train.csv, evaluate.csv and question_list.csv "
                   "(default: pvlora's cache)")
    p.add_argument("--again", metavar="REASON", help="read the labels again although the test log has a reading "
                   "(the reason is recorded in the log)")
    p.add_argument("--out", type=Path, help="write the results here instead of benchmarks/" + RESULT_FILES[0])
    a = p.parse_args(argv)
    prereg = load_preregistration(PREREGISTRATION)
    earlier = first_look(STUDY, a.again)
    directory = gptfuzz_dir(prereg, a.gptfuzz_dir)
    rows = read_set(prereg, directory)
    result = {"declines": DECLINES.pattern, "opening_words": OPENING_WORDS, "long_after_words": LONG_AFTER,
              "by_label": shapes(rows), "by_file": by_file(rows),
              "override": {"reason": a.again, "earlier_runs": len(earlier)} if a.again else None}
    append_test_run(study=STUDY, split="test", figures={"by_label": result["by_label"], "by_file": result["by_file"]},
                    data=[directory / Path(n).name for n in prereg["set"]["files"]], command=command_line(argv),
                    override={"reason": a.again} if a.again else None,
                    note="decline phrases within GPTFuzz's human labels, and each file's label counts, after the "
                         "judges' check; no judge ran")
    print(json.dumps(result, indent=2))
    write_result(result, a.out, RESULT_FILES[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
