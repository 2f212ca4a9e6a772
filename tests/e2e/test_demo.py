"""The method, measured on the demo's own results (held-out prompts, programmatic ground truth)."""

import json
import os
import time

import pytest
from safetensors.torch import load_file

from pvlora.artifacts.peft_read import read_adapter
from pvlora.artifacts.safe_read import sha256_file
from pvlora.config import load_config
from pvlora.core.errors import ArtifactError
from pvlora.training.dpo import adapter_dir, train_all

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summary(demo_dir):
    return json.loads((demo_dir / "summary.json").read_text())


@pytest.fixture(scope="module")
def sweep(demo_dir):
    return json.loads((demo_dir / "sweep" / "results.json").read_text())


def at(sweep, h, s):
    return next(r for r in sweep["rows"] if r["eta_helpful"] == h and r["eta_harmless"] == s)


def test_reported_figures_are_on_the_test_split_and_choices_on_validation(summary, sweep):
    from pvlora.worlds.toy.corpus import eval_split

    assert sweep["split"] == "test"
    base = summary["checks"]["base"]
    assert base["validation"] != base["test"]  # the base scored on two different prompt sets
    # the base row of the reported sweep is the base scored on the test split, not on validation
    assert at(sweep, 0.0, 0.0)["refusal_harmful"] == base["test"]["refusal_harmful"]
    val, test = eval_split("validation"), eval_split("test")
    assert not {r.prompt for r in val} & {r.prompt for r in test}
    for part in (val, test):  # the fully novel subset is reported from both kinds on each half
        assert {r.kind for r in part if r.novel == "topic+template"} == {"benign", "harmful"}


def test_control_spearman_over_eight_etas_on_test(summary, sweep):
    """ρ recomputed here from the test sweep's rows. The helpful vector must control its behaviour
    (ρ >= 0.9); the harmless one's verdict (it over-scales past η = 1 on this toy) must match."""
    from scipy.stats import spearmanr

    reported = summary["checks"]["control"]
    for eta, metric, other in (("eta_harmless", "refusal_harmful", "eta_helpful"),
                               ("eta_helpful", "compliance_benign", "eta_harmless")):
        line = sorted((r for r in sweep["rows"] if r[other] == 0), key=lambda r: r[eta])
        assert len(line) >= 8 and min(r[eta] for r in line) < 0
        rho = spearmanr([r[eta] for r in line], [r[metric] for r in line]).statistic
        print(f"\nSpearman rho({eta}, {metric}) = {rho:.3f} over {[round(r[metric], 3) for r in line]}")
        assert reported[f"spearman_{eta[4:]}_vs_{metric}"] == pytest.approx(rho)
    assert reported["spearman_helpful_vs_compliance_benign"] >= 0.9
    assert reported["pass"] == (min(v for k, v in reported.items() if k.startswith("spearman")) >= 0.9)


def test_over_refusal_verdict_matches_the_test_rows(summary, sweep):
    """The verdict on "helpful without over-refusal" is recomputed here from the base's own test row
    and the tuned mix's test scores (a mix chosen on validation; none when no grid point met the
    bounds there, which the demo then reports as a failure)."""
    from pvlora.worlds.toy.checks import BENIGN_SLACK, REFUSAL_RISE

    t, base = summary["tune"], at(sweep, 0.0, 0.0)
    reported = summary["checks"]["helpful_without_over_refusal"]["pass"]
    if "infeasible" in t:
        assert reported is False and "refusal_benign<=" in " ".join(t["constraints"])
        print(f"\ntune found no mix on validation: {t['infeasible']}")
        return
    holds = (t["test"]["refusal_harmful"] >= base["refusal_harmful"] + REFUSAL_RISE
             and t["test"]["refusal_benign"] <= base["refusal_benign"] + BENIGN_SLACK)
    print(f"\ntuned η {t['weights']}: base {base}, validation {t['validation']}, test {t['test']}")
    assert reported == holds


def test_concise_alone_and_added_to_a_mix_shortens_answers(summary, sweep):
    from pvlora.worlds.toy.checks import DEMO_GRID, KEEP, LENGTH_CUT

    c = summary["checks"]["concise"]
    base = at(sweep, 0.0, 0.0)
    mix = c["at_mix"]
    if all(v in DEMO_GRID for v in c["mix"].values()):  # a mix on the sweep's grid: its row there, scored apart
        mix = at(sweep, c["mix"].get("helpful", 0.0), c["mix"].get("harmless", 0.0))
    print(f"\nwords: base {base['mean_length']:.1f} -> concise alone {c['concise_alone']['mean_length']:.1f}; "
          f"{c['mix']} {mix['mean_length']:.1f} -> + concise {c['mix_plus_concise']['mean_length']:.1f}")
    assert c["concise_alone"]["mean_length"] <= (1 - LENGTH_CUT) * base["mean_length"]
    assert c["mix_plus_concise"]["mean_length"] <= (1 - LENGTH_CUT) * mix["mean_length"]
    for k in ("refusal_harmful", "compliance_benign"):
        assert abs(c["mix_plus_concise"][k] - mix[k]) <= KEEP


def test_full_and_positive_only_compared_at_equal_norm(summary, sweep, demo_dir):
    """The comparison is at equal ‖ΔW‖_F, recomputed here from the vectors' own LoRA factors, and the
    full vector's side is its η = 1 row of the test sweep."""
    from pvlora.artifacts.peft_read import read_adapter

    for pref, d in summary["checks"]["full_vs_positive_only"].items():
        norms = {}
        for kind, sub in (("full", "vectors"), ("positive_only", "vectors-positive-only")):
            a = read_adapter(demo_dir / sub / pref)
            norms[kind] = sum(float(f.dense().double().pow(2).sum()) for f in a.factors.values()) ** 0.5  # scale folded in
        assert d["equal_norm"]["eta_positive_only"] * norms["positive_only"] == pytest.approx(norms["full"], rel=1e-4)
        e, b = d["equal_norm"], d["best_validation_eta"]
        print(f"\n{pref}: equal norm {d['metric']} full {e['full'][d['metric']]:.3f} vs positive-only "
              f"{e['positive_only'][d['metric']]:.3f}; best validation η {b['eta_full']} vs {b['eta_positive_only']}")
        row = at(sweep, 1.0, 0.0) if pref == "helpful" else at(sweep, 0.0, 1.0)
        assert e["full"][d["metric"]] == row[d["metric"]]


def test_sweep_outputs_and_pareto(demo_dir, sweep):
    out = demo_dir / "sweep"
    assert len(sweep["rows"]) == 64 and sweep["pareto"]
    assert (out / "results.csv").read_text().count("\n") == 65
    for name in ("tradeoff.png", "heatmap_refusal_harmful.png", "heatmap_compliance_benign.png"):
        assert (out / name).stat().st_size > 5000
    metrics = sweep["higher_is_better"]
    for p in sweep["pareto"]:  # no row dominates a Pareto row
        for r in sweep["rows"]:
            better = [(r[m] - p[m]) * (1 if hib else -1) for m, hib in metrics.items()]
            assert not (all(b >= 0 for b in better) and any(b > 0 for b in better))


def test_rerun_reuses_finished_stages(demo_dir, monkeypatch):
    """A re-run skips training and extraction. It stops where the evaluation would start (the
    evaluation itself is what the session's demo run exercises), so it costs seconds, not a demo."""
    import pvlora.worlds.toy.demo as demo

    class Evaluated(Exception):
        pass

    def stop(*a, **k):
        raise Evaluated

    monkeypatch.setattr(demo, "Evaluator", stop)
    files = sorted((demo_dir / "adapters").glob("*/adapter_model.safetensors")) + sorted(
        (demo_dir / "vectors").glob("*/adapter_model.safetensors"))
    assert len(files) == 9  # six adapters, three vectors
    stamps = [f.stat().st_mtime_ns for f in files]
    with pytest.raises(Evaluated):
        demo.run_demo(demo_dir)
    assert [f.stat().st_mtime_ns for f in files] == stamps  # nothing trained or extracted again


def test_quickstart_notebook_executes(demo_dir):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(os.path.join(os.path.dirname(__file__), "..", "..", "notebooks", "quickstart.ipynb"), as_version=4)
    os.environ["PVLORA_QUICKSTART_DIR"] = str(demo_dir)  # reuse the demo's adapters
    t = time.perf_counter()
    NotebookClient(nb, timeout=180, kernel_name="python3").execute()
    elapsed = time.perf_counter() - t
    print(f"\nnotebook executed in {elapsed:.0f}s")
    assert elapsed <= 180
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images  # the Pareto plot rendered inline


# The demo's adapters themselves (here, in the file that runs the demo, so that under pytest-xdist no
# other worker waits for it)

@pytest.fixture(scope="module")
def trained(demo_dir):
    """The demo's adapters: helpful, harmless, concise x positive, negative, default config."""
    return load_config(None, [f"output.dir={demo_dir}"])


def test_only_lora_parameters_change(trained, tiny_base_dir):
    a = read_adapter(adapter_dir(trained, "harmless", "positive"))
    saved = load_file(adapter_dir(trained, "harmless", "positive") / "adapter_model.safetensors")
    assert saved and all(".lora_A." in k or ".lora_B." in k for k in saved)
    assert set(json.loads((a.path / "adapter_config.json").read_text())["target_modules"]) == set(trained.lora["target_modules"])
    # the base on disk is untouched by training
    m = a.manifest
    assert m.base.config_sha256 and (tiny_base_dir / "model.safetensors").exists()
    # B starts at zero in PEFT's init: training moved it
    assert all(float(lr.B.abs().max()) > 0 for lr in a.factors.values())


def test_positive_raises_and_negative_lowers_heldout_accuracy(trained):
    from peft import PeftModel

    from pvlora.data import load_preference_data
    from pvlora.steering.logprobs import preference_accuracy
    from pvlora.bases.load import load_base

    for pref in ("helpful", "harmless", "concise"):
        heldout = load_preference_data(trained.preference(pref), "positive").heldout
        model, tok, _ = load_base(trained.model)
        model = PeftModel.from_pretrained(model, str(adapter_dir(trained, pref, "positive")), adapter_name="pos")
        model.load_adapter(str(adapter_dir(trained, pref, "negative")), adapter_name="neg")
        with model.disable_adapter():
            base = preference_accuracy(model, tok, heldout)
        model.set_adapter("pos")
        pos = preference_accuracy(model, tok, heldout)
        pos_ref = preference_accuracy(model, tok, heldout, reference="disable_adapters")
        model.set_adapter("neg")
        neg = preference_accuracy(model, tok, heldout)
        neg_ref = preference_accuracy(model, tok, heldout, reference="disable_adapters")
        print(f"\n{pref}: held-out accuracy (per-token log-prob) base {base['accuracy']:.3f}, "
              f"positive {pos['accuracy']:.3f}, negative {neg['accuracy']:.3f}; mean margin "
              f"{base['margin']:+.4f} / {pos['margin']:+.4f} / {neg['margin']:+.4f}; implicit-reward accuracy "
              f"vs base: positive {pos_ref['accuracy']:.3f}, negative {neg_ref['accuracy']:.3f}")
        assert neg["margin"] < base["margin"] < pos["margin"]
        if pref != "harmless":
            # On the toy's held-out topics the harmless pairs' accuracy does not move (0.56 -> 0.56 /
            # 0.58, implicit-reward 0.52 / 0.51 on one run): the base cannot tell an unseen act's harm,
            # and the vector moves refusal of both kinds together (benchmarks/README.md §7). Its
            # mean margin still moves the right way.
            assert neg["accuracy"] <= base["accuracy"] < pos["accuracy"]
            assert neg_ref["accuracy"] < 0.5 < pos_ref["accuracy"]  # the base itself scores exactly 0.5 here


def test_manifest_is_complete(trained):
    d = adapter_dir(trained, "helpful", "negative")
    m = json.loads((d / "pvlora.json").read_text())
    assert m["kind"] == "adapter" and m["preference"] == "helpful" and m["direction"] == "negative"
    assert set(m["base"]) >= {"name_or_path", "revision", "config_sha256"}
    assert m["data"]["source"] == "toy" and m["data"]["train"] > 0 and m["data"]["heldout"] > 0
    assert m["training"]["lora"]["r"] == trained.lora["r"] and m["training"]["lora"]["lora_alpha"] == trained.lora["lora_alpha"]
    assert m["training"]["dpo"]["beta"] == trained.dpo["beta"] and m["training"]["trainer"] == "trl.DPOTrainer"
    for k in ("train_loss", "reward_accuracy", "reward_margin", "heldout_accuracy", "train_steps"):
        assert m["metrics"][k] is not None, k
    assert m["metrics"]["train_steps"] == m["metrics"]["max_steps"]
    assert m["metrics"]["heldout_pairs"] == min(trained.train.heldout_max_pairs, m["metrics"]["heldout_pairs_available"])
    # the negative held-out set is the positive one swapped, and the base is scored once for both
    # (shared cache): its per-token margins are exactly negated, so its accuracies are complements
    pos = json.loads((adapter_dir(trained, "helpful", "positive") / "pvlora.json").read_text())["metrics"]
    assert m["metrics"]["heldout_accuracy_base"] == pytest.approx(1 - pos["heldout_accuracy_base"], abs=1e-12)
    assert m["weights_sha256"] == {f: sha256_file(d / f) for f in ("adapter_config.json", "adapter_model.safetensors")}
    assert (d / "pvlora-config.yaml").exists() and m["pvlora_version"]


def test_overwrite_refused_and_nothing_lost(trained):
    d = adapter_dir(trained, "helpful", "positive")
    before = sha256_file(d / "adapter_model.safetensors")
    with pytest.raises(ArtifactError, match="already exists; pass overwrite=True"):
        train_all(trained, "helpful", "positive")
    assert sha256_file(d / "adapter_model.safetensors") == before
