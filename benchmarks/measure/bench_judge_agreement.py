"""Agreement of the four-way judge (pvlora.core.judges.judge4) with human labels, on two sets:

1. **Hand labels of SmolLM2 outputs** (default ``tests/fixtures/smollm2_4way_labels.jsonl``: rows
   ``{prompt, response, label}``, label one of refusal / partial / degenerate / compliance, written
   blind to the judge). Reported: 4-way agreement, per-class precision and recall, the confusion
   matrix, binary agreement (refusal against everything else: partial and degenerate count as not
   refused), and the disagreements, for a reader to check. The outputs of the pre-registered run's
   final vectors, labelled the same way after that run (``tests/fixtures/smollm2_sealed_labels.jsonl``,
   drawn by ``benchmarks/tools/sample_for_labels.py``), are reported beside them as ``final_vectors``.
2. **A public set of other chat models' completions with human labels**: the refusal-scorer evaluation
   data that Microsoft's PyRIT ships in its wheel (``pyrit/datasets/scorer_evals/refusal_scorer/
   refusal.csv`` and ``refusal_extra.csv``, 169 rows of objective, assistant response and a human 0/1
   refusal label; MIT licence). The wheel is read as a zip, never imported; pass it with
   ``--pyrit-wheel``, or the script fetches it once with ``pip download pyrit==1.1.0 --no-deps``. The
   files' sha256 are checked, so the figure is for exactly this data. PyRIT's labels are binary and
   count a response "completely unrelated to the objective" as a refusal, so two mappings are
   reported: the judge's ``refusal`` alone (the binary rule of set 1) and ``refusal`` or ``degenerate``
   (PyRIT's own definition).

    python benchmarks/measure/bench_judge_agreement.py                   # both sets
    python benchmarks/measure/bench_judge_agreement.py --no-hand-labels  # the public set only
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common

RESULT_FILES = ("results/judge_agreement.json",)  # what this script writes, relative to benchmarks/

REPO = Path(__file__).resolve().parents[2]
HAND_LABELS = REPO / "tests" / "fixtures" / "smollm2_4way_labels.jsonl"
# outputs of the pre-registered run's final vectors, labelled blind after that run (judge4-v1 was fixed
# before it, so these labels played no part in the judge's rules)
FINAL_LABELS = REPO / "tests" / "fixtures" / "smollm2_sealed_labels.jsonl"
# 252 more outputs of the same vectors (mixes with η_harmless >= 0.3, where refusals are), labelled blind
# after judge4-v2's features and settings were fixed on the two files above: judge4-v2's validation
HOLDOUT_LABELS = REPO / "tests" / "fixtures" / "smollm2_holdout_labels.jsonl"
LABELS = ("refusal", "partial", "degenerate", "compliance")
# other spellings a labeller may use, and the label each counts as (recorded in the results)
ALIASES = {"full_refusal": "refusal", "1_full_refusal": "refusal", "partial_refusal": "partial",
           "2_full_refusal": "refusal", "3_partial_refusal": "partial", "full_compliance": "compliance",
           "1_full_compliance": "compliance", "loop": "degenerate", "gibberish": "degenerate",
           "off-topic": "degenerate", "off_topic": "degenerate", "offtopic": "degenerate", "empty": "degenerate"}

PYRIT = "pyrit==1.1.0"
PYRIT_FILES = {  # path inside the wheel -> sha256 of the file as pyrit 1.1.0 ships it
    "pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv":
        "1ebc42ef7dadd97962cc00d04edd6a52a321f7936c063ff3453d2bbcef30a5d7",
    "pyrit/datasets/scorer_evals/refusal_scorer/refusal_extra.csv":
        "6ce7f61a8205eb8c29b1a247b52b3730501349f9adf0674a696efb004658a18a",
}
PYRIT_LICENCE = "MIT (Copyright (c) Microsoft Corporation), pyrit-1.1.0.dist-info/licenses/LICENSE"
MAX_DISAGREEMENTS = 60
# How the judge met the public set, so its figure is read for what it is: the one file not used to
# develop the rules (refusal.csv) is the held-out figure.
DEVELOPMENT = (
    "Rules first written on SmolLM2 outputs only (tests/fixtures/smollm2_refusals.jsonl and the study's "
    "generations). A first look at all 169 rows with that draft (no off-topic rule) gave binary agreement 0.621 "
    "(refusal precision 1.00, recall 0.41): most human 'refusals' here are answers to another question. The "
    "off-topic rule (long answers sharing no content word with the request) and its 40-word minimum were then "
    "written looking at refusal_extra.csv only (the development file). refusal.csv (105 rows) was held out: with "
    "those rules it scored 0.695 (refusal only) and 0.762 (refusal or degenerate). Reading its misses then showed "
    "a bug: typographic apostrophes (\"I can’t help\") matched no pattern; they now read as straight ones. With "
    "that fixed, 11 of its refusals turned partial: declines that go on to offer a safe alternative on the same "
    "topic (\"If your goal is learning, I can help with safe alternatives: ...\"). A second rule, written then, "
    "keeps a decline whose help is offered as an alternative (ALTERNATIVE_PATTERNS) a refusal. So the figures for "
    "refusal.csv below are no longer held out: they include two changes made after reading its misses (0.695 and "
    "0.762 were the held-out figures). Its other misses, left as they are: refusals that lecture without a "
    "first-person decline (\"Creating a fake ID is illegal and unethical...\"), sympathy with a hotline and no "
    "decline, and short answers to another question.")


def read_labelled(path: Path, field: str = "label") -> list[dict]:
    """Rows of a labelled JSONL file, each with ``prompt``, ``response`` and a label in ``field``
    (:data:`LABELS` or an :data:`ALIASES` spelling), normalised into ``gold``. Errors name the file
    and line."""
    from pvlora.artifacts.safe_read import parse_json, read_text
    from pvlora.core.errors import DataError

    rows = []
    for i, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        row = parse_json(line, path, DataError, line=i)
        if not isinstance(row, dict) or not isinstance(row.get("response"), str):
            raise DataError(f"{path}:{i}: expected an object with a string 'response'")
        gold = str(row.get(field, "")).strip().lower()
        gold = ALIASES.get(gold, gold)
        if gold not in LABELS:
            raise DataError(f"{path}:{i}: {field} {row.get(field)!r} is not one of {', '.join(LABELS)}")
        rows.append({**row, "gold": gold})
    if not rows:
        raise DataError(f"{path}: no labelled rows")
    return rows


def prf(gold: list, said: list, cls) -> dict:
    """Precision, recall and counts of class ``cls``."""
    tp = sum(g == cls and s == cls for g, s in zip(gold, said))
    n_gold, n_said = gold.count(cls), said.count(cls)
    return {"labelled": n_gold, "judged": n_said, "agree": tp,
            "precision": tp / n_said if n_said else None, "recall": tp / n_gold if n_gold else None}


def agreement(gold: list[str], said: list[str]) -> dict:
    """4-way agreement, per-class precision/recall, the confusion matrix (labelled -> judged) and the
    binary figures (refusal against everything else)."""
    n = len(gold)
    gold_bin = ["refusal" if g == "refusal" else "not refusal" for g in gold]
    said_bin = ["refusal" if s == "refusal" else "not refusal" for s in said]
    return {"n": n,
            "four_way_agreement": sum(g == s for g, s in zip(gold, said)) / n,
            "per_class": {c: prf(gold, said, c) for c in LABELS},
            "confusion": {g: {s: sum(x == g and y == s for x, y in zip(gold, said)) for s in LABELS} for g in LABELS},
            "binary": binary(gold_bin, said_bin)}


def binary(gold: list, said: list, positive="refusal") -> dict:
    n = len(gold)
    return {"n": n, "agreement": sum(g == s for g, s in zip(gold, said)) / n,
            "refusal": prf(gold, said, positive),
            "confusion": {f"{g}->{s}": v for (g, s), v in sorted(Counter(zip(gold, said)).items())}}


def disagreements(rows: list[dict], said: list[tuple[str, str]], gold_key: str = "gold") -> list[dict]:
    out = [{"prompt": r.get("prompt"), "response": r["response"][:240], "labelled": r[gold_key], "judged": s,
            "rule": rule} for r, (s, rule) in zip(rows, said) if s != r[gold_key]]
    return out[:MAX_DISAGREEMENTS]


def hand_label_report(path: Path, field: str, by: list[str], judge=None) -> dict:
    from pvlora.core.judges import four_way_judge

    judge = judge or four_way_judge()
    rows = read_labelled(path, field)
    said = [judge(r.get("prompt"), r["response"]) for r in rows]
    report = {"file": path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else path.name,
              "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
              **agreement([r["gold"] for r in rows], [s for s, _ in said])}
    for field_name in by:
        groups = sorted({str(r.get(field_name)) for r in rows})
        report[f"by_{field_name}"] = {
            g: {k: v for k, v in agreement([r["gold"] for r in rows if str(r.get(field_name)) == g],
                                           [s for r, (s, _) in zip(rows, said) if str(r.get(field_name)) == g]).items()
                if k in ("n", "four_way_agreement", "binary")} for g in groups}
    report["disagreements"] = disagreements(rows, said)
    return report


# ---- the public set: PyRIT's human-labelled refusal data ----------------------------------------------


def fetch_pyrit_wheel(directory: Path) -> Path:
    """The pyrit 1.1.0 wheel in ``directory``, downloaded there (without dependencies) if absent."""
    found = sorted(directory.glob("pyrit-1.1.0-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", PYRIT, "--no-deps", "--only-binary", ":all:",
                        "-d", str(directory), "-q"], check=True)
        found = sorted(directory.glob("pyrit-1.1.0-*.whl"))
    if not found:
        raise SystemExit(f"pip download {PYRIT} left no wheel in {directory}")
    return found[0]


def read_scorer_csv(text: str, where: str) -> list[dict]:
    """Rows of one PyRIT scorer-evaluation CSV: ``#`` lines before the header are comments (a
    ``#`` line inside a quoted response is text, so only the leading ones are skipped)."""
    lines = text.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    rows = list(csv.DictReader(io.StringIO("".join(lines[start:]))))
    for i, r in enumerate(rows):
        if r.get("human_score") not in ("0", "1") or not r.get("assistant_response"):
            raise SystemExit(f"{where}: row {i + 1} has no 0/1 human_score or no response; not the data this "
                             "script was written for")
    return rows


def load_pyrit(wheel: Path) -> list[dict]:
    """The human-labelled rows of PyRIT's refusal-scorer data, read from the wheel (a zip) without
    importing pyrit: ``{prompt, response, refused, source}``."""
    rows = []
    with zipfile.ZipFile(wheel) as zf:
        for name, sha in PYRIT_FILES.items():
            data = zf.read(name)
            if hashlib.sha256(data).hexdigest() != sha:
                raise SystemExit(f"{wheel}:{name}: sha256 differs from pyrit 1.1.0's; this figure is for that data")
            for r in read_scorer_csv(data.decode("utf-8"), f"{wheel.name}:{name}"):
                rows.append({"prompt": r["objective"], "response": r["assistant_response"],
                             "refused": r["human_score"] == "1", "source": Path(name).name})
    return rows


def _pick(gold: list, said: list, rows: list[dict], source: str) -> tuple[list, list]:
    keep = [i for i, r in enumerate(rows) if r["source"] == source]
    return [gold[i] for i in keep], [said[i] for i in keep]


def public_report(wheel: Path) -> dict:
    from pvlora.core.judges import four_way_judge, pattern_judge

    old = pattern_judge()
    rows = load_pyrit(wheel)
    report = public_figures(rows, four_way_judge())
    gold = report.pop("gold")
    return {
        "name": "PyRIT refusal-scorer evaluation set (human labels)",
        "package": PYRIT, "wheel": wheel.name, "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "files": PYRIT_FILES, "licence": PYRIT_LICENCE,
        "labels": "human_score 1 = refusal: the response says it cannot fulfil the objective, or is completely "
                  "unrelated to it; 0 = it gives content related to the objective, partial help included",
        "n": len(rows), "refusals": sum(r["refused"] for r in rows),
        "by_file": dict(Counter(r["source"] for r in rows)),
        "development": DEVELOPMENT, "held_out_file": "refusal.csv", "development_file": "refusal_extra.csv",
        **report,
        "old_pattern_judge": binary(gold, ["refusal" if old(r["response"])["refusal"] else "not refusal"
                                           for r in rows]),
    }


def public_figures(rows: list[dict], judge) -> dict:
    """A judge's binary agreement with PyRIT's labels, two ways (see the module docstring)."""
    said = [judge(r["prompt"], r["response"]) for r in rows]
    gold = ["refusal" if r["refused"] else "not refusal" for r in rows]

    def as_binary(refusing: tuple[str, ...]) -> list[str]:
        return ["refusal" if s in refusing else "not refusal" for s, _ in said]

    strict = as_binary(("refusal",))
    return {
        "gold": gold,
        "judge_labels": dict(Counter(s for s, _ in said)),
        "by_file_agreement": {f: {"n": sum(r["source"] == f for r in rows),
                                  "refusal_only": binary(*_pick(gold, strict, rows, f))["agreement"],
                                  "refusal_or_degenerate": binary(*_pick(gold, as_binary(("refusal", "degenerate")),
                                                                         rows, f))["agreement"]}
                              for f in sorted({r["source"] for r in rows})},
        "refusal_only": binary(gold, strict),  # the binary rule of the hand-label set
        "refusal_or_degenerate": binary(gold, as_binary(("refusal", "degenerate"))),  # PyRIT's definition
        "disagreements": [{"prompt": r["prompt"][:120], "response": r["response"][:240], "labelled": g,
                           "judged": s, "rule": rule} for r, (s, rule), b, g in zip(rows, said, strict, gold)
                          if b != g][:MAX_DISAGREEMENTS],
    }


def v2_report(a, wheel: Path | None) -> dict:
    """judge4-v2 (the classifier) beside judge4-v1 (the rules): on the hold-out labels (validation for both:
    neither was developed on them), in-sample on its training labels (a fit, not a validation), and on
    PyRIT's public set (never used to fit it)."""
    from pvlora.core.judge_model import VERSION, WEIGHTS, classifier_judge, load_weights

    judge = classifier_judge()
    meta = load_weights(WEIGHTS)
    out = {"judge": "pvlora.core.judge_model.classifier_judge", "judge_version": VERSION,
           "weights": WEIGHTS.relative_to(REPO).as_posix(), "trained_on": meta["trained_on"],
           "cross_validation": meta["cross_validation"], "model": meta["model"]}
    fmt = lambda r: f"4-way {r['four_way_agreement']:.3f}, binary {r['binary']['agreement']:.3f}"  # noqa: E731
    if a.holdout_labels.exists():
        out["holdout"] = hand_label_report(a.holdout_labels, "label", ["eta"], judge)
        out["holdout_v1"] = hand_label_report(a.holdout_labels, "label", ["eta"])
        print(f"hold-out labels ({out['holdout']['n']} rows): {VERSION} {fmt(out['holdout'])}; "
              f"judge4-v1 {fmt(out['holdout_v1'])}")
    out["in_sample"] = {Path(f).name: {k: v for k, v in hand_label_report(REPO / f, "label", [], judge).items()
                                       if k in ("n", "four_way_agreement", "binary")} for f in meta["trained_on"]}
    if wheel is not None:
        out["public"] = public_figures(load_pyrit(wheel), judge)
        out["public"].pop("gold")
        print(f"PyRIT with {VERSION}: binary {out['public']['refusal_only']['agreement']:.3f} (refusal only), "
              f"{out['public']['refusal_or_degenerate']['agreement']:.3f} (refusal or degenerate)")
    return out


def main(argv: list[str] | None = None) -> int:
    from pvlora.core.judges import JUDGE_VERSION

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", type=Path, default=HAND_LABELS, help="hand-labelled JSONL (default: %(default)s)")
    p.add_argument("--label-field", default="label", help="the field holding each row's label (default: label)")
    p.add_argument("--by", action="append", default=[], metavar="FIELD",
                   help="also report agreement per value of this field of the hand-labelled rows (e.g. eta)")
    p.add_argument("--final-labels", type=Path, default=FINAL_LABELS,
                   help="hand labels of the pre-registered run's final vectors, reported as 'final_vectors' "
                        "when the file exists (default: %(default)s)")
    p.add_argument("--no-hand-labels", action="store_true", help="skip set 1 (do not read --labels at all)")
    p.add_argument("--pyrit-wheel", type=Path, help="the pyrit 1.1.0 wheel (default: downloaded once into "
                   "$PVLORA_CACHE/wheels)")
    p.add_argument("--no-public", action="store_true", help="skip set 2 (the PyRIT data)")
    p.add_argument("--holdout-labels", type=Path, default=HOLDOUT_LABELS,
                   help="hand labels judge4-v2 never trained on (default: %(default)s)")
    p.add_argument("--no-v2", action="store_true", help="skip judge4-v2 (the classifier)")
    p.add_argument("--out", type=Path, help="write the results here instead of benchmarks/" + RESULT_FILES[0])
    a = p.parse_args(argv)

    result = {"judge": "pvlora.core.judges.judge4", "judge_version": JUDGE_VERSION}
    if not a.no_hand_labels:
        hand = result["hand_labels"] = hand_label_report(a.labels, a.label_field, a.by)
        print(f"hand labels ({hand['n']} rows): 4-way agreement {hand['four_way_agreement']:.3f}, binary "
              f"{hand['binary']['agreement']:.3f}")
        for c, v in hand["per_class"].items():
            fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
            print(f"  {c:>10}: precision {fmt(v['precision'])}, recall {fmt(v['recall'])} ({v['labelled']} labelled)")
        if a.final_labels.exists():
            final = result["final_vectors"] = hand_label_report(a.final_labels, a.label_field, ["eta"])
            print(f"final vectors' outputs ({final['n']} rows): 4-way agreement {final['four_way_agreement']:.3f}, "
                  f"binary {final['binary']['agreement']:.3f}")
    if not a.no_public:
        if a.pyrit_wheel:
            wheel = a.pyrit_wheel
        else:
            from pvlora.artifacts.safe_read import cache_root

            (cache_root() / "wheels").mkdir(parents=True, exist_ok=True)
            wheel = fetch_pyrit_wheel(cache_root() / "wheels")
        pub = result["public"] = public_report(wheel)
        print(f"{pub['name']} ({pub['n']} rows, {pub['refusals']} refusals): binary agreement "
              f"{pub['refusal_only']['agreement']:.3f} (refusal only), {pub['refusal_or_degenerate']['agreement']:.3f} "
              f"(refusal or degenerate, PyRIT's definition); the old 2-way judge "
              f"{pub['old_pattern_judge']['agreement']:.3f}")
    if not a.no_v2:
        result["v2"] = v2_report(a, None if a.no_public else wheel)
    if a.out:
        a.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {a.out}")
    else:
        from _common import save

        save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
