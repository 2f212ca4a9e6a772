"""η grids as pure data: the default grid, its points, and the Pareto set of scored points (no
model, no files; :mod:`pvlora.evaluation.sweep` evaluates and writes them, :mod:`pvlora.evaluation.tune`
searches them)."""

from __future__ import annotations

import itertools
import math
from typing import Any

from pvlora.core.errors import ConfigError

DEFAULT_GRID = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
# Every point is a full evaluation (generation over the prompt set), so even these are days of work;
# the caps keep a typo (a step of 1e-10) from filling memory before the first point is scored.
MAX_AXIS_POINTS = 1_000
MAX_GRID_POINTS = 10_000


def check_grid(grids: Any, where: str = "grid") -> None:
    """Refuse a grid that is not {preference: [finite η, ...]}, or has more than
    :data:`MAX_AXIS_POINTS` values for one preference or :data:`MAX_GRID_POINTS` points in all."""
    if not isinstance(grids, dict):
        raise ConfigError(f"{where}: expected {{preference: [η, ...]}}, got {type(grids).__name__} {_short(grids)}")
    total = 1
    for name, values in grids.items():
        at = f"{where} {name}"
        if not isinstance(values, (list, tuple)):
            raise ConfigError(f"{at}: expected a list of numbers, got {type(values).__name__} {_short(values)}")
        if not values:
            raise ConfigError(f"{at}: needs at least one value")
        if len(values) > MAX_AXIS_POINTS:
            raise ConfigError(f"{at}: {len(values):,} points, more than {MAX_AXIS_POINTS:,} for one preference; "
                              "use fewer values or a larger step")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{at}[{i}]: expected a number, got {_short(v)}")
            if not math.isfinite(v):
                raise ConfigError(f"{at}[{i}]: expected a finite number, got {v}")
        total *= len(values)
    if total > MAX_GRID_POINTS:
        sizes = " x ".join(f"{n} {len(v)}" for n, v in grids.items())
        raise ConfigError(f"{where}: {total:,} points in all ({sizes}), more than {MAX_GRID_POINTS:,}; use fewer "
                          "values or a larger step")


def _short(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 40 else s[:37] + "..."


def grid_points(grids: dict[str, list[float]]) -> list[dict[str, float]]:
    check_grid(grids)
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
