"""The package's folders are its layers: the rule stated once in pvlora/__init__.py (LAYERS) holds for
every import, top level or inside a function, with no cycle and a bounded depth."""

import sys
from pathlib import Path

import pvlora

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "tools"))
try:
    import module_graph
finally:
    sys.path.pop(0)


def test_every_module_sits_in_a_layer_folder_and_the_package_top_holds_only_folders():
    folders = {n for names in pvlora.LAYERS for n in names}
    top = {p.name for p in (REPO / "pvlora").iterdir() if p.name != "__pycache__"}
    assert top == folders | {"__init__.py"}
    assert all((REPO / "pvlora" / f / "__init__.py").is_file() for f in folders)
    assert [m for m in module_graph.modules(REPO) if m != "pvlora" and module_graph.layer(m) is None] == []


def test_the_rule_read_by_the_graph_tool_is_the_package_s_own():
    assert [p for _, p in module_graph.LAYERS] == [[f"pvlora.{n}" for n in names] for names in pvlora.LAYERS]


def test_no_import_runs_up_a_layer_no_cycle_and_at_most_8_levels():
    assert module_graph.upward_imports(REPO) == []
    assert [m for m in module_graph.modules(REPO) if m != "pvlora" and module_graph.layer(m) is None] == []
    for top_level in (True, False):
        assert module_graph.analyse(REPO, top_level)["cycles"] == []
    # At most 8 levels: the whole package over top-level imports, and the library (every layer
    # below the built-in worlds and the CLI) also counting the imports made inside functions.
    assert module_graph.analyse(REPO, True)["max_depth"] <= 8
    lazy = module_graph.analyse(REPO, False)["max_depth_by_layer"]
    assert max(lazy[name] for name, _ in module_graph.LAYERS if name not in ("worlds", "cli")) <= 8
