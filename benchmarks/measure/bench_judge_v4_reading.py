"""A reading of judge4-v4's validation after the run: what its two training and validation sets hold,
counted from their labels alone (no judge runs here; nothing is chosen on these figures).

1. **XSTest** (judge4-v4's training set): its five files are three chat models in five set-ups, all
   answering the same 450 prompts, so leaving one set-up out of a fit still leaves the same prompts'
   labels in it. How far that alone goes: each row's binary label (refusal or not) guessed as the
   majority of the other four set-ups' labels for the same prompt (a tie guesses "not refused"),
   against a guess of "never refused".
2. **The RBR gold set** (judge4-v4's public validation set): among the rows the pre-registered mapping
   calls ``refusal`` (none of the requested content), how many the labellers marked as asking for more
   information (``requests_information``), as saying it cannot comply (``inability_to_comply``) or as
   apologising; among ``compliance`` rows, how many apologise. Reading a public test set's labels is a
   look at it, so the run is appended to the test log (study ``rbr-labels``), figures and all.

    python benchmarks/measure/bench_judge_v4_reading.py --xstest-dir DIR --rbr-dir DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_judge_v3 and -v4: their readers

from bench_judge_v3 import command_line, load_preregistration, pinned_files, write_result, xstest_files, xstest_rows  # noqa: E402
from bench_judge_v4 import MAX_JSONL_BYTES, PREREGISTRATION, rbr_dir, rbr_rows  # noqa: E402

RESULT_FILES = ("results/judge_v4_reading.json",)
FLAGS = ("requests_information", "inability_to_comply", "apology")


def xstest_same_prompt(rows: list[dict]) -> dict:
    """Binary agreement of the other set-ups' majority for the same prompt, and of "never refused"."""
    by_prompt: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_prompt[r["prompt"]].append(r)
    hit = 0
    for r in rows:
        others = [o["gold"] == "refusal" for o in by_prompt[r["prompt"]] if o is not r]
        guess = sum(others) > len(others) / 2
        hit += guess == (r["gold"] == "refusal")
    return {"rows": len(rows), "prompts": len(by_prompt), "setups": len({r["model"] for r in rows}),
            "other_setups_majority_binary": round(hit / len(rows), 4),
            "never_refused_binary": round(sum(r["gold"] != "refusal" for r in rows) / len(rows), 4)}


def rbr_flags(rows: list[dict]) -> dict:
    """Per mapped class (``gold``, from :func:`bench_judge_v4.rbr_rows`): its rows and how many carry each
    of :data:`FLAGS`."""
    out: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        out[r["gold"]]["rows"] += 1
        out[r["gold"]].update(k for k in FLAGS if r["propositions"].get(k) is True)
    return {label: dict(c) for label, c in sorted(out.items())}


def main(argv: list[str] | None = None) -> int:
    from pvlora.evaluation.test_log import append_test_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--xstest-dir", type=Path, help="the five XSTest v2 completion CSVs (default: pvlora's cache)")
    p.add_argument("--rbr-dir", type=Path, help="the RBR gold set's train.jsonl and test.jsonl (default: pvlora's cache)")
    p.add_argument("--out", type=Path, help="write the results here instead of benchmarks/" + RESULT_FILES[0])
    a = p.parse_args(argv)
    prereg = load_preregistration(PREREGISTRATION)
    directory = rbr_dir(prereg, a.rbr_dir)
    rbr = rbr_flags(rbr_rows(pinned_files(prereg["sets"]["rbr_gold"], directory, "--rbr-dir", MAX_JSONL_BYTES)))
    result = {"xstest": xstest_same_prompt(xstest_rows(xstest_files(load_preregistration(), a.xstest_dir))),
              "rbr_gold_flags": rbr}
    append_test_run(study="rbr-labels", split="test", figures=rbr,
                    data=[directory / Path(n).name for n in prereg["sets"]["rbr_gold"]["files"]],
                    command=command_line(argv),
                    note="label counts of the RBR gold set after judge4-v4's validation; no judge ran")
    print(json.dumps(result, indent=2))
    write_result(result, a.out, RESULT_FILES[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
