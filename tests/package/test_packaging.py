"""A built wheel works without the source tree: installed into a fresh venv, its `pvlora` command runs
the default commands, since its package data (configs, the study's prompts and pairs) is inside it."""

import shutil
import site as sitelib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_built_wheel_runs_the_default_commands(tmp_path):
    src = tmp_path / "src"  # build from a copy of the tracked files: nothing of the checkout leaks in
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    if not files:
        pytest.skip("not a git checkout")
    for f in files:
        (src / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, src / f)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("pvlora-*.whl"))
    # A fresh venv with the wheel installed in it; the dependencies (torch, transformers, ...) come from
    # this environment's site-packages, added as a plain path so its editable pvlora is not picked up.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_dependencies.pth").write_text("\n".join(sitelib.getsitepackages()) + "\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    where = subprocess.run([py, "-c", "import pvlora; print(pvlora.__file__)"], env=env,
                           capture_output=True, text=True, cwd=tmp_path, check=False)
    assert where.stdout.startswith(str(site)), where  # the wheel's package, not this checkout's

    def run(*argv):  # the console script the wheel installed
        return subprocess.run([venv / "bin" / "pvlora", *argv], env=env, capture_output=True, text=True, check=False,
                              cwd=tmp_path)

    assert run("--help").returncode == 0
    r = run("data", "--preference", "harmless", "--limit", "1")  # the built-in tiny config and toy data
    assert r.returncode == 0, r.stderr
    assert "train + " in r.stdout
    # the study's built-in sources ship in the wheel too
    r = run("data", "--config", str(site / "pvlora" / "worlds" / "smollm2" / "study.yaml"), "--preference", "helpful", "--limit", "1")
    assert r.returncode == 0 and "smollm2-helpful" in r.stdout, r.stderr
    # and the HH-RLHF rows with their licence: the study's harmless preference needs nothing outside the wheel
    r = run("data", "--config", str(site / "pvlora" / "worlds" / "smollm2" / "study.yaml"), "--preference", "harmless", "--limit", "1")
    assert r.returncode == 0 and "hh-rlhf-harmless-base" in r.stdout and "1955 rows read" in r.stdout, r.stderr
    assert "MIT License" in (site / "pvlora" / "data" / "shipped" / "hh-rlhf" / "LICENSE").read_text()


def test_nothing_reads_a_sibling_directory_of_the_checkout():
    # A user's clone has nothing beside it: code, configs, tests and scripts reach data only inside
    # the repository or through a documented environment variable (PVLORA_HH_RLHF_FILE).
    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(["git", "ls-files", "pvlora", "configs", "tests", "benchmarks", ".ci"], cwd=root,
                             capture_output=True, text=True, check=False).stdout.split()
    if not tracked:
        pytest.skip("not a git checkout")
    needles = ("../" + "shared", '/ "' + 'shared"', "shared" + "/data")  # spelled apart so this file is not a hit
    offenders = [f for f in tracked if not f.startswith("benchmarks/results/") and f.endswith((".py", ".yaml", ".yml", "run"))
                 and (root / f).is_file() and any(n in (root / f).read_text(errors="replace") for n in needles)]
    assert offenders == []
