"""The SmolLM2 study's figures with their uncertainty: every rate with a 95% Clopper–Pearson interval
and a topic-cluster bootstrap interval, and the control check's trend test.

The scorers (:mod:`pvlora.evaluation.scorers`) return rates only; the intervals need each row's
four-way label and its topic, so they are computed here from the responses the evaluator kept for
every scored point (``Evaluator.scored``), judged again with the same judge the scorers use. The
bootstrap resamples whole topics: the prompts of one topic are not independent draws (a vector that
refuses one arson request refuses the others), so a binomial interval alone would be too narrow.
"""

from __future__ import annotations

from typing import Any

from pvlora.core.intervals import logistic_trend, rate_summary
from pvlora.core.judges import four_way_judge
from pvlora.worlds.smollm2.settings import BOOTSTRAP

# rate name -> (kind of prompt, form or None, labels counted)
RATES = {
    "strict_refusal_harmful": ("harmful", None, ("refusal",)),
    "partial_harmful": ("harmful", None, ("partial",)),
    "degenerate_harmful": ("harmful", None, ("degenerate",)),
    "strict_compliance_harmful": ("harmful", None, ("compliance",)),
    "strict_refusal_benign": ("benign", None, ("refusal",)),
    "degenerate_benign": ("benign", None, ("degenerate",)),
    "failed_benign": ("benign", None, ("refusal", "degenerate")),  # what the over-refusal check bounds
    "strict_compliance_benign": ("benign", None, ("compliance",)),
    "strict_refusal_xstest": ("benign", "xstest", ("refusal",)),
}


def labelled(ev, split: str, weights: dict[str, float]) -> list[dict[str, Any]]:
    """The rows of ``split`` (prompt, kind, form, topic) with the response the evaluator gave at
    ``weights`` (scored first when it has not been) and its four-way label."""
    current = ev.split
    ev.set_split(split)
    ev.score(weights)
    rows, responses = ev.prompt_set.rows, ev.last_responses
    ev.set_split(current)
    judge = four_way_judge(ev.cfg.eval.refusal_patterns or ())
    return [{"prompt": r["prompt"], "kind": r.get("kind"), "form": r.get("form"), "topic": r.get("topic"),
             "response": resp, "label": judge(r["prompt"], resp)[0]} for r, resp in zip(rows, responses)]


def rates(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{rate name: rate_summary} for every rate in :data:`RATES` that ``rows`` have prompts for."""
    out = {}
    for name, (kind, form, labels) in RATES.items():
        sub = [r for r in rows if r["kind"] == kind and (form is None or r["form"] == form)]
        if sub:  # a public set has no topics: its rates get the binomial interval only
            topics = [r["topic"] for r in sub] if all(r["topic"] for r in sub) else None
            out[name] = rate_summary([r["label"] in labels for r in sub], topics,
                                     n_boot=BOOTSTRAP["n_boot"], seed=BOOTSTRAP["seed"])
    return out


def by_form(rows: list[dict[str, Any]], rate: str) -> dict[str, dict[str, Any]]:
    """One rate per form of request (how-to, what-is, write, xstest): whether a vector keys on form."""
    kind, _, labels = RATES[rate]
    forms = sorted({r["form"] for r in rows if r["kind"] == kind})
    return {f: rate_summary([r["label"] in labels for r in rows if r["kind"] == kind and r["form"] == f],
                            [r["topic"] for r in rows if r["kind"] == kind and r["form"] == f],
                            n_boot=BOOTSTRAP["n_boot"], seed=BOOTSTRAP["seed"]) for f in forms}


def trend(points: dict[float, list[dict[str, Any]]], level: float) -> dict[str, Any]:
    """The control check's trend test: strict refusal of harmful requests against η (``points``: η ->
    labelled rows), a Firth logistic slope with its Wald and topic-cluster bootstrap intervals."""
    x, y, clusters = [], [], []
    for eta, rows in sorted(points.items()):
        for r in rows:
            if r["kind"] == "harmful":
                x.append(eta)
                y.append(r["label"] == "refusal")
                clusters.append(r["topic"])
    return logistic_trend(x, y, clusters, level=level, n_boot=BOOTSTRAP["trend_n_boot"], seed=BOOTSTRAP["seed"])
