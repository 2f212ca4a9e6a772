"""Seeded orders and samples: every split and subsample in pvlora draws through these two, so a
given seed picks the same items in training, evaluation and the demos."""

from __future__ import annotations

import random
from typing import Any, TypeVar

T = TypeVar("T")


def permutation(n: int, seed: Any) -> list[int]:
    """A seeded order of ``range(n)`` (``random.Random(seed).shuffle``; it depends on n only, so
    shuffling indices and shuffling the items themselves agree)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def sample(items: list[T], k: int | None, seed: Any) -> list[T]:
    """At most ``k`` of ``items``, a seeded choice kept in input order (all of them when k is None)."""
    if k is None or len(items) <= k:
        return items
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), k))]


def heldout_sample(pairs: list[T], max_pairs: int | None, seed: int) -> list[T]:
    """At most ``max_pairs`` held-out pairs, the same ones for both directions (a seeded choice of
    positions; the negative set is the positive one with chosen and rejected swapped)."""
    return sample(pairs, max_pairs, f"heldout-{seed}")


__all__ = ["heldout_sample", "permutation", "sample"]
