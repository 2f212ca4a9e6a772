"""The SmolLM2 study's second evaluation set (``eval_prompts.txt``), split into validation and test.

The first set (``prompts.txt``, :mod:`pvlora.worlds.smollm2.prompts`) split whole topics between
validation and test, so the two halves differed in form: validation held 53 benign how-to requests
of 80, test 29, and the harmless vector keys on form (docs/studies.md). Here every section
``[kind topic form]`` is split in half by a seeded shuffle, so both halves hold every topic and every
form in the same proportions: they are draws from one distribution. A section with an odd number of
prompts gives its extra prompt to validation and test in turn (per kind), so neither half is larger.

Forms: ``howto`` (a procedure), ``whatis`` (facts or an explanation), ``write`` (a text to produce) and,
for benign requests only, ``xstest`` (a safe request that sounds dangerous). No topic here is a topic
of ``prompts.txt`` or ``harmful_train.txt``, and no prompt leaks a training text by content
(``benchmarks/measure/bench_leakage.py``; ``tests/data/test_leakage.py``).

Every other benign row of each half carries the base's own answer (``eval_answers.jsonl``, built by
``python -m pvlora.worlds.smollm2.make_data --eval-answers``) as the reference of ``heldout_nll``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from pvlora.core.errors import ConfigError, DataError
from pvlora.core.seeded import permutation
from pvlora.worlds.smollm2.prompts import HARMFUL_TRAIN_FILE, PROMPTS_FILE, parse

EVAL_PROMPTS_FILE = Path(__file__).with_name("eval_prompts.txt")
EVAL_ANSWERS_FILE = Path(__file__).with_name("eval_answers.jsonl")
FORMS = ("howto", "whatis", "write", "xstest")
HALVES = ("validation", "test")


@dataclass(frozen=True)
class EvalPrompt:
    text: str
    kind: str  # benign | harmful
    topic: str
    form: str  # howto | whatis | write | xstest
    split: str  # validation | test

    @property
    def style(self) -> str:
        """The scorers' style: ``xstest`` for a safe request that sounds dangerous, else ``plain``."""
        return "xstest" if self.form == "xstest" else "plain"


def split_sections(rows: list[tuple[str, str, str, str]]) -> list[EvalPrompt]:
    """Each (kind, topic, form) section's prompts halved by a seeded shuffle (see the module docstring)."""
    sections: dict[tuple[str, str, str], list[str]] = {}
    for text, kind, topic, form in rows:
        if kind == "harmful" and form == "xstest":
            raise ConfigError(f"[harmful {topic} xstest]: xstest is a form of benign requests only")
        sections.setdefault((kind, topic, form), []).append(text)
    odd_seen = {"benign": 0, "harmful": 0}
    out = []
    for (kind, topic, form), texts in sections.items():
        n, extra = len(texts), 0
        if n % 2:
            extra = 1 - odd_seen[kind] % 2  # validation takes the extra prompt, then test, in turn
            odd_seen[kind] += 1
        cut = n // 2 + extra
        order = permutation(n, f"pvlora-smollm2-eval-{kind}-{topic}-{form}")
        out += [EvalPrompt(texts[i], kind, topic, form, HALVES[0] if rank < cut else HALVES[1])
                for rank, i in enumerate(order)]
    return out


@lru_cache(maxsize=1)
def eval_prompts() -> tuple[EvalPrompt, ...]:
    """The whole second set, each prompt with its half; checked against the first set's topics."""
    rows = parse(EVAL_PROMPTS_FILE.read_text(), str(EVAL_PROMPTS_FILE), styles=FORMS)
    texts = [t for t, *_ in rows]
    if len(set(texts)) != len(texts):
        dup = sorted({t for t in texts if texts.count(t) > 1})[:3]
        raise ConfigError(f"{EVAL_PROMPTS_FILE}: prompts appear twice: {dup}")
    trained = {t for f in (PROMPTS_FILE, HARMFUL_TRAIN_FILE) for _, _, t, _ in parse(f.read_text(), str(f))}
    shared = trained & {t for _, _, t, _ in rows}
    if shared:
        raise ConfigError(f"{EVAL_PROMPTS_FILE}: topics of the first set or of training: {sorted(shared)}")
    return tuple(split_sections(rows))


def select(split: str | None = None, kind: str | None = None) -> list[EvalPrompt]:
    """The prompts of one half ('all' or None: both) and kind."""
    if split not in (None, "all", *HALVES):
        raise ConfigError(f"split must be validation, test or all, got {split!r}")
    return [p for p in eval_prompts() if split in (None, "all", p.split) and kind in (None, p.kind)]


def reference_prompts() -> list[EvalPrompt]:
    """The benign prompts whose base answer is a ``heldout_nll`` reference: every other one of each half."""
    return [p for h in HALVES for p in select(h, "benign")[::2]]


@lru_cache(maxsize=1)
def eval_answers() -> dict[str, str]:
    """{prompt: the base's answer} from ``eval_answers.jsonl``."""
    if not EVAL_ANSWERS_FILE.exists():
        raise DataError(f"{EVAL_ANSWERS_FILE} is missing: it ships with pvlora; rebuild it with "
                        "pvlora.worlds.smollm2.make_data (its step 6, the evaluation answers)")
    return {r["prompt"]: r["answer"] for r in map(json.loads, EVAL_ANSWERS_FILE.read_text().splitlines())}


def eval_rows(split: str) -> list[dict[str, Any]]:
    """Evaluation rows {prompt, kind, style, form, topic, reference} of 'validation', 'test' or 'all'."""
    refs = {p.text for p in reference_prompts()}
    answers = eval_answers()
    return [{"prompt": p.text, "kind": p.kind, "style": p.style, "form": p.form, "topic": p.topic,
             "reference": answers.get(p.text) if p.text in refs else None} for p in select(split)]

