"""YAML / dict -> typed dataclasses, and ``--set a.b=value`` overrides: every key checked against the
dataclass fields (an unknown key names itself and the file), every value coerced to its field's type."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from pvlora.config.library_keys import suggest
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
        kwargs[key] = _coerce(hints[key], value, path, file)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or 'config'}{in_file}: {exc}") from None


def _coerce(tp: Any, value: Any, path: str, file: str | None) -> Any:
    in_file = f" in {file}" if file else ""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, file)
    if origin is list and dataclasses.is_dataclass(get_args(tp)[0]):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list{in_file}")
        return [_build(get_args(tp)[0], v, f"{path}[{i}]", file) for i, v in enumerate(value)]
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not one of {list(get_args(tp))}{in_file}")
        return value
    args = [a for a in get_args(tp) if a is not type(None)]
    if value is None:
        return None
    base = args[0] if origin is not None and args and origin not in (list, dict) else tp
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise ConfigError(f"{path}: {str(value)[:20]}... is too large for a float{in_file}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{path}: must be finite, got {value}{in_file}")
        return number
    if base is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"{path}: expected an integer, got {value!r}{in_file}")
    if base is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true or false, got {value!r}{in_file}")
    if base is str and not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}{in_file}")
    return value


def parse_override(item: str) -> tuple[list[str], Any]:
    """``dpo.learning_rate=1e-5`` -> (["dpo", "learning_rate"], 1e-05); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. dpo.learning_rate=1e-5")
    key, raw = item.split("=", 1)
    if raw.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        value: Any = raw.strip()  # YAML 1.1 would turn these into booleans (save_strategy=no -> False)
    else:
        value = yaml.safe_load(raw) if raw != "" else ""
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads '1e-5' as a string
    return key.strip().split("."), value


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
        for i, k in enumerate(keys[:-1]):
            if isinstance(node, list):  # list of preferences: select by name
                match = [p for p in node if isinstance(p, dict) and p.get("name") == k]
                if not match:
                    raise ConfigError(f"override {item}: no preference named {k!r}")
                node = match[0]
            else:
                node = node.setdefault(k, {})
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"override {item}: {'.'.join(keys[: i + 1])} is not a mapping")
        node[keys[-1]] = value
    return raw
