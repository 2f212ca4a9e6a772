"""benchmarks/README.md and the README's figures are what the result files say: rendering the
templates from benchmarks/results/ gives the committed files, character for character."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _renderer():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import render_readme
    finally:
        sys.path.pop(0)
    return render_readme


def test_readmes_are_rendered_from_the_results():
    rr = _renderer()
    ns = rr.namespace()
    for template, out, mode in rr.PAIRS:
        assert out.read_text() == rr.expected(template, out, mode, ns), \
            f"{out} differs from {template.name} rendered with benchmarks/results/: run python benchmarks/render_readme.py"


def test_a_changed_result_changes_the_text():
    rr = _renderer()
    ns = rr.namespace()
    ns["reweight"] = rr.wrap({**ns["reweight"], "speedup": 123456.0})
    assert "123,456×" in rr.render("{{reweight.speedup | ,.0f}}×", ns, "t")
    assert rr.render("{{ sci(1.25e-8) }} {{ 0.5 | .0% }}", ns, "t") == "1.2e-8 50%"


def test_toy_data_amounts_are_the_ones_chosen_on_validation():
    """The toy corpus ships the amounts its choice scripts picked on the validation split."""
    import json

    from pvlora.worlds.toy import corpus

    results = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
    harmless = json.loads((results / "toy_harmless_choice.json").read_text())
    concise = json.loads((results / "toy_concise_choice.json").read_text())
    assert harmless["split"] == concise["split"] == "validation"
    assert harmless["chosen"] == corpus.BENIGN_HARMLESS_PAIRS
    assert concise["chosen"] == f"{corpus.CONCISE_BENIGN_PAIRS},{corpus.CONCISE_HARMFUL_SHARE}"
