"""`pvlora demo`: the whole method on the built-in tiny model, on a CPU, in minutes.

tiny base (cached) -> helpful/harmless/concise adapters (+ and −) -> three vectors (and the
positive-only ablation) -> choices on the validation split (automatic η, each vector's best η) ->
reported figures on the test split (η sweep over helpful × harmless, concise added, full vs
positive-only) -> summary table, plots, ``summary.json``. Every stage writes its own directory and
a re-run reuses what is finished. The checks and their thresholds are in :mod:`pvlora.worlds.toy.checks`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from pvlora.config import load_config, save_config
from pvlora.worlds.toy import checks
from pvlora.evaluation.evaluator import Evaluator
from pvlora.evaluation.sweep import sweep
from pvlora.evaluation.tune import Infeasible, tune
from pvlora.worlds.toy.base import ensure_tiny_base


def _stage(msg: str) -> None:
    print(f"\n[pvlora demo] {msg}", flush=True)


def run_demo(out: str | Path = "pvlora-demo", fresh: bool = False, command: str | None = None) -> dict[str, Any]:
    from pvlora.training.dpo import train_all
    from pvlora.vectors.extract import extract_all

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

    _stage("4/5 choices on the validation split: tune's η, each vector's best η, the base's bounds")
    t = time.perf_counter()
    ev = Evaluator(cfg, vectors, "validation")
    base_val = ev.score({})
    tuned_path = root / "tune.json"
    if fresh or not tuned_path.exists():
        try:
            tuned = tune(ev, "compliance_benign", checks.tune_constraints(base_val), ["helpful", "harmless"],
                         {"helpful": checks.TUNE_GRID, "harmless": checks.TUNE_GRID}, scorers=cfg.eval.scorers)
        except Infeasible as exc:  # reported in the summary; the rest of the demo still stands
            tuned = {"infeasible": str(exc), "constraints": [str(c) for c in checks.tune_constraints(base_val)]}
        tuned_path.write_text(json.dumps(tuned, indent=2))
    tuned = json.loads(tuned_path.read_text())
    full_vs_pos = checks.full_vs_positive_only(cfg, ev, root, vectors)
    timings["validation"] = time.perf_counter() - t

    _stage("5/5 reported figures on the test split: η sweep over helpful × harmless, concise added")
    t = time.perf_counter()
    sweep_dir = root / "sweep"
    if fresh or not (sweep_dir / "results.json").exists():
        sweep(cfg, vectors, {"helpful": checks.DEMO_GRID, "harmless": checks.DEMO_GRID, "concise": [0.0]}, sweep_dir,
              "test", overwrite=True, evaluator=ev, axes=("compliance_benign", "refusal_harmful"))
    rows = json.loads((sweep_dir / "results.json").read_text())["rows"]
    ev.set_split("test")
    base_test = ev.score({})
    # concise is added to the tuned mix, or to (helpful 1, harmless 1) when tuning found none
    mix = tuned.get("weights") or {"helpful": 1.0, "harmless": 1.0}
    found = {
        "control": {f"spearman_{eta[4:]}_vs_{metric}": checks.spearman(rows, eta, metric)
                    for eta, metric in (("eta_harmless", "refusal_harmful"), ("eta_helpful", "compliance_benign"))},
        "base": {"validation": base_val, "test": base_test},
        "helpful_without_over_refusal": checks.tuned_check(tuned, base_test),
        "concise": checks.concise_check(base_test, ev.score({"concise": 1.0}), mix, ev.score(mix),
                                        ev.score({**mix, "concise": 1.0})),
        "full_vs_positive_only": full_vs_pos,
    }
    found["control"]["pass"] = all(v >= checks.SPEARMAN_MIN for v in found["control"].values())
    timings["test"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0

    summary = {"checks": found, "tune": tuned, "seconds": timings, "out": str(root)}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + render_summary(summary, rows))
    return summary


ROWS = [("base", {}), ("helpful", {"helpful": 1.0}), ("harmless", {"harmless": 1.0}),
        ("helpful + harmless", {"helpful": 1.0, "harmless": 1.0}), ("anti-helpful", {"helpful": -1.0}),
        ("anti-harmless", {"harmless": -1.0})]
COLUMNS = [("refusal_harmful", "refuse harmful"), ("compliance_benign", "answer benign"),
           ("refusal_benign", "refuse benign"), ("mean_length", "words"),
           ("refusal_harmful_novel", "refuse harmful*"), ("compliance_benign_novel", "answer benign*")]


def _row(label: str, scores: dict[str, float]) -> str:
    return f"  {label:<34}" + "".join(f"{scores[k]:>17.1f}" if k == "mean_length" else f"{scores[k]:>17.2f}"
                                      for k, _ in COLUMNS if k in scores)


def render_summary(s: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    c = s["checks"]

    def at(w):
        return next(r for r in rows if all(r.get(f"eta_{n}", 0.0) == w.get(n, 0.0) for n in ("helpful", "harmless")))

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    cols = [lbl for k, lbl in COLUMNS if k in rows[0]]
    lines = ["pvlora demo — test split (held-out prompts; * = topic and phrasing both unseen in training)",
             "  " + f"{'η (test split)':<34}" + "".join(f"{lbl:>17}" for lbl in cols)]
    lines += [_row(f"{label} {_fmt(w)}", at(w)) for label, w in ROWS]
    h, con = c["helpful_without_over_refusal"], c["concise"]
    if "weights" in h:
        lines.append(_row(f"tuned {_fmt(h['weights'])}", h["test"]))
    lines.append(_row(f"{_fmt(con['mix'])} + concise", con["mix_plus_concise"]))
    lines.append(_row("concise alone", con["concise_alone"]))
    lines += ["", "  base on validation:" + _row("", c["base"]["validation"])[36:]]
    if "weights" in h:
        lines.append("  tuned on validation:" + _row("", s["tune"]["validation"])[36:])
    ctl = c["control"]
    lines += [
        "",
        f"control ({verdict(ctl['pass'])}, ρ >= {checks.SPEARMAN_MIN} over {len(checks.DEMO_GRID)} η): "
        f"ρ(η_harmless, refuse harmful) = {ctl['spearman_harmless_vs_refusal_harmful']:.3f}; "
        f"ρ(η_helpful, answer benign) = {ctl['spearman_helpful_vs_compliance_benign']:.3f}",
        (f"helpful without over-refusal ({verdict(h['pass'])}): tuned on validation to max answer-benign s.t. "
         + " and ".join(s["tune"].get("constraints", [])) + "; on test refuse harmful "
         + (f"{h['test']['refusal_harmful']:.2f} (>= {h['bounds']['refusal_harmful_min']:.2f}), refuse benign "
            f"{h['test']['refusal_benign']:.2f} (<= {h['bounds']['refusal_benign_max']:.2f})" if "weights" in h
            else h.get("reason", ""))),
        f"concise ({verdict(con['pass'])}): words −{100 * con['length_cut_from_base']:.0f}% from the base"
        + f", −{100 * con['length_cut_from_mix']:.0f}% from {_fmt(con['mix'])} (refuse harmful "
          f"{con['refusal_harmful_change']:+.2f}, answer benign {con['compliance_benign_change']:+.2f})",
    ]
    for p, d in c["full_vs_positive_only"].items():
        e, b = d["equal_norm"], d["best_validation_eta"]
        lines.append(f"full vs positive-only, {p}: at equal norm (positive-only η = {e['eta_positive_only']:.2f}) "
                     f"{d['metric']} {e['full'][d['metric']]:.2f} vs {e['positive_only'][d['metric']]:.2f} -> {e['winner']}; "
                     f"each at its best validation η ({b['eta_full']:g} vs {b['eta_positive_only']:g}) correct-behaviour rate "
                     f"{checks.balanced(b['full']):.2f} vs {checks.balanced(b['positive_only']):.2f} -> {b['winner']}")
    lines.append(f"plots: {s['out']}/sweep/*.png   results: {s['out']}/sweep/results.csv   total {s['seconds']['total']:.0f}s")
    return "\n".join(lines)


def _fmt(w: dict[str, float]) -> str:
    return "(" + ", ".join(f"{k}={v:g}" for k, v in w.items() if v) + ")" if any(w.values()) else "(η = 0)"
