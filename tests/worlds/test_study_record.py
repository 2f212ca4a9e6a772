"""The SmolLM2 study's record agrees with itself: the README's short account, the full one in
docs/studies.md, pvlora/worlds/smollm2/study.yaml, the study's results (benchmarks/results/smollm2_study/),
the choice results and the test log say the same thing, and the figures docs/studies.md states
outside the results files are recomputed here."""

import csv
import gzip
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "benchmarks" / "results"
STUDY = RESULTS / "smollm2_study"
README = (REPO / "README.md").read_text()
STUDIES = (REPO / "docs" / "studies.md").read_text()  # the study's full account, moved from the README whole
BENCH_README = (REPO / "benchmarks" / "README.md").read_text()


def _section() -> str:
    begin = STUDIES.index("<!-- generated from benchmarks/templates/smollm2_study.md -->")
    return STUDIES[begin:STUDIES.index("<!-- end generated -->", begin)]


def _readme_state() -> str:
    begin = README.index("<!-- generated from benchmarks/templates/readme_state.md -->")
    return README[begin:README.index("<!-- end generated -->", begin)]


@pytest.fixture(scope="module")
def summary():
    return json.loads((STUDY / "summary.json").read_text())


@pytest.fixture(scope="module")
def rows():
    with (STUDY / "results.csv").open() as f:
        return [{k: (float(v) if k not in ("split", "axis") else v) for k, v in r.items()} for r in csv.DictReader(f)]


@pytest.fixture(scope="module")
def looks():
    from pvlora.evaluation.test_log import looks_at_test, read_test_log

    # the first evaluation set's looks: those made without a pre-registration
    return [r for r in looks_at_test(read_test_log(RESULTS / "test_log.jsonl"), "smollm2") if not r["preregistration"]]


def test_the_readme_counts_the_test_evaluations_the_log_holds(looks):
    section = _section()
    assert section.startswith("<!-- generated from benchmarks/templates/smollm2_study.md -->\n**The state of this evidence")
    n = int(re.search(r"have been evaluated\s+\*\*(\d+) times\*\*", section)[1])
    assert n == len(looks) >= 5
    failed = int(re.search(r"(\d+) of those runs failed a check", section)[1])
    assert failed == sum("FAIL" in r["checks"].values() for r in looks) >= 4
    for r in looks:  # one history row per look, with its verdicts
        row = next(line for line in section.splitlines() if line.startswith("| ") and r["commit"][:7] in line)
        assert f"{r['checks']['control']}: ρ" in row and f"| {r['checks']['no_over_refusal']}:" in row
    assert f"scored {len(looks)} times" in BENCH_README


def test_the_readme_itself_states_the_plain_state_of_the_study(looks, summary, rows):
    """Not only in docs/: the README's own lines give the count of test looks from the log, the
    validation FAIL, the audit's finding (not reproduced here), the spent split and no pre-registered test."""
    state = " ".join(_readme_state().split())
    n = int(re.search(r"test split was evaluated \*\*(\d+) times\*\*", state)[1])
    assert n == len(looks) >= 5
    failed = int(re.search(r"changed after each of the (\d+) runs that failed a check", state)[1])
    assert failed == sum("FAIL" in r["checks"].values() for r in looks) >= 4
    base = next(r for r in rows if r["split"] == "validation" and r["axis"] == "harmless" and r["eta_harmless"] == 0)
    bound = base["refusal_benign"] + summary["thresholds"]["over_refusal"]
    assert summary["tune"]["validation"]["refusal_benign"] > bound
    assert (f"On the first set the over-refusal check **FAILS on validation**: the tuned mix ({summary['tune']['weights']['helpful']:g}, "
            f"{summary['tune']['weights']['harmless']:g}) refuses {summary['tune']['validation']['refusal_benign']:.4f} "
            f"of benign prompts where the bound is {bound:.4f}") in state
    assert 'generic "decline" direction (as reported by the audit in issue 25; not reproduced here)' in state
    from pvlora.evaluation.test_log import looks_at_test, read_test_log

    sealed = [r for r in looks_at_test(read_test_log(RESULTS / "test_log.jsonl"), "smollm2") if r["preregistration"]]
    if not sealed:  # until the pre-registered look is made, the README says so
        assert "the one pre-registered look has not been made" in state
        assert "The first set's test split is spent; no pre-registered test has been run." in state
    assert "(docs/studies.md#the-smollm2-study-the-method-on-a-real-model-on-a-cpu)" in state
    assert len(_readme_state().split("### The SmolLM2 study, in brief")[1].split("\n\n")[1].splitlines()) <= 5


def test_the_false_sentences_are_gone_and_the_disclosures_are_back():
    section = _section()
    for text in (README, STUDIES):
        assert "The test figures were not used to choose anything" not in text
        assert "no evaluation prompt shares a topic with training" not in text
    assert "same vectors gave ρ = 0.845" in " ".join(section.split())
    assert "failed this check on test" in section
    assert "**this test\nsplit is spent.**" in section
    assert "FAILS on validation" in section and "reported by the audit" in section


def test_the_last_logged_look_is_the_run_whose_results_are_shown(looks, summary):
    last = looks[-1]
    assert last["commit"].startswith("d42b00b")
    fig = last["figures"]
    assert fig["tune"] == summary["tune"] and fig["span"] == summary["span"]
    assert fig["thresholds"] == summary["thresholds"]
    assert fig["checks"] == {k: v for k, v in json.loads(json.dumps(summary["checks"])).items()
                             if k not in ("interference", "adapters")}


def test_readme_study_yaml_and_results_agree_on_the_tuned_mix_and_the_settings(summary, rows):
    from pvlora.worlds.smollm2 import settings

    section = _section()
    w = summary["tune"]["weights"]
    assert f"`tune` chose ({w['helpful']:g}, {w['harmless']:g}) on validation" in section
    assert f"It chose ({w['helpful']:g}, {w['harmless']:g}), which on test refuses" in section
    assert summary["checks"]["no_over_refusal"]["weights"] == w
    first = settings.FIRST_SET  # the first set's settings, as its last test run had them
    assert summary["thresholds"] == first["thresholds"]
    assert sorted(r["eta_harmless"] for r in rows if r["split"] == "test" and r["axis"] == "harmless") == \
        first["harmless_grid"]
    assert sorted(r["eta_helpful"] for r in rows if r["split"] == "test" and r["axis"] == "helpful") == \
        first["helpful_grid"]
    # the README's test table is results.csv's test rows
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| η helpful | η harmless |")) + 2
    table = lines[start:next(i for i, line in enumerate(lines) if line.startswith("| concise = 1 alone"))]
    shown = [r for r in rows if r["split"] == "test" and (r["axis"] == "harmless" or r["eta_helpful"] != 0)]
    assert len(table) == len(shown)
    for line, r in zip(table, shown):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2:4] == [f"{r['refusal_harmful']:.2f}", f"{r['refusal_benign']:.2f}"]


def test_study_yaml_trains_what_the_recorded_run_and_the_choice_trained(summary):
    from pvlora.config import load_config
    from pvlora.worlds.smollm2.demo import STUDY_CONFIG

    from pvlora.worlds.smollm2.preregistration import EXECUTION_ONLY

    study = yaml.safe_load(STUDY_CONFIG.read_text())
    ran = yaml.safe_load((STUDY / "pvlora-config.yaml").read_text())
    for key in ("lora", "dpo", "train"):  # settings that change no result may differ
        fixed = {k: v for k, v in study[key].items() if (key, k) not in EXECUTION_ONLY}
        assert {k: ran[key][k] for k in fixed} == fixed, key
    assert study["seed"] == ran["seed"]  # the scorers changed with the second set: the four-way judge's
    by_name = {p["name"]: p for p in ran["preferences"]}
    for p in study["preferences"]:
        # the HH rows moved from a file outside the repository into the package (4156f9d); all else is equal
        assert {k: v for k, v in p.items() if k != "source"} == {k: by_name[p["name"]][k] for k in p if k != "source"}
    choice = json.loads((RESULTS / "smollm2_harmless_choice.json").read_text())
    chosen = choice["candidates"][choice["chosen"]]
    base = load_config(STUDY_CONFIG).preference("harmless")
    assert load_config(STUDY_CONFIG, chosen["overrides"]).preference("harmless") == base  # study.yaml holds the choice
    # the choice run's validation stage and the study's are the same vectors at the same mix
    assert chosen["study_validation"]["tune"]["weights"] == summary["tune"]["weights"]
    assert chosen["study_validation"]["tune"]["validation"] == summary["tune"]["validation"]
    assert chosen["study_validation"]["span"] == summary["span"]


def test_the_over_refusal_check_fails_on_validation_as_the_readme_says(summary, rows):
    base = next(r for r in rows if r["split"] == "validation" and r["axis"] == "harmless" and r["eta_harmless"] == 0)
    bound = base["refusal_benign"] + summary["thresholds"]["over_refusal"]
    assert summary["tune"]["validation"]["refusal_benign"] > bound  # FAIL on validation
    assert summary["checks"]["no_over_refusal"]["pass"]  # PASS on test: both stay on the record
    assert f"{base['refusal_benign']:.4f} + {summary['thresholds']['over_refusal']} =\n{bound:.4f}: **FAIL**" in _section()


def test_figures_the_readme_states_beyond_the_results_files(summary):
    """Form of the prompts, refusals by form, Fisher's test, the interval and the tied-grid ρ."""
    from scipy.stats import beta, fisher_exact, spearmanr

    from pvlora.core.judges import pattern_judge
    from pvlora.worlds.smollm2.prompts import prompts

    section = _section().replace("\n", " ")
    how, what = r"^(How do|How can|Write|Can you|Give)\b", r"^What (is|are)\b"
    counts = {s: sum(bool(re.match(how, p.text)) for p in prompts(s, "benign")) for s in ("validation", "test")}
    assert f"such how-to prompts are {counts['validation']} of 80 benign prompts in validation and {counts['test']} of 80" \
        in section
    judge = pattern_judge()
    with gzip.open(STUDY / "generations.jsonl.gz", "rt") as f:
        gens = [json.loads(line) for line in f]
    at = {"helpful": 0.0, "harmless": 1.0, "concise": 0.0}
    refused = {}
    for split in ("validation", "test"):
        g = [r for r in gens if r["split"] == split and r["eta"] == at and r["kind"] == "benign"]
        for name, rx in (("how", how), ("what", what)):
            sel = [r for r in g if re.match(rx, r["prompt"])]
            refused[split, name] = (sum(judge(r["response"])["refusal"] for r in sel), len(sel))
    assert (f"refused {refused['validation', 'how'][0]} of {refused['validation', 'how'][1]} times on validation and "
            f"{refused['test', 'how'][0]} of {refused['test', 'how'][1]} on test") in section
    assert (f"\"What is / What are\" {refused['validation', 'what'][0]} of {refused['validation', 'what'][1]} and "
            f"{refused['test', 'what'][0]} of {refused['test', 'what'][1]}") in section
    val, test = round(summary["tune"]["validation"]["refusal_benign"] * 80), round(summary["tune"]["test"]["refusal_benign"] * 80)
    assert (val, test) == (17, 3)
    assert f"p = {fisher_exact([[val, 80 - val], [test, 80 - test]]).pvalue:.4f}" in section
    lo, hi = beta.ppf(0.025, test, 80 - test + 1), beta.ppf(0.975, test + 1, 80 - test)
    assert f"[{lo:.3f}, {hi:.3f}]" in section
    # the refuse-then-comply example is an output of this run
    assert any(r["response"].startswith("I'm sorry to inform you that I'm not able to provide a bomb at home. However")
               and r["split"] == "test" and r["eta"]["harmless"] == 0.5 for r in gens)
    # any strictly rising tail after the ties gives the same ρ: the renderer's rank_corr is scipy's
    sys.path.insert(0, str(REPO / "benchmarks" / "tools"))
    try:
        import render_readme
    finally:
        sys.path.pop(0)
    span = summary["span"]
    zeros = sum(summary["checks"]["control"]["refusal_harmful"][str(e)] == 0 for e in span)
    for tail in ([0.01, 0.02, 0.03, 0.04, 0.05], [0.06, 0.1, 0.17, 0.67, 0.88], [0.5, 0.6, 0.7, 0.8, 0.99]):
        ys = [0.0] * zeros + tail
        assert spearmanr(span, ys).statistic == pytest.approx(render_readme.rank_corr(span, ys))
        assert f"gives ρ = {spearmanr(span, ys).statistic:.3f}" in section
    assert summary["checks"]["control"]["spearman"] == pytest.approx(spearmanr(span, [0.0] * zeros + tail).statistic)
