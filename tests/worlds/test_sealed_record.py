"""The SmolLM2 study's pre-registered test, as recorded: the results, the test log, the
pre-registration, study.yaml, the README and docs/studies.md agree, and the figures follow from the
recorded generations (judged again here)."""

import gzip
import json
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SEALED = ROOT / "benchmarks" / "results" / "smollm2_sealed"
PREREG = ROOT / "pvlora" / "worlds" / "smollm2" / "preregistration.yaml"
# what the record of the pre-registered run must satisfy, written before the run: it applies once the
# run's results are committed (benchmarks/measure/bench_smollm2_study.py --from DIR)
pytestmark = pytest.mark.skipif(not (SEALED / "summary.json").exists(),
                                reason="the pre-registered SmolLM2 run has not been made yet")


@pytest.fixture(scope="module")
def summary():
    return json.loads((SEALED / "summary.json").read_text())


@pytest.fixture(scope="module")
def look():
    from pvlora.evaluation.test_log import looks_at_test, read_test_log

    sealed = [r for r in looks_at_test(read_test_log(ROOT / "benchmarks" / "results" / "test_log.jsonl"), "smollm2")
              if r["preregistration"]]
    assert len(sealed) == 1  # one look under the pre-registration, as its stopping rule says
    return sealed[0]


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def test_the_look_was_made_under_the_committed_preregistration(summary, look):
    from pvlora.evaluation.test_log import sha256_file

    assert summary["prompt_set"] == "second" and summary["test"]["evaluated"]
    assert look["preregistration"]["sha256"] == sha256_file(PREREG) and look["override"] is None
    assert look["checks"] == {k: _verdict(v["pass"]) for k, v in summary["verdicts"].items()}
    # the pre-registration's commit precedes the run's and the commit that brought its results
    first = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--", "benchmarks/results/smollm2_sealed/summary.json"],
                           cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not first:
        pytest.skip("no git history here (a wheel or an export): the commit order cannot be read")
    for later in (look["commit"], first[-1]):
        assert subprocess.run(["git", "merge-base", "--is-ancestor", look["preregistration"]["commit"], later],
                              cwd=ROOT).returncode == 0


def test_figures_follow_from_the_recorded_generations(summary):
    """Judge the recorded responses again: the base's and tune's-mix rates on test are the summary's."""
    from pvlora.core.judges import four_way_judge

    judge = four_way_judge()
    rows = [json.loads(line) for line in gzip.open(SEALED / "generations.jsonl.gz", "rt")]

    def rate(eta, kind, labels):
        sub = [r for r in rows if r["split"] == "test" and r["eta"] == eta and r["kind"] == kind]
        return sum(judge(r["prompt"], r["response"])[0] in labels for r in sub), len(sub)

    zero = {"helpful": 0.0, "harmless": 0.0, "concise": 0.0}
    base = summary["checks"]["base"]
    assert rate(zero, "harmful", ("refusal",)) == (base["strict_refusal_harmful"]["k"], base["strict_refusal_harmful"]["n"])
    assert rate(zero, "benign", ("refusal", "degenerate")) == (base["failed_benign"]["k"], base["failed_benign"]["n"])
    nor = summary["checks"]["no_over_refusal"]
    if "weights" in nor:
        mix = {**zero, **nor["weights"]}
        assert rate(mix, "harmful", ("refusal",))[0] == nor["rates"]["strict_refusal_harmful"]["k"]
        assert rate(mix, "benign", ("refusal", "degenerate"))[0] == nor["rates"]["failed_benign"]["k"]


def test_study_yaml_and_settings_are_what_ran(summary):
    from pvlora.worlds.smollm2 import settings
    from pvlora.worlds.smollm2.demo import STUDY_CONFIG

    ran = yaml.safe_load((SEALED / "pvlora-config.yaml").read_text())
    study = yaml.safe_load(STUDY_CONFIG.read_text())
    from pvlora.worlds.smollm2.preregistration import EXECUTION_ONLY

    for key in ("lora", "dpo", "train"):
        fixed = {k: v for k, v in study[key].items() if (key, k) not in EXECUTION_ONLY}
        assert {k: ran[key][k] for k in fixed} == fixed, key
    assert study["eval"]["scorers"] == ran["eval"]["scorers"] and study["eval"]["prompts"] == ran["eval"]["prompts"]
    assert summary["thresholds"] == settings.THRESHOLDS
    fixed = yaml.safe_load(PREREG.read_text())
    assert fixed["thresholds"] == summary["thresholds"] and fixed["eta"]["harmless"] == settings.HARMLESS_GRID


def test_readme_and_docs_state_the_verdicts(summary):
    readme = " ".join((ROOT / "README.md").read_text().split())
    docs = (ROOT / "docs" / "studies.md").read_text()
    v = summary["verdicts"]
    assert (f"**Pre-registered test on a second prompt set: control {_verdict(v['control']['pass'])}, no over-refusal "
            f"{_verdict(v['no_over_refusal']['pass'])}**") in readme
    assert (f"**Result: control {_verdict(v['control']['pass'])}** (validation {_verdict(v['control']['validation'])}, "
            f"test {_verdict(v['control']['test'])})") in docs
    k, n = summary["checks"]["base"]["strict_refusal_harmful"]["k"], summary["checks"]["base"]["strict_refusal_harmful"]["n"]
    assert "| base: harmful requests refused | " in docs and f"{k}/{n} = " in docs


def test_final_vectors_hand_labels_agree_with_the_reported_figure():
    """The judge's agreement with the blind labels of the final vectors' outputs, recomputed here from
    the labels and the generations they were drawn from, is what results/judge_agreement.json says."""
    from pvlora.core.judges import four_way_judge

    labels = [json.loads(line) for line in (ROOT / "tests" / "fixtures" / "smollm2_sealed_labels.jsonl").open()]
    generated = {(r["split"], json.dumps(r["eta"], sort_keys=True), r["prompt"]): r["response"]
                 for r in map(json.loads, gzip.open(SEALED / "generations.jsonl.gz", "rt")) if r["split"] == "validation"}
    assert all(generated[(r["split"], json.dumps(r["eta"], sort_keys=True), r["prompt"])] == r["response"] for r in labels)
    judge = four_way_judge()
    said = [judge(r["prompt"], r["response"])[0] for r in labels]
    binary = sum((s == "refusal") == (r["label"] == "refusal") for s, r in zip(said, labels)) / len(labels)
    four = sum(s == r["label"] for s, r in zip(said, labels)) / len(labels)
    reported = json.loads((ROOT / "benchmarks" / "results" / "judge_agreement.json").read_text())["final_vectors"]
    assert reported["n"] == len(labels) >= 200
    assert binary == pytest.approx(reported["binary"]["agreement"]) and four == pytest.approx(reported["four_way_agreement"])
