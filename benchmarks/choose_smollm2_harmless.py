"""How the SmolLM2 study trains its harmless vector: candidates compared on the VALIDATION prompts only.

With the study's first settings (lr 2e-4, 176 HH-RLHF rows of any length, 20 steps) the harmless
adapters did not move: held-out accuracy equal to the base's, and no rise in refusal along η. Each
candidate here trains harmless ± with the study's config plus its overrides, extracts φ and scores
the validation prompts at η_harmless ∈ ETAS. The rule, fixed before running: pick the candidate with
the largest validation rise in refusal_harmful at the largest η whose held-out NLL stays within the
study's NLL span (base + 0.5); ties go to the cheaper one. The test prompts are never scored here.

    python benchmarks/choose_smollm2_harmless.py            # ~35 min on 2 cores; writes results/smollm2_harmless_choice.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from _common import RESULTS, machine

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
}
SCORERS = "eval.scorers=[refusal_harmful,refusal_benign,heldout_nll]"


def train_seconds(out: Path) -> float:
    """Both adapters' training time, from their manifests (also right when a re-run skipped training)."""
    return sum(json.loads((out / "adapters" / f"harmless-{d}" / "pvlora.json").read_text())["metrics"]["train_seconds"]
               for d in ("positive", "negative"))


def run_candidate(name: str, overrides: list[str], root: Path, hh: str, stored: dict | None = None) -> dict:
    from pvlora.demo import extract_all
    from pvlora.evaluate.runner import Evaluator
    from pvlora.smollm2.demo import NLL_SPAN, study_config
    from pvlora.train import train_all

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
    return {
        "overrides": overrides, "train_seconds": train_seconds(out),
        "adapters": {r.manifest["direction"]: {k: r.manifest["metrics"].get(k) for k in (
            "train_steps", "train_loss", "heldout_accuracy", "heldout_accuracy_base", "heldout_pairs")} for r in trained},
        "validation": {str(e): points[e] for e in ETAS},
        "largest_eta_in_span": max(ok),
        "rise": points[max(ok)]["refusal_harmful"] - base["refusal_harmful"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/smollm2-harmless-choice")
    p.add_argument("--only", nargs="*", help="candidate names to run (default: all)")
    a = p.parse_args(argv)
    hh = os.environ.get("PVLORA_HH_RLHF_FILE") or str(
        Path(__file__).resolve().parents[2] / "shared/data/hh-rlhf/harmless-base-test-dev.jsonl.gz")
    path = RESULTS / "smollm2_harmless_choice.json"
    results = json.loads(path.read_text())["candidates"] if path.exists() else {}
    for name, overrides in CANDIDATES.items():
        if a.only and name not in a.only:
            continue
        results[name] = run_candidate(name, overrides, Path(a.out), hh, results.get(name))
        path.write_text(json.dumps({"candidates": results, "machine": machine()}, indent=2))  # after each one
    ranked = sorted(results, key=lambda n: (-results[n]["rise"], results[n]["train_seconds"]))
    doc = {"rule": "largest validation rise in refusal_harmful at the largest η within the NLL span; ties: cheaper",
           "chosen": ranked[0], "candidates": results, "machine": machine()}
    path.write_text(json.dumps(doc, indent=2))
    for n in ranked:
        r = results[n]
        print(f"{n:22s} rise {r['rise']:+.3f} at η={r['largest_eta_in_span']:g}  train {r['train_seconds']:.0f}s  "
              f"held-out acc +{r['adapters']['positive']['heldout_accuracy']:.3f} "
              f"(base {r['adapters']['positive']['heldout_accuracy_base']:.3f})")
    print(f"chosen: {ranked[0]} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
