"""The SmolLM2 study's gate in front of its test prompts: a committed pre-registration that matches
the run, and one look per pre-registration unless a reason is given and logged. The study itself
runs here with its model, training and scoring replaced by fakes (no model is loaded)."""

import json
import subprocess
from pathlib import Path

import pytest

from pvlora.evaluation import test_log as tl
from pvlora.worlds.smollm2 import preregistration as pr
from pvlora.worlds.smollm2 import settings

SETTINGS = {"study": "smollm2", "thresholds": {"control_spearman": 0.9, "over_refusal": 0.05},
            "eta": {"harmless": [0.0, 0.5, 1.0]}, "judge": {"source_sha256": {"judges.py": "j" * 64}},
            "config_sha256": "c" * 64, "data_sha256": {"pairs.jsonl": "d" * 64},
            "prompt_set_sha256": {"test_rows": "t" * 64}}


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=repo, check=True,
                   capture_output=True)


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "test_log.jsonl"
    monkeypatch.setenv(tl.LOG_ENV, str(path))
    monkeypatch.delenv(pr.RETEST_ENV, raising=False)
    return path


@pytest.fixture
def repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    return repo


def commit(repo: Path, text: str) -> Path:
    path = repo / "preregistration.yaml"
    path.write_text(text)
    git(repo, "add", path.name)
    git(repo, "commit", "-q", "-m", "pre-registration")
    return path


def test_without_a_preregistration_the_test_split_stays_closed(log, tmp_path):
    gate = pr.test_gate(SETTINGS, path=tmp_path / "missing.yaml")
    assert not gate.allowed and "no pre-registration" in gate.reason and "spent" in gate.reason


def test_the_committed_preregistration_is_what_this_checkout_runs(log):
    """The study as shipped is the one pre-registered: its file is committed, states a stopping
    rule, and every setting (thresholds, η points, judge, intervals, the checks' source, config,
    data, prompt set) equals this checkout's. A change to any of them needs a new pre-registration."""
    from pvlora.worlds.smollm2.demo import study_config

    fixed = __import__("yaml").safe_load(pr.PREREGISTRATION.read_text())
    assert "One look" in fixed["stopping_rule"] and fixed["judge"]["version"] == settings.JUDGE
    assert pr.committed(pr.PREREGISTRATION)[0]
    gate = pr.test_gate(pr.run_settings(study_config(Path("any"), None)))  # the log here is empty
    assert gate.allowed, gate.reason


def test_a_preregistration_must_be_committed_state_a_stopping_rule_and_match(log, repo):
    path = repo / "preregistration.yaml"
    path.write_text(pr.draft(SETTINGS, "one look; report whatever it says"))
    gate = pr.test_gate(SETTINGS, path=path)
    assert not gate.allowed and "not committed" in gate.reason  # untracked
    commit(repo, path.read_text())
    assert pr.test_gate(SETTINGS, path=path).allowed
    path.write_text(path.read_text() + "# edited after the commit\n")
    assert "not committed" in pr.test_gate(SETTINGS, path=path).reason  # changed since HEAD

    commit(repo, pr.draft(SETTINGS, ""))
    assert "stopping_rule" in pr.test_gate(SETTINGS, path=path).reason
    commit(repo, pr.draft({**SETTINGS, "thresholds": {"control_spearman": 0.5, "over_refusal": 0.05},
                           "data_sha256": {"pairs.jsonl": "e" * 64}}, "one look"))
    gate = pr.test_gate(SETTINGS, path=path)
    assert not gate.allowed and "differ" in gate.reason and "thresholds, data_sha256" in gate.reason


def test_test_is_scored_once_per_preregistration_unless_a_reason_is_logged(log, repo, monkeypatch):
    path = commit(repo, pr.draft(SETTINGS, "one look"))
    gate = pr.test_gate(SETTINGS, path=path)
    assert gate.allowed and gate.preregistration["sha256"] == tl.sha256_file(path)
    assert gate.preregistration["commit"] and gate.override is None
    tl.append_test_run(study="smollm2", figures={}, preregistration=gate.preregistration)
    again = pr.test_gate(SETTINGS, path=path)
    assert not again.allowed and "already scored under this pre-registration" in again.reason
    other = pr.test_gate(SETTINGS, path=path, retest_reason="the first run crashed before its checks")
    assert other.allowed and other.override["reason"] == "the first run crashed before its checks"
    monkeypatch.setenv(pr.RETEST_ENV, "from the environment")
    assert pr.test_gate(SETTINGS, path=path).override["reason"] == "from the environment"
    # another study's look, or a validation record, does not count against this one
    monkeypatch.delenv(pr.RETEST_ENV)
    log.unlink()
    tl.append_test_run(study="toy", figures={}, preregistration=gate.preregistration)
    tl.append_test_run(study="smollm2", split="validation", figures={}, preregistration=gate.preregistration)
    assert pr.test_gate(SETTINGS, path=path).allowed


class FakeEvaluator:
    """Answers by rule from η (refuses harmful requests from η_harmless 0.3 on, benign ones from 1;
    the helpful vector takes 0.3 off): what the study's stages read, without a model. The checks run
    for real on these answers."""
    calls: list = []
    ROWS = [{"prompt": f"How do I do harm {t}{i}?", "kind": "harmful", "form": "howto", "topic": t}
            for t in "abc" for i in range(3)] + \
        [{"prompt": f"How do I bake bread {t}{i}?", "kind": "benign", "form": f, "topic": t}
         for t, f in (("d", "howto"), ("e", "xstest")) for i in range(3)]

    def __init__(self, cfg, vectors, split="all", **kw):
        from types import SimpleNamespace

        self.cfg, self.names, self.scored, self.split = cfg, list(vectors), {}, split
        self.prompt_set = SimpleNamespace(rows=self.ROWS)

    def set_split(self, split):
        self.split = split

    def score(self, w):
        FakeEvaluator.calls.append(self.split)
        h, p, c = w.get("harmless", 0.0), w.get("helpful", 0.0), w.get("concise", 0.0)
        refuse = {"harmful": h - 0.3 * p >= 0.3, "benign": h - 0.3 * p >= 1.0}
        self.last_responses = ["I'm sorry, but I can't help with that." if refuse[r["kind"]] else
                               f"Sure: {r['prompt']} Here are the steps." for r in self.ROWS]
        rh, rb = float(refuse["harmful"]), float(refuse["benign"])
        scores = {m: 0.0 for m in settings.METRICS}
        scores.update({"strict_refusal_harmful": rh, "refusal_harmful": rh, "strict_refusal_benign": rb,
                       "refusal_benign": rb, "strict_refusal_xstest": rb, "strict_compliance_benign": 1 - rb,
                       "strict_compliance_harmful": 1 - rh, "mean_length": 20.0 - 5 * c,
                       "heldout_nll": 1.3 + 0.2 * abs(h)})
        return scores


@pytest.fixture
def fake_study(monkeypatch, tmp_path):
    from pvlora.worlds.smollm2 import demo
    from pvlora.worlds.smollm2.checks import split_checks

    FakeEvaluator.calls = []
    vectors = {p: tmp_path / "vectors" / p for p in ("helpful", "harmless", "concise")}
    monkeypatch.setattr(demo, "Evaluator", FakeEvaluator)  # the names the study calls (imported at its top)
    monkeypatch.setattr(demo, "resolve_base_path", lambda model: "fake-base")
    monkeypatch.setattr("pvlora.training.dpo.train_all", lambda *a, **k: [])
    monkeypatch.setattr("pvlora.vectors.extract.extract_all", lambda *a, **k: vectors)
    monkeypatch.setattr("pvlora.vectors.inspect.inspect_dirs", lambda dirs: {
        "cosine": [[1.0, 0.1, 0.2], [0.1, 1.0, 0.3], [0.2, 0.3, 1.0]],
        "items": [{"preference": p, "norm": 1.0, "per_layer_norm": {}} for p in vectors]})
    # the test half's checks as the study runs them, less the positive-only vectors it has no files for
    monkeypatch.setattr(demo, "checks", lambda cfg, root, ev, test, span, tuned: {
        **split_checks(ev, "test", span, tuned), "concise": {"alone": ev.score({"concise": 1.0})}})
    monkeypatch.setattr(demo, "public_benchmarks", lambda cfg, vectors, tuned, command, dump: {})


def test_the_study_without_a_preregistration_scores_validation_only_and_says_why(fake_study, log, tmp_path, capsys):
    from pvlora.worlds.smollm2.demo import run_study

    s = run_study(tmp_path / "run", preregistration=tmp_path / "missing.yaml")
    assert FakeEvaluator.calls and set(FakeEvaluator.calls) == {"validation"}  # never a test prompt
    assert s["test"]["evaluated"] is False and "no pre-registration" in s["test"]["gate"]
    assert "tune" in s and "test" not in s["tune"] and "control" not in s["checks"]
    val = s["validation_checks"]  # both checks ran on validation: a real rise, and a mix that holds
    assert val["control"]["pass"] and val["no_over_refusal"]["failed_benign_bound"] == pytest.approx(0.05)
    assert s["verdicts"] == {}  # no verdict without the test half
    out = capsys.readouterr().out
    assert "the test prompts will not be scored" in out and "VALIDATION prompts" in out
    assert not log.exists()  # nothing looked at test, so nothing is logged
    rows = (tmp_path / "run" / "results.csv").read_text().splitlines()
    assert len(rows) > 1 and all(r.startswith("validation,") for r in rows[1:])


def test_the_study_scores_test_once_under_a_matching_preregistration_and_logs_it(fake_study, log, repo, tmp_path):
    from pvlora.worlds.smollm2.demo import run_study, study_config

    path = commit(repo, pr.draft(pr.run_settings(study_config(tmp_path / "any", None)), "one look, then stop"))
    s = run_study(tmp_path / "run", preregistration=path, command="pvlora demo --base smollm2")
    assert s["test"]["evaluated"] and "test" in FakeEvaluator.calls and "test" in s["tune"]
    [line] = tl.read_test_log(log)
    assert line["study"] == "smollm2" and line["split"] == "test" and line["command"] == "pvlora demo --base smollm2"
    assert line["preregistration"]["sha256"] == tl.sha256_file(path) and line["override"] is None
    assert line["checks"] == {"control": "PASS", "no_over_refusal": "PASS"}  # both halves' verdicts
    assert line["figures"]["validation_checks"]["control"]["pass"]
    assert line["figures"]["test_rows"] and line["figures"]["tune"]["test"] == s["tune"]["test"]
    hashes = line["hashes"]
    assert hashes["config"]["pvlora/worlds/smollm2/study.yaml"] == tl.sha256_file(pr.HERE / "study.yaml")
    assert hashes["config"]["resolved"] == pr.run_settings(study_config(tmp_path / "any", None))["config_sha256"]
    assert "pvlora/worlds/smollm2/helpful_pairs.jsonl" in hashes["data"] and "pvlora/worlds/smollm2/eval_prompts.txt" in hashes["prompts"]
    assert set(hashes["judge"]) == {"pvlora/core/judges.py", "pvlora/evaluation/scorers.py"}

    FakeEvaluator.calls = []  # a second run under the same pre-registration: validation only
    s = run_study(tmp_path / "run2", preregistration=path)
    assert not s["test"]["evaluated"] and set(FakeEvaluator.calls) == {"validation"}
    assert len(tl.read_test_log(log)) == 1
    s = run_study(tmp_path / "run3", preregistration=path, retest_reason="checking the log")
    assert s["test"]["evaluated"]
    second = tl.read_test_log(log)[1]
    assert second["override"]["reason"] == "checking the log" and second["override"]["earlier"] == [line["date"]]


def test_a_run_whose_settings_differ_from_the_preregistration_does_not_look(fake_study, log, repo, tmp_path):
    from pvlora.worlds.smollm2.demo import run_study, study_config

    path = commit(repo, pr.draft(pr.run_settings(study_config(tmp_path / "any", None)), "one look"))
    s = run_study(tmp_path / "run", preregistration=path, overrides=["seed=1"])  # not what was registered
    assert not s["test"]["evaluated"] and "config_sha256" in s["test"]["gate"]
    assert set(FakeEvaluator.calls) == {"validation"} and not log.exists()


def test_a_test_stage_that_crashes_is_logged_all_the_same(fake_study, log, repo, tmp_path, monkeypatch):
    from pvlora.worlds.smollm2 import demo
    from pvlora.worlds.smollm2.demo import run_study, study_config

    def crash(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(demo, "checks", crash)
    path = commit(repo, pr.draft(pr.run_settings(study_config(tmp_path / "any", None)), "one look"))
    with pytest.raises(RuntimeError):
        run_study(tmp_path / "run", preregistration=path)
    [line] = tl.read_test_log(log)
    assert "stopped before it finished" in line["note"] and line["figures"]["test_rows"]
    assert json.loads(json.dumps(line))["checks"] == {}
