"""YAML / dict -> typed dataclasses, and ``--set a.b=value`` overrides: every key checked against the
dataclass fields (an unknown key names itself and the file), every value coerced to its field's type."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from pvlora.config.library_keys import suggest
from pvlora.config.values import coerce
from pvlora.config.yaml_files import parse_yaml
from pvlora.core.errors import ConfigError


def _build(cls: type, data: Any, where: str, file: str | None) -> Any:
    """Recursively build dataclass ``cls`` from ``data``; unknown keys are errors naming key and file."""
    in_file = f" in {file}" if file else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping{in_file}, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}{in_file}{suggest(str(key), names)}")
        kwargs[key] = coerce(hints[key], value, path, file, build=_build)  # a nested block: built here
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or 'config'}{in_file}: {exc}") from None
    except ConfigError as exc:  # a block's own check (__post_init__): name the file too
        if file and file not in str(exc):
            raise ConfigError(f"{exc}{in_file}") from None
        raise


def parse_override(item: str) -> tuple[list[str], Any]:
    """``dpo.learning_rate=1e-5`` -> (["dpo", "learning_rate"], 1e-05); the value is parsed as YAML
    (one plain value: no anchors or aliases)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. dpo.learning_rate=1e-5")
    key, raw = item.split("=", 1)
    keys = [k.strip() for k in key.split(".")]
    if not all(keys):
        raise ConfigError(f"override {item!r}: KEY is a dotted name, e.g. dpo.learning_rate=1e-5")
    if raw.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        value: Any = raw.strip()  # YAML 1.1 would turn these into booleans (save_strategy=no -> False)
    elif raw == "":
        value = ""
    else:
        value = parse_yaml(raw, f"override {item!r}", aliases=False,
                           invalid="the value is not valid YAML ({problem}); quote text (--set "
                           f"{key}='\"...\"'), write a list as [a, b]")
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads '1e-5' as a string
    return keys, value


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """CLI overrides win over YAML. Preferences are addressed by name: ``preferences.helpful.limit=100``."""
    for item in overrides:
        keys, value = parse_override(item)
        node: Any = raw
        for i, k in enumerate(keys):
            if isinstance(node, list):  # list of preferences: select by name
                if keys[:i] != ["preferences"]:
                    raise ConfigError(f"override {item!r}: {'.'.join(keys[:i])} is a list; set it whole, e.g. "
                                      f"{'.'.join(keys[:i])}=[a, b]")
                if i == len(keys) - 1:
                    raise ConfigError(f"override {item!r}: {'.'.join(keys)} names a preference, and a preference "
                                      f"is a mapping: set one of its keys, e.g. {'.'.join(keys)}.limit="
                                      f"{item.split('=', 1)[1]}")
                match = [p for p in node if isinstance(p, dict) and p.get("name") == k]
                if not match:
                    raise ConfigError(f"override {item}: no preference named {k!r}")
                node = match[0]
            elif not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {'.'.join(keys[:i])} is not a mapping")
            elif i == len(keys) - 1:
                node[k] = value
            else:
                node = node.setdefault(k, {})
    return raw
