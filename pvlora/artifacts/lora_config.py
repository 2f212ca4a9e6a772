"""``adapter_config.json`` from a stranger: the fields that scale or place ΔW must have PEFT's types,
and the fields PEFT reads as regular expressions must be ones that finish quickly.

Why refuse patterns rather than match them some other way: PEFT itself runs them with ``re`` on every
module name of the base when the adapter is loaded (``load_composed``, ``serve``, PEFT alone), and
Python's ``re`` has no timeout; a pattern such as ``([a-z_.0-9]+)+X`` backtracks exponentially
and never returns. Re-implementing PEFT's matching here would protect only pvlora's own reading.
So each pattern is parsed (``re``'s own parser: nothing is matched) and refused unless it is of a
shape whose matching time is bounded by a small polynomial in the name's length: no quantifier
inside a repeated group, no alternation inside a repeated group, no backreference, at most
:data:`MAX_REPEATS` repeats in all, at most :data:`MAX_PATTERN_CHARS` characters. Every pattern PEFT
documents (``.*\\.q_proj``, ``model\\.layers\\.\\d+\\.self_attn\\.(q|v)_proj``, plain module names)
passes. Names matched against them in pvlora are bounded too (``MAX_MODULE_NAME``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pvlora.artifacts.records import is_number
from pvlora.core.errors import ArtifactError

try:  # re's own parser (Python 3.11+); sre_parse before that
    from re import _parser as _sre
except ImportError:  # pragma: no cover
    import sre_parse as _sre  # type: ignore[no-redef]

MAX_ALPHA = 1e6  # lora_alpha and alpha_pattern values: real adapters use up to about 1e3
MAX_REPEATS = 3  # PEFT adds one more (``(.*\.)?``) around rank/alpha pattern keys
MAX_PATTERN_CHARS = 500
MAX_PATTERNS = 10_000  # rank_pattern / alpha_pattern entries: one per module of a large model at most
MAX_MODULE_NAME = 300  # a module name from a weight file ("base_model.model.model.layers.31.mlp.down_proj")
PEFT_DEFAULT_R = 8  # LoraConfig.r when adapter_config.json has none (tests/artifacts/test_hostile_artifacts_round3.py)
_REPEATS = {_sre.MAX_REPEAT, _sre.MIN_REPEAT, getattr(_sre, "POSSESSIVE_REPEAT", _sre.MAX_REPEAT)}


def _shape(items, inside: bool = False) -> int:
    """The number of repeats in a parsed pattern; raises ValueError (what is wrong) for the shapes
    that backtrack without bound."""
    count = 0
    for op, av in items:
        if op in _REPEATS:
            _, hi, sub = av
            if hi > 1:
                if inside:
                    raise ValueError("a repeat nested inside a repeated group")
                count += 1 + _shape(sub, True)
            else:
                count += _shape(sub, inside)
        elif op is _sre.BRANCH:
            if inside:
                raise ValueError("an alternation inside a repeated group")
            count += sum(_shape(alt, inside) for alt in av[1])
        elif op is _sre.SUBPATTERN:
            count += _shape(av[-1], inside)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            count += _shape(av[1], inside)
        elif op is getattr(_sre, "ATOMIC_GROUP", None):
            count += _shape(av, inside)
        elif op in (_sre.GROUPREF, _sre.GROUPREF_EXISTS):
            raise ValueError("a backreference")
    return count


def check_pattern(pattern: Any, path: Path, field: str) -> None:
    """Refuse a regular expression PEFT would run that is invalid or could run without bound."""
    shown = f"{path}: {field} pattern {pattern!r:.80}"
    if not isinstance(pattern, str):
        raise ArtifactError(f"{shown} is not a string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ArtifactError(f"{shown} is over {MAX_PATTERN_CHARS} characters; refused")
    try:
        parsed = _sre.parse(pattern)
        repeats = _shape(parsed)
    except (re.error, RecursionError, OverflowError) as exc:
        raise ArtifactError(f"{shown} is not a valid regular expression ({exc})") from None
    except ValueError as exc:
        raise ArtifactError(f"{shown} has {exc}, which can make matching run for hours; refused (PEFT would "
                            "run it on every module name). Name the modules, or use a simple pattern") from None
    if repeats > MAX_REPEATS:
        raise ArtifactError(f"{shown} has more than {MAX_REPEATS} repeats ({repeats}), which can make matching run "
                            "for hours; refused (PEFT would run it on every module name). Use a simpler pattern")


def check_patterns(config: dict[str, Any], path: Path) -> None:
    """Every field of ``config`` that PEFT reads as a regular expression (``target_modules`` and
    ``exclude_modules`` as a string, ``layers_pattern``, the keys of ``rank_pattern``/``alpha_pattern``)."""
    for field in ("target_modules", "exclude_modules", "layers_pattern"):
        value = config.get(field)
        if isinstance(value, str) or (field == "layers_pattern" and isinstance(value, list)):
            for pattern in [value] if isinstance(value, str) else value:
                check_pattern(pattern, path, field)
    for field in ("rank_pattern", "alpha_pattern"):
        value = config.get(field) or {}
        if len(value) > MAX_PATTERNS:
            raise ArtifactError(f"{path}: {field} has {len(value)} entries, over {MAX_PATTERNS}; refused")
        for pattern in value:
            check_pattern(pattern, path, field)


def check_config_types(config: dict[str, Any], path: Path) -> None:
    """The fields that scale or place ΔW must have the types PEFT writes (``lora_alpha: "16"`` is refused,
    not multiplied as a string); patterns PEFT matches must finish (:func:`check_patterns`)."""
    def number(v):  # finite, non-zero and at most MAX_ALPHA in size: a larger alpha/r overflows the factors
        return is_number(v) and v != 0 and abs(v) <= MAX_ALPHA

    checks = {
        "r": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "lora_alpha": number,
        "use_rslora": lambda v: isinstance(v, bool),
        "target_modules": lambda v: v is None or isinstance(v, str) or (
            isinstance(v, list) and all(isinstance(x, str) for x in v)),
        "rank_pattern": lambda v: v is None or (isinstance(v, dict) and all(
            isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v.values())),
        "alpha_pattern": lambda v: v is None or (isinstance(v, dict) and all(number(x) for x in v.values())),
        "layers_to_transform": lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)) or (
            isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)),
    }
    for key, ok in checks.items():
        if key in config and not ok(config[key]):
            raise ArtifactError(f"{path}: {key} has the wrong type or value ({config[key]!r:.60}); PEFT writes a "
                                f"non-zero number of at most {MAX_ALPHA:g} in size here (r: a positive integer)")
    check_patterns(config, path)
