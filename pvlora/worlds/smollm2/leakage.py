"""The SmolLM2 study's leakage by content: every training text against every evaluation prompt.

Training texts are every message of every pair the study keeps (train and held-out, each source
of each preference in ``study.yaml``: the HH-RLHF rows ``keep: refusal_contrast`` passes, the
harmful, borderline, helpful and concise pairs), each user turn, earlier assistant turn, chosen
and rejected answer a text of its own, and the requests of ``harmful_train.txt``. Evaluation
prompts are the validation and test prompts of ``prompts.txt``. The comparison and its threshold
are :mod:`pvlora.data.leakage`'s.

The current prompts leak (README; ``benchmarks/results/smollm2_leakage.json`` has the figures,
written by ``benchmarks/measure/bench_leakage.py``); :func:`check_new_prompts` is the gate for a
new prompt set: it refuses one with any prompt at or above the threshold.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from pvlora.data import leakage, load_preference_data
from pvlora.config import load_config
from pvlora.worlds.smollm2.prompts import HARMFUL_TRAIN_FILE, harmful_training_prompts, prompts

STUDY_CONFIG = Path(__file__).with_name("study.yaml")
SPLITS = ("validation", "test")


def _pair_texts(source: str, pairs: list[dict[str, Any]]) -> list[tuple[str, str]]:
    out = []
    for i, pair in enumerate(pairs):
        prompt = pair["prompt"]
        msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        for k, m in enumerate(msgs):
            out.append((f"{source} pair {i} {m['role']} turn {k + 1}", m["content"]))
        for side in ("chosen", "rejected"):
            s = pair[side]
            out.append((f"{source} pair {i} {side}", s if isinstance(s, str) else s[-1]["content"]))
    return [(i, t) for i, t in out if t and t.strip()]


def source_pairs(pref) -> list[tuple[str, list[dict[str, Any]]]]:
    """[(source, every pair the study keeps from it)] for one preference, as ``load_preference_data``
    reads them (the main source with its ``keep``/``limit``/``max_turns``, each extra source with
    its own), held-out pairs included."""
    subs = [dataclasses.replace(pref, extra_sources=[], heldout_fraction=0.0)]
    subs += [dataclasses.replace(pref, **{"limit": None, "max_turns": None, "keep": None, **extra},
                                 extra_sources=[], heldout_fraction=0.0) for extra in pref.extra_sources]
    return [(sub.source, load_preference_data(sub, "positive").train) for sub in subs]


def training_texts(cfg=None) -> list[tuple[str, str]]:
    """[(id, text)]: every message of every pair the study (``cfg``, default ``study.yaml``)
    trains or holds out on, and the requests of ``harmful_train.txt``."""
    cfg = cfg or load_config(STUDY_CONFIG)
    out = []
    for pref in cfg.preferences:
        for source, pairs in source_pairs(pref):
            out += _pair_texts(source, pairs)
    out += [(f"{HARMFUL_TRAIN_FILE.name} {p.topic} {i + 1}", p.text) for i, p in enumerate(harmful_training_prompts())]
    return out


def evaluation_prompts(split: str, which: str = "first") -> list[tuple[str, str]]:
    """[(id, text)] of one split's evaluation prompts (id: split, kind/topic, style or form, index) of
    the ``first`` set (``prompts.txt``, spent) or the ``second`` (``eval_prompts.txt``)."""
    if which == "second":
        from pvlora.worlds.smollm2.eval_set import select

        return [(f"{split} {p.kind}/{p.topic} {p.form} {i + 1}", p.text) for i, p in enumerate(select(split))]
    return [(f"{split} {p.kind}/{p.topic} {p.style} {i + 1}", p.text) for i, p in enumerate(prompts(split))]


def study_leakage(top: int = 20, cfg=None) -> dict[str, Any]:
    """{threshold, n, train_texts, per split {eval_prompts, above, leaking}, top (the ``top`` best
    matches over both splits)} of the first set, and the same of the second under ``second_set``."""
    train = training_texts(cfg)
    out: dict[str, Any] = {"threshold": leakage.THRESHOLD, "n": leakage.N, "train_texts": len(train)}
    for which in ("first", "second"):
        part: dict[str, Any] = {"splits": {}}
        every = []
        for split in SPLITS:
            r = leakage.report(train, evaluation_prompts(split, which), top=10 ** 9)
            part["splits"][split] = {"eval_prompts": r["eval_prompts"], "above": r["above"], "leaking": r["leaking"]}
            every += r["top"]
        part["top"] = sorted(every, key=lambda m: (-m["containment"], -m["jaccard"], m["eval_id"]))[:top]
        if which == "first":
            out.update(part)
        else:
            out["second_set"] = part
    return out


def check_new_prompts(prompts: list[str] | list[tuple[str, str]] | dict[str, str], cfg=None,
                      train: list[tuple[str, str]] | None = None) -> None:
    """Refuse a new evaluation prompt set (texts, or (id, text) pairs) that leaks: any prompt at or
    above :data:`pvlora.data.leakage.THRESHOLD` against the study's training texts (``train``,
    default :func:`training_texts` of ``cfg``) raises :class:`~pvlora.core.errors.DataError`."""
    leakage.check(training_texts(cfg) if train is None else train, prompts, what="new evaluation prompts")
