"""The toy world's entries in :mod:`pvlora.core.registry`: ``source: toy`` (preference and SFT data),
``eval.prompts: toy`` and its ground-truth judge."""

from __future__ import annotations

import random
from typing import Any, Literal

from pvlora.core.errors import DataError
from pvlora.worlds.toy.corpus import (
    TOY_PREFERENCES,
    classify,
    eval_split,
    preference_pairs,
    respond,
    sft_examples,
)


def preference_split(pref, seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``source: toy``: (train pairs, held-out pairs), the held-out ones on topics and phrasings no
    training pair uses (``pref.limit`` caps the training pairs)."""
    if pref.name not in TOY_PREFERENCES:
        raise DataError(f"preference {pref.name!r}: the built-in toy data has only {', '.join(TOY_PREFERENCES)}")
    train = preference_pairs(pref.name, "train", seed)
    return (train[: pref.limit] if pref.limit else train), preference_pairs(pref.name, "eval", seed)


def sft_data(seed: int = 0) -> list[dict[str, Any]]:
    """``sft.source: toy``: one supervised example per training request."""
    return sft_examples(seed, per_prompt=1)


def eval_rows(split: Literal["validation", "test", "all"]) -> list[dict[str, Any]]:
    """``eval.prompts: toy``: the held-out requests of ``split``, each with a reference answer in the
    base's own style mix (their NLL rises when η over-scales a model). Requests whose topic and
    phrasing are both unseen in training carry ``style: novel`` (the ``*_novel`` scorers)."""
    rng = random.Random(f"reference-{split}")
    return [{"prompt": r.prompt, "kind": r.kind, "style": "novel" if r.novel == "topic+template" else "plain",
             "reference": respond(r, rng.choice(["long", "short", "refuse"]), rng)} for r in eval_split(split)]


def judge():
    """``eval`` on the toy world judges with its exact ground truth, not a pattern detector."""
    return classify
