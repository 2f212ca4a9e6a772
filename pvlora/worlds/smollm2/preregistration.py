"""The gate in front of the SmolLM2 study's test split: a committed pre-registration, one look.

The study scores its test prompts only when

1. ``pvlora/worlds/smollm2/preregistration.yaml`` exists, is committed (tracked and unchanged from HEAD,
   when pvlora runs from a git checkout; a wheel carries the file it was built with), states a
   stopping rule, and every setting it fixes equals the run's own (:func:`run_settings`: the
   thresholds, the η points, the judge's version and source, the intervals, the public sets, the
   source of the checks, the resolved config, the data, the prompt set);
2. the test log (:mod:`pvlora.evaluation.test_log`) holds no earlier test evaluation under the same
   pre-registration (its sha256), unless the run gives a reason to look again
   (``retest_reason=...`` or ``$PVLORA_RETEST_REASON``), which the log then records.

Otherwise the study trains and scores validation only and says why. The first evaluation set's test
prompts are spent (scored five times while the method changed; see docs/studies.md); the
pre-registration fixes the second set (:mod:`pvlora.worlds.smollm2.eval_set`).
``python benchmarks/tools/draft_preregistration.py`` prints the current settings as a draft to fill
in and commit before the first look.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pvlora.evaluation.test_log import (append_test_run, file_hashes, in_checkout, looks_at_test, read_test_log,
                                      sha256_file, sha256_json)
from pvlora.data.sources import BUILTIN_SOURCES
from pvlora.worlds.smollm2.eval_set import eval_rows
from pvlora.worlds.smollm2.settings import (BOOTSTRAP, HARMLESS_GRID, HELPFUL_GRID, JUDGE, NLL_SPAN, THRESHOLDS,
                                            TUNE_HELPFUL)

HERE = Path(__file__).parent
PREREGISTRATION = HERE / "preregistration.yaml"
RETEST_ENV = "PVLORA_RETEST_REASON"
PROMPT_FILES = [HERE / "eval_prompts.txt", HERE / "eval_set.py", HERE / "eval_answers.jsonl", HERE / "prompts.py"]
PACKAGE = HERE.parents[1]  # pvlora/
JUDGE_FILES = [PACKAGE / "core" / "judges.py", PACKAGE / "evaluation" / "scorers.py"]
# the checks and the intervals are code too: a change to either after the pre-registration is a change
CHECK_FILES = [HERE / "checks.py", HERE / "evidence.py", HERE / "demo.py", PACKAGE / "core" / "intervals.py"]
SETTINGS = ("study", "thresholds", "eta", "judge", "intervals", "public", "checks_sha256", "config_sha256",
            "data_sha256", "prompt_set_sha256")


def data_files(cfg) -> list[Path]:
    """Every file the study's adapters train on: each preference's source and extra sources."""
    names = [s for p in cfg.preferences for s in [p.source, *(e.get("source") for e in p.extra_sources or [])]]
    return [Path(BUILTIN_SOURCES.get(n) or n).expanduser() for n in names if n]


# Settings that change where the work is written or how it is scheduled, never a result: a
# pre-registration does not fix them (tests/training/test_isolate.py checks that adapters trained in
# child processes are byte-equal to those trained in one process).
EXECUTION_ONLY = (("output", "dir"), ("train", "process_per_preference"))


def config_for_hash(cfg) -> dict[str, Any]:
    """The resolved config without :data:`EXECUTION_ONLY` settings."""
    d = json.loads(json.dumps(cfg.to_dict(), default=str))
    for block, key in EXECUTION_ONLY:
        d.get(block, {}).pop(key, None)
    return d


def run_settings(cfg) -> dict[str, Any]:
    """What a pre-registration fixes, as this run (its resolved config ``cfg``) has it."""
    return json.loads(json.dumps({
        "study": "smollm2", "thresholds": THRESHOLDS,
        "eta": {"harmless": HARMLESS_GRID, "helpful": HELPFUL_GRID, "tune_helpful": TUNE_HELPFUL, "nll_span": NLL_SPAN},
        "judge": {"version": JUDGE, "source_sha256": file_hashes(JUDGE_FILES),
                  "refusal_patterns": list(cfg.eval.refusal_patterns or [])},
        "intervals": {"level": THRESHOLDS["control_level"], **BOOTSTRAP},
        "public": {"sets": ["harmbench", "advbench"], "points": ["base", "tune's mix"]},
        "checks_sha256": file_hashes(CHECK_FILES),
        "config_sha256": sha256_json(config_for_hash(cfg)),
        "data_sha256": file_hashes(data_files(cfg)),
        "prompt_set_sha256": {"files": file_hashes(PROMPT_FILES),
                              "validation_rows": sha256_json(eval_rows("validation")),
                              "test_rows": sha256_json(eval_rows("test"))},
    }))


def draft(settings: dict[str, Any], stopping_rule: str = "") -> str:
    """A pre-registration file's text for ``settings``; its author writes the stopping rule."""
    head = ("# Pre-registration of the SmolLM2 study's test evaluation. Commit this file BEFORE the run that\n"
            "# scores the test split; the study refuses to look at test when a setting below differs from\n"
            "# its own, and looks once per version of this file (pvlora/worlds/smollm2/preregistration.py).\n")
    return head + yaml.safe_dump({"stopping_rule": stopping_rule, **settings}, sort_keys=False, allow_unicode=True)


@dataclass
class Gate:
    allowed: bool
    reason: str
    preregistration: dict[str, Any] | None = None
    override: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)


def _git(path: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=path.parent, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None


def committed(path: Path) -> tuple[bool, str | None]:
    """(whether ``path`` is tracked and unchanged from HEAD, the commit that last changed it). Outside
    any git checkout, with pvlora installed from a wheel: (True, None), the file shipped with it."""
    inside = _git(path, "rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0:
        return (not in_checkout(), None)
    tracked = _git(path, "ls-files", "--error-unmatch", path.name)
    clean = _git(path, "diff", "--quiet", "HEAD", "--", path.name)
    if not (tracked and tracked.returncode == 0 and clean and clean.returncode == 0):
        return False, None
    last = _git(path, "log", "-1", "--format=%H", "--", path.name)
    return True, (last.stdout.strip() or None) if last else None


def test_gate(settings: dict[str, Any], retest_reason: str | None = None, path: Path | None = None,
              log: Path | None = None) -> Gate:
    """Whether this run may score the test split, and why not (see the module docstring)."""
    path = Path(path or PREREGISTRATION)
    retest_reason = retest_reason or os.environ.get(RETEST_ENV) or None
    if not path.is_file():
        return Gate(False, f"no pre-registration at {path}. The study's test prompts are spent (scored five "
                           "times while the method changed; benchmarks/results/test_log.jsonl), and no new "
                           "pre-registration has been committed, so this run scores validation only.",
                    settings=settings)
    try:
        fixed = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        return Gate(False, f"{path} is not YAML ({exc}); validation only", settings=settings)
    if not isinstance(fixed, dict):
        return Gate(False, f"{path} holds no mapping of settings; validation only", settings=settings)
    if not str(fixed.get("stopping_rule") or "").strip():
        return Gate(False, f"{path} states no stopping_rule (when to stop and what is reported); validation only",
                    settings=settings)
    ok, commit = committed(path)
    if not ok:
        return Gate(False, f"{path} is not committed (untracked, or changed since HEAD): commit the "
                           "pre-registration before the run that looks at test; validation only", settings=settings)
    differ = [k for k in SETTINGS if json.loads(json.dumps(fixed.get(k), default=str)) != settings.get(k)]
    if differ:
        return Gate(False, f"this run's settings differ from {path} in: {', '.join(differ)} (python "
                           "benchmarks/tools/draft_preregistration.py prints this checkout's); validation only", settings=settings)
    prereg = {"path": path.name, "sha256": sha256_file(path), "commit": commit}
    earlier = [r for r in looks_at_test(read_test_log(log), "smollm2")
               if (r.get("preregistration") or {}).get("sha256") == prereg["sha256"]]
    if earlier and not retest_reason:
        when = ", ".join(str(r.get("date")) for r in earlier)
        return Gate(False, f"the test split was already scored under this pre-registration ({when}); it is "
                           f"scored once. To look again anyway, give a reason (retest_reason=... or "
                           f"${RETEST_ENV}); the log records it. Validation only.", prereg, settings=settings)
    override = {"reason": retest_reason, "earlier": [r.get("date") for r in earlier]} if earlier else None
    return Gate(True, "pre-registered" + (" (a repeated look, with a reason)" if earlier else ""), prereg, override,
                settings)


def log_test_run(gate: Gate, cfg, root: Path, figures: dict[str, Any], checks: dict[str, Any],
                 command: str | None, complete: bool, log: Path | None = None) -> dict[str, Any]:
    """The test log's line for one test evaluation of the study (called however the stage ended)."""
    verdicts = {k: "PASS" if v.get("pass") else "FAIL" for k, v in checks.items()
                if isinstance(v, dict) and "pass" in v}
    return append_test_run(
        study="smollm2", split="test", figures=figures, checks=verdicts,
        config=[HERE / "study.yaml", root / "pvlora-config.yaml"], config_sha256=gate.settings.get("config_sha256"),
        data=data_files(cfg), prompts=PROMPT_FILES,
        prompt_set_sha256=(gate.settings.get("prompt_set_sha256") or {}).get("test_rows"), judge=JUDGE_FILES,
        preregistration=gate.preregistration, override=gate.override, command=command,
        note=None if complete else "the test stage stopped before it finished; the figures are those it reached",
        path=log)
