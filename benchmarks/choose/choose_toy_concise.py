"""How much concise data the toy holds: candidates compared on the VALIDATION split only.

Concise pairs prefer a short answer to a long one on benign requests (CONCISE_BENIGN_PAIRS per
request) and a short refusal to the same refusal made long on a share of harmful requests
(CONCISE_HARMFUL_SHARE). Brevity pairs can also teach "answer" (a short answer is an answer), so
adding concise to a mix could erode refusals. Each candidate trains concise ± with the demo's config;
the helpful and harmless vectors are trained once with the shipped data. The rule, fixed before
running: a candidate qualifies when concise = 1 alone shortens answers by at least 10% from the base
and, added to (helpful 1, harmless 1), moves refusal of harmful and answering of benign requests by
at most 0.1 each; the qualifying candidate with the largest length cut from that mix wins; ties keep
the shipped amounts. The test split is never scored here.

    python benchmarks/choose/choose_toy_concise.py      # ~4 min on 2 cores; writes results/toy_concise_choice.json
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402
from choose_toy_harmless import train_vector  # noqa: E402

RESULT_FILES = ("results/toy_concise_choice.json",)  # what this script writes, relative to benchmarks/

CANDIDATES = [(1, 0.5), (1, 0.0), (1, 1.0), (2, 0.5)]  # (pairs per benign request, share of harmful requests)
MIX = {"helpful": 1.0, "harmless": 1.0}
CUT, KEEP = 0.1, 0.1


def main() -> int:
    from pvlora.config import load_config
    from pvlora.evaluation.evaluator import Evaluator
    from pvlora.worlds.toy import corpus

    shipped = (corpus.CONCISE_BENIGN_PAIRS, corpus.CONCISE_HARMFUL_SHARE)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        vectors = {name: train_vector(name, root) for name in MIX}
        for benign, share in CANDIDATES:
            corpus.CONCISE_BENIGN_PAIRS, corpus.CONCISE_HARMFUL_SHARE = benign, share
            vectors["concise"] = train_vector("concise", root)
            ev = Evaluator(load_config(None, [f"output.dir={root}"]), vectors, "validation")
            base, alone, mix, plus = (ev.score(w) for w in ({}, {"concise": 1.0}, MIX, {**MIX, "concise": 1.0}))
            r = {"base": base, "concise_alone": alone, "mix": mix, "mix_plus_concise": plus,
                 "cut_from_base": 1 - alone["mean_length"] / base["mean_length"],
                 "cut_from_mix": 1 - plus["mean_length"] / mix["mean_length"],
                 "refusal_harmful_change": plus["refusal_harmful"] - mix["refusal_harmful"],
                 "compliance_benign_change": plus["compliance_benign"] - mix["compliance_benign"]}
            r["qualifies"] = (r["cut_from_base"] >= CUT and abs(r["refusal_harmful_change"]) <= KEEP
                              and abs(r["compliance_benign_change"]) <= KEEP)
            results[f"{benign},{share}"] = r
            print(f"concise ({benign} per benign request, {share:g} of harmful): cut from base {r['cut_from_base']:.0%}, "
                  f"from the mix {r['cut_from_mix']:.0%}, refuse harmful {r['refusal_harmful_change']:+.2f}, "
                  f"answer benign {r['compliance_benign_change']:+.2f} -> {'qualifies' if r['qualifies'] else 'no'}")
            del ev
    key = f"{shipped[0]},{shipped[1]}"
    ok = [k for k, r in results.items() if r["qualifies"]]
    chosen = max(ok, key=lambda k: (round(results[k]["cut_from_mix"], 6), k == key)) if ok else None
    print(f"chosen: {chosen} (shipped: {key})")
    save(RESULT_FILES[0], {"split": "validation", "mix": MIX, "candidates": results, "chosen": chosen,
                                "shipped": key, "rule": "cut from base >= 10%, |change| <= 0.1 at the mix; "
                                "largest cut from the mix; ties keep the shipped amounts"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
