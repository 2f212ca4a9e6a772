"""Values checked by type: each field of pvlora's config blocks against its annotation, and the
numbers and switches of the library-owned ``lora:``/``dpo:``/``sft.args:`` blocks against PEFT's and
TRL's own field types. A wrong value is a one-line :class:`ConfigError` naming the key and what it
expects: a bool for an integer, NaN or infinity for a number (``1e400`` reads as infinity), a string
where a list belongs, a zero batch size."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pvlora.core.errors import ConfigError

_BOOL_WORDS = {"true": True, "yes": True, "on": True, "y": True, "false": False, "no": False, "off": False, "n": False}
# what YAML 1.1 leaves as text although it spells a number: 1e-5, 2E3 (a float needs a dot there)
_NUMBER_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def coerce(tp: Any, value: Any, path: str, file: str | None = None,
           build: Callable[[type, Any, str, str | None], Any] | None = None) -> Any:
    """``value`` checked against type ``tp`` (and normalised: ``1e3`` for an int is 1000, the text
    ``1e-5`` for a float is 1e-05); anything else is a one-line :class:`ConfigError` naming ``path``
    and what it expects. ``Any`` and types outside the config's vocabulary pass as they are. A config
    block (a dataclass) must be one already, unless ``build`` makes it from a mapping."""
    in_file = f" in {file}" if file else ""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if build is None:
            raise ConfigError(f"{path}: expected a {tp.__name__}, got {type(value).__name__}{in_file}")
        return build(tp, value, path, file)
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not one of {list(get_args(tp))}{in_file}")
        return value
    if origin in (Union, types.UnionType):
        arms = [a for a in get_args(tp) if a is not type(None)]
        if value is None and len(arms) < len(get_args(tp)):
            return None
        if len(arms) == 1:
            return coerce(arms[0], value, path, file, build)
        error = None
        for arm in arms:
            try:
                return coerce(arm, value, path, file, build)
            except ConfigError as exc:
                error = exc
        if all(a in (int, float) for a in arms):
            raise error  # int | float: the number's own problem (NaN, infinity)
        raise ConfigError(f"{path}: expected {' or '.join(_describe(a) for a in arms)}, got {_short(value)}{in_file}")
    if value is None and (tp in (int, float, bool, str, list, dict) or origin in (list, dict)):
        raise ConfigError(f"{path}: expected {_describe(tp)}, got null{in_file}")
    if origin is list or tp is list:
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {_short(value)}{in_file}")
        item = get_args(tp)[0] if get_args(tp) else Any
        return [coerce(item, v, f"{path}[{i}]", file, build) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {_short(value)}{in_file}")
        item = get_args(tp)[1] if get_args(tp) else Any
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{path}: keys must be names, got {_short(k)}{in_file}")
            out[k] = coerce(item, v, f"{path}.{k}", file, build)
        return out
    if tp is float:
        if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{path}: expected a number, got {_short(value)}{in_file}")
        try:
            number = float(value)
        except OverflowError:  # an integer with hundreds of digits
            raise ConfigError(f"{path}: {str(value)[:20]}... is too large for a float{in_file}") from None
        if not math.isfinite(number):
            raise ConfigError(f"{path}: must be a finite number, got {value}{in_file}")
        return number
    if tp is int:
        if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
            value = float(value)
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)  # 1e3 (or the text 1e3, which YAML 1.1 leaves a string)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{path}: expected an integer, got {_short(value)}{in_file}")
        return value
    if tp is bool:
        if isinstance(value, str) and value.strip().lower() in _BOOL_WORDS:
            return _BOOL_WORDS[value.strip().lower()]  # --set x=yes keeps 'yes' as text (see parse_override)
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: expected true or false, got {_short(value)}{in_file}")
        return value
    if tp is str and not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {_short(value)}{in_file}")
    return value


def _describe(tp: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
             dict: "a mapping"}
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(map(repr, get_args(tp)))
    return names.get(tp) or names.get(get_origin(tp)) or getattr(tp, "__name__", str(tp))


def _short(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def check_fields(obj: Any, where: str) -> None:
    """Check (and normalise) every field of config block ``obj`` against its type, however the
    block was made (a file, ``--set``, or a call such as ``ModelConfig(quantization="int8")``)."""
    hints = _hints(type(obj))
    for f in dataclasses.fields(obj):
        path = f"{where}.{f.name}" if where else f.name
        setattr(obj, f.name, coerce(hints[f.name], getattr(obj, f.name), path))


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls)


def library_value(tp: Any, value: Any, path: str) -> Any:
    """A value for a library-owned setting (a peft.LoraConfig or trl config field of type ``tp``):
    numbers and switches are checked and normalised like pvlora's own; anything else (lists,
    mappings, enums the library converts itself) passes, but holds no NaN or infinity."""
    arms = [a for a in get_args(tp) if a is not type(None)] if get_origin(tp) in (Union, types.UnionType) else [tp]
    if value is None:
        return None
    if arms and all(a in (int, float, bool) for a in arms):
        return coerce(tp, value, path)
    finite(value, path)
    return value


def finite(value: Any, path: str) -> None:
    """Refuse a NaN or infinity anywhere in ``value`` (nested lists and mappings), naming where."""
    todo = [(value, path)]
    while todo:
        v, at = todo.pop()
        if isinstance(v, float) and not math.isfinite(v):
            raise ConfigError(f"{at}: must be a finite number, got {v}")
        if isinstance(v, dict):
            todo.extend((x, f"{at}.{k}") for k, x in v.items())
        elif isinstance(v, (list, tuple)):
            todo.extend((x, f"{at}[{i}]") for i, x in enumerate(v))


# Settings whose zero or negative values are meaningless (a zero batch, rank, learning rate or β
# trains nothing or divides by zero) and ranges the libraries do not check before training starts.
_POSITIVE = {"r", "lora_alpha", "learning_rate", "beta", "num_train_epochs", "per_device_train_batch_size",
             "per_device_eval_batch_size", "gradient_accumulation_steps", "max_length", "max_prompt_length",
             "max_completion_length"}
_NON_NEGATIVE = {"weight_decay", "max_grad_norm", "warmup_steps", "label_smoothing"}
_BELOW_ONE = {"lora_dropout"}  # in [0, 1)
# Annotated int, used as a number: PEFT scales by lora_alpha / r, so 16 stays 16 and 0.5 is fine
_WIDER = {"LoraConfig": {"lora_alpha": int | float}}


def check_library_values(library: str, values: dict[str, Any], where: str) -> None:
    """Check the values of a ``lora:``/``dpo:``/``sft.args:`` block by the library's own field types
    (``library``: LoraConfig, DPOConfig or SFTConfig; ``r: int``, ``beta: float``: a bool, NaN,
    infinity or ``1e400`` for them is refused, naming ``where.key``) and the ranges above; an integral
    number for an integer field becomes an int. Call it after the keys were checked."""
    if not values:
        return
    hints = {**_field_types(library), **_WIDER.get(library, {})}
    for key, value in list(values.items()):
        path = f"{where}.{key}"
        value = values[key] = library_value(hints.get(key, Any), value, path)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if key in _POSITIVE and value <= 0:
            raise ConfigError(f"{path} must be positive, got {value:g}")
        if key in _NON_NEGATIVE and value < 0:
            raise ConfigError(f"{path} must be >= 0, got {value:g}")
        if key in _BELOW_ONE and not 0 <= value < 1:
            raise ConfigError(f"{path} must be in [0, 1), got {value:g}")


@functools.cache
def _field_types(library: str) -> dict[str, Any]:
    if library == "LoraConfig":
        from peft import LoraConfig as cls  # light: peft's config module only
    else:
        import trl  # DPOConfig, SFTConfig: imported only when a config sets some of their keys

        cls = getattr(trl, library)
    try:
        return get_type_hints(cls)
    except Exception:  # an annotation the library's own module cannot resolve: finiteness is still checked
        return {}
