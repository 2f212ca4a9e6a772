"""Peak memory of the whole SmolLM2 study, as the operating system measures it.

Runs ``/usr/bin/time -v pvlora demo --base smollm2 --out DIR --fresh`` (six DPO adapters, the vectors,
the validation stage and, under a committed pre-registration, the test stage) and samples the run's
resident set every 5 s, so each stage's peak is known too. Reports the OS's maximum resident set
size of the whole run (``/usr/bin/time``'s "Maximum resident set size", the kernel's high-water mark
of the process), the peak of the samples per stage, the wall time of each stage, and the target (≤ 4 GB).

    python benchmarks/measure/bench_study_memory.py [--out runs/smollm2-memory]
        # about 40 minutes on 2 cores; writes results/study_memory.json
    python benchmarks/measure/bench_study_memory.py --from-run DIR --time FILE [--samples FILE] [--log FILE]
        # a finished or stopped run: DIR its --out, FILE /usr/bin/time -v -o's output, resident-set
        # samples ("epoch_seconds rss_kB" lines), its console output (where it stopped)

GB here are 10^9 bytes; the kernel's and /usr/bin/time's "kB" are KiB (1,024 bytes).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import machine, save  # noqa: E402

RESULT_FILES = ("results/study_memory.json",)  # what this script writes, relative to benchmarks/
TARGET_GB = 4.0
KIB_TO_GB = 1024 / 1e9  # /proc and /usr/bin/time count KiB
STAGE = re.compile(r"^\[pvlora demo smollm2\] (\d)/6 (.*)$")


def _status_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of one process, kB (from /proc); empty when it is gone."""
    try:
        return {line.split(":")[0]: int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith(("VmRSS:", "VmHWM:"))}
    except (OSError, ValueError, IndexError):
        return {}


def _rss_kb(pid: int, hwm: dict[int, tuple[str, int]] | None = None) -> int:
    """Resident set of ``pid`` and its descendants together, kB (from /proc). ``hwm`` collects each
    process's high-water mark (its command's last word, kB) as last seen."""
    total = 0
    for p in [pid, *_children(pid)]:
        st = _status_kb(p)
        total += st.get("VmRSS", 0)
        if hwm is not None and "VmHWM" in st:
            try:
                cmd = Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0")
            except OSError:
                cmd = [b""]
            hwm[p] = (" ".join(c.decode(errors="replace") for c in cmd[1:4]), st["VmHWM"])
    return total


def _children(pid: int) -> list[int]:
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def parse_time(text: str) -> dict[str, float]:
    """The figures of ``/usr/bin/time -v`` this benchmark reports."""
    def field(name: str) -> str:
        m = re.search(rf"^\s*{re.escape(name)}: (.*)$", text, re.MULTILINE)
        if not m:
            raise SystemExit(f"/usr/bin/time output has no {name!r}")
        return m.group(1).strip()

    h, m_, s = ([0.0] + [float(x) for x in field("Elapsed (wall clock) time (h:mm:ss or m:ss)").split(":")])[-3:]
    kib = int(field("Maximum resident set size (kbytes)"))
    return {"max_rss_gb": kib * KIB_TO_GB, "max_rss_gib": kib / 2 ** 20, "wall_s": h * 3600 + m_ * 60 + s,
            "exit_status": int(field("Exit status"))}


def per_stage(samples: list[tuple[float, int]], marks: list[tuple[float, str]]) -> list[dict]:
    """Peak of the RSS samples between consecutive stage marks (``marks``: (time, stage))."""
    out = []
    for (t0, name), (t1, _) in zip(marks, [*marks[1:], (float("inf"), "")]):
        inside = [kb for t, kb in samples if t0 <= t < t1]
        out.append({"stage": name, "seconds": None if t1 == float("inf") else round(t1 - t0, 1),
                    "peak_rss_gb": round(max(inside) * KIB_TO_GB, 3) if inside else None})
    return out


def run(out: Path) -> tuple[str, list[tuple[float, int]], list[tuple[float, str]]]:
    """Run the study under /usr/bin/time -v, sampling its RSS and time-stamping its stage lines."""
    time_file = out.with_suffix(".time")
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = ["/usr/bin/time", "-v", "-o", str(time_file), sys.executable, "-m", "pvlora.cli", "demo", "--base", "smollm2",
           "--out", str(out), "--fresh"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    samples: list[tuple[float, int]] = []
    marks: list[tuple[float, str]] = []
    hwm: dict[int, tuple[str, int]] = {}  # pid -> (command, VmHWM kB as last sampled)

    def sample() -> None:
        while proc.poll() is None:
            samples.append((time.time(), _rss_kb(proc.pid, hwm)))
            time.sleep(1)

    threading.Thread(target=sample, daemon=True).start()
    for line in proc.stdout:
        sys.stdout.write(line)
        m = STAGE.match(line.strip())
        if m:
            marks.append((time.time(), f"{m.group(1)}/6 {m.group(2)}"))
    code = proc.wait()
    out.with_suffix(".samples.json").write_text(json.dumps({"samples": samples, "marks": marks, "hwm": hwm}))
    if code:
        raise SystemExit(f"the study failed (exit {code}); see the output above")
    return time_file.read_text(), samples, marks, hwm


def processes(hwm: dict, samples: list[tuple[float, int]], marks: list[tuple[float, str]],
              main_cmd: str = "pvlora.cli demo") -> dict:
    """Each process's high-water mark, and what the run's processes held at once. With
    ``train.process_per_preference`` the main process waits while one child at a time trains, so
    during training the two together hold at most the main process's resident set when training
    ends (the first sample after the "3/6" mark: no child is left then, and a waiting process does
    not grow) plus the largest child's high-water mark; after training only the main process runs,
    and its own high-water mark is the evaluation's peak."""
    rows = [{"pid": int(pid), "command": cmd, "hwm_gb": round(kb * KIB_TO_GB, 3)}
            for pid, (cmd, kb) in sorted(hwm.items(), key=lambda kv: int(kv[0])) if "pvlora" in cmd]
    main = max((r["hwm_gb"] for r in rows if main_cmd in r["command"]), default=None)
    child = max((r["hwm_gb"] for r in rows if "pvlora.training.isolate" in r["command"]), default=None)
    t3 = next((t for t, name in marks if name.startswith("3/6")), None)
    waiting = next((kb * KIB_TO_GB for t, kb in samples if t3 is not None and t >= t3), None)
    training = round(waiting + child, 3) if waiting is not None and child is not None else None
    return {"processes": rows, "main_hwm_gb": main, "largest_child_hwm_gb": child,
            "main_when_training_ends_gb": round(waiting, 3) if waiting is not None else None,
            "training_together_bound_gb": training}


def previous(out: Path) -> dict | None:
    """The headline of the run this result replaces (results/study_memory.json as committed), kept beside
    it; when that file already holds this run (``out``), the run it replaced."""
    f = Path(__file__).resolve().parents[1] / RESULT_FILES[0]
    if not f.exists():
        return None
    old = json.loads(f.read_text())
    if old.get("out") == str(out):
        return old.get("previous")
    if "previous" in old:  # one step back is the comparison; older runs are in git
        old.pop("previous")
    return {k: old.get(k) for k in ("command", "machine", "max_rss_gb", "wall_s", "sampled_peak_gb", "stages",
                                     "test_scored", "training_together_bound_gb", "main_hwm_gb")}


def same_results(run: Path, other: Path) -> dict:
    """Whether ``run`` reproduced ``other`` (an earlier run of the study): the vectors byte for byte, the
    validation answers line for line, and the validation choices and checks."""
    import hashlib

    def digest(f: Path) -> str:
        return hashlib.sha256(f.read_bytes()).hexdigest()

    def validation(d: Path) -> list[str]:
        return [line for line in (d / "generations.jsonl").read_text().splitlines()
                if json.loads(line)["split"] == "validation"]

    vecs = sorted(p.relative_to(other).as_posix() for p in (other / "vectors").rglob("*.safetensors"))
    a, b = validation(run), validation(other)
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (run, other))
    return {"compared_with": str(other),
            "vectors_identical": {v: (run / v).exists() and digest(run / v) == digest(other / v) for v in vecs},
            "validation_answers": len(a), "validation_answers_identical": a == b,
            "validation_choices_and_checks_identical": all(s1.get(k) == s2.get(k) for k in
                                                           ("span", "tune", "validation_checks"))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/smollm2-memory", help="where the study runs (default runs/smollm2-memory)")
    p.add_argument("--from-run", help="a finished run's --out directory (with --time, --samples, --log)")
    p.add_argument("--time", help="/usr/bin/time -v output of that run")
    p.add_argument("--samples", help="'epoch_seconds rss_kB' lines sampled during that run (optional)")
    p.add_argument("--samples-json", help="the samples file this script wrote for that run (DIR.samples.json: "
                   "resident-set samples, stage marks, each process's high-water mark)")
    p.add_argument("--compare-with", help="an earlier run's --out: check that this run reproduced its vectors, "
                   "validation answers and choices")
    p.add_argument("--log", help="that run's console output: where it stopped, when it did not finish (optional)")
    a = p.parse_args(argv)
    if a.from_run:
        if not a.time:
            p.error("--from-run needs --time")
        time_text = Path(a.time).read_text()
        samples = [(float(t), int(kb)) for t, kb in (line.split() for line in Path(a.samples).read_text().splitlines())] \
            if a.samples else []
        marks, hwm = [], {}  # a run made elsewhere carries no stage times
        if a.samples_json:  # a run of this script: everything it sampled
            sampled = json.loads(Path(a.samples_json).read_text())
            samples = [tuple(x) for x in sampled["samples"]]
            marks, hwm = [tuple(x) for x in sampled["marks"]], sampled.get("hwm", {})
        out = Path(a.from_run)
        command = "python benchmarks/measure/bench_study_memory.py " + " ".join(argv or sys.argv[1:])
    else:
        out = Path(a.out)
        time_text, samples, marks, hwm = run(out)
        command = "python benchmarks/measure/bench_study_memory.py"
    figures = parse_time(time_text)
    together = processes(hwm, samples, marks)
    # the target holds for the run's processes together: /usr/bin/time's figure is the largest single
    # process, the samples the sum at 1-s intervals, the training bound a child's and the waiting main
    # process's resident sets added, the main process's high-water mark the evaluation's peak
    peak_gb = max(v for v in (figures["max_rss_gb"], together["training_together_bound_gb"], together["main_hwm_gb"],
                              max(kb for _, kb in samples) * KIB_TO_GB if samples else None) if v is not None)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    if a.from_run and a.log:
        reached = [m.group(0) for m in map(STAGE.match, Path(a.log).read_text().splitlines()) if m]
        figures["last_stage_reached"] = reached[-1] if reached else None
    result = {
        "command": command, "machine": machine(), "target_gb": TARGET_GB, **figures,
        "meets_target": peak_gb <= TARGET_GB, "peak_gb": peak_gb, "completed": figures["exit_status"] == 0,
        "sampled_peak_gb": round(max(kb for _, kb in samples) * KIB_TO_GB, 3) if samples else None,
        "stages": per_stage(samples, marks) if marks else None,
        "study_seconds": summary.get("seconds"), "test_scored": summary.get("test", {}).get("evaluated"),
        **together,
        "out": str(out), "previous": previous(out),
        **({"same_results": same_results(out, Path(a.compare_with))} if a.compare_with else {}),
        "before": {"max_rss_gb": 15.8, "source": "the same command before the memory work (issue report; "
                   "one DPO step before/after: results/dpo_memory.json)"},
    }
    print(json.dumps({k: result[k] for k in ("max_rss_gb", "max_rss_gib", "wall_s", "meets_target", "stages",
                                             "peak_gb", "training_together_bound_gb", "main_hwm_gb")}, indent=1))
    save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
