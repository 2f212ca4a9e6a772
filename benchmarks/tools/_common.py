"""Shared helpers for the benchmark scripts: timing (warm-up + repeats, median) and result files.

The scripts in measure/, choose/ and estimate/ import this module after putting benchmarks/tools/ on
``sys.path`` (one line at their top), so each still runs as ``python benchmarks/<folder>/<script>.py``
from the repository root. Each script declares the files it writes in ``RESULT_FILES`` (paths
relative to benchmarks/), which render_readme.py reads for the index in benchmarks/README.md.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]  # benchmarks/
RESULTS = BENCHMARKS / "results"


def timeit(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds (time.perf_counter), after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a server a benchmark starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict:
    import os

    import torch

    return {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d")}


def save(result_file: str, result: dict) -> Path:
    """Write ``result`` with the machine it ran on to ``result_file``, a path relative to benchmarks/
    (one of the calling script's ``RESULT_FILES``, e.g. ``results/compose.json``)."""
    path = BENCHMARKS / result_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **result}, indent=2))
    print(f"\nwrote {path}")
    return path


def rel(x, y) -> float:
    import torch

    return float(torch.linalg.norm(x.double() - y.double()) / torch.linalg.norm(y.double()))
