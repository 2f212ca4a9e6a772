"""One lock per model: what a forward pass computes depends on state kept on the model (the LoRA scales
:func:`pvlora.set_weights` writes, the per-row hooks and the disabled adapters of
:func:`pvlora.row_weights`), so calls that set or use that state from several threads take turns.

Re-entrant (``generate`` inside ``row_weights`` in one thread takes it twice) and kept beside the model
in a weak map, not on it, so a model can still be copied or pickled and its lock goes with it.
"""

from __future__ import annotations

import threading
import weakref

_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_GUARD = threading.Lock()


def model_lock(model) -> threading.RLock:
    """The lock of ``model``: hold it while setting its weights or generating with it."""
    with _GUARD:
        lock = _LOCKS.get(model)
        if lock is None:
            lock = _LOCKS[model] = threading.RLock()
        return lock


__all__ = ["model_lock"]
