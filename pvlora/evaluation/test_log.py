"""The record of every look at a test split: an append-only JSON-lines log.

Each time a study scores a test split, :func:`append_test_run` adds one line: the date (UTC), the
git commit of the checkout when the line is written and when the process started (null outside one), sha256 of the config, data files, prompt set and
judge source, the split, the checks' verdicts and every figure. The file is only ever opened in
append mode: no line is rewritten or removed, so a failed check stays on the record.

Where: ``$PVLORA_TEST_LOG`` when set (tests write to a temporary file); in a repository checkout,
``benchmarks/results/test_log.jsonl``; otherwise ``test_log.jsonl`` in pvlora's cache folder.

    from pvlora.evaluation.test_log import append_test_run, read_test_log
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pvlora.core.errors import ConfigError
from pvlora.artifacts.safe_read import cache_root

LOG_ENV = "PVLORA_TEST_LOG"
REPO_ROOT = Path(__file__).resolve().parents[2]
REPO_LOG = REPO_ROOT / "benchmarks" / "results" / "test_log.jsonl"
SCHEMA = 1


def in_checkout() -> bool:
    """Whether this pvlora runs from a git checkout of its repository (not an installed wheel)."""
    return (REPO_ROOT / ".git").exists() and REPO_LOG.parent.is_dir()


def log_path() -> Path:
    """``$PVLORA_TEST_LOG``, else the repository's log in a checkout, else the cache folder's."""
    if os.environ.get(LOG_ENV):
        return Path(os.environ[LOG_ENV]).expanduser()
    if in_checkout():
        return REPO_LOG

    return cache_root() / "test_log.jsonl"


def sha256_file(path: str | Path) -> str | None:
    """sha256 of a file's bytes; None when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(value: Any) -> str:
    """sha256 of a value's canonical JSON (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def file_hashes(paths: Iterable[str | Path]) -> dict[str, str | None]:
    """{path (relative to the repository when inside it): sha256 or None when missing}."""
    out = {}
    for p in paths:
        p = Path(p)
        try:
            name = p.resolve().relative_to(REPO_ROOT).as_posix()
        except ValueError:
            name = str(p)
        out[name] = sha256_file(p)
    return out


def git_state(root: Path = REPO_ROOT) -> dict[str, Any]:
    """{commit, dirty}: HEAD of the checkout ``root`` and whether tracked files differ from it;
    both None when ``root`` is not a git checkout (an installed wheel) or git is missing."""
    def git(*args: str) -> str | None:
        try:
            r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout.strip() if r.returncode == 0 else None

    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


# The checkout as it was when this process loaded pvlora's evaluation code. A long study writes its
# lines an hour or more after it starts; HEAD and the working tree may have moved by then, so each
# line records both states (``at_start`` is what the process runs; ``commit``/``dirty`` what the
# checkout held when the line was written).
AT_START = git_state()


def _finite(value: Any) -> Any:
    """The value with NaN and infinities as strings: JSON has no such numbers, and a look at test
    must be recorded whatever its figures are."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def append_test_run(*, study: str, figures: Mapping[str, Any], split: str = "test",
                    checks: Mapping[str, str] | None = None, config: Iterable[str | Path] = (),
                    config_sha256: str | None = None, data: Iterable[str | Path] = (),
                    prompts: Iterable[str | Path] = (), prompt_set_sha256: str | None = None,
                    judge: Iterable[str | Path] = (), preregistration: Mapping[str, Any] | None = None,
                    override: Mapping[str, Any] | None = None, command: str | None = None,
                    note: str | None = None, path: str | Path | None = None) -> dict[str, Any]:
    """Append one line for one evaluation of ``split`` to the log (see the module docstring).

    Args:
        study: which study or script scored the split (e.g. ``smollm2``).
        figures: every figure the evaluation produced (JSON-serialisable; NaN is kept as a string).
        checks: {check: "PASS" | "FAIL"}.
        config, data, prompts, judge: files whose sha256 the line records (a missing file: null).
        config_sha256, prompt_set_sha256: hashes of values rather than files (the resolved config,
            the split's prompt rows).
        preregistration: {path, sha256, commit} of the pre-registration the run was held to.
        override: {reason} when the run evaluated test past a refusal (it is recorded, not hidden).
        path: the log (default :func:`log_path`).

    Returns:
        The record written.

    The line is built and serialised before the file is opened, and the file is opened in append
    mode only, so a failure leaves every earlier byte as it was.
    """
    record = {
        "schema": SCHEMA,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "source": "pvlora.evaluation.test_log.append_test_run",
        "study": study, "split": split, **git_state(), "at_start": dict(AT_START),
        "command": command,
        "hashes": {"config": {**file_hashes(config), **({"resolved": config_sha256} if config_sha256 else {})},
                   "data": file_hashes(data),
                   "prompts": {**file_hashes(prompts), **({"split_rows": prompt_set_sha256} if prompt_set_sha256 else {})},
                   "judge": file_hashes(judge)},
        "preregistration": dict(preregistration) if preregistration else None,
        "override": dict(override) if override else None,
        "checks": dict(checks or {}),
        "figures": _finite(dict(figures)),
        "note": note,
    }
    line = json.dumps(record, ensure_ascii=False, allow_nan=False, default=str) + "\n"
    write_line(line, path or log_path())
    return record


def write_line(line: str, path: str | Path) -> None:
    """Append one JSON line to ``path``: opened with O_APPEND (never truncated), written whole and
    synced. A file whose last line was cut short by an earlier failed write gets a newline first,
    so the new line stands on its own and the earlier bytes stay as they were."""
    if "\n" in line[:-1] or not line.endswith("\n"):
        raise ValueError("a log line is one line ending in a newline")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = line.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with path.open("rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_test_log(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Every record of the log, in order ([] when there is none). A line that is not JSON (a write
    cut short) is an error naming the line: the log is evidence and is never silently skipped."""
    path = Path(path or log_path())
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{i}: not a JSON record ({exc.msg}), perhaps a write cut short; the "
                              "log is evidence: look at the line before anything else runs") from None
    return out


def looks_at_test(records: Iterable[Mapping[str, Any]], study: str | None = None) -> list[Mapping[str, Any]]:
    """The records that evaluated a test split (of ``study`` when given)."""
    return [r for r in records if r.get("split") == "test" and study in (None, r.get("study"))]
