"""What an η (a preference vector's weight) may be: one rule for the CLI, the API, configs, manifests
and server requests."""

from __future__ import annotations

import math
import numbers
from typing import Any

from pvlora.core.errors import EtaError

MAX_ETA = 1000.0


def check_eta(name: str, eta: Any, field: str | None = None, strict: bool = False) -> float:
    """η as a float: a finite number of at most MAX_ETA in size, or an :class:`EtaError` naming the
    vector (its ``field`` is ``field``, by default ``name``: where the caller's input holds the value).

    A boolean is never a weight. ``strict`` (JSON input, e.g. a server request): only a number is
    one, so ``"2"``, ``" 2 "`` and ``"1_000"`` are refused; otherwise text that spells a number (a
    command line, a file) is read as that number."""
    field = name if field is None else field
    if strict and (isinstance(eta, bool) or not isinstance(eta, numbers.Real)):
        raise EtaError(f"weight for {name!r} must be a number (a JSON number, not a string or a boolean), "
                       f"got {eta!r:.60}", field)
    if isinstance(eta, bool):  # float(True) is 1.0: a typo, never a weight
        raise EtaError(f"weight for {name!r} must be a number, not a boolean ({eta!r})", field)
    try:
        value = float(eta)
    except OverflowError:  # an integer too large for a float (a long JSON literal)
        raise EtaError(f"weight for {name!r} is too large; |η| must be at most {MAX_ETA:g}", field) from None
    except (TypeError, ValueError):
        raise EtaError(f"weight for {name!r} must be a number, got {eta!r:.60}", field) from None
    if not math.isfinite(value):
        raise EtaError(f"weight for {name!r} must be finite, got {eta!r}", field)
    if abs(value) > MAX_ETA:  # far past where any model degrades; large enough values overflow fp32 factors
        raise EtaError(f"weight for {name!r} is {value:g}; |η| must be at most {MAX_ETA:g} "
                       "(useful weights are about -3 to 3)", field)
    return value
