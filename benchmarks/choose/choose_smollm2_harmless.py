"""How the SmolLM2 study trains its harmless vector: candidates compared on the VALIDATION prompts only.

With the study's first settings (lr 2e-4, 176 HH-RLHF rows of any length, 20 steps) the harmless
adapters did not move: held-out accuracy equal to the base's, and no rise in refusal along η. Each
candidate here trains harmless ± with the study's config plus its overrides, extracts φ and scores
the validation prompts at η_harmless ∈ ETAS. The rule, fixed before running: pick the candidate with
the largest validation rise in refusal_harmful at the largest η whose held-out NLL stays within the
study's NLL span (base + 0.5); ties go to the cheaper one. The test prompts are never scored here.

Second rule (over-refusal), added when the chosen vector refused benign prompts as readily as
harmful ones (validation, η 0.25: 0.55 vs 0.81) and fixed before the candidate it compares was
trained: every candidate that raises refusal_harmful by 0.3 somewhere in its span is scored on tune's
grid (η_helpful ∈ {0, 1, 2}, with the study's helpful vector, × its η_harmless > 0 in span); the
candidate whose best feasible point (refusal_harmful ≥ base + 0.3) has the lowest refusal_benign
wins; ties keep the earlier candidate.

Third rule, added when the two candidates with project-written harmful requests jumped from no
refusal at η 0 to refusing nearly everything at η 0.25, so that the coarse grid above could not see
whether a smaller η separates: every candidate the second rule admits goes through the study's own
validation stage (``pvlora.worlds.smollm2.demo.validation_stage``: its finer η grid, NLL span and tune, with
the test score tune would take left out), and the candidate whose tuned mix has the lowest
validation refusal_benign wins; ties keep the earlier candidate. Still validation only.

    python benchmarks/choose/choose_smollm2_harmless.py            # ~35 min a candidate on 2 cores; writes results/smollm2_harmless_choice.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import BENCHMARKS, machine  # noqa: E402

RESULT_FILES = ("results/smollm2_harmless_choice.json",)  # what this script writes, relative to benchmarks/

# 0.25-1 were added after the first pass (0, 2, 4, 6), where the refusal-contrast vector was already
# over-scaled at η = 2 (validation NLL 6.4): every candidate is scored on every point.
ETAS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 6.0]
CANDIDATES = {
    # name: study-config overrides (the study's own settings were lr 2e-4, limit 176, any number of turns)
    "lr1e-3": ["preferences.harmless.dpo.learning_rate=1e-3"],
    "lr1e-3-single-turn": ["preferences.harmless.dpo.learning_rate=1e-3", "preferences.harmless.max_turns=1"],
    # only the 75 rows whose chosen answer refuses and whose rejected one does not (two epochs of 67)
    "lr1e-3-refusal-contrast": ["preferences.harmless.dpo.learning_rate=1e-3", "preferences.harmless.keep=refusal_contrast",
                                "preferences.harmless.dpo.num_train_epochs=2"],
    # the same 75 rows plus the 60 borderline pairs (safe requests that sound dangerous, on training
    # topics: chosen = the base's answer, rejected = a refusal), one epoch: as many steps as above
    "lr1e-3-refusal-contrast+borderline": [
        "preferences.harmless.dpo.learning_rate=1e-3", "preferences.harmless.keep=refusal_contrast",
        "preferences.harmless.extra_sources=[{source: smollm2-borderline, format: messages}]",
        "preferences.harmless.dpo.num_train_epochs=1"],
    # the 75 rows plus 95 pairs on harmful requests the project wrote (topics no evaluation prompt
    # has; chosen = a refusal, rejected = the base's own compliance), one epoch: the refusal signal
    # on single-turn requests like the evaluation's, which the 75 multi-turn HH rows lack
    "lr1e-3-refusal-contrast+harmful": [
        "preferences.harmless.dpo.learning_rate=1e-3", "preferences.harmless.keep=refusal_contrast",
        "preferences.harmless.extra_sources=[{source: smollm2-harmful, format: messages}]",
        "preferences.harmless.dpo.num_train_epochs=1"],
    # ... and the 60 borderline pairs beside them: refuse the harmful requests, answer the safe ones
    # that sound dangerous, in the same single-turn form
    "lr1e-3-refusal-contrast+harmful+borderline": [
        "preferences.harmless.dpo.learning_rate=1e-3", "preferences.harmless.keep=refusal_contrast",
        "preferences.harmless.extra_sources=[{source: smollm2-harmful, format: messages}, "
        "{source: smollm2-borderline, format: messages}]",
        "preferences.harmless.dpo.num_train_epochs=1"],
}
LABELS = {  # short names for reports
    "lr1e-3": "176 HH rows", "lr1e-3-single-turn": "single-turn HH rows", "lr1e-3-refusal-contrast": "refusal-contrast HH rows",
    "lr1e-3-refusal-contrast+borderline": "+ borderline", "lr1e-3-refusal-contrast+harmful": "+ harmful requests",
    "lr1e-3-refusal-contrast+harmful+borderline": "+ harmful requests + borderline",
}
TUNE_HELPFUL = [0.0, 1.0, 2.0]
SCORERS = "eval.scorers=[refusal_harmful,refusal_benign,heldout_nll]"


def train_seconds(out: Path) -> float:
    """Both adapters' training time, from their manifests (also right when a re-run skipped training)."""
    return sum(json.loads((out / "adapters" / f"harmless-{d}" / "pvlora.json").read_text())["metrics"]["train_seconds"]
               for d in ("positive", "negative"))


def run_candidate(name: str, overrides: list[str], root: Path, hh: str, helpful: Path, stored: dict | None = None) -> dict:
    from pvlora.evaluation.evaluator import Evaluator
    from pvlora.worlds.smollm2.demo import NLL_SPAN, THRESHOLDS, study_config
    from pvlora.training.dpo import train_all
    from pvlora.vectors.extract import extract_all

    out = root / name
    cfg = study_config(out, hh, [*overrides, SCORERS])
    cfg.preferences = [cfg.preference("harmless")]
    trained = train_all(cfg, "harmless", "both", skip_finished=True)
    vec = extract_all(cfg, out)["harmless"]
    ev = Evaluator(cfg, {"harmless": vec}, "validation")
    done = (stored or {}).get("validation", {})  # points scored by an earlier run (decoding is deterministic)
    points = {eta: done[str(eta)] if str(eta) in done else ev.score({"harmless": eta}) for eta in ETAS}
    base = points[0.0]
    ok = [e for e in ETAS if points[e]["heldout_nll"] <= base["heldout_nll"] + NLL_SPAN]
    bound = base["refusal_harmful"] + THRESHOLDS["tune_margin"]
    mix = {}
    if any(points[e]["refusal_harmful"] >= bound for e in ok):  # the second rule's grid
        del ev
        ev = Evaluator(cfg, {"helpful": helpful, "harmless": vec}, "validation")
        stored_mix = (stored or {}).get("mix", {})
        for h in TUNE_HELPFUL:
            for e in (e for e in ok if e > 0):
                key = f"{h:g},{e:g}"
                mix[key] = stored_mix.get(key) or (points[e] if h == 0 else ev.score({"helpful": h, "harmless": e}))
    feasible = [v for v in mix.values() if v["refusal_harmful"] >= bound]
    best = min(feasible, key=lambda v: (v["refusal_benign"], -v["refusal_harmful"])) if feasible else None
    return {
        "overrides": overrides, "train_seconds": train_seconds(out),
        "adapters": {r.manifest.direction: {k: r.manifest.metrics.get(k) for k in (
            "train_steps", "train_loss", "heldout_accuracy", "heldout_accuracy_base", "heldout_pairs")} for r in trained},
        "validation": {str(e): points[e] for e in ETAS},
        "largest_eta_in_span": max(ok),
        "rise": points[max(ok)]["refusal_harmful"] - base["refusal_harmful"],
        "mix": mix, "best_feasible_mix": best and {k: best[k] for k in ("refusal_harmful", "refusal_benign")} | {
            "at": next(k for k, v in mix.items() if v is best)},
    }


class ValidationOnly:
    """An evaluator for the study's own validation stage that never generates on the test prompts
    (the stage no longer asks: tune runs there with score_test=False; a request for any other split
    is an error) and reuses stored points. No test split is scored by this script, so it writes
    nothing to results/test_log.jsonl."""

    def __init__(self, ev, points: dict[str, dict]):
        self.cfg, self.ev, self.points, self.split = ev.cfg, ev, points, "validation"

    def set_split(self, split: str) -> None:
        self.split = split

    def score(self, weights: dict[str, float]) -> dict:
        if self.split != "validation":
            raise RuntimeError(f"the choice script scores validation only, not {self.split!r}")
        key = ",".join(f"{n}={weights.get(n, 0.0):g}" for n in ("helpful", "harmless"))
        if key not in self.points:
            self.points[key] = self.ev.score(weights)
        return self.points[key]


def study_validation(name: str, overrides: list[str], root: Path, hh: str, helpful: Path, stored: dict | None) -> dict:
    """Third rule: the study's own validation stage (pvlora.worlds.smollm2.demo.validation_stage: the η_harmless
    axis on the study's grid, its NLL span, tune over TUNE_HELPFUL × that span) on this candidate."""
    from pvlora.evaluation.evaluator import Evaluator
    from pvlora.worlds.smollm2.demo import study_config, validation_stage

    out = root / name
    cfg = study_config(out, hh, overrides)
    vec = out / "vectors" / "harmless"
    points = dict((stored or {}).get("points", {}))
    ev = ValidationOnly(Evaluator(cfg, {"helpful": helpful, "harmless": vec}, "validation"), points)
    axis, span, tuned = validation_stage(ev)
    tuned.pop("test", None)
    return {"span": span, "tune": tuned, "points": points}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/smollm2-harmless-choice")
    p.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    p.add_argument("--helpful", default="runs/smollm2-study/vectors/helpful",
                   help="the helpful vector tune mixes with (from a study run)")
    a = p.parse_args(argv)
    hh = os.environ.get("PVLORA_HH_RLHF_FILE") or "hh-rlhf-harmless-base"  # the rows shipped with pvlora
    path = BENCHMARKS / RESULT_FILES[0]
    results = json.loads(path.read_text())["candidates"] if path.exists() else {}
    for name, overrides in CANDIDATES.items():
        if a.only and name not in a.only:
            continue
        results[name] = run_candidate(name, overrides, Path(a.out), hh, Path(a.helpful), results.get(name))
        path.write_text(json.dumps({"candidates": results, "machine": machine()}, indent=2))  # after each one
    names = list(CANDIDATES)
    for name in names:  # third rule: the study's own validation stage on every candidate rule 2 admits
        if name in results and results[name].get("best_feasible_mix") and (not a.only or name in a.only):
            results[name]["study_validation"] = study_validation(name, CANDIDATES[name], Path(a.out), hh, Path(a.helpful),
                                                                 results[name].get("study_validation"))
            path.write_text(json.dumps({"candidates": results, "machine": machine()}, indent=2))
    ranked = sorted(results, key=lambda n: (-results[n]["rise"], results[n]["train_seconds"]))
    separating = sorted((n for n in results if results[n].get("best_feasible_mix")),
                        key=lambda n: (results[n]["best_feasible_mix"]["refusal_benign"], names.index(n)))
    tuned = sorted((n for n in results if "weights" in results[n].get("study_validation", {}).get("tune", {})),
                   key=lambda n: (results[n]["study_validation"]["tune"]["validation"]["refusal_benign"], names.index(n)))
    chosen = tuned[0] if tuned else separating[0] if separating else ranked[0]
    doc = {"rule": "largest validation rise in refusal_harmful at the largest η within the NLL span; ties: cheaper",
           "rule_over_refusal": "among candidates reaching refusal_harmful >= base + 0.3 on tune's validation grid: "
                                "lowest refusal_benign at the best feasible point; ties: the earlier candidate",
           "rule_study_validation": "among candidates rule_over_refusal admits: the study's own validation stage "
                                    "(its η grid, NLL span and tune); lowest refusal_benign at tune's choice; "
                                    "ties: the earlier candidate",
           "labels": LABELS, "chosen": chosen, "chosen_by_rise": ranked[0], "chosen_by_over_refusal": separating and separating[0], "candidates": results, "machine": machine()}
    path.write_text(json.dumps(doc, indent=2))
    for n in ranked:
        r = results[n]
        best = r.get("best_feasible_mix")
        print(f"{n:36s} rise {r['rise']:+.3f} at η={r['largest_eta_in_span']:g}  train {r['train_seconds']:.0f}s  "
              f"held-out acc +{r['adapters']['positive']['heldout_accuracy']:.3f} "
              f"(base {r['adapters']['positive']['heldout_accuracy_base']:.3f})  best feasible mix: "
              + (f"{best['at']} harmful {best['refusal_harmful']:.2f} benign {best['refusal_benign']:.2f}" if best else "none"))
    ranked = [chosen]
    print(f"chosen: {ranked[0]} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
