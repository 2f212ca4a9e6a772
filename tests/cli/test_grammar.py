"""The command line's one NAME=ETA grammar (--vector, --weights, --grid), worked by hand."""

import pytest

from pvlora.cli.grammar import grid, vector_specs, weights
from pvlora.core.errors import ConfigError


def test_weights_vectors_and_grids_split_alike():
    assert weights("helpful=1, harmless=-0.5") == {"helpful": 1.0, "harmless": -0.5}
    assert weights(["helpful=1", "harmless=2e-1"]) == {"helpful": 1.0, "harmless": 0.2}
    assert weights("") == {}
    # the last '=' splits, so a directory may hold one; Hub ids keep their revision
    assert vector_specs(["runs/a=b/vec=1.5", "org/vec@v1=-1"]) == {"runs/a=b/vec": 1.5, "org/vec@v1": -1.0}
    assert vector_specs(["vectors/helpful", "vectors/harmless=0.5"], default=0.0) == {
        "vectors/helpful": 0.0, "vectors/harmless": 0.5}
    assert grid(["harmless=-1:0:0.5", "helpful=0,1"]) == {"harmless": [-1.0, -0.5, 0.0], "helpful": [0.0, 1.0]}
    assert grid(["h=0:0.3:0.1"]) == {"h": [0.0, 0.1, 0.2, 0.3]}  # STOP included despite float steps


@pytest.mark.parametrize("call, needle", [
    (lambda: weights("helpful"), "--weights 'helpful': expected NAME=ETA, e.g. --weights helpful=1,harmless=0.5"),
    (lambda: weights("helpful=lots"), "--weights 'helpful=lots': 'lots' is not a number"),
    (lambda: weights("helpful=inf"), "is not a finite number"),
    (lambda: weights("helpful=1,helpful=2"), "--weights: 'helpful' is given twice"),
    (lambda: weights("=1"), "expected NAME=ETA"),
    (lambda: vector_specs(["novalue"]), "--vector 'novalue': expected NAME=ETA"),
    (lambda: vector_specs(["v=1", "v=2"]), "--vector: 'v' is given twice"),
    (lambda: vector_specs(["v=nan"]), "is not a finite number"),
    (lambda: grid(["h=1:2"]), "a range is START:STOP:STEP"),
    (lambda: grid(["h=2:1:0.5"]), "START <= STOP and STEP > 0"),
    (lambda: grid(["h="]), "expected NAME=START:STOP:STEP or NAME=V1,V2,..."),
    (lambda: grid(["h=1", "h=2"]), "--grid: 'h' is given twice"),
])
def test_errors_name_the_flag_and_the_item(call, needle):
    with pytest.raises(ConfigError, match=None) as exc:
        call()
    assert needle in str(exc.value)


def test_library_errors_name_keywords_and_the_cli_names_flags(tmp_path):
    from pvlora.artifacts.atomic import atomic_dir
    from pvlora.cli import as_flags
    from pvlora.core.errors import ArtifactError

    out = tmp_path / "x"
    out.mkdir()
    with pytest.raises(ArtifactError) as e:
        with atomic_dir(out, overwrite=False):
            pass
    assert str(e.value).endswith("pass overwrite=True to replace it") and "--" not in str(e.value)
    assert as_flags(str(e.value)).endswith("pass --overwrite to replace it")


def test_no_library_error_names_a_command_line_flag():
    import ast
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "pvlora"
    found = []
    for f in root.rglob("*.py"):
        if "cli" in f.relative_to(root).parts:
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for c in ast.walk(node.exc):
                    if isinstance(c, ast.Constant) and isinstance(c.value, str) and re.search(r"(^|\s)--[a-z]", c.value):
                        found.append(f"{f.relative_to(root)}:{node.lineno}: {c.value[:60]}")
    assert found == []
