"""Read raw rows from a Hub dataset, a local file, or a directory of files.

Yields ``(where, row)`` so every later error can name the file and the row.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pvlora.core.errors import DataError
from pvlora.artifacts.safe_read import parse_json

LOCAL_SUFFIXES = (".jsonl.gz", ".jsonl", ".json", ".parquet")


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in LOCAL_SUFFIXES if name.endswith(s)), None)


SHIPPED = Path(__file__).parent / "shipped"

# Built-in sources shipped with the package; a name here never goes to the Hub. The HH-RLHF rows
# (MIT, Anthropic; licence and source beside the file) ship so the SmolLM2 study runs from a bare
# clone or a wheel, offline; the SmolLM2 study's own pairs were built from the base's answers by
# pvlora/worlds/smollm2/make_data.py.
BUILTIN_SOURCES = {
    "hh-rlhf-harmless-base": SHIPPED / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz",
    "smollm2-helpful": Path(__file__).parent.parent / "worlds" / "smollm2" / "helpful_pairs.jsonl",
    "smollm2-concise": Path(__file__).parent.parent / "worlds" / "smollm2" / "concise_pairs.jsonl",
    "smollm2-borderline": Path(__file__).parent.parent / "worlds" / "smollm2" / "borderline_pairs.jsonl",
    "smollm2-harmful": Path(__file__).parent.parent / "worlds" / "smollm2" / "harmful_pairs.jsonl",
}


def iter_rows(source: str, split: str = "train", subset: str | None = None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of ``source``: a built-in name (BUILTIN_SOURCES), a local path that exists, or else a
    Hub dataset id."""
    path = BUILTIN_SOURCES.get(source) or Path(source).expanduser()
    if path.is_dir():
        yield from _iter_dir(path, split)
    elif path.exists():
        yield from _iter_file(path)
    elif source in BUILTIN_SOURCES:
        raise DataError(f"data source {source}: the packaged file {path} is missing; reinstall pvlora")
    elif source.startswith((".", "/", "~")) or _suffix(path):
        raise DataError(f"data source {source}: no such file or directory")
    else:
        yield from _iter_hub(source, split, subset)


def _iter_dir(path: Path, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    files = sorted(p for p in path.rglob("*") if p.is_file() and _suffix(p))
    if not files:
        raise DataError(f"data source {path}: directory holds no {', '.join(LOCAL_SUFFIXES)} file")
    # Hub-style layouts (train.jsonl, data/test-00000-of-00001.parquet): keep the requested split.
    for_split = [p for p in files if p.name.lower().startswith(split.lower())]
    for f in for_split or files:
        yield from _iter_file(f)


def _iter_file(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    suffix = _suffix(path)
    if suffix is None:
        raise DataError(f"data source {path}: unsupported file type; use one of {', '.join(LOCAL_SUFFIXES)}")
    if suffix == ".parquet":
        yield from _iter_parquet(path)
    elif suffix == ".json":
        yield from _iter_json_array(path)
    else:
        yield from _iter_jsonl(path, gz=suffix == ".jsonl.gz")


def _iter_jsonl(path: Path, gz: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    # Our own reader rather than datasets' json builder: a malformed line must be reported with its
    # line number, and datasets' error names neither the line nor the file.
    opener = gzip.open if gz else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                row = parse_json(line, path, DataError, line=lineno, fix="; fix or remove that line")
                if not isinstance(row, dict):
                    raise DataError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
                yield where, row
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _iter_json_array(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    data = parse_json(text, path, DataError)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON array of objects (or .jsonl with one object per line)")
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}[{i}]: expected a JSON object, got {type(row).__name__}")
        yield f"{path}[{i}]", row


def _iter_parquet(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    from datasets import Dataset

    try:
        ds = Dataset.from_parquet(str(path))
    except Exception as exc:  # pyarrow raises several unrelated types for a broken file
        raise DataError(f"cannot read {path}: {exc}") from None
    for i, row in enumerate(ds):
        yield f"{path}[row {i}]", row


def _iter_hub(repo_id: str, split: str, subset: str | None) -> Iterator[tuple[str, dict[str, Any]]]:
    from datasets import load_dataset

    try:
        ds = load_dataset(repo_id, subset, split=split)
    except Exception as exc:  # offline, unknown id, unknown split...
        raise DataError(
            f"cannot load Hub dataset {repo_id!r} (subset={subset}, split={split}): {exc}. "
            "Check the id, or point source: at a local .jsonl/.parquet file."
        ) from None
    name = f"{repo_id}{'/' + subset if subset else ''}:{split}"
    for i, row in enumerate(ds):
        yield f"{name}[row {i}]", row
