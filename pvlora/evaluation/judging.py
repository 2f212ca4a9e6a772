"""Label a file of responses with the four-way judge (:func:`pvlora.core.judges.judge4`): what
``pvlora judge --in ROWS.jsonl --out LABELLED.jsonl`` runs.

Rows are JSON Lines, one object a line, each with ``prompt`` (the request: a string, or a chat as a
list of ``{role, content}`` messages whose last user message is judged against) and ``response``
(a string). The output is the same rows in the same order, every field kept, with ``label`` added
(and ``label_rule``, the rule that decided it, when asked). The input is untrusted text: each line is
read with :func:`pvlora.artifacts.safe_read.parse_json`, and an error names the file and the line.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from pvlora.artifacts.atomic import atomic_file
from pvlora.artifacts.atomic import check_output
from pvlora.artifacts.safe_read import parse_json, regular_file
from pvlora.core.errors import ConfigError, DataError
from pvlora.core.judge_model import MissingRequest
from pvlora.core.judges import JUDGE_VERSION, LABELS, four_way_judge

# judge4-v1: the rules (the default; what the SmolLM2 study's figures use). judge4-v2: a classifier over
# the rules' evidence, fitted on SmolLM2 outputs: better on those (hold-out 4-way 0.905 vs 0.849), far
# worse on other chat models' (PyRIT's set 0.62 vs 0.86): benchmarks/results/judge_agreement.json.
# judge4-v3: the rules' evidence and a sentence encoder's reading, fitted on SmolLM2 and PyRIT labels:
# benchmarks/results/judge_v3.json. judge4-v4: v3's and the response's tail, fitted on XSTest's answers of
# larger chat models as well: benchmarks/results/judge_v4.json
JUDGES = (JUDGE_VERSION, "judge4-v2", "judge4-v3", "judge4-v4")
BATCH_ROWS = 64  # judge4-v3 and -v4 encode this many rows at a time


def make_judge(version: str = JUDGE_VERSION, extra: Iterable[str] = ()) -> Callable[[str | None, str], tuple[str, str]]:
    """The judge called ``version`` (:data:`JUDGES`); ``extra`` decline regexes are for the rules only."""
    if version == JUDGE_VERSION:
        return four_way_judge(tuple(extra))
    if version == "judge4-v2":
        if tuple(extra):
            raise ConfigError("extra decline patterns work with judge4-v1's rules only: judge4-v2's weights were "
                              "fitted on the default rules; drop the patterns or use judge4-v1")
        from pvlora.core.judge_model import classifier_judge

        return classifier_judge()
    if version in ("judge4-v3", "judge4-v4"):
        if tuple(extra):
            raise ConfigError(f"extra decline patterns work with judge4-v1's rules only: {version}'s weights were "
                              "fitted on the default rules; drop the patterns or use judge4-v1")
        from pvlora.core.judge_model import WEIGHTS_V3, WEIGHTS_V4, classifier_judge
        from pvlora.evaluation.sentence_encoder import sentence_encoder

        return classifier_judge(WEIGHTS_V3 if version == "judge4-v3" else WEIGHTS_V4, encode=sentence_encoder())
    raise ConfigError(f"unknown judge {version!r}: choose one of {', '.join(JUDGES)}")

MAX_ROWS_BYTES = 4 << 30  # a file of responses: a million long answers is about 2 GB
ROW_SHAPE = ("an object with 'prompt' (a string, or a chat: a list of {role, content} messages) and "
             "'response' (a string)")


def read_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of a JSON Lines file (``.jsonl``, or ``.jsonl.gz``), checked one by one; blank lines
    are skipped. Raises :class:`DataError` naming ``path:line``."""
    path = Path(path)
    regular_file(path, MAX_ROWS_BYTES)
    opener = gzip.open if path.suffix == ".gz" else open
    read = 0
    with opener(path, "rb") as fh:
        for i, raw in enumerate(fh, 1):
            read += len(raw)
            if read > MAX_ROWS_BYTES:
                raise DataError(f"{path}: over {MAX_ROWS_BYTES} bytes of rows; split the file")
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(f"{path}:{i}: not UTF-8 text") from None
            if line.strip():
                yield check_row(parse_json(line, path, DataError, line=i), f"{path}:{i}")


def check_row(row: Any, where: str) -> dict[str, Any]:
    """``row`` when it has the shape :data:`ROW_SHAPE` describes; otherwise a :class:`DataError`
    naming ``where`` and what is wrong."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected {ROW_SHAPE}, got a JSON {type(row).__name__}")
    for key in ("prompt", "response"):
        if key not in row:
            raise DataError(f"{where}: no {key!r}; each row is {ROW_SHAPE}")
    if not isinstance(row["response"], str):
        raise DataError(f"{where}: 'response' is a {type(row['response']).__name__}, not a string")
    prompt = row["prompt"]
    chat = isinstance(prompt, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt)
    if not isinstance(prompt, str) and not chat:
        raise DataError(f"{where}: 'prompt' is neither a string nor a chat (a list of {{role, content}} messages)")
    if "label" in row:
        raise DataError(f"{where}: the row already has a 'label'; rename that field (the judge's label would "
                        "replace it)")
    return row


def judge_rows(rows: Iterable[dict], judge: Callable[[str | None, str], tuple[str, str]] | None = None,
               explain: bool = False, where: str = "row", first: int = 1) -> list[dict]:
    """Each row (a mapping with ``prompt`` and ``response``) with ``label`` added (and ``label_rule``
    when ``explain``); every other field is kept. ``prompt`` may be a chat (a list of messages): its
    last user message is the request."""
    judge = judge or four_way_judge()
    rows = list(rows)
    pairs = [(_request(row.get("prompt")), row["response"]) for row in rows]
    try:
        said = verdicts(judge, pairs)
    except MissingRequest as exc:  # rows are named ``where`` and numbered from ``first`` in the error
        raise DataError(f"{where} {first + exc.index} has no request (an empty prompt, or a chat without a user "
                        "message); this judge reads each response against its request: use judge4-v1") from None
    return [{**row, "label": label, **({"label_rule": rule} if explain else {})}
            for row, (label, rule) in zip(rows, said)]


def verdicts(judge: Callable[[str | None, str], tuple[str, str]],
             pairs: list[tuple[str | None, str]]) -> list[tuple[str, str]]:
    """``judge``'s (label, reason) for each (request, response). A judge with ``.many`` (the classifiers)
    reads the list at once: judge4-v3 and -v4 encode it in batched passes."""
    return judge.many(pairs) if hasattr(judge, "many") else [judge(p, r) for p, r in pairs]


def _request(prompt: Any) -> str | None:
    """The request a prompt makes: itself, or a chat's last user message."""
    if isinstance(prompt, list):
        return next((m.get("content", "") for m in reversed(prompt) if isinstance(m, dict)
                     and m.get("role") == "user"), "")
    return prompt


def judge_file(inp: str | Path, out: str | Path, overwrite: bool = False, explain: bool = False,
               extra: Iterable[str] = (), judge: str = JUDGE_VERSION) -> Counter:
    """Label every row of ``inp`` (see :func:`read_rows`) and write them to ``out`` (JSON Lines; written
    whole or not at all). ``extra``: more decline regexes (as ``eval.refusal_patterns``). Returns the
    count of each label (:data:`LABELS`, all present). ``judge``: which judge (:data:`JUDGES`)."""
    judge = make_judge(judge, extra)  # an unknown judge is refused before anything is read or written
    check_output(out, overwrite, "file", inputs=(inp,))
    counts = Counter({label: 0 for label in LABELS})
    with atomic_file(Path(out)) as fh:
        batch: list[dict] = []
        first = 1  # the batch's first row, counted from 1 (errors name the row)
        for n, row in enumerate(read_rows(inp), 1):
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                _write(judge_rows(batch, judge, explain, f"{inp}: row", first), fh, counts)
                first, batch = n + 1, []
        _write(judge_rows(batch, judge, explain, f"{inp}: row", first), fh, counts)
    return counts


def _write(labelled: list[dict], fh, counts: Counter) -> None:
    for row in labelled:
        counts[row["label"]] += 1
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
