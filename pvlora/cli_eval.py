"""CLI handlers for evaluation, sweeps, tuning, the demo and the Hub."""

from __future__ import annotations

import json
from pathlib import Path

from pvlora.errors import ConfigError


def _setup(a):
    from pvlora.config import load_config
    from pvlora.evaluate.runner import find_vectors

    cfg = load_config(a.config, a.overrides)
    vectors = find_vectors(a.vectors or Path(cfg.output.dir) / "vectors")
    return cfg, vectors


def _check_out(a) -> None:
    """``--out FILE``: refused before any work when it exists, unless ``--overwrite``."""
    if a.out and Path(a.out).is_dir():
        raise ConfigError(f"--out {a.out} is a directory; name a JSON file")
    if a.out and (Path(a.out).exists() or Path(a.out).is_symlink()) and not a.overwrite:
        raise ConfigError(f"--out {a.out} already exists; pass --overwrite to replace it")


def _write_json(path: str, obj) -> None:
    from pvlora.artifacts import atomic_file

    with atomic_file(Path(path)) as fh:  # all of it or, if interrupted, the old file untouched
        fh.write(json.dumps(obj, indent=2) + "\n")


def cmd_eval(a) -> int:
    from pvlora.cli_grammar import weights as parse_weights
    from pvlora.evaluate.runner import Evaluator

    _check_out(a)
    weights = parse_weights(a.weights)
    cfg, vectors = _setup(a)
    scores = Evaluator(cfg, vectors, a.split).score(weights)
    print("composition: " + (", ".join(f"{k}={v:g}" for k, v in weights.items()) or "base (all η = 0)"))
    for k, v in scores.items():
        print(f"  {k:>20}: {v:.4f}")
    if a.out:
        _write_json(a.out, {"weights": weights, "split": a.split, "scores": scores})
    return 0


def cmd_sweep(a) -> int:
    from pvlora.cli_grammar import grid
    from pvlora.evaluate.sweep import render_table, sweep

    grids = grid(a.grid)
    cfg, vectors = _setup(a)
    out = Path(a.out or Path(cfg.output.dir) / "sweep")
    result = sweep(cfg, vectors, grids, out, a.split, a.overwrite)
    print(render_table(result["rows"]))
    print(f"\n{len(result['pareto'])} Pareto-optimal of {len(result['rows'])} points; "
          f"results.csv, results.json and plots in {out}")
    return 0


def cmd_tune(a) -> int:
    from pvlora.evaluate.runner import Evaluator
    from pvlora.evaluate.tune import parse_constraint, tune

    _check_out(a)
    cfg, vectors = _setup(a)
    names = [n.strip() for n in a.preferences.split(",")] if a.preferences else list(vectors)
    constraints = [parse_constraint(c) for c in a.constraint]
    grid = {n: cfg.eval.grid[n] for n in names if n in cfg.eval.grid} or None
    result = tune(Evaluator(cfg, {n: vectors[n] for n in names}, "validation"), a.maximize, constraints, names, grid)
    print("chosen η: " + ", ".join(f"{k}={v:g}" for k, v in result["weights"].items())
          + f"  ({result['points_evaluated']} points on the validation split)")
    for split in ("validation", "test"):
        print(f"  {split:>10}: " + ", ".join(f"{k} {v:.3f}" for k, v in result[split].items()))
    if a.out:
        _write_json(a.out, result)
    return 0


def cmd_demo(a) -> int:
    if a.base == "smollm2":
        from pvlora.smollm2.demo import run_study

        run_study(a.out or "pvlora-demo-smollm2", a.hh_rlhf, fresh=a.fresh, command=a.recorded)
        return 0
    if a.hh_rlhf:
        raise ConfigError("--hh-rlhf belongs to --base smollm2 (the tiny demo uses its own toy data)")
    from pvlora.demo import run_demo

    run_demo(a.out or "pvlora-demo", fresh=a.fresh, command=a.recorded)
    return 0


def cmd_push(a) -> int:
    from pvlora.hub import plan_upload, push

    if a.dry_run:
        plan = plan_upload(a.dir, a.repo_id, a.private, a.revision)
        print(f"would upload to {plan.repo_id}{'@' + plan.revision if plan.revision else ''} "
              f"({'private' if plan.private else 'public'}): {', '.join(plan.files)}\n")
        print(plan.card)
        return 0
    print(f"[pvlora] pushed {a.dir} -> {push(a.dir, a.repo_id, a.private, a.revision, a.token)}")
    return 0


def cmd_pull(a) -> int:
    from pvlora.hub import pull

    print(f"[pvlora] {a.repo_id} -> {pull(a.repo_id, a.out, a.token, overwrite=a.overwrite)}")
    return 0
