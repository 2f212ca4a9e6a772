"""Read raw rows from a Hub dataset, a local file, or a directory of files.

Yields ``(where, row)`` so every later error can name the file and the row.
"""

from __future__ import annotations

import gzip
import re
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


# Split names a Hub-style layout uses (train.jsonl, data/test-00000-of-00001.parquet, validation/0.jsonl)
SPLIT_NAMES = ("train", "validation", "valid", "val", "dev", "test", "eval")


def _split_of(rel: Path, split: str) -> str | None:
    """The split a file belongs to by its name or a folder's (``split`` first, then SPLIT_NAMES): a
    part that starts with the split's name, not followed by a letter (``training_notes`` is none)."""
    for name in (split.lower(), *SPLIT_NAMES):
        if any(re.match(rf"{re.escape(name)}(?![a-z])", part.lower()) for part in rel.parts):
            return name
    return None


def _iter_dir(path: Path, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    # Hidden files and folders (.ipynb_checkpoints/, .cache/, .train.jsonl.swp) are copies or leftovers.
    files = sorted(p for p in path.rglob("*") if p.is_file() and _suffix(p)
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise DataError(f"data source {path}: directory holds no {', '.join(LOCAL_SUFFIXES)} file")
    # Hub-style layouts: keep the requested split; files named for other splits are never read in
    # its place. A directory whose files name no split is one set of shards: all of them are read.
    splits = {f: _split_of(f.relative_to(path), split) for f in files}
    for_split = [f for f in files if splits[f] == split.lower()]
    if not for_split and any(splits.values()):
        found = ", ".join(f"{f.relative_to(path)} ({s})" for f, s in splits.items() if s)
        raise DataError(f"data source {path}: no file for split {split!r} (a name starting {split!r}); found: "
                        f"{found}. Set split: to one of them, or point source: at a file")
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
