"""The layout of ``pvlora.json``, whatever the kind: the schema version, the kinds, what each key
must hold (checked on read, the error naming the file and the key) and the order keys are written in.
The typed records built from a checked manifest are :mod:`pvlora.artifacts.manifest` and
:mod:`pvlora.artifacts.records`."""

from __future__ import annotations

import re
from typing import Any

from pvlora.artifacts.records import is_compression, is_export, is_int, is_number, is_recipe
from pvlora.core.errors import ArtifactError

# A manifest without "schema" predates it (schema 1); a larger one was written by a newer pvlora and
# may mean things this one would misread: refused, never guessed at.
SCHEMA = 1
KINDS = ("adapter", "vector", "composition")

_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_object(v: Any) -> bool:
    return isinstance(v, dict)


# field -> (check, what the check wants): every field any kind may carry, checked on read whatever
# the kind says (a field another kind owns is kept in ``extra``, but only once it has passed)
FIELD_CHECKS: dict[str, tuple[Any, str]] = {
    "pvlora_version": (_is_str, "be a string"), "preference": (_is_str, "be a string"),
    "stage": (_is_str, "be a string"), "method": (_is_str, "be a string"), "seed": (is_int, "be an integer"),
    "data": (_is_object, "be an object"), "training": (_is_object, "be an object"),
    "sources": (lambda v: isinstance(v, dict) and all(isinstance(x, dict) for x in v.values()), "be an object of objects"),
    "vectors": (is_recipe, "be a list of {preference: string, weight: finite number} objects"),
    "exact_rank": (is_int, "be an integer"), "rank": (is_int, "be an integer"),
    "compression": (is_compression, "be an object with an integer rank and a finite relative_error"),
    "norm": (is_number, "be a number"), "positive_norm": (is_number, "be a number"),
    "negative_norm": (is_number, "be a number"),
    "unverified": (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "be a list of strings"),
    "dtype": (_is_str, "be a string"),
    "export": (is_export, "be an object with a string format and source, integer rank and exact_rank, a finite "
                          "relative_error and per_module_relative_error"),
    "metrics": (_is_object, "be an object"), "command": (_is_str, "be a string"),
    "weights_sha256": (lambda v: isinstance(v, dict) and all(isinstance(x, str) and _HEX64.fullmatch(x)
                                                          for x in v.values()), "map file names to sha256 hex digests"),
}
# The order pvlora has always written the keys in, whatever the kind: files stay byte-identical.
KEY_ORDER = ("kind", "schema", "pvlora_version", "preference", "direction", "stage", "method", "base", "seed",
             "data", "training", "sources", "vectors", "exact_rank", "rank", "compression", "norm", "positive_norm",
             "negative_norm", "unverified", "dtype", "export", "metrics", "command", "weights_sha256")


def check_fields(d: dict[str, Any], where: str = "pvlora.json") -> None:
    """Refuse a manifest with a schema this pvlora cannot read or a known field of the wrong type,
    naming ``where`` and the field. (The preference's name is checked by the manifest's reader.)"""
    schema = d.get("schema", 1)  # a manifest without "schema" predates it: schema 1
    if not is_int(schema) or schema < 1:
        raise ArtifactError(f"{where}: schema must be a positive integer, got {schema!r:.40}")
    if schema > SCHEMA:
        raise ArtifactError(f"{where}: written by a newer pvlora ({d.get('pvlora_version', '?')!s:.20}, manifest "
                            f"schema {schema}); this pvlora reads schema {SCHEMA}: upgrade pvlora to use it")
    for key, allowed in (("kind", KINDS), ("direction", ("positive", "negative"))):
        if d.get(key) is not None and d[key] not in allowed:
            raise ArtifactError(f"{where}: {key} {d[key]!r:.40} is not one of {', '.join(allowed)}")
    for key, (ok, wanted) in FIELD_CHECKS.items():
        if d.get(key) is not None and not ok(d[key]):
            raise ArtifactError(f"{where}: {key} must {wanted}, got {d[key]!r:.80}")
