"""The five test evaluations of the SmolLM2 study made before the test log existed, rebuilt from git.

Each commit below recorded a study run's results (benchmarks/results/smollm2_study/). For each,
this script reads that commit's tree: every test figure of its summary.json and results.csv, the
verdicts of its checks, and sha256 of the config, data, prompt set and judge as that tree held
them (`git show COMMIT:PATH | sha256sum`); a file outside the tree (the HH-RLHF rows were read from
/work/shared/..., outside the repository, in all five runs) is null, with the reason. What changed
after each run is written by hand below, every item naming its commit; each was checked with
`git show`. The lines carry "source": "reconstructed from git".

    python benchmarks/tools/reconstruct_test_log.py            # print the five lines
    python benchmarks/tools/reconstruct_test_log.py --append   # append them to results/test_log.jsonl (once: refused
                                                               # when the log already holds reconstructed lines)
    python benchmarks/tools/reconstruct_test_log.py --check    # exit 1 unless the log's reconstructed lines are these

Caveat: a run used the working tree just before the commit that recorded it, which git does not
keep; the hashes are of the files in that commit.

The lines record the command of their day, ``python benchmarks/bench_smollm2_study.py``: the script
is now benchmarks/measure/bench_smollm2_study.py (the index in benchmarks/README.md maps the two).
The string stays as it was, since these lines must equal the log's, which is evidence and unchanged.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import yaml

RESULT_FILES = ("results/test_log.jsonl",)  # --append only; relative to benchmarks/
ROOT = Path(__file__).resolve().parents[2]  # the repository
LOG = ROOT / "benchmarks" / "results" / "test_log.jsonl"
STUDY = "benchmarks/results/smollm2_study"
BUILTIN = {"smollm2-helpful": "pvlora/smollm2/helpful_pairs.jsonl", "smollm2-concise": "pvlora/smollm2/concise_pairs.jsonl",
           "smollm2-borderline": "pvlora/smollm2/borderline_pairs.jsonl",
           "smollm2-harmful": "pvlora/smollm2/harmful_pairs.jsonl",
           "hh-rlhf-harmless-base": "pvlora/data/shipped/hh-rlhf/harmless-base-test-dev.jsonl.gz"}
PROMPTS = ["pvlora/smollm2/prompts.txt", "pvlora/smollm2/prompts.py", "pvlora/smollm2/answers.jsonl"]
JUDGE = ["pvlora/evaluate/judges.py", "pvlora/evaluate/scorers.py"]


def change(commit: str, date: str, what: str) -> dict:
    return {"commit": commit, "date": date, "what": what}


# (commit, what was scored, what changed after it), in order. Every statement was checked against
# `git show` of the named commit.
RUNS = [
    ("c975134", "The study's first run. Harmless vector: 176 HH-RLHF harmless-base rows, lr 2e-4, one epoch. "
                "No tune mix was scored on test: tune found no feasible point on validation.", [
        change("64c33f4", "2026-11-23T22:05:11+00:00", "harmless data: choose_smollm2_harmless.py gains the candidate "
               "'lr1e-3-refusal-contrast' (only the HH rows whose chosen answer refuses and whose rejected one does "
               "not, 2 epochs at lr 1e-3)"),
        change("c271323", "2026-11-23T22:38:14+00:00", "harmless data: the study trains on that candidate (study.yaml "
               "keep: refusal_contrast, lr 1e-3, 2 epochs). η grid: HARMLESS_GRID [-2,-1,0,1,2,4,6] -> "
               "[-2,-1,-0.5,0,0.25,0.5,1,2,4]; tune's grid {helpful 0,1,2} x {harmless 0,2,4,6} -> helpful {0,1,2} x "
               "every η_harmless >= 0 inside the validation span; the positive-only comparison moves from η 2, 4 "
               "to the two strongest η of the span"),
    ]),
    ("61f5821", "Harmless vector: the 75 HH refusal-contrast rows, 2 epochs at lr 1e-3.", [
        change("4a99b06", "2026-11-24T02:45:28+00:00", "harmless data and selection rule 2: extra_sources, the "
               "built-in smollm2-borderline pairs (60 safe requests that sound dangerous, answer over refusal) as a "
               "candidate; the choice script's second rule (lowest benign refusal at tune's best feasible point); "
               "finer η points scored on validation (results/smollm2_tune_grid.json)"),
        change("a5d63fd", "2026-11-24T02:51:14+00:00", "η grid: HARMLESS_GRID gains 0.05, 0.1, 0.15, 0.2 (in a commit "
               "titled 'pvlora serve: ...'); validation scores η >= 0 only up to the first over-scaled point"),
        change("5cdb95e", "2026-11-24T03:12:24+00:00", "η grid: tune's helpful values {0, 1, 2} -> {0, 0.5, 1}; the "
               "borderline candidate is rejected and the refusal-contrast vector kept"),
    ]),
    ("25bf65a", "The same harmless vector as 61f5821 (norm 12.616 in both; identical test figures at η 0.25 and "
                "0.5 and in the equal-norm comparison), scored on the finer η grid: the control check turns from "
                "FAIL (Spearman 0.845) to PASS (0.937) by the added grid points alone.", [
        change("a68fc75", "2026-11-24T06:14:56+00:00", "tune filter: tune scores only the η_harmless whose "
               "harmless-only validation point already meets its constraint"),
        change("3e86afa", "2026-11-24T06:33:24+00:00", "disclosure removed: the README, now rendered from templates, "
               "drops 'With the coarser grid of the previous run (0, 0.25, 0.5) the same vectors gave rho = 0.845.'"),
    ]),
    ("c7f7a6f", "A re-run for the wall time on an idle machine (43.5 min against 61.7): the same vectors (norm "
                "12.616), the same test figures and verdicts; tune's filter (a68fc75) scored 9 validation points "
                "instead of 21 and chose the same mix. The same commit removed from benchmarks/README.md the "
                "paragraph saying the vectors were the same as in the previous run and that the control check "
                "passes with the finer grid.", [
        change("c90f260", "2026-11-24T12:19:43+00:00", "harmless data and selection rule 3: 95 harmful training "
               "requests (pvlora/smollm2/harmful_train.txt, built-in smollm2-harmful: refusal over the base's own "
               "compliance), two candidates with them; the third choice rule runs the study's own validation stage "
               "on every candidate rule 2 admits"),
        change("8933523", "2026-11-24T12:48:55+00:00", "harmless data: the study trains on the HH refusal-contrast "
               "rows + smollm2-harmful + smollm2-borderline, one epoch at lr 1e-3 (chosen on validation by rule 3)"),
    ]),
    ("d42b00b", "Harmless vector: HH refusal-contrast rows + smollm2-harmful + smollm2-borderline, one epoch at lr "
                "1e-3 (norm 11.821). Both checks pass on test. On validation the tuned mix (0.5, 1) refused 0.2125 "
                "of benign prompts against the validation base's 0.0375 + 0.05 = 0.0875: the over-refusal check "
                "would fail there (the study computed no validation verdict). Iteration stopped at this first pass.", [
        change("434d006", "2026-11-24T14:13:08+00:00", "disclosure removed: the READMEs drop 'and failed this check on "
               "test' about the previous vector, and the benchmarks README says the vector now 'passes there'"),
    ]),
]


def git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout


def blob(commit: str, path: str) -> bytes | None:
    try:
        return git("show", f"{commit}:{path}")
    except subprocess.CalledProcessError:
        return None


def sha(commit: str, path: str) -> str | None:
    data = blob(commit, path)
    return None if data is None else hashlib.sha256(data).hexdigest()


def patterns_sha(commit: str) -> str | None:
    """sha256 of the judge's refusal patterns and opening length as that commit defines them (the
    file changed form between runs; this shows whether what it matches did)."""
    src = blob(commit, "pvlora/evaluate/judges.py")
    if src is None:
        return None
    ns: dict = {}
    exec(compile(src.decode(), "judges.py", "exec"), ns)  # our own file at a past commit: constants and defs only
    return hashlib.sha256(json.dumps([ns["REFUSAL_PATTERNS"], ns["OPENING_CHARS"]]).encode()).hexdigest()


def number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def record(commit: str, scored: str, after: list[dict]) -> dict:
    full, date = git("show", "-s", "--format=%H%n%aI", commit).decode().split()
    summary = json.loads(blob(commit, f"{STUDY}/summary.json"))
    rows = [{k: number(v) for k, v in r.items()} for r in csv.DictReader(io.StringIO(blob(commit, f"{STUDY}/results.csv").decode()))]
    test_rows = [r for r in rows if r["split"] == "test"]
    cfg = yaml.safe_load(blob(commit, f"{STUDY}/pvlora-config.yaml"))
    sources = [s for p in cfg["preferences"] for s in [p["source"], *(e["source"] for e in p.get("extra_sources") or [])]]
    data, missing = {}, {}
    for s in sources:
        path = BUILTIN.get(s, s)
        digest = sha(commit, path) if not path.startswith("/") else None
        if digest is None:
            missing[path] = ("not recoverable: read from outside the repository, not in the commit's tree"
                             if path.startswith("/") else "not in the commit's tree")
        data[path] = digest
    checks = {k: "PASS" if v.get("pass") else "FAIL" for k, v in summary["checks"].items() if isinstance(v, dict) and "pass" in v}
    gens = blob(commit, f"{STUDY}/generations.jsonl.gz")
    scored_points = sorted({json.dumps(json.loads(line)["eta"], sort_keys=True) for line in gzip.decompress(gens).splitlines()
                            if json.loads(line)["split"] == "test"})
    return {
        "schema": 1, "date": date,
        "date_note": "the date of the commit that recorded the run; the run ended before it "
                     f"(summary.json machine.date {summary['machine']['date']})",
        "source": "reconstructed from git", "study": "smollm2", "split": "test", "commit": full, "dirty": None,
        "command": "python benchmarks/bench_smollm2_study.py (pvlora demo --base smollm2)",
        "what_was_scored": scored,
        "test_points": [json.loads(p) for p in scored_points],
        "hashes": {
            "config": {f"{STUDY}/pvlora-config.yaml": sha(commit, f"{STUDY}/pvlora-config.yaml"),
                       "pvlora/smollm2/study.yaml": sha(commit, "pvlora/smollm2/study.yaml"),
                       "pvlora/smollm2/demo.py": sha(commit, "pvlora/smollm2/demo.py")},
            "data": data, "data_not_recoverable": missing,
            "prompts": {p: sha(commit, p) for p in PROMPTS},
            "judge": {**{p: sha(commit, p) for p in JUDGE}, "refusal_patterns": patterns_sha(commit)},
            "results": {f"{STUDY}/{n}": sha(commit, f"{STUDY}/{n}") for n in ("summary.json", "results.csv", "generations.jsonl.gz")},
        },
        "preregistration": None, "override": None,
        "checks": checks,
        "figures": {"checks": {k: v for k, v in summary["checks"].items() if k not in ("interference", "adapters")},
                    "tune": summary["tune"], "span": summary["span"], "thresholds": summary["thresholds"],
                    "harmless_vector_norm": summary["checks"]["interference"]["norms"]["harmless"],
                    "test_rows": test_rows},
        "changed_after": after,
        "note": None,
    }


def lines() -> list[str]:
    return [json.dumps(record(*run), ensure_ascii=False) + "\n" for run in RUNS]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--append", action="store_true", help="append the five lines to the log (once)")
    g.add_argument("--check", action="store_true", help="exit 1 unless the log's reconstructed lines are these")
    a = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from pvlora.evaluation.test_log import read_test_log, write_line

    made = lines()
    have = [r for r in read_test_log(LOG) if r.get("source") == "reconstructed from git"]
    if a.check:
        ok = [json.dumps(r, ensure_ascii=False) + "\n" for r in have] == made
        print("the log's reconstructed lines are what git gives" if ok else "the log's reconstructed lines differ from git")
        return 0 if ok else 1
    if a.append:
        if have:
            print(f"{LOG} already holds {len(have)} reconstructed lines; nothing appended", file=sys.stderr)
            return 1
        for line in made:
            write_line(line, LOG)
        print(f"appended {len(made)} lines to {LOG}")
        return 0
    sys.stdout.write("".join(made))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
