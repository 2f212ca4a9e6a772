"""The command line: every stable command is listed, and bad input exits 2 with one clear line."""

import subprocess
import sys

import pytest

from pvlora.cli import main

STABLE = ["demo", "data", "train", "extract", "compose", "inspect", "eval", "sweep", "tune", "push", "pull", "export", "serve"]


def test_help_lists_every_stable_command():
    out = subprocess.run([sys.executable, "-m", "pvlora.cli", "--help"], capture_output=True, text=True).stdout
    for cmd in STABLE:
        assert f"    {cmd} " in out, cmd


@pytest.mark.parametrize("argv, needle", [
    (["extract", "--positive", "a", "--out", "b"], "--negative is required"),
    (["compose", "--base", "tiny", "--vector", "novalue", "--out", "x"], "expected NAME=ETA"),
    (["data", "--preference", "nope"], "preference 'nope' is not in the config"),
    (["train", "--set", "dpo.betta=0.1"], "dpo.betta: not a trl.DPOConfig field"),
    (["inspect", "/no/such/dir"], "/no/such/dir: no such directory"),
    (["push", "/no/such/dir", "--repo-id", "a/b", "--dry-run"], "/no/such/dir: not a directory"),
])
def test_bad_input_is_one_clear_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_data_preview_and_export(tmp_path, capsys):
    out = tmp_path / "pairs.jsonl"
    assert main(["data", "--preference", "harmless", "--direction", "negative", "--limit", "1", "--export", str(out)]) == 0
    text = capsys.readouterr().out
    assert "harmless (negative) from toy" in text and "--- pair 1" in text
    n = len(out.read_text().splitlines())
    assert n > 100
    assert main(["data", "--preference", "harmless", "--export", str(out)]) == 2  # no silent overwrite
    assert len(out.read_text().splitlines()) == n


def test_demo_smollm2_refuses_missing_hh_rows_before_any_work(tmp_path, capsys):
    from pvlora.cli import main

    out = tmp_path / "study"
    assert main(["demo", "--base", "smollm2", "--out", str(out), "--hh-rlhf", str(tmp_path / "missing.jsonl.gz")]) == 2
    err = capsys.readouterr().err
    assert "missing.jsonl.gz" in err and "--hh-rlhf" in err
    assert not out.exists() or not any(out.iterdir())
    assert main(["demo", "--hh-rlhf", "x.jsonl"]) == 2  # the tiny demo has its own data
    assert "--base smollm2" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["eval", "--weights", "helpful=1"], ["tune", "--maximize", "compliance_benign"]])
def test_eval_and_tune_out_refuse_an_existing_file_before_any_work(command, tmp_path, capsys):
    out = tmp_path / "scores.json"
    out.write_text("keep me")
    assert main([*command, "--vectors", str(tmp_path / "no-vectors"), "--out", str(out)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err and out.read_text() == "keep me"
    assert main([*command, "--vectors", str(tmp_path / "no-vectors"), "--out", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_the_command_line_is_recorded_only_when_the_caller_passes_it(random_base_dir, two_vectors, tmp_path):
    import json
    from pathlib import Path

    src = Path(two_vectors["helpful"]).parent  # the fixture's adapters, beside its vectors
    lib = json.loads((Path(two_vectors["helpful"]) / "pvlora.json").read_text())
    assert "command" not in lib  # a library call records no command line (no hidden global)
    argv = ["extract", "--positive", str(src / "helpful-pos"), "--negative", str(src / "helpful-neg"),
            "--out", str(tmp_path / "v"), "--preference", "helpful"]
    assert main(argv) == 0
    cli = json.loads((tmp_path / "v" / "pvlora.json").read_text())
    assert cli["command"].startswith("pvlora extract --positive") and cli["command"].endswith("--preference helpful")
