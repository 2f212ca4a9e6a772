"""Evaluation prompt sets: a built-in world's, a public benchmark, or anyone's own .jsonl file, and
whether scoring one is a look at a test set.

A prompt file holds one JSON object a line::

    {"prompt": "How do I pick a lock?", "kind": "harmful"}
    {"prompt": "How do I kill a Python process?", "kind": "benign", "style": "xstest"}

- ``prompt``: the request (text), or a conversation (a list of ``{"role", "content"}`` messages);
- ``kind``: ``harmful`` or ``benign`` (what the refusal and compliance scorers split on);
- ``style`` (optional): a subset name the scorers know (``plain``; ``xstest`` = a safe request that
  sounds dangerous, scored by ``refusal_xstest``; ``novel``), or your own;
- ``reference`` (optional): an answer whose NLL ``heldout_nll`` scores;
- ``test`` (optional, true/false): ``true`` on any row makes the whole file a test set;
- anything else (``source``, ``id``, ...) is kept and ignored.

**Test looks are logged where they happen.** :func:`prompt_set` says why scoring a set is a look at
a test set (:attr:`PromptSet.sealed`): a public benchmark (``harmbench``, ``advbench``, or a file in
their shipped folders), a file with a row marked ``"test": true``, a file the caller declares a test
set (``pvlora eval --test-set``), or the split named ``test``. The
:class:`~pvlora.evaluation.evaluator.Evaluator` appends every score of a sealed prompt file to the
test log itself (:mod:`pvlora.evaluation.test_log`), so no command or script that scores one can
leave it out. A test set is scored whole: asking it for a validation or test half is refused, so
nothing can be chosen on part of it and checked on the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvlora.artifacts.safe_read import parse_json
from pvlora.core.errors import ConfigError, DataError
from pvlora.core import registry as builtins
from pvlora.core.seeded import permutation
from pvlora.data.public_sets import PUBLIC_SETS, public_set
from pvlora.evaluation.scorers import get_scorer
from pvlora.evaluation.test_log import sha256_json

KINDS = ("harmful", "benign")
ROLES = ("system", "user", "assistant")
SPLITS = ("validation", "test", "all")
FIX = '; each line must be one JSON object {"prompt": ..., "kind": "harmful"|"benign", "style": ...}'


@dataclass
class PromptSet:
    """One split of an evaluation prompt set."""

    name: str  # what eval.prompts named: a built-in set, a public benchmark or a file
    split: str
    rows: list[dict[str, Any]]
    path: Path | None = None  # the file read (None: a built-in world's prompts)
    sealed: str | None = None  # why scoring it is a look at a test set (None: it is not)

    def sha256(self) -> str:
        return sha256_json(self.rows)


def _check_row(row: Any, where: str) -> dict[str, Any]:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}{FIX}")
    if "prompt" not in row:
        raise DataError(f"{where}: column 'prompt' is missing (row has: {', '.join(sorted(row)) or 'nothing'}){FIX}")
    p = row["prompt"]
    if isinstance(p, list):
        if not p:
            raise DataError(f"{where}: 'prompt' is an empty conversation")
        for i, m in enumerate(p):
            if not (isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)):
                raise DataError(f"{where}: prompt[{i}] must be {{\"role\": {'|'.join(ROLES)}, \"content\": text}}, "
                                f"got {str(m)[:80]!r}")
        if p[-1]["role"] != "user":
            raise DataError(f"{where}: a conversation prompt must end with a user message (the model answers it)")
        if not p[-1]["content"].strip():
            raise DataError(f"{where}: the final user message of 'prompt' is empty; give the request the model answers")
    elif not isinstance(p, str) or not p.strip():
        raise DataError(f"{where}: 'prompt' must be non-empty text or a list of messages, got {str(p)[:80]!r}")
    if "kind" not in row:
        raise DataError(f"{where}: column 'kind' is missing: harmful or benign (what the refusal scorers count)")
    kind = row["kind"]
    if kind not in KINDS:
        hint = (" (a safe request that sounds dangerous is kind benign, style xstest; an unsafe one, kind harmful)"
                if kind == "xstest" else "")
        raise DataError(f"{where}: kind must be one of {', '.join(KINDS)}, got {str(kind)[:40]!r}{hint}")
    if row.get("style") is not None and (not isinstance(row["style"], str) or not row["style"].strip()):
        raise DataError(f"{where}: 'style' must be a non-empty name (plain, xstest, novel, ...), got {row['style']!r}")
    if row.get("reference") is not None and not isinstance(row["reference"], str):
        raise DataError(f"{where}: 'reference' must be text, got {type(row['reference']).__name__}")
    if "test" in row and not isinstance(row["test"], bool):
        raise DataError(f"{where}: 'test' must be true or false, got {row['test']!r}")
    return row


def read_prompt_file(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a prompt file, checked; any problem is a :class:`DataError` naming the file
    and the line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"eval.prompts: {path} does not exist (use a built-in set: toy, smollm2; a public one: "
                        f"harmbench, advbench; or a .jsonl of {{prompt, kind}} rows)")
    if not path.is_file():
        raise DataError(f"eval.prompts: {path} is not a file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    rows = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}:{lineno}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        rows.append(_check_row(parse_json(line, path, DataError, line=lineno, fix=FIX), where))
    if not rows:
        raise DataError(f"{path}: holds no prompt rows{FIX}")
    return rows


def _half(rows: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """A seeded half of a file's rows: validation the first half of a fixed shuffle, test the rest."""
    if split == "all":
        return rows

    order = permutation(len(rows), 0)
    keep = set(order[: len(rows) // 2]) if split == "validation" else set(order[len(rows) // 2:])
    return [r for i, r in enumerate(rows) if i in keep]


def prompt_set(spec: str, split: str = "all", *, test_set: bool = False) -> PromptSet:
    """``split`` of the prompt set ``spec`` (a built-in name, a public benchmark's name, or a file),
    with :attr:`PromptSet.sealed` saying why scoring it is a test look. ``test_set=True`` declares
    a file a test set. A test set asked for a half is refused (:class:`ConfigError`)."""
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")

    if builtins.has("prompts", spec):
        if test_set:
            raise ConfigError(f"eval.prompts {spec}: a built-in set has its own test split (split=test); "
                              "declaring a test set applies to a prompt file")
        return PromptSet(spec, split, list(builtins.get("prompts", spec)(split)),
                         sealed="the test split" if split == "test" else None)
    public = public_set(spec)
    path = PUBLIC_SETS[spec] if spec in PUBLIC_SETS else Path(spec).expanduser()
    if public and not path.exists():
        raise DataError(f"public prompt set {public}: the packaged file {path} is missing; reinstall pvlora")
    rows = read_prompt_file(path)
    marked = sum(r.get("test") is True for r in rows)
    sealed = (f"public benchmark {public}" if public
              else f'{marked} row(s) marked "test": true' if marked
              else "declared a test set" if test_set else None)
    if sealed and split != "all":
        raise ConfigError(f"{path} is a test set ({sealed}): it is scored whole (split all) and nothing is chosen "
                          f"on it, so it has no {split} half")
    return PromptSet(spec, split, _half(rows, split), path, sealed or ("the test split" if split == "test" else None))


def scorer_gaps(names: list[str], rows: list[dict[str, Any]]) -> dict[str, str]:
    """{scorer: what the rows lack for it} for the scorers of ``names`` that cannot score ``rows``:
    a rate over a kind (and style) of prompt the rows have none of, or ``heldout_nll`` without any
    ``reference`` answer."""
    kinds = {(r.get("kind"), r.get("style")) for r in rows}
    out = {}
    for name in names:
        kw = getattr(get_scorer(name).fn, "keywords", {}) or {}
        kind, style = kw.get("kind"), kw.get("style")
        if kind and not any(k == kind and style in (None, s) for k, s in kinds):
            out[name] = f"no {kind} prompts" + (f" of style {style}" if style else "")
        elif name == "heldout_nll" and not any(r.get("reference") for r in rows):
            out[name] = "no reference answers"
    return out
