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


def logging_state() -> dict:
    """What a child process needs to log as this one does (see :func:`adopt_logging_state`): the
    levels set on named loggers, the ``pvlora`` logger's effective level, the warning filters, and
    whether ``datasets``' progress bars are off."""
    import sys
    import warnings

    datasets = sys.modules.get("datasets")
    return {"levels": {name: lg.level for name, lg in logging.root.manager.loggerDict.items()
                       if isinstance(lg, logging.Logger) and lg.level != logging.NOTSET and not name.startswith("pvlora")},
            "pvlora": logging.getLogger("pvlora").getEffectiveLevel(), "filters": list(warnings.filters),
            "quiet_datasets": bool(datasets and not datasets.is_progress_bar_enabled())}


def adopt_logging_state(state: dict) -> None:
    """In a child process (a new interpreter, where none of it carries over), take the parent's
    :func:`logging_state`: what the command line set in the parent holds in the child too, and the
    child prints its pvlora lines to stdout as the parent's console does."""
    import sys
    import warnings

    for name, level in state["levels"].items():
        logging.getLogger(name).setLevel(level)
    warnings.filters[:0] = state["filters"]
    if state["quiet_datasets"]:
        import datasets

        datasets.disable_progress_bars()
    if state["pvlora"] <= logging.INFO:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger = logging.getLogger("pvlora")
        logger.addHandler(handler)
        logger.setLevel(state["pvlora"])
