"""What keeps ``pvlora serve`` answering: its settings checked against stated bounds before anything
loads, request-body errors that name their field, and SIGTERM stopping it as SIGINT does.

Bounds (each a :class:`~pvlora.core.errors.ConfigError` naming the setting):

- ``port``: an integer of at least 1 and at most 65535;
- ``max_batch``: an integer of at least 1 and at most 4096 (rows generated together);
- ``max_tokens``, ``max_prompt_tokens``: integers of at least 1;
- ``max_wait_ms``: a finite number from 0 to 10000 (a request waits at most 10 s for company; past
  that, waiting only adds latency, and an infinite wait is no wait the worker can make);
- ``temperature``: a finite number from 0 to 2 (the OpenAI range; 0 = greedy).
"""

from __future__ import annotations

import math
from typing import Any

from pvlora.core.errors import ConfigError
from pvlora.core.files import sigterm_raises

MAX_WAIT_MS = 10_000.0
MAX_BATCH = 4096


def _integer(label: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{label} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" + (f" and at most {high}" if high is not None else "")
        raise ConfigError(f"{label} must be {bound}, got {value}")


def _number(label: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{label} must be a number, got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise ConfigError(f"{label} must be a finite number between {low:g} and {high:g}, got {value:g}")


def check_settings(settings) -> None:
    """Every bound above, before the model loads (a :class:`pvlora.serving.app.ServeSettings`)."""
    _integer("port", settings.port, 1, 65535)
    _integer("max_batch", settings.max_batch, 1, MAX_BATCH)
    _integer("max_tokens", settings.max_tokens, 1)
    _integer("max_prompt_tokens", settings.max_prompt_tokens, 1)
    _number("max_wait_ms", settings.max_wait_ms, 0, MAX_WAIT_MS)
    _number("temperature", settings.temperature, 0, 2)


def body_error(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """(message, OpenAI ``param``) for the first error pydantic/FastAPI found in a request body: the
    field's path (``messages.1.role``), or no param for a body that is not JSON (whose location is a
    character offset, not a field)."""
    first = errors[0] if errors else {}
    loc = [x for x in first.get("loc", ()) if x != "body"]
    if first.get("type") == "json_invalid":
        at = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        reason = (first.get("ctx") or {}).get("error") or first.get("msg", "JSON decode error")
        return f"the request body is not valid JSON: {reason}{at}", None
    where = ".".join(str(x) for x in loc) or "body"
    return f"{where}: {first.get('msg', 'invalid')}", where


def sigterm_as_interrupt():
    """SIGTERM raises KeyboardInterrupt, as SIGINT does: while loading, the command stops as on Ctrl-C;
    while serving, uvicorn shuts down gracefully on either and then re-raises the signal here, so the
    caller's cleanup runs."""
    return sigterm_raises(KeyboardInterrupt)


__all__ = ["MAX_BATCH", "MAX_WAIT_MS", "body_error", "check_settings", "sigterm_as_interrupt"]
