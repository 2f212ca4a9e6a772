"""`pvlora demo`: the whole method on the built-in tiny model, on a CPU, in minutes.

tiny base (cached) -> helpful/harmless/concise adapters (+ and −) -> three vectors (and the
positive-only ablation) -> η sweep over helpful × harmless -> extension by concise -> automatic η
-> summary table, plots, ``summary.json``. Every stage writes its own directory and a re-run
reuses what is finished.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pvlora.config import ExperimentConfig, load_config, save_config

DEMO_GRID = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
TUNE_GRID = [0.0, 0.5, 1.0, 1.5]
TUNE_CONSTRAINT = "refusal_harmful>=0.8"


def _stage(msg: str) -> None:
    print(f"\n[pvlora demo] {msg}", flush=True)


def checks(cfg: ExperimentConfig, root: Path, sweep_rows: list[dict[str, Any]], ev) -> dict[str, Any]:
    """The demo's claims, measured: control, no over-conservatism, extendability, full vs positive-only."""
    from scipy.stats import spearmanr

    from pvlora.evaluate.runner import Evaluator

    def at(h, s):
        return next(r for r in sweep_rows if r["eta_helpful"] == h and r["eta_harmless"] == s)

    def spearman(eta, metric):
        # along one preference's axis of the sweep, the other preferences at η = 0
        line = [r for r in sweep_rows if all(r[k] == 0 for k in r if k.startswith("eta_") and k != eta)]
        return float(spearmanr([r[eta] for r in line], [r[metric] for r in line]).statistic)

    out: dict[str, Any] = {
        "spearman_harmless_vs_refusal_harmful": spearman("eta_harmless", "refusal_harmful"),
        "spearman_helpful_vs_compliance_benign": spearman("eta_helpful", "compliance_benign"),
    }
    both, harmless_only = at(1.0, 1.0), at(0.0, 1.0)
    out["helpful1_harmless1"] = {k: both[k] for k in ("refusal_harmful", "compliance_benign", "refusal_benign", "mean_length")}
    out["harmless_only"] = {k: harmless_only[k] for k in out["helpful1_harmless1"]}
    with_concise = ev.score({"helpful": 1.0, "harmless": 1.0, "concise": 1.0})
    out["helpful1_harmless1_concise1"] = {k: with_concise[k] for k in out["helpful1_harmless1"]}
    out["length_cut"] = 1 - with_concise["mean_length"] / both["mean_length"]
    # full vector vs positive-only (θ+ − θ_base), each at η = 1 on its own metric
    pos_only = {p: root / "vectors-positive-only" / p for p in ("helpful", "harmless")}
    ev_pos = Evaluator(cfg, pos_only, "all")
    out["full_vs_positive_only"] = {
        "helpful": {"metric": "compliance_benign", "full": at(1.0, 0.0)["compliance_benign"],
                    "positive_only": ev_pos.score({"helpful": 1.0})["compliance_benign"]},
        "harmless": {"metric": "refusal_harmful", "full": at(0.0, 1.0)["refusal_harmful"],
                     "positive_only": ev_pos.score({"harmless": 1.0})["refusal_harmful"]},
    }
    del ev_pos
    return out


def run_demo(out: str | Path = "pvlora-demo", fresh: bool = False, command: str | None = None) -> dict[str, Any]:
    from pvlora.evaluate.runner import Evaluator
    from pvlora.evaluate.sweep import sweep
    from pvlora.evaluate.tune import Infeasible, parse_constraint, tune
    from pvlora.toy.base import ensure_tiny_base
    from pvlora.train import train_all
    from pvlora.vector import extract_all

    t0 = time.perf_counter()
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, [f"output.dir={root}"])
    save_config(cfg, root / "pvlora-config.yaml")
    timings: dict[str, float] = {}

    _stage("1/5 tiny base (built once, then cached)")
    t = time.perf_counter()
    print(f"[pvlora] tiny base: {ensure_tiny_base(cfg.model.tiny_seed)}")
    timings["base"] = time.perf_counter() - t

    _stage("2/5 DPO adapters: helpful, harmless, concise × positive, negative")
    t = time.perf_counter()
    train_all(cfg, None, "both", overwrite=fresh, skip_finished=not fresh, command=command)
    timings["train"] = time.perf_counter() - t

    _stage("3/5 preference vectors φ = ΔW+ − ΔW−")
    t = time.perf_counter()
    vectors = extract_all(cfg, root, fresh, command)
    timings["extract"] = time.perf_counter() - t

    _stage("4/5 η sweep over helpful × harmless (one model load, re-weighted in place)")
    t = time.perf_counter()
    sweep_dir = root / "sweep"
    ev = Evaluator(cfg, vectors, "all")
    if fresh or not (sweep_dir / "results.json").exists():
        sweep(cfg, vectors, {"helpful": DEMO_GRID, "harmless": DEMO_GRID, "concise": [0.0]}, sweep_dir, "all",
              overwrite=True, evaluator=ev, axes=("compliance_benign", "refusal_harmful"))
    rows = json.loads((sweep_dir / "results.json").read_text())["rows"]
    found = checks(cfg, root, rows, ev)
    timings["sweep"] = time.perf_counter() - t

    _stage(f"5/5 automatic η: maximise compliance_benign subject to {TUNE_CONSTRAINT}")
    t = time.perf_counter()
    tuned_path = root / "tune.json"
    if fresh or not tuned_path.exists():
        try:
            tuned = tune(ev, "compliance_benign", [parse_constraint(TUNE_CONSTRAINT)], ["helpful", "harmless"],
                         {"helpful": TUNE_GRID, "harmless": TUNE_GRID}, scorers=cfg.eval.scorers)
        except Infeasible as exc:  # reported in the summary; the rest of the demo still stands
            tuned = {"infeasible": str(exc)}
        tuned_path.write_text(json.dumps(tuned, indent=2))
    tuned = json.loads(tuned_path.read_text())
    timings["tune"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    summary = {"checks": found, "tune": tuned, "seconds": timings, "out": str(root)}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + render_summary(summary, rows))
    return summary


def render_summary(s: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    c = s["checks"]
    pick = [(0, 0), (1, 0), (0, 1), (1, 1), (1.5, 1), (-1, 0), (0, -1)]
    table = []
    for h, a in pick:
        r = next((r for r in rows if r["eta_helpful"] == h and r["eta_harmless"] == a), None)
        if r:
            table.append(f"  {h:>8g} {a:>9g}   {r['refusal_harmful']:>14.2f} {r['compliance_benign']:>17.2f} "
                         f"{r['refusal_benign']:>14.2f} {r['mean_length']:>11.1f}")
    cc = c["helpful1_harmless1_concise1"]
    fp = c["full_vs_positive_only"]
    return "\n".join([
        "pvlora demo — held-out prompts (topics and phrasings never trained on)",
        "  η helpful  η harmless   refusal(harmful)  compliance(benign)  refusal(benign)  mean words",
        *table,
        f"  + concise=1 on (1, 1):  {cc['refusal_harmful']:>11.2f} {cc['compliance_benign']:>17.2f} "
        f"{cc['refusal_benign']:>14.2f} {cc['mean_length']:>11.1f}   (length −{100 * c['length_cut']:.0f}%)",
        "",
        f"control: Spearman ρ(η_harmless, refusal on harmful) = {c['spearman_harmless_vs_refusal_harmful']:.3f}; "
        f"ρ(η_helpful, compliance on benign) = {c['spearman_helpful_vs_compliance_benign']:.3f}",
        f"full vs positive-only vector at η=1: helpful compliance {fp['helpful']['full']:.2f} vs "
        f"{fp['helpful']['positive_only']:.2f}; harmless refusal {fp['harmless']['full']:.2f} vs {fp['harmless']['positive_only']:.2f}",
        _tuned_line(s["tune"]),
        f"plots: {s['out']}/sweep/*.png   results: {s['out']}/sweep/results.csv   total {s['seconds']['total']:.0f}s",
    ])


def _tuned_line(t: dict[str, Any]) -> str:
    if "infeasible" in t:
        return f"tune ({TUNE_CONSTRAINT}): {t['infeasible']}"
    w = t["weights"]
    return (f"tuned η on validation (max compliance_benign s.t. {TUNE_CONSTRAINT}): helpful={w['helpful']:g}, "
            f"harmless={w['harmless']:g} -> test: " + ", ".join(f"{k} {v:.2f}" for k, v in t["test"].items()))
