"""Choose η automatically: maximise one scorer subject to constraints on others.

A coarse grid on the validation split, then two rounds of local refinement (a 3^k grid around the
best feasible point at half, then a quarter, of the coarse step). Grid search rather than a
black-box optimiser because k (the number of preferences) is small, every point is a cheap
re-weighting of one loaded model, and a grid gives the user the whole landscape as a by-product.
The chosen η is then scored once on the test split, which tuning never saw.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from pvlora.core.errors import ConfigError, PvloraError
from pvlora.evaluation.grid import DEFAULT_GRID, check_grid, grid_points

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][\w/]*)\s*(>=|<=|>|<)\s*(-?[\d.]+(?:e-?\d+)?)\s*$")


@dataclass(frozen=True)
class Constraint:
    scorer: str
    op: str
    bound: float

    def ok(self, scores: dict[str, float]) -> bool:
        return _OPS[self.op](scores[self.scorer], self.bound)

    def violation(self, scores: dict[str, float]) -> float:
        v = scores[self.scorer] - self.bound
        return max(0.0, -v) if self.op in (">=", ">") else max(0.0, v)

    def __str__(self) -> str:
        return f"{self.scorer}{self.op}{self.bound:g}"


def parse_constraint(text: str) -> Constraint:
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise ConfigError(f"constraint {text!r}: expected SCORER>=X (or <=, >, <), e.g. 'refusal_harmful>=0.9'")
    return Constraint(m[1], m[2], float(m[3]))


class Infeasible(PvloraError):
    pass


def tune(evaluator, maximize: str, constraints: list[Constraint], names: list[str],
         grid: dict[str, list[float]] | None = None, rounds: int = 2, *, scorers: Collection[str],
         score_test: bool = True) -> dict[str, Any]:
    """Maximise ``maximize`` subject to ``constraints`` over the η of ``names`` on the validation
    split, then score the chosen η once on the test split (unless ``score_test`` is False).

    Args:
        evaluator: anything with ``set_split(split)`` and ``score(weights) -> {scorer: value}``
            (an :class:`~pvlora.evaluation.evaluator.Evaluator`).
        maximize, constraints: the objective and the bounds, each naming one of ``scorers``.
        names: the preferences whose η is searched (the others stay at 0).
        grid: the coarse grid per preference (default: DEFAULT_GRID for each).
        rounds: local refinements around the best feasible point.
        scorers: the scorers ``evaluator.score`` reports (the objective and constraints must be among them).
        score_test: False leaves the test split alone (a study that gates and logs its test
            evaluation scores the chosen η itself); the result then has no ``test`` key.

    Returns:
        {weights, validation scores, test scores, maximize, constraints, points_evaluated}.

    Raises:
        ConfigError: a scorer not among ``scorers``.
        Infeasible: no searched point meets the constraints (the message gives the closest one).
    """
    for s in [maximize] + [c.scorer for c in constraints]:
        if s not in scorers:
            raise ConfigError(f"scorer {s!r} is not among eval.scorers ({', '.join(sorted(scorers))}); add it to the config")
    if grid:  # a string, a NaN, a billion points or a preference not tuned: refused before any point is scored
        check_grid(grid)
        unknown = sorted(set(grid) - set(names))
        if unknown:
            raise ConfigError(f"the grid names {unknown} but only {', '.join(names)} are tuned")
    grid = {n: list((grid or {}).get(n, DEFAULT_GRID)) for n in names}  # a preference without one: the default
    evaluator.set_split("validation")
    seen: dict[tuple, dict[str, float]] = {}

    def evaluate(points, desc):
        for w in tqdm(points, desc=desc, unit="point"):
            key = tuple(round(w[n], 6) for n in names)
            if key not in seen:
                seen[key] = evaluator.score(w)

    def best():
        feasible = [(k, s) for k, s in seen.items() if all(c.ok(s) for c in constraints)]
        if not feasible:
            return None
        # ties on the objective go to the smallest total |η| (the least intervention)
        return max(feasible, key=lambda ks: (ks[1][maximize], -sum(abs(x) for x in ks[0])))

    evaluate(grid_points(grid), "tune: coarse grid")
    step = min((min(b - a for a, b in zip(v, v[1:])) for v in grid.values() if len(v) > 1), default=0.5)
    for r in range(rounds):
        found = best()
        if found is None:
            break
        step /= 2
        center = dict(zip(names, found[0]))
        local = {n: [center[n] - step, center[n], center[n] + step] for n in names}
        evaluate(grid_points(local), f"tune: refine {r + 1}")
    found = best()
    if found is None:
        closest = min(seen.items(), key=lambda ks: sum(c.violation(ks[1]) for c in constraints))
        reach = {c.scorer: max((s[c.scorer] for s in seen.values()),
                               key=lambda v: v if c.op in (">=", ">") else -v) for c in constraints}
        raise Infeasible(
            "no η on the searched grid meets " + " and ".join(map(str, constraints)) + "; best reachable: "
            + ", ".join(f"{k}={v:.3f}" for k, v in reach.items())
            + f"; closest point η=({', '.join(f'{n}={x:g}' for n, x in zip(names, closest[0]))}) scores "
            + ", ".join(f"{k}={v:.3f}" for k, v in closest[1].items())
            + ". Relax a constraint or widen the grid."
        )
    weights = dict(zip(names, found[0]))
    test = {}
    if score_test:
        evaluator.set_split("test")
        test = {"test": evaluator.score(weights)}
    return {"weights": weights, "validation": found[1], **test, "maximize": maximize,
            "constraints": [str(c) for c in constraints], "points_evaluated": len(seen)}
