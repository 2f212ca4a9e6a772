"""Peak memory of the SmolLM2 study's evaluation stage alone, with glibc's default heap and with a fixed
mmap threshold, each in a fresh process.

The study's whole-run peak (row 20) is set by its evaluation: generation at batch 64 and the held-out
NLL pass allocate and free buffers of tens to hundreds of MB at every η point. glibc raises its mmap
threshold to the size of the largest freed block (up to 32 MiB), after which such buffers come from
the heap, where freed pages can stay resident. ``MALLOC_MMAP_THRESHOLD_`` fixes the threshold (and
``MALLOC_TRIM_THRESHOLD_`` returns the heap's free top sooner), so large buffers are mapped and unmapped
each time. Each variant loads the study's evaluator on ``--vectors`` and scores ``--points`` η points of
the validation half; the resident set after each point, the kernel's high-water mark and the seconds
per point are recorded.

    python benchmarks/measure/bench_eval_memory.py --vectors runs/smollm2-sealed/vectors
        # ~10 min per variant on 2 cores; writes results/eval_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/eval_memory.json",)  # what this script writes, relative to benchmarks/
POINTS = [{"harmless": 0.0}, {"harmless": 0.5}, {"harmless": 1.0}, {"helpful": 0.5, "harmless": 0.5}]
VARIANTS = {"glibc default": {}, "mmap threshold 128 KiB": {"MALLOC_MMAP_THRESHOLD_": "131072",
                                                            "MALLOC_TRIM_THRESHOLD_": "131072"}}

CHILD = r"""
import json, sys, time
from pathlib import Path

def status():
    d = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {k: int(d[k].split()[0]) * 1024 / 1e9 for k in ("VmRSS", "VmHWM")}  # kB are KiB; GB are 10^9 bytes

from pvlora.worlds.smollm2.demo import study_config
from pvlora.evaluation.evaluator import Evaluator

vectors = Path(sys.argv[1])
cfg = study_config(Path(sys.argv[2]), None)
ev = Evaluator(cfg, {p: vectors / p for p in ("helpful", "harmless", "concise")}, "validation")
out = [{"point": "loaded", **status()}]
for w in json.loads(sys.argv[3]):
    t = time.perf_counter()
    ev.score(w)
    out.append({"point": w, "seconds": round(time.perf_counter() - t, 1), **status()})
print("RESULT " + json.dumps(out))
"""


def run_variant(env_extra: dict[str, str], vectors: Path, points: list[dict]) -> list[dict]:
    env = {**os.environ, **env_extra}
    r = subprocess.run([sys.executable, "-c", CHILD, str(vectors), str(vectors.parent), json.dumps(points)],
                       env=env, capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"the evaluation failed:\n{r.stderr[-3000:]}")
    return json.loads(next(line for line in r.stdout.splitlines() if line.startswith("RESULT "))[7:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--vectors", type=Path, required=True, help="a study run's vectors/ directory")
    p.add_argument("--points", type=int, default=len(POINTS), help=f"η points to score (at most {len(POINTS)})")
    a = p.parse_args(argv)
    result = {"points": POINTS[: a.points], "variants": {}}
    for name, env in VARIANTS.items():
        rows = run_variant(env, a.vectors, POINTS[: a.points])
        result["variants"][name] = {"env": env, "rows": rows, "peak_gb": max(r["VmHWM"] for r in rows),
                                    "seconds": sum(r.get("seconds", 0) for r in rows)}
        print(f"{name}: peak {result['variants'][name]['peak_gb']:.2f} GB, "
              f"{result['variants'][name]['seconds']:.0f} s for {a.points} points", flush=True)
    save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
