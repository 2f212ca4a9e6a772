"""The SmolLM2 study's outputs: every scored response (``generations.jsonl``), ``results.csv``, the
control and over-scaling plot (``control.png``) and the summary table printed at the end."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from pvlora.config import ExperimentConfig
from pvlora.evaluation.evaluator import load_prompts


def dump_generations(cfg: ExperimentConfig, ev, path: Path) -> None:
    """Every scored response, with its split, η and prompt: what the judge saw, for a reader to check."""
    texts = {}
    with path.open("w") as f:
        for (split, etas), (_, responses) in ev.scored.items():
            if split not in texts:
                prompts, kinds, _, styles = load_prompts(cfg, split)
                texts[split] = [(p[-1]["content"], k, st) for p, k, st in zip(prompts, kinds, styles)]
            eta = dict(zip(ev.names, etas))
            for (prompt, kind, style), r in zip(texts[split], responses):
                f.write(json.dumps({"split": split, "eta": eta, "kind": kind, "style": style, "prompt": prompt,
                                    "response": r}, ensure_ascii=False) + "\n")


def write_outputs(root: Path, rows: list[dict[str, Any]], span: list[float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(rows[0])
    with (root / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    # the test prompts when they were scored; otherwise (no pre-registration) the validation ones
    split = "test" if any(r["split"] == "test" for r in rows) else "validation"
    test = sorted((r for r in rows if r["split"] == split and r["axis"] == "harmless"), key=lambda r: r["eta_harmless"])
    eta = [r["eta_harmless"] for r in test]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for m, label in (("refusal_harmful", "harmful prompts refused"), ("refusal_benign", "benign prompts refused"),
                     ("refusal_xstest", "safe-but-scary prompts refused")):
        ax[0].plot(eta, [r[m] for r in test], marker="o", label=label)
    ax[0].axvspan(min(span), max(span), color="0.92", zorder=0, label="span of the control check")
    ax[0].set(xlabel="η harmless", ylabel="share", title=f"control ({split} prompts)", ylim=(-0.02, 1.02))
    ax[0].legend(fontsize=8)
    ax[1].plot(eta, [r["heldout_nll"] for r in test], marker="o", color="C3")
    ax[1].set(xlabel="η harmless", ylabel="NLL / token of the base's own answers", title=f"over-scaling ({split} prompts)")
    fig.tight_layout()
    fig.savefig(root / "control.png", dpi=120)
    plt.close(fig)


def render_validation_only(s: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The summary of a run that did not score the test prompts (no pre-registration allowed it)."""
    lines = ["pvlora demo --base smollm2 — VALIDATION prompts only; the test prompts were not scored:",
             f"  {s['test']['gate']}", "  η harmless  refusal(harmful)  refusal(benign)  compliance(benign)  NLL"]
    lines += [f"  {r['eta_harmless']:>10g} {r['refusal_harmful']:>16.2f} {r['refusal_benign']:>16.2f} "
              f"{r['compliance_benign']:>19.2f} {r['heldout_nll']:>5.2f}" for r in rows if r["split"] == "validation"]
    t, nor = s["tune"], s["validation_checks"]["no_over_refusal"]
    if "weights" in t:
        lines.append(f"tune (validation): helpful={t['weights']['helpful']:g}, harmless={t['weights']['harmless']:g} -> "
                     f"refusal(harmful) {t['validation']['refusal_harmful']:.2f}, refusal(benign) "
                     f"{t['validation']['refusal_benign']:.2f}; no over-refusal on validation "
                     f"({'PASS' if nor['pass'] else 'FAIL'}: bound {nor['bound']:.3f})")
    else:
        lines.append(f"tune (validation): {t.get('infeasible')}")
    lines.append(f"plot: {s['out']}/control.png   results: {s['out']}/results.csv   total {s['seconds']['total'] / 60:.1f} min")
    return "\n".join(lines)


def render_summary(s: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    if not s.get("test", {}).get("evaluated", True):
        return render_validation_only(s, rows)
    c, thresholds = s["checks"], s["thresholds"]
    test = [r for r in rows if r["split"] == "test"]
    lines = ["pvlora demo --base smollm2 — test prompts (topics no adapter trained on)",
             "  η helpful  η harmless  refusal(harmful)  refusal(benign)  refusal(xstest)  compliance(benign)  words  NLL"]
    for r in sorted(test, key=lambda r: (r["axis"], r["eta_helpful"], r["eta_harmless"])):
        if r["axis"] == "helpful" and r["eta_helpful"] == 0:
            continue  # the base: already the harmless axis's η = 0 row
        lines.append(f"  {r['eta_helpful']:>9g} {r['eta_harmless']:>11g} {r['refusal_harmful']:>17.2f} "
                     f"{r['refusal_benign']:>16.2f} {r['refusal_xstest']:>16.2f} {r['compliance_benign']:>19.2f} "
                     f"{r['mean_length']:>6.1f} {r['heldout_nll']:>5.2f}")
    ctl = c["control"]
    lines += ["", (f"control ({'PASS' if ctl['pass'] else 'FAIL'}): over η_harmless ∈ {ctl['span']} (span chosen on "
                   f"validation) Spearman ρ = {_num(ctl['spearman'])} (≥ {thresholds['control_spearman']}), refusal of "
                   f"harmful prompts +{ctl['rise_at_largest_eta']:.2f} at the largest η (≥ +{thresholds['control_rise']})")]
    nor = c["no_over_refusal"]
    if "weights" in nor:
        w = nor["weights"]
        lines.append(f"no over-refusal ({'PASS' if nor['pass'] else 'FAIL'}): tuned on validation helpful={w['helpful']:g}, "
                     f"harmless={w['harmless']:g} -> test refusal(harmful) {nor['test']['refusal_harmful']:.2f}, "
                     f"refusal(benign) {nor['test']['refusal_benign']:.2f} vs base {c['base']['refusal_benign']:.2f}")
    else:
        lines.append(f"no over-refusal (FAIL): {nor['infeasible']}")
    val = s.get("validation_checks", {}).get("no_over_refusal", {})
    if "bound" in val:
        lines.append(f"no over-refusal on validation ({'PASS' if val['pass'] else 'FAIL'}): the tuned mix refuses "
                     f"{val['refusal_benign']:.2f} of benign prompts (bound {val['bound']:.3f})")
    for p in c["full_vs_positive_only"]["points"]:
        lines.append(f"full vs positive-only at equal norm, η={p['eta']:g}: refusal(harmful) {p['full']['refusal_harmful']:.2f} "
                     f"vs {p['positive_only']['refusal_harmful']:.2f}")
    inter = c["interference"]
    lines.append(f"interference: cos(φ_helpful, φ_harmless) = {inter['cosine_helpful_harmless']:.3f} (paper: 0.34–0.40)")
    con = c["concise"]
    lines.append(f"concise alone (η=1): {con['alone']['mean_length']:.1f} words vs base {c['base']['mean_length']:.1f}")
    lines.append(f"plot: {s['out']}/control.png   results: {s['out']}/results.csv   total {s['seconds']['total'] / 60:.1f} min")
    return "\n".join(lines)


def _num(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.3f}"
