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
    for m, label in (("strict_refusal_harmful", "harmful prompts refused"),
                     ("degenerate_harmful", "harmful prompts: degenerate answer"),
                     ("strict_refusal_benign", "benign prompts refused"),
                     ("strict_refusal_xstest", "safe-but-scary prompts refused")):
        ax[0].plot(eta, [r[m] for r in test], marker="o", label=label)
    ax[0].axvspan(min(span), max(span), color="0.92", zorder=0, label="span of the control check")
    ax[0].set(xlabel="η harmless", ylabel="share (four-way judge)", title=f"control ({split} prompts)",
              ylim=(-0.02, 1.02))
    ax[0].legend(fontsize=7)
    ax[1].plot(eta, [r["heldout_nll"] for r in test], marker="o", color="C3")
    ax[1].set(xlabel="η harmless", ylabel="NLL / token of the base's own answers", title=f"over-scaling ({split} prompts)")
    fig.tight_layout()
    fig.savefig(root / "control.png", dpi=120)
    plt.close(fig)


def _ci(r: dict[str, Any]) -> str:
    """A rate with its Clopper–Pearson and topic-bootstrap 95% intervals."""
    cp, cb = r["clopper_pearson"], r.get("cluster_bootstrap")
    return f"{r['rate']:.2f} [{cp[0]:.2f}, {cp[1]:.2f}]" + (f" ({cb[0]:.2f}–{cb[1]:.2f})" if cb else "")


def render_checks(label: str, c: dict[str, Any], thresholds: dict[str, Any]) -> list[str]:
    """One half's checks: the base, the control trend and the over-refusal check, with intervals."""
    b, ctl, t = c["base"], c["control"], c["control"]["trend"]
    ci = t.get("cluster_bootstrap_ci") or t["wald_ci"]
    lines = [f"{label}: base refuses {_ci(b['strict_refusal_harmful'])} of harmful and "
             f"{_ci(b['strict_refusal_benign'])} of benign prompts (rate [Clopper–Pearson] (topic bootstrap))",
             f"  control ({'PASS' if ctl['pass'] else 'FAIL'}): over η ∈ {ctl['span']} the logistic slope of strict "
             f"refusal (harmful) is {t['slope']:.2f}, 95% CI [{ci[0]:.2f}, {ci[1]:.2f}] (must be > 0); rise at the "
             f"largest η {ctl['rise_at_largest_eta']:+.2f} (≥ +{thresholds['control_rise']})"]
    nor = c["no_over_refusal"]
    if "weights" in nor:
        w, r = nor["weights"], nor["rates"]
        lines.append(f"  no over-refusal ({'PASS' if nor['pass'] else 'FAIL'}) at helpful={w['helpful']:g}, "
                     f"harmless={w['harmless']:g}: harmful refused {_ci(r['strict_refusal_harmful'])} (bound ≥ "
                     f"{nor['strict_refusal_harmful_bound']:.2f}); benign refused or degenerate "
                     f"{_ci(r['failed_benign'])} (bound ≤ {nor['failed_benign_bound']:.2f}); harmful degenerate "
                     f"{_ci(r['degenerate_harmful'])}, partial {_ci(r['partial_harmful'])}")
    else:
        lines.append(f"  no over-refusal (FAIL): {nor.get('infeasible')}")
    return lines


def render_summary(s: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """The table printed at the end of a run: the scored points, then each half's checks."""
    split = "test" if s.get("test", {}).get("evaluated") else "validation"
    lines = [f"pvlora demo --base smollm2 — {split.upper()} prompts (four-way judge: refused / partial / "
             "degenerate; refusal(v0) is the first set's judge)"]
    if split == "validation":
        lines.append(f"  the test prompts were not scored: {s['test']['gate']}")
    lines.append("  η helpful  η harmless  refused(harmful)  partial  degenerate  refused(benign)  "
                 "degenerate(benign)  refused(xstest)  refusal(v0,harmful)  words  NLL")
    for r in sorted((r for r in rows if r["split"] == split), key=lambda r: (r["axis"], r["eta_helpful"], r["eta_harmless"])):
        if r["axis"] == "helpful" and r["eta_helpful"] == 0:
            continue  # the base: already the harmless axis's η = 0 row
        lines.append(f"  {r['eta_helpful']:>9g} {r['eta_harmless']:>11g} {r['strict_refusal_harmful']:>17.2f} "
                     f"{r['partial_harmful']:>8.2f} {r['degenerate_harmful']:>11.2f} {r['strict_refusal_benign']:>16.2f} "
                     f"{r['degenerate_benign']:>19.2f} {r['strict_refusal_xstest']:>16.2f} "
                     f"{r['refusal_harmful']:>20.2f} {r['mean_length']:>6.1f} {r['heldout_nll']:>5.2f}")
    lines.append("")
    lines += render_checks("validation", s["validation_checks"], s["thresholds"])
    if split == "test":
        c = s["checks"]
        lines += render_checks("test", c, s["thresholds"])
        for k, v in s["verdicts"].items():
            lines.append(f"{k}: {'PASS' if v['pass'] else 'FAIL'} (validation {'PASS' if v['validation'] else 'FAIL'}, "
                         f"test {'PASS' if v['test'] else 'FAIL'})")
        for name, p in c.get("public", {}).items():
            lines.append(f"{name} ({p['prompts']} harmful prompts): base refuses {_ci(p['base']['strict_refusal_harmful'])}"
                         + (f", tune's mix {_ci(p['tuned_mix']['strict_refusal_harmful'])} (degenerate "
                            f"{_ci(p['tuned_mix']['degenerate_harmful'])})" if "tuned_mix" in p else ""))
        inter = c.get("interference")
        if inter:
            lines.append(f"interference: cos(φ_helpful, φ_harmless) = {inter['cosine_helpful_harmless']:.3f} (paper: 0.34–0.40)")
    lines.append(f"plot: {s['out']}/control.png   results: {s['out']}/results.csv   total {s['seconds']['total'] / 60:.1f} min")
    return "\n".join(lines)
