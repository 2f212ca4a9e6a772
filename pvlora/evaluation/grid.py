"""η grids as pure data: the default grid, its points, and the Pareto set of scored points (no
model, no files; :mod:`pvlora.evaluation.sweep` evaluates and writes them, :mod:`pvlora.evaluation.tune`
searches them)."""

from __future__ import annotations

import itertools
from typing import Any

DEFAULT_GRID = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]


def grid_points(grids: dict[str, list[float]]) -> list[dict[str, float]]:
    names = list(grids)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grids[n] for n in names))]


def pareto_front(rows: list[dict[str, Any]], metrics: dict[str, bool]) -> list[int]:
    """Indices of rows no other row dominates (>= on every metric after orienting by
    higher_is_better, > on at least one)."""
    def oriented(r):
        return [r[m] if hib else -r[m] for m, hib in metrics.items()]

    vals = [oriented(r) for r in rows]
    front = []
    for i, v in enumerate(vals):
        dominated = any(all(a >= b for a, b in zip(u, v)) and any(a > b for a, b in zip(u, v))
                        for j, u in enumerate(vals) if j != i)
        if not dominated:
            front.append(i)
    return front
