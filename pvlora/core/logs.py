"""Logging rules: pvlora reports through ``logging.getLogger(__name__)`` (the command line shows those
lines; pvlora/cli/__init__.py) and never changes another library's log level for good."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator


@contextlib.contextmanager
def quieted(name: str = "transformers", level: int = logging.ERROR) -> Iterator[None]:
    """Logger ``name`` at ``level`` or above while the block runs, then as it was: hides a library's
    warnings about our own calls into it (a trainer's set-up) without touching the caller's setting
    for anything else. A logger already quieter stays as it is."""
    logger = logging.getLogger(name)
    before = logger.level
    if logger.getEffectiveLevel() < level:
        logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(before)
