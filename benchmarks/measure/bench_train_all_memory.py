"""Peak memory of training the SmolLM2 study's six adapters in one process, with and without freeing
each finished adapter (``pvlora.core.memory.release_memory``), as the operating system measures it.

Both variants run ``/usr/bin/time -v pvlora train --config pvlora/worlds/smollm2/study.yaml`` (every
preference, both directions: the study's training stage) with ``dpo.max_steps`` steps per adapter;
each adapter still loads the base, scores every training pair with the reference model and runs the
held-out pass, so what grows from one adapter to the next shows as it does in the full stage. The
"before" variant imports pvlora from a checkout of the commit before the change (``--before-root``,
e.g. ``git worktree add /tmp/before 6b10193~1``), put first on ``PYTHONPATH``.

    python benchmarks/measure/bench_train_all_memory.py --before-root /tmp/before [--steps 4]
        # ~25 min on 2 cores (both variants at once); writes results/train_all_memory.json
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/train_all_memory.json",)  # what this script writes, relative to benchmarks/
ROOT = Path(__file__).resolve().parents[2]
KIB_TO_GB = 1024 / 1e9


def start(root: Path, out: Path, steps: int, pythonpath: str | None) -> tuple[subprocess.Popen, Path]:
    out.mkdir(parents=True, exist_ok=True)
    time_file = out.parent / f"{out.name}.time"
    env = {**os.environ, **({"PYTHONPATH": pythonpath} if pythonpath else {})}
    cmd = ["/usr/bin/time", "-v", "-o", str(time_file), sys.executable, "-m", "pvlora.cli", "train", "--config",
           str(root / "pvlora" / "worlds" / "smollm2" / "study.yaml"), "--set", f"dpo.max_steps={steps}",
           "--set", f"output.dir={out}"]
    return subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), time_file


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before-root", required=True, help="a checkout of the commit before release_memory")
    p.add_argument("--steps", type=int, default=4, help="DPO steps per adapter (default 4)")
    a = p.parse_args(argv)
    before = Path(a.before_root).resolve()
    runs, out = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, root, path in (("before", before, str(before)), ("after", ROOT, None)):
            runs[name] = start(root, Path(tmp) / name, a.steps, path)
        for name, (proc, time_file) in runs.items():
            code = proc.wait()
            text = time_file.read_text()
            kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)[1])
            out[name] = {"max_rss_gb": kib * KIB_TO_GB, "exit_status": code,
                         "wall": re.search(r"Elapsed \(wall clock\) time.*: (.*)", text)[1]}
    result = {"command": "python benchmarks/measure/bench_train_all_memory.py --before-root DIR --steps "
                         f"{a.steps}", "steps_per_adapter": a.steps, "adapters": 6, "runs": out,
              "saved_gb": out["before"]["max_rss_gb"] - out["after"]["max_rss_gb"],
              "note": "both variants ran at the same time on the same cores; peak memory, not speed, is compared"}
    print({k: (v["max_rss_gb"], v["exit_status"]) for k, v in out.items()})
    save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
