"""The test log: append-only, every line with its hashes, a failed write leaves the file as it was;
and the committed log holds the five test runs rebuilt from git."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pvlora.core.errors import ConfigError
from pvlora.evaluation import test_log as tl

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def log(tmp_path, monkeypatch):
    path = tmp_path / "results" / "test_log.jsonl"
    monkeypatch.setenv(tl.LOG_ENV, str(path))
    return path


def _append(tmp_path, **kw):
    cfg = tmp_path / "study.yaml"
    cfg.write_text("seed: 0\n")
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"chosen": "a", "rejected": "b"}\n')
    return tl.append_test_run(study="toy", figures={"refusal_harmful": 0.5, **kw.pop("figures", {})},
                              checks={"control": "PASS"}, config=[cfg], config_sha256="c" * 64, data=[data],
                              prompts=[tmp_path / "no-such-prompts.txt"], prompt_set_sha256="p" * 64,
                              judge=[Path(tl.__file__).parents[1] / "core" / "judges.py"], **kw)


def test_the_env_variable_names_the_log_and_the_repository_is_the_default(log, monkeypatch):
    assert tl.log_path() == log
    monkeypatch.delenv(tl.LOG_ENV)
    monkeypatch.setenv("PVLORA_CACHE", str(log.parent / "cache"))
    if tl.in_checkout():  # runs in the repository write to its log
        assert tl.log_path() == tl.REPO_LOG == REPO / "benchmarks" / "results" / "test_log.jsonl"
    else:  # an installed wheel: the user's cache folder
        assert tl.log_path() == log.parent / "cache" / "test_log.jsonl"


def test_a_line_holds_date_commit_split_hashes_and_every_figure(tmp_path, log):
    rec = _append(tmp_path, figures={"rows": [{"eta": 1.0, "refusal_benign": float("nan")}]})
    line = json.loads(log.read_text())
    assert line == json.loads(json.dumps(rec)) and line["split"] == "test" and line["study"] == "toy"
    assert line["date"].endswith("+00:00")  # UTC, ISO 8601
    assert line["commit"] is None or len(line["commit"]) == 40
    h = line["hashes"]
    assert h["config"][f"{tmp_path}/study.yaml"] == tl.sha256_file(tmp_path / "study.yaml")
    assert h["config"]["resolved"] == "c" * 64 and h["prompts"]["split_rows"] == "p" * 64
    assert h["data"][f"{tmp_path}/pairs.jsonl"] == tl.sha256_file(tmp_path / "pairs.jsonl")
    assert h["prompts"][f"{tmp_path}/no-such-prompts.txt"] is None  # a missing file: null, not a crash
    assert h["judge"] == {"pvlora/core/judges.py": tl.sha256_file(Path(tl.__file__).parents[1] / "core" / "judges.py")}
    assert line["checks"] == {"control": "PASS"}
    assert line["figures"]["rows"][0]["refusal_benign"] == "nan"  # kept, as text: JSON has no NaN


def test_a_line_keeps_the_checkout_the_process_started_from(tmp_path, log, monkeypatch):
    """A long run's line is written long after it starts: when HEAD moved in between, the line holds
    both the state the process started from and the state at writing."""
    start = {"commit": "a" * 40, "dirty": False}
    monkeypatch.setattr(tl, "AT_START", start)
    monkeypatch.setattr(tl, "git_state", lambda root=tl.REPO_ROOT: {"commit": "b" * 40, "dirty": True})
    _append(tmp_path)
    line = json.loads(log.read_text())
    assert line["at_start"] == start and (line["commit"], line["dirty"]) == ("b" * 40, True)


def test_the_start_state_is_the_checkout_s_at_import():
    assert tl.AT_START.keys() == {"commit", "dirty"}
    if tl.in_checkout():
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
        assert tl.AT_START["commit"] in (head, None)


def test_appending_keeps_every_earlier_line_byte_for_byte(tmp_path, log):
    _append(tmp_path)
    first = log.read_bytes()
    _append(tmp_path, note="second")
    _append(tmp_path, override={"reason": "third"})
    now = log.read_bytes()
    assert now.startswith(first) and now.count(b"\n") == 3
    assert [r["note"] for r in tl.read_test_log()] == [None, "second", None]
    assert tl.read_test_log()[2]["override"] == {"reason": "third"}


def test_a_failing_write_never_truncates_the_log(tmp_path, log, monkeypatch):
    _append(tmp_path)
    before = log.read_bytes()
    class Unprintable:
        def __str__(self):
            raise ValueError("cannot be written")

    with pytest.raises(ValueError):  # a figure that cannot be serialised: the file is never opened
        _append(tmp_path, figures={"bad": Unprintable()})
    assert log.read_bytes() == before

    def broken_write(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tl.os, "write", broken_write)
    with pytest.raises(OSError):
        _append(tmp_path)
    monkeypatch.undo()
    assert log.read_bytes() == before


def test_a_line_cut_short_stays_and_the_next_line_starts_on_its_own(tmp_path, log):
    _append(tmp_path)
    with log.open("ab") as f:
        f.write(b'{"split": "test", "cut')  # an earlier write that died half way
    before = log.read_bytes()
    tl.write_line('{"split": "test", "note": "after"}\n', log)
    assert log.read_bytes() == before + b'\n{"split": "test", "note": "after"}\n'
    with pytest.raises(ConfigError, match=r"test_log.jsonl:2: not a JSON record"):
        tl.read_test_log(log)  # evidence is never skipped silently


def test_the_log_is_opened_for_appending_only(tmp_path, log, monkeypatch):
    flags = []
    real_open = os.open

    def spy(path, f, *a):
        flags.append(f)
        return real_open(path, f, *a)

    monkeypatch.setattr(tl.os, "open", spy)
    _append(tmp_path)
    assert flags and all(f & os.O_APPEND and not f & os.O_TRUNC for f in flags)


def test_git_state_outside_a_checkout_is_null(tmp_path):
    assert tl.git_state(tmp_path) == {"commit": None, "dirty": None}


def test_the_committed_log_holds_the_five_runs_rebuilt_from_git():
    records = tl.read_test_log(tl.REPO_LOG)
    rebuilt = [r for r in records if r.get("source") == "reconstructed from git"]
    assert [r["commit"][:7] for r in rebuilt] == ["c975134", "61f5821", "25bf65a", "c7f7a6f", "d42b00b"]
    assert records[:5] == rebuilt  # they come first, in order
    assert [r["checks"] for r in rebuilt] == [
        {"control": "FAIL", "no_over_refusal": "FAIL"}, {"control": "FAIL", "no_over_refusal": "FAIL"},
        {"control": "PASS", "no_over_refusal": "FAIL"}, {"control": "PASS", "no_over_refusal": "FAIL"},
        {"control": "PASS", "no_over_refusal": "PASS"}]
    for r in rebuilt:
        assert r["split"] == "test" and r["study"] == "smollm2" and r["figures"]["test_rows"]
        assert all(row["split"] == "test" for row in r["figures"]["test_rows"])
        assert set(r["hashes"]) >= {"config", "data", "prompts", "judge"}
        # a file outside the tree is null, with the reason beside it
        assert all(r["hashes"]["data"][k] is None for k in r["hashes"]["data_not_recoverable"])
        assert r["changed_after"] and all(len(c["commit"]) == 7 for c in r["changed_after"])
    # the same harmless vector in runs 2-4: the control check flipped with the grid, not the vector
    assert len({r["figures"]["harmless_vector_norm"] for r in rebuilt[1:4]}) == 1
    assert rebuilt[1]["figures"]["checks"]["control"]["spearman"] < 0.9 < rebuilt[2]["figures"]["checks"]["control"]["spearman"]


def test_the_rebuilt_lines_are_what_git_gives():
    shallow = subprocess.run(["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True, text=True)
    have = subprocess.run(["git", "cat-file", "-e", "d42b00b^{commit}"], cwd=REPO, capture_output=True)
    if shallow.returncode != 0 or shallow.stdout.strip() == "true" or have.returncode != 0:
        pytest.skip("needs the repository's git history")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / "tools" / "reconstruct_test_log.py"), "--check"], cwd=REPO,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
