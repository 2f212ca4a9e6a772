"""Run one preference's training in a child process (``train.process_per_preference``).

Why a process and not ``del`` + :func:`~pvlora.core.memory.release_memory`: after a trainer is freed,
PyTorch's and glibc's allocators keep part of what it held mapped (fragmented heap, cached
blocks), so a process that trains six adapters and then evaluates carries training's residue into
the evaluation (the SmolLM2 study: 2.45 GB resident when its evaluation began, 4.16 GB high-water
mark after training, in one process). A child's memory all goes back to the system when it exits.
One child per *preference*, not per adapter: the two directions of a preference share the base's
held-out scores and, with ``train.share_reference_logps``, the reference pass.

The child is a fresh interpreter running this module (``python -m pvlora.training.isolate``), not
a ``multiprocessing`` process: ``fork`` would copy the parent's heap (and is unsafe once PyTorch's
threads exist), and ``spawn`` re-imports the caller's ``__main__``, which re-runs a user's script
that has no ``if __name__ == "__main__"`` guard. The call goes over as a pickle in a private
temporary directory; an exception in the child comes back the same way and is raised in the parent,
so a refusal (:class:`~pvlora.core.errors.ConfigError`, ...) reads the same either way.
"""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any, Callable

from pvlora.core.errors import PvloraError
from pvlora.core.logs import adopt_logging_state, logging_state


class ChildFailed(PvloraError):
    """The child process died without a Python exception to report (killed, out of memory)."""


def _child(call: Path, answer: Path) -> int:
    state, payload = pickle.loads(call.read_bytes())
    adopt_logging_state(state)  # before the call is unpickled: that imports the libraries whose levels it sets
    fn, args, kwargs = pickle.loads(payload)
    try:
        fn(*args, **kwargs)
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent, which raises it
        text = traceback.format_exc()
        try:
            answer.write_bytes(pickle.dumps((exc, text)))
        except Exception:  # an exception that does not pickle: its text is still the message
            answer.write_bytes(pickle.dumps((None, text)))
        return 1
    answer.write_bytes(pickle.dumps((None, None)))
    return 0


def run_in_child(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """``fn(*args, **kwargs)`` in a fresh process; its return value is dropped (results go to disk).
    ``fn`` must be importable by name and its arguments must pickle."""
    with tempfile.TemporaryDirectory(prefix="pvlora-child-") as tmp:
        call, answer = Path(tmp) / "call.pkl", Path(tmp) / "answer.pkl"
        call.write_bytes(pickle.dumps((logging_state(), pickle.dumps((fn, args, kwargs)))))
        sys.stdout.flush()
        code = subprocess.run([sys.executable, "-m", __name__, str(call), str(answer)]).returncode
        got = pickle.loads(answer.read_bytes()) if answer.exists() else None
    if got is None:
        raise ChildFailed(f"the training process stopped with exit code {code} before it finished "
                          "(a negative code is the signal that killed it, e.g. -9 when the system ran out of "
                          "memory); finished adapters are kept: run the same command again to continue")
    exc, text = got
    if exc is not None:
        raise exc
    if text is not None:
        raise ChildFailed(f"training failed in its child process:\n{text}")


def without_isolation(cfg):
    """``cfg`` with ``train.process_per_preference`` off: what a child runs (it must not spawn again)."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, process_per_preference=False))


__all__ = ["ChildFailed", "run_in_child", "without_isolation"]


if __name__ == "__main__":
    raise SystemExit(_child(Path(sys.argv[1]), Path(sys.argv[2])))
