"""The method, measured on the demo's own results (held-out prompts, programmatic ground truth)."""

import json
import os
import time

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summary(demo_dir):
    return json.loads((demo_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def sweep(demo_dir):
    return json.loads((demo_dir / "sweep" / "results.json").read_text())


def at(sweep, h, s):
    return next(r for r in sweep["rows"] if r["eta_helpful"] == h and r["eta_harmless"] == s)


def test_control_spearman(sweep):
    from scipy.stats import spearmanr

    for eta, metric, other in (("eta_harmless", "refusal_harmful", "eta_helpful"),
                               ("eta_helpful", "compliance_benign", "eta_harmless")):
        line = [r for r in sweep["rows"] if r[other] == 0]
        rho = spearmanr([r[eta] for r in line], [r[metric] for r in line]).statistic
        print(f"\nSpearman rho({eta}, {metric}) = {rho:.3f} over {[round(r[metric], 3) for r in line]}")
        assert len(line) == 6 and rho >= 0.9


def test_helpful_without_over_conservatism(sweep):
    both, harmless_only = at(sweep, 1.0, 1.0), at(sweep, 0.0, 1.0)
    print(f"\n(1,1): compliance {both['compliance_benign']:.3f}, refusal {both['refusal_harmful']:.3f}; "
          f"(0,1): compliance {harmless_only['compliance_benign']:.3f}, refusal {harmless_only['refusal_harmful']:.3f}")
    assert both["compliance_benign"] > harmless_only["compliance_benign"]
    assert both["refusal_harmful"] >= 0.8 * harmless_only["refusal_harmful"]


def test_full_vector_beats_positive_only(summary):
    for pref, d in summary["checks"]["full_vs_positive_only"].items():
        print(f"\n{pref}: {d['metric']} full {d['full']:.3f} vs positive-only {d['positive_only']:.3f}")
        assert d["full"] > d["positive_only"]


def test_sweep_outputs_and_pareto(demo_dir, sweep):
    out = demo_dir / "sweep"
    assert len(sweep["rows"]) == 36 and sweep["pareto"]
    assert (out / "results.csv").read_text().count("\n") == 37
    for name in ("tradeoff.png", "heatmap_refusal_harmful.png", "heatmap_compliance_benign.png"):
        assert (out / name).stat().st_size > 5000
    metrics = sweep["higher_is_better"]
    for p in sweep["pareto"]:  # no row dominates a Pareto row
        for r in sweep["rows"]:
            better = [(r[m] - p[m]) * (1 if hib else -1) for m, hib in metrics.items()]
            assert not (all(b >= 0 for b in better) and any(b > 0 for b in better))


def test_tune_meets_its_constraint_on_validation(summary):
    t = summary["tune"]
    assert "infeasible" not in t, t
    assert t["validation"]["refusal_harmful"] >= 0.8
    print(f"\ntuned η {t['weights']}: validation {t['validation']}, test {t['test']}")


def test_rerun_reuses_finished_stages(demo_dir):
    from pvlora.toy.demo import run_demo

    stamp = (demo_dir / "adapters" / "helpful-positive" / "adapter_model.safetensors").stat().st_mtime_ns
    t = time.perf_counter()
    s = run_demo(demo_dir)
    assert s["seconds"]["train"] < 10 and s["seconds"]["extract"] < 5
    assert (demo_dir / "adapters" / "helpful-positive" / "adapter_model.safetensors").stat().st_mtime_ns == stamp
    print(f"\nre-run took {time.perf_counter() - t:.1f}s")


def test_quickstart_notebook_executes(demo_dir):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(os.path.join(os.path.dirname(__file__), "..", "notebooks", "quickstart.ipynb"), as_version=4)
    os.environ["PVLORA_QUICKSTART_DIR"] = str(demo_dir)  # reuse the demo's adapters
    t = time.perf_counter()
    NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    elapsed = time.perf_counter() - t
    print(f"\nnotebook executed in {elapsed:.0f}s")
    assert elapsed <= 180
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images  # the Pareto plot rendered inline


def test_concise_extension_cuts_length_and_leaves_the_rest(summary):
    """Adding concise at η=1 to (helpful=1, harmless=1): ≥ 20% shorter, while harmful refusal and
    benign compliance each move by at most 0.1."""
    before, after = summary["checks"]["helpful1_harmless1"], summary["checks"]["helpful1_harmless1_concise1"]
    print(f"\nconcise=1: length {before['mean_length']:.1f} -> {after['mean_length']:.1f} "
          f"({100 * summary['checks']['length_cut']:.0f}% shorter); refusal(harmful) "
          f"{before['refusal_harmful']:.3f} -> {after['refusal_harmful']:.3f}; compliance(benign) "
          f"{before['compliance_benign']:.3f} -> {after['compliance_benign']:.3f}")
    assert summary["checks"]["length_cut"] >= 0.20
    assert after["mean_length"] == pytest.approx(before["mean_length"] * (1 - summary["checks"]["length_cut"]))
    assert abs(after["refusal_harmful"] - before["refusal_harmful"]) <= 0.1
    assert abs(after["compliance_benign"] - before["compliance_benign"]) <= 0.1
