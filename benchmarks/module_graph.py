"""The package's import graph: cycles, depth and module sizes, from the source alone (AST, nothing imported).

Two views: top-level imports only (what loads when a module is imported), and every import
including those inside functions (pvlora imports heavy or stage-specific modules lazily). Depth is
the longest chain of pvlora modules; a cycle is reported once per rotation.

    python benchmarks/module_graph.py [--root DIR]    # writes results/module_graph.json
"""

from __future__ import annotations

import argparse
import ast
import functools
from pathlib import Path

from _common import save


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for f in (root / "pvlora").rglob("*.py"):
        parts = f.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def edges(mods: dict[str, Path], name: str, top_level: bool) -> set[str]:
    tree = ast.parse(mods[name].read_text())
    nodes = tree.body if top_level else list(ast.walk(tree))
    out = set()
    for n in nodes:
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("pvlora"):
            out |= {c for c in [n.module, *(f"{n.module}.{a.name}" for a in n.names)] if c in mods}
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name in mods}
    return out - {name, "pvlora"}


def analyse(root: Path, top_level: bool) -> dict:
    mods = modules(root)
    graph = {m: edges(mods, m, top_level) for m in mods}
    cycles = set()

    @functools.lru_cache(None)
    def depth(m: str, stack: tuple = ()) -> int:
        if m in stack:
            cyc = stack[stack.index(m):]
            k = cyc.index(min(cyc))
            cycles.add(cyc[k:] + cyc[:k])
            return 0
        return 1 + max((depth(d, (*stack, m)) for d in graph[m]), default=0)

    depths = {m: depth(m) for m in mods}
    deepest = max(depths, key=depths.get)
    return {"max_depth": depths[deepest], "deepest": deepest, "cycles": sorted(" -> ".join(c) for c in cycles)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(Path(__file__).resolve().parents[1]), help="a checkout holding pvlora/")
    a = p.parse_args(argv)
    root = Path(a.root)
    sizes = sorted(((sum(1 for _ in f.open()), m) for m, f in modules(root).items()), reverse=True)
    result = {"top_level": analyse(root, True), "all_imports": analyse(root, False),
              "modules_over_250_lines": [{"module": m, "lines": n} for n, m in sizes if n > 250]}
    for view in ("top_level", "all_imports"):
        r = result[view]
        print(f"{view}: max depth {r['max_depth']} ({r['deepest']}), {len(r['cycles'])} cycle(s)")
        for c in r["cycles"]:
            print("   ", c)
    print("over 250 lines:", ", ".join(f"{x['module']} {x['lines']}" for x in result["modules_over_250_lines"]) or "none")
    if Path(a.root).resolve() == Path(__file__).resolve().parents[1]:
        save("module_graph", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
