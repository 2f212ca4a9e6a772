"""The package's import graph: cycles, depth and module sizes, from the source alone (AST, nothing imported).

Layers (the rule ``LAYERS`` in pvlora/__init__.py) and the imports that go up them. Two views: top-level imports only (what loads when a module is imported), and every import
including those inside functions (pvlora imports heavy or stage-specific modules lazily). Depth is
the longest chain of pvlora modules; a cycle is reported once per rotation.

    python benchmarks/tools/module_graph.py [--root DIR]    # writes results/module_graph.json
"""

from __future__ import annotations

import argparse
import ast
import functools
from pathlib import Path

from _common import save

RESULT_FILES = ("results/module_graph.json",)  # what this script writes, relative to benchmarks/
REPO = Path(__file__).resolve().parents[2]  # the checkout this script sits in


def modules(root: Path) -> dict[str, Path]:
    out = {}
    for f in (root / "pvlora").rglob("*.py"):
        parts = f.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _runtime(nodes: list[ast.stmt]) -> list[ast.stmt]:
    """Drop ``if TYPE_CHECKING:`` blocks: annotations only, never imported at run time."""
    return [n for n in nodes if not (isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test))]


def edges(mods: dict[str, Path], name: str, top_level: bool) -> set[str]:
    tree = ast.parse(mods[name].read_text())
    body = _runtime(tree.body)
    nodes = body if top_level else [n for top in body for n in ast.walk(top)]
    out = set()
    for n in nodes:
        if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("pvlora"):
            out |= {c for c in [n.module, *(f"{n.module}.{a.name}" for a in n.names)] if c in mods}
        elif isinstance(n, ast.Import):
            out |= {a.name for a in n.names if a.name in mods}
    return out - {name, "pvlora"}


def read_layers(root: Path) -> list[tuple[str, list[str]]]:
    """The layer rule as pvlora/__init__.py states it (read from the source, nothing imported):
    [(layer name, [module prefix, ...]), ...], lowest first."""
    tree = ast.parse((root / "pvlora" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "LAYERS" for t in node.targets):
            return [("/".join(names), [f"pvlora.{n}" for n in names]) for names in ast.literal_eval(node.value)]
    raise SystemExit(f"{root}/pvlora/__init__.py states no LAYERS")


LAYERS = read_layers(REPO)


def layer(module: str) -> int | None:
    found = [(len(p), i) for i, (_, prefixes) in enumerate(LAYERS) for p in prefixes
             if module == p or module.startswith(p + ".")]
    return max(found)[1] if found else None


def upward_imports(root: Path) -> list[str]:
    mods = modules(root)
    out = []
    for m in sorted(mods):
        for d in sorted(edges(mods, m, top_level=False)):
            if layer(m) is not None and layer(d) is not None and layer(d) > layer(m):
                out.append(f"{m} ({LAYERS[layer(m)][0]}) -> {d} ({LAYERS[layer(d)][0]})")
    return out


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
    # the longest chain starting in each layer: how deep the library is below the worlds and the CLI
    by_layer = {name: max((d for m, d in depths.items() if layer(m) == i), default=0) for i, (name, _) in enumerate(LAYERS)}
    return {"max_depth": depths[deepest], "deepest": deepest, "max_depth_by_layer": by_layer,
            "cycles": sorted(" -> ".join(c) for c in cycles)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=str(REPO), help="a checkout holding pvlora/")
    a = p.parse_args(argv)
    root = Path(a.root)
    sizes = sorted(((sum(1 for _ in f.open()), m) for m, f in modules(root).items()), reverse=True)
    result = {"top_level": analyse(root, True), "all_imports": analyse(root, False),
              "modules_over_250_lines": [{"module": m, "lines": n} for n, m in sizes if n > 250],
              "upward_imports": upward_imports(root),
              "unlayered": sorted(m for m in modules(root) if m != "pvlora" and layer(m) is None),
              "layers": {name: prefixes for name, prefixes in LAYERS}, "modules": len(modules(root)),
              "lines": sum(n for n, _ in sizes)}
    for view in ("top_level", "all_imports"):
        r = result[view]
        print(f"{view}: max depth {r['max_depth']} ({r['deepest']}), {len(r['cycles'])} cycle(s); by layer",
              ", ".join(f"{k} {v}" for k, v in r["max_depth_by_layer"].items()))
        for c in r["cycles"]:
            print("   ", c)
    print(f"upward imports: {len(result['upward_imports'])}", *result["upward_imports"], sep="\n    ")
    print("unlayered:", ", ".join(result["unlayered"]) or "none")
    print("over 250 lines:", ", ".join(f"{x['module']} {x['lines']}" for x in result["modules_over_250_lines"]) or "none")
    if Path(a.root).resolve() == REPO:
        save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
