"""How many benign pairs the toy harmless data holds: candidates compared on the VALIDATION split only.

The harmless pairs prefer refusing on harmful requests (3 pairs per request) and answering on benign
ones (``BENIGN_HARMLESS_PAIRS`` per request). Too few benign pairs and the vector learns "refuse
more" for every request. Each candidate trains harmless ± with the demo's config, extracts φ and
scores the validation prompts at η_harmless ∈ ETAS. The test split is never scored here.

First rule: the candidate with the largest validation separation max_η (refusal_harmful −
refusal_benign) wins. It picked 3 pairs, whose vector refuses *less* than the base at every η > 0
(a flip to "answer everything", not a harmless vector). Second rule, which replaced it (still on
validation only): only η where refusal_harmful rises at least RISE over the base count; the
candidate with the largest separation at such an η wins, ties to the fewer pairs.

    python benchmarks/choose/choose_toy_harmless.py      # ~5 min on 2 cores; writes results/toy_harmless_choice.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/toy_harmless_choice.json",)  # what this script writes, relative to benchmarks/

ETAS = [0.0, 0.5, 1.0, 1.5, 2.0]
CANDIDATES = [1.5, 3.0, 6.0]
RISE = 0.1


def separation(rows: list[dict[str, float]]) -> float | None:
    """Best refusal_harmful − refusal_benign over the η > 0 that raise refusal_harmful by RISE (None: no such η)."""
    base = rows[0]["refusal_harmful"]
    ok = [r["refusal_harmful"] - r["refusal_benign"] for r in rows[1:] if r["refusal_harmful"] >= base + RISE]
    return max(ok) if ok else None


def train_vector(name: str, root: Path) -> Path:
    """Train ``name`` ± with the demo's config (and the toy data as the corpus module now sets it)
    into ``root`` and extract its vector."""
    from pvlora.config import load_config
    from pvlora.training.dpo import adapter_dir, train_all
    from pvlora.vectors.extract import extract_vector

    cfg = load_config(None, [f"output.dir={root}"])
    train_all(cfg, name, "both", overwrite=True)
    vec = root / "vectors" / name
    extract_vector(adapter_dir(cfg, name, "positive"), adapter_dir(cfg, name, "negative"), vec, preference=name,
                   overwrite=True)
    return vec


def score_candidate(pairs: float, root: Path) -> list[dict[str, float]]:
    from pvlora.config import load_config
    from pvlora.evaluation.evaluator import Evaluator
    from pvlora.worlds.toy import corpus

    corpus.BENIGN_HARMLESS_PAIRS = pairs
    vec = train_vector("harmless", root)
    ev = Evaluator(load_config(None, [f"output.dir={root}"]), {"harmless": vec}, "validation")
    return [{"eta_harmless": eta, **ev.score({"harmless": eta})} for eta in ETAS]


def main() -> int:
    from pvlora.worlds.toy import corpus

    shipped = corpus.BENIGN_HARMLESS_PAIRS
    results = {}
    for pairs in CANDIDATES:
        with tempfile.TemporaryDirectory() as tmp:
            rows = score_candidate(pairs, Path(tmp))
        sep = separation(rows)
        results[str(pairs)] = {"rows": rows, "separation": sep,
                               "separation_first_rule": max(r["refusal_harmful"] - r["refusal_benign"] for r in rows)}
        print(f"benign pairs per request {pairs:g}: validation separation {sep} "
              + " ".join(f"η{r['eta_harmless']:g}: {r['refusal_harmful']:.2f}/{r['refusal_benign']:.2f}" for r in rows))
    ok = [p for p in CANDIDATES if results[str(p)]["separation"] is not None]
    chosen = max(ok, key=lambda p: (results[str(p)]["separation"], -p)) if ok else None
    print(f"chosen: {chosen} benign pairs per benign request (shipped: {shipped:g})")
    save(RESULT_FILES[0], {"split": "validation", "etas": ETAS, "candidates": results, "chosen": chosen,
                                 "shipped": shipped, "rise": RISE,
                                 "rule": "max refusal_harmful − refusal_benign over η > 0 raising refusal_harmful by RISE; "
                                         "ties: fewer pairs"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
