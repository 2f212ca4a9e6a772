"""File-system steps the atomic writers (:mod:`pvlora.artifacts.atomic`) are built from: an atomic
directory exchange, removal, default permissions, and the names of temporaries, which carry the
writer's host and pid so that one left by a killed writer is recognised and removed by the next.
Nothing here imports pvlora (the writers sit low in the package's import chains)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Errors that mean the write itself hit a limit (a file-size ulimit, a full disk or quota), not a bad path.
WRITE_LIMITS = frozenset({errno.EFBIG, errno.ENOSPC, errno.EDQUOT})


def alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, but is another user's
    except OverflowError:
        return False  # no pid is that large
    return True


def host() -> str:
    """This machine's name as it appears in lock files and temporary names (file-name safe)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def temp_prefix(target: Path) -> str:
    """``.NAME.tmp-HOST-PID-``: the prefix of every temporary a writer of ``target`` makes."""
    return f".{Path(target).name}.tmp-{host()}-{os.getpid()}-"


def remove_dead_temps(target: Path) -> None:
    """Remove the temporaries beside ``target`` that a writer on this machine left when it was killed
    (its pid no longer runs). Those of live writers, and of other machines, are kept."""
    target = Path(target)
    mine = re.compile(rf"\.{re.escape(target.name)}\.tmp-{re.escape(host())}-(\d+)-")
    for path in target.parent.glob(f".{glob_escape(target.name)}.tmp-*"):
        m = mine.match(path.name)
        if m and int(m[1]) != os.getpid() and not alive(int(m[1])):
            remove(path)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where unsupported.
    Python's os.replace cannot replace a non-empty directory, and two renames leave a moment with none."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def default_mode(path: Path, mode: int) -> None:
    """The permissions an ordinary ``mkdir``/``open`` would have given (``mode`` less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    Path(path).chmod(mode & ~umask)


@contextlib.contextmanager
def sigterm_raises(exc_type: type[BaseException] = KeyboardInterrupt) -> Iterator[None]:
    """Inside the block SIGTERM (``kill``, a scheduler's stop, ``docker stop``) raises ``exc_type``
    where the program is, instead of Python's default of ending the process on the spot, which would
    skip every cleanup (temporaries, locks, the server's batcher). The previous handler comes back
    after. Only the main thread can handle signals: elsewhere (a test's thread) nothing changes."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise exc_type()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def build_once(target: Path, build) -> Path:
    """A cache entry: ``build(tmp)`` fills a temporary directory beside ``target``, which is then
    renamed into place. A concurrent build that finished first wins (its copy is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_temps(target)  # builds killed before they finished
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), dir=target.parent))
    try:
        build(tmp)
        if target.exists():
            shutil.rmtree(tmp)
        else:
            default_mode(tmp, 0o777)
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target
