"""Write (or check) the shipped copy of the default tiny base, ``pvlora/data/shipped/tiny-base``.

Builds seed 0 with the default recipe in a temporary directory (``build_tiny_base``: about a minute
on 2 cores) and copies its files into the package, or, with ``--check``, compares them byte for byte
with the shipped ones (exit 1 when any differs). Run it whenever ``BUILD_VERSION`` is bumped.

    python benchmarks/tools/ship_tiny_base.py --check
    python benchmarks/tools/ship_tiny_base.py
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
RESULT_FILES = ()  # writes the shipped copy, not a result


def main(argv: list[str] | None = None) -> int:
    from pvlora.worlds.toy.base import SHIPPED, SHIPPED_FILES, build_tiny_base

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--check", action="store_true", help="compare a fresh build with the shipped copy; write nothing")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_base(Path(tmp), seed=0)
        differ = [f for f in SHIPPED_FILES if f != "pvlora-tiny.json"
                  and (Path(tmp) / f).read_bytes() != (SHIPPED / f).read_bytes()]
        if a.check:
            print("differ: " + ", ".join(differ) if differ else f"the shipped tiny base is what the build writes ({SHIPPED})")
            return 1 if differ else 0
        for f in SHIPPED_FILES:
            shutil.copyfile(Path(tmp) / f, SHIPPED / f)
        print(f"wrote {SHIPPED}: {json.loads((SHIPPED / 'pvlora-tiny.json').read_text())['parameters']} parameters")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
