"""Sweep grids, Pareto fronts, scorers and the tuner, on hand-worked inputs (no model)."""

import pytest

from pvlora.cli.grammar import grid
from pvlora.core.errors import ConfigError
from pvlora.evaluation.grid import grid_points, pareto_front
from pvlora.evaluation.scorers import SCORERS, EvalBatch, EvalContext, get_scorer
from pvlora.evaluation.sweep import plot, write_results
from pvlora.evaluation.tune import Infeasible, parse_constraint, tune


def test_parse_grid_inclusive_and_lists():
    assert grid(["harmless=-1:1.5:0.5"]) == {"harmless": [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]}
    assert grid(["h=0,0.25,2"]) == {"h": [0.0, 0.25, 2.0]}
    for bad in ("h", "h=1:0:0.5", "h=0:1:0", "h=a,b", "h=nan"):
        with pytest.raises(ConfigError):
            grid([bad])
    assert grid_points({"a": [0, 1], "b": [2]}) == [{"a": 0, "b": 2}, {"a": 1, "b": 2}]


def test_pareto_front_hand_worked():
    # maximise x, minimise y: (3,1) and (1,0) are optimal; (2,2) is dominated by (3,1); (3,1) twice
    rows = [{"x": 3, "y": 1}, {"x": 2, "y": 2}, {"x": 1, "y": 0}, {"x": 0, "y": 0.5}]
    assert pareto_front(rows, {"x": True, "y": False}) == [0, 2]
    # maximise both: (3,1) and (2,2) are optimal
    assert pareto_front(rows, {"x": True, "y": True}) == [0, 1]


def test_results_and_plots_written(tmp_path):
    rows = [{"eta_a": a, "eta_b": b, "m1": a - b, "m2": a * b} for a in (0, 1) for b in (0, 1)]
    res = write_results(tmp_path, rows, {"m1": True, "m2": False}, {"grid": {}})
    assert (tmp_path / "results.csv").read_text().splitlines()[0] == "eta_a,eta_b,m1,m2,pareto"
    # (1,0) has the best m1 and ties the best m2: it dominates every other point
    assert [r["pareto"] for r in res["rows"]] == [False, False, True, False]
    paths = plot(tmp_path, rows, {"m1": True, "m2": False})
    assert {p.name for p in paths} == {"heatmap_m1.png", "heatmap_m2.png", "tradeoff.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


def test_toy_scorers_and_directions():
    b = EvalBatch(prompts=[None] * 4, kinds=["harmful", "harmful", "benign", "benign"],
                  responses=["Sorry, I can not help with that.", "Sure. To x, y.", "Sure. Here is how.", "Sorry, no."])
    assert get_scorer("refusal_harmful").fn(b) == 0.5 and get_scorer("refusal_harmful").higher_is_better
    assert get_scorer("compliance_benign").fn(b) == 0.5 and get_scorer("refusal_benign").fn(b) == 0.5
    assert get_scorer("mean_length").fn(b) == (7 + 4 + 4 + 2) / 4 and not get_scorer("mean_length").higher_is_better
    assert get_scorer("refusal_rate").fn(b) == 0.5
    b.context = EvalContext(refusal_patterns=[r"\bSure\. To\b"])
    assert get_scorer("refusal_rate").fn(b) == 0.75
    assert all(isinstance(s.higher_is_better, bool) for s in SCORERS.values())
    with pytest.raises(ConfigError, match="unknown scorer"):
        get_scorer("bogus")


def test_parse_constraint():
    c = parse_constraint("refusal_harmful>=0.9")
    assert (c.scorer, c.op, c.bound) == ("refusal_harmful", ">=", 0.9)
    assert c.ok({"refusal_harmful": 0.9}) and not c.ok({"refusal_harmful": 0.89})
    with pytest.raises(ConfigError, match="expected SCORER>=X"):
        parse_constraint("refusal_harmful=>0.9")


SCORED = ["gain", "safety"]


class FakeEvaluator:
    """score = smooth known functions of η, so the optimum is known by hand."""

    def __init__(self):
        self.splits = []

    def set_split(self, split):
        self.splits.append(split)

    def score(self, w):
        a, b = w["a"], w["b"]
        return {"gain": -(a - 0.8) ** 2 - (b - 0.3) ** 2, "safety": b}


def test_tune_refines_to_the_constrained_optimum():
    ev = FakeEvaluator()
    # unconstrained optimum (0.8, 0.3); with safety >= 0.6 the optimum is (0.8, 0.6)
    res = tune(ev, "gain", [parse_constraint("safety>=0.6")], ["a", "b"],
               {"a": [0.0, 0.5, 1.0, 1.5], "b": [0.0, 0.5, 1.0, 1.5]}, scorers=SCORED)
    assert res["weights"]["b"] >= 0.6 and res["weights"]["b"] == pytest.approx(0.625)
    assert res["weights"]["a"] == pytest.approx(0.75)  # nearest point on the refined 0.125 lattice
    assert ev.splits == ["validation", "test"]


def test_tune_infeasible_reports_best_reachable():
    with pytest.raises(Infeasible, match=r"safety>=5.*best reachable: safety=1.500"):
        tune(FakeEvaluator(), "gain", [parse_constraint("safety>=5")], ["a", "b"], {"a": [0, 1], "b": [0, 1.5]}, scorers=SCORED)
    with pytest.raises(ConfigError, match="not among eval.scorers"):
        tune(FakeEvaluator(), "nope", [], ["a", "b"], scorers=SCORED)
