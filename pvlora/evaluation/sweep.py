"""η grids: evaluate every point with one loaded model, then the Pareto set, tables and plots."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from pvlora.core.errors import ConfigError
from pvlora.evaluation.grid import DEFAULT_GRID, check_grid, grid_points, pareto_front
from pvlora.artifacts.atomic import atomic_dir
from pvlora.evaluation.evaluator import Evaluator
from pvlora.evaluation.scorers import get_scorer


def run_points(evaluator, points: list[dict[str, float]], desc: str = "sweep") -> list[dict[str, Any]]:
    rows = []
    for w in tqdm(points, desc=desc, unit="point"):
        scores = evaluator.score(w)
        rows.append({**{f"eta_{k}": v for k, v in w.items()}, **scores})
    return rows


def write_results(out: Path, rows: list[dict[str, Any]], metrics: dict[str, bool], meta: dict[str, Any]) -> dict:
    front = pareto_front(rows, metrics)
    for i, r in enumerate(rows):
        r["pareto"] = i in front
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = {**meta, "higher_is_better": metrics, "rows": rows, "pareto": [rows[i] for i in front]}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    return result


def plot(out: Path, rows: list[dict[str, Any]], metrics: dict[str, bool], x: str | None = None,
         y: str | None = None) -> list[Path]:
    """A heatmap per metric over the first two preferences, and a trade-off scatter of two metrics
    with the Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    etas = [k for k in rows[0] if k.startswith("eta_")]
    if len(etas) >= 2:
        a, b = etas[:2]
        others = etas[2:]
        base_rows = [r for r in rows if all(r[o] == 0 for o in others)] or rows
        xs, ys = sorted({r[a] for r in base_rows}), sorted({r[b] for r in base_rows})
        for m in metrics:
            grid = [[math.nan] * len(xs) for _ in ys]
            for r in base_rows:
                grid[ys.index(r[b])][xs.index(r[a])] = r[m]
            fig, ax = plt.subplots(figsize=(4.8, 4))
            im = ax.imshow(grid, origin="lower", cmap="viridis", aspect="auto")
            ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs])
            ax.set_yticks(range(len(ys)), [f"{v:g}" for v in ys])
            ax.set_xlabel(f"η {a[4:]}")
            ax.set_ylabel(f"η {b[4:]}")
            ax.set_title(f"{m} ({'↑' if metrics[m] else '↓'} better)")
            for i, row in enumerate(grid):
                for j, v in enumerate(row):
                    if not math.isnan(v):
                        ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7, color="w")
            fig.colorbar(im, ax=ax)
            fig.tight_layout()
            p = out / f"heatmap_{m}.png"
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)
    names = list(metrics)
    x, y = x or names[0], y or (names[1] if len(names) > 1 else names[0])
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.scatter([r[x] for r in rows], [r[y] for r in rows], c="lightgray", label="grid point")
    front = sorted((r for r in rows if r.get("pareto")), key=lambda r: r[x])
    ax.plot([r[x] for r in front], [r[y] for r in front], "o-", color="crimson", label="Pareto-optimal")
    for r in front:
        ax.annotate(",".join(f"{r[e]:g}" for e in etas), (r[x], r[y]), fontsize=6, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel(f"{x} ({'↑' if metrics[x] else '↓'} better)")
    ax.set_ylabel(f"{y} ({'↑' if metrics[y] else '↓'} better)")
    ax.set_title("trade-off (labels: η " + ", ".join(e[4:] for e in etas) + ")")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p = out / "tradeoff.png"
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return paths + [p]


def sweep(cfg, vectors: dict[str, Path], grids: dict[str, list[float]], out: str | Path, split: str = "all",
          overwrite: bool = False, evaluator=None, axes: tuple[str, str] | None = None) -> dict[str, Any]:
    """Evaluate the grid, write results.csv/json (Pareto set marked) and PNG plots to ``out``.

    ``evaluator``: an already loaded :class:`~pvlora.evaluation.evaluator.Evaluator` to reuse (its points
    scored so far are not scored again); ``axes``: the (x, y) scorers of the trade-off plot (default:
    compliance_benign vs refusal_harmful when both are scored)."""
    if grids:
        check_grid(grids)  # before the output directory is made
    unknown = set(grids) - set(vectors)
    if unknown:
        raise ConfigError(f"the grid names {sorted(unknown)} but vectors exist only for {', '.join(vectors)}")
    grids = grids or {name: list(cfg.eval.grid.get(name, DEFAULT_GRID)) for name in vectors}
    with atomic_dir(out, overwrite) as tmp:
        ev = evaluator or Evaluator(cfg, vectors, split)
        ev.set_split(split)
        rows = run_points(ev, grid_points(grids))
        metrics = {s: get_scorer(s).higher_is_better for s in cfg.eval.scorers}
        result = write_results(tmp, rows, metrics, {"grid": grids, "split": split,
                                                    "vectors": {k: str(v) for k, v in vectors.items()}})
        default = ("compliance_benign", "refusal_harmful")
        x, y = axes or (default if set(default) <= set(metrics) else (None, None))
        plot(tmp, rows, metrics, x, y)
    return result


def render_table(rows: list[dict[str, Any]], limit: int | None = None) -> str:
    keys = [k for k in rows[0] if k != "pareto"]
    lines = ["  ".join(f"{k[4:] if k.startswith('eta_') else k:>17}" for k in keys) + "  pareto"]
    for r in rows[:limit]:
        lines.append("  ".join(f"{r[k]:>17.3f}" for k in keys) + ("  *" if r.get("pareto") else ""))
    return "\n".join(lines)
