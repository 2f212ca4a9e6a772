"""The command line's one grammar for weights: ``NAME=ETA``.

``--vector DIR=ETA`` (compose, serve), ``--weights NAME=ETA[,NAME=ETA...]`` (eval) and ``--grid
NAME=START:STOP:STEP`` or ``NAME=V1,V2,...`` (sweep) all split the same way (at the last ``=``, so
a directory may hold one), refuse the same name twice, and name the flag and item in their errors.
Parsing lives here, in the command-line layer; the library takes plain dicts.
"""

from __future__ import annotations

import math

from pvlora.core.errors import ConfigError
from pvlora.evaluation.grid import MAX_AXIS_POINTS, MAX_GRID_POINTS, check_grid


def _split(item: str, flag: str, shape: str, example: str) -> tuple[str, str]:
    name, _, value = (x.strip() for x in item.rpartition("="))
    if "=" not in item or not name or not value:
        raise ConfigError(f"{flag} {item!r}: expected {shape}, e.g. {flag} {example}")
    return name, value


def _number(value: str, flag: str, item: str) -> float:
    try:
        x = float(value)
    except ValueError:
        raise ConfigError(f"{flag} {item!r}: {value!r} is not a number") from None
    if not math.isfinite(x):
        raise ConfigError(f"{flag} {item!r}: {value!r} is not a finite number")
    return x


def _unique(pairs: list[tuple[str, object]], flag: str) -> dict:
    out: dict = {}
    for name, value in pairs:
        if name in out:
            raise ConfigError(f"{flag}: {name!r} is given twice; give each once")
        out[name] = value
    return out


def weights(items: str | list[str], flag: str = "--weights") -> dict[str, float]:
    """``"helpful=1,harmless=0.5"`` (or a list of such strings) -> {"helpful": 1.0, "harmless": 0.5}."""
    parts = [p.strip() for s in ([items] if isinstance(items, str) else items) for p in s.split(",") if p.strip()]
    return _unique([(n, _number(v, flag, p)) for p in parts for n, v in [_split(p, flag, "NAME=ETA", "helpful=1,harmless=0.5")]],
                   flag)


def vector_specs(items: list[str], flag: str = "--vector", default: float | None = None) -> dict[str, float]:
    """``["vectors/helpful=1", "org/harmless@v1=0.5"]`` -> {path or Hub id: η}; with ``default``,
    an item without ``=ETA`` gets it (the library then tells a path from a Hub id)."""
    pairs = []
    for item in items:
        if default is not None and "=" not in item:
            pairs.append((item.strip(), default))
            continue
        name, value = _split(item, flag, "NAME=ETA", "vectors/helpful=1.0")
        pairs.append((name, _number(value, flag, item)))
    return _unique(pairs, flag)


def grid(items: list[str], flag: str = "--grid") -> dict[str, list[float]]:
    """``["harmless=-1:1.5:0.5", "helpful=0,0.5,1"]`` -> {name: values}; a range includes STOP."""
    pairs = []
    for item in items:
        name, rhs = _split(item, flag, "NAME=START:STOP:STEP or NAME=V1,V2,...", "harmless=-1:1.5:0.5")
        if ":" in rhs:
            bounds = rhs.split(":")
            if len(bounds) != 3:
                raise ConfigError(f"{flag} {item!r}: a range is START:STOP:STEP")
            start, stop, step = (_number(b, flag, item) for b in bounds)
            if step <= 0 or stop < start:
                raise ConfigError(f"{flag} {item!r}: a range needs START <= STOP and STEP > 0")
            span = (stop - start) / step  # inf for 0:1e300:1e-300: counted before any list is made
            if not span + 1 <= MAX_AXIS_POINTS:
                raise ConfigError(f"{flag} {item!r}: more than {MAX_AXIS_POINTS:,} points; a grid has at most "
                                  f"{MAX_AXIS_POINTS:,} per preference and {MAX_GRID_POINTS:,} in all: use a "
                                  "larger STEP")
            n = math.floor(span + 1e-9) + 1
            values = [round(start + i * step, 10) for i in range(n)]
        else:
            values = [_number(v, flag, item) for v in rhs.split(",") if v.strip()]
        if not values:
            raise ConfigError(f"{flag} {item!r}: needs at least one value")
        pairs.append((name, values))
    out = _unique(pairs, flag)
    check_grid(out, flag)  # the values' count, per preference and in all
    return out


__all__ = ["grid", "vector_specs", "weights"]
