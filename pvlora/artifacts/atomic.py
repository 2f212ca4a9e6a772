"""Atomic writes: a directory or file is built beside its target and swapped in whole, so a kill at
any point leaves the old complete artifact or the new one; one writer at a time per target."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pvlora.core.errors import ArtifactError
from pvlora.core.files import WRITE_LIMITS, remove_dead_temps, temp_prefix
from pvlora.core.files import alive as _alive, default_mode as _default_mode, exchange as _exchange, remove as _remove


OUTPUT_KINDS = ("file", "dir", "into")


def check_output(target: str | Path, overwrite: bool = False, kind: str = "dir", inputs: tuple = (),
                 flag: str | None = None) -> Path:
    """The one rule for every path a command writes, checked before any work and again by the writers
    (:func:`atomic_dir`, :func:`atomic_file`), so a bad destination is one line naming it, never an
    OSError traceback after minutes of training. ``kind``: ``"file"`` (replaced whole), ``"dir"``
    (replaced whole) or ``"into"`` (a folder the command writes into, kept if it exists). ``flag``
    names the option on the command line (``--out``); the library's errors name the path alone.

    Refused: an output that is one of ``inputs``, holds one or lies inside one; the working directory
    (or a folder holding it); a location below a file or in a folder this process cannot write; a
    directory where a file goes (and a file where a folder goes); a device or pipe (replacing one as
    root would delete it); and an existing ``file``/``dir`` without ``overwrite``."""
    target = Path(target)
    label = f"{flag} {target}" if flag else str(target)
    if kind not in OUTPUT_KINDS:
        raise ValueError(f"kind must be one of {OUTPUT_KINDS}, got {kind!r}")
    if target.name in ("", ".."):  # "." or "..": name the folder itself (a temporary goes beside it)
        target = target.resolve()
    t = target.resolve()
    for src in inputs:
        s = Path(src).resolve()
        if s == t or s.is_relative_to(t):
            raise ArtifactError(f"{label} is one of this command's own inputs ({src}); choose another output")
        if s.is_dir() and t.is_relative_to(s):  # replacing a file of an input, or writing into it
            raise ArtifactError(f"{label} is inside {src}, one of this command's own inputs (writing there would "
                                "change or replace its files); choose another output")
    if kind != "into" and Path(os.path.realpath(os.curdir)).is_relative_to(t):
        raise ArtifactError(f"{label} is the directory you are working in (or holds it); replacing it would delete "
                            "what is in it: choose another output")
    _check_location(target, label)
    try:
        st = target.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return target
    is_dir = target.is_dir()  # a symlink to a directory counts as one: replacing it would hide the folder
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode) or is_dir):
        raise ArtifactError(f"{label} is a device, pipe or socket, not a file or directory; choose another output")
    if kind == "file" and is_dir:
        raise ArtifactError(f"{label} is a directory; name a file (a path inside it, or another one)")
    if kind == "into":
        if not is_dir:
            raise ArtifactError(f"{label} is a file; name a directory (the command writes several files into it)")
        return target
    if not overwrite:
        raise ArtifactError(f"{label} already exists; pass overwrite=True to replace it")
    return target


def _check_location(target: Path, label: str) -> None:
    """The nearest existing folder above ``target`` must be a directory this process can write in
    (everything below it is created). A file there, a broken link or a read-only folder is refused."""
    ancestor = target.absolute().parent
    while not os.path.lexists(ancestor) and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        what = "a file" if ancestor.exists() else "a broken link"
        raise ArtifactError(f"{label}: cannot write there ({ancestor} is {what}, not a directory); "
                            "choose a writable location")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ArtifactError(f"{label}: cannot write there ({ancestor} is not writable by this user, or is on a "
                            "read-only file system); choose a writable location")


def _unwritable(target: Path, exc: OSError) -> ArtifactError:
    """What a write that failed after :func:`check_output` passed says (the folder changed meanwhile,
    or a permission :func:`os.access` did not see)."""
    if exc.errno in WRITE_LIMITS:
        return ArtifactError(f"{target}: the write failed ({exc.strerror}: a file-size limit or a full disk); "
                             "nothing was changed")
    return ArtifactError(f"{target}: cannot write there ({exc.strerror}); choose a writable location")


@contextlib.contextmanager
def atomic_dir(target: str | Path, overwrite: bool = False, inputs: tuple = ()) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success it replaces ``target``.

    On any error the temporary directory is removed and ``target`` (if it existed) is untouched. A
    lock file beside ``target`` keeps a second writer out for the whole build (so neither silently
    deletes the other's output); a writer killed between the two renames of a replacement is
    recovered by the next one (the old copy is put back, stale temporary directories removed). An
    ``inputs`` path that ``target`` would replace is refused: the output would destroy its own input."""
    target = check_output(target, overwrite, "dir", inputs)
    with _write_lock(target):
        recover(target)
        check_output(target, overwrite, "dir")  # again, under the lock: recover() may have put one back
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), dir=target.parent))
        try:
            yield tmp
        except BaseException as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if isinstance(exc, OSError) and exc.errno in WRITE_LIMITS:  # ulimit -f, a full disk: say so
                raise _unwritable(target, exc) from None
            raise
        _swap_in(tmp, target)


def _swap_in(tmp: Path, target: Path) -> None:
    """Put the finished ``tmp`` in ``target``'s place. If that fails (an immutable or read-only
    target, an interrupt between the two renames), ``target`` is as it was and ``tmp`` is gone."""
    old = None
    try:
        _default_mode(tmp, 0o777)  # mkdtemp makes it private (0700); the result is an ordinary directory
        if (target.exists() or target.is_symlink()) and _exchange(tmp, target):
            _remove(tmp)  # now the old copy: the destination was never missing
            return
        if target.exists() or target.is_symlink():  # no atomic exchange here: two renames, recoverable
            old = target.parent / f".{target.name}.old-{tmp.name[-8:]}"
            target.rename(old)
        tmp.rename(target)
    except BaseException as exc:
        if old is not None and not os.path.lexists(target):
            old.rename(target)  # put the old artifact back
        _remove(tmp)
        if isinstance(exc, OSError):
            raise _unwritable(target, exc) from None
        raise
    if old is not None:
        _remove(old)


def recover(target: Path) -> None:
    """Undo what a killed writer left beside ``target`` (call it holding the write lock): with
    ``target`` gone, its newest ``.old-*`` copy is put back; then stale ``.tmp-*``/``.old-*`` go."""
    target = Path(target)
    olds = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if olds and not (target.exists() or target.is_symlink()):
        olds.pop().rename(target)
    for stale in [*olds, *target.parent.glob(f".{target.name}.tmp-*")]:
        _remove(stale)


@contextlib.contextmanager
def _write_lock(target: Path) -> Iterator[None]:
    """An exclusive lock file ``.NAME.lock`` holding the writer's pid; one left by a dead process is taken over."""
    lock = target.parent / f".{target.name}.lock"
    me = f"{socket.gethostname()} {os.getpid()}"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _unwritable(target, exc) from None
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is None or (holder[0] == socket.gethostname() and not _alive(int(holder[1]))):
                lock.unlink(missing_ok=True)  # its writer was killed (or it is no pvlora lock): take over
                continue
            host, pid = holder
            raise ArtifactError(f"{target} is being written by another pvlora process ({host or '?'} pid {pid}); "
                                f"wait for it to finish, or delete {lock} if that process is gone") from None
        except OSError as exc:
            raise _unwritable(target, exc) from None
        with os.fdopen(fd, "w") as fh:
            fh.write(me)
        break
    else:
        raise ArtifactError(f"cannot take the write lock {lock}; delete it if no pvlora process is writing {target}")
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_holder(lock: Path) -> tuple[str, str] | None:
    """(host, pid) a lock file names; None when it names none (empty or garbage) a second after it was
    read first: a live writer fills its lock at once, so such a lock is a killed writer's."""
    for _ in range(10):
        try:
            m = re.fullmatch(r"(\S+) (\d{1,9})", lock.read_text(errors="replace").strip())
        except FileNotFoundError:
            return None
        except OSError:
            m = None
        if m:
            return m[1], m[2]
        time.sleep(0.1)
    return None


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temporary path beside ``target`` (removed first: those a killed writer left) for a writer that
    opens files itself; it replaces ``target`` when the block succeeds and is removed when it fails.
    Whether an existing ``target`` may be replaced is the caller's decision (made up front with
    :func:`check_output`); the rest of the output rule is checked here."""
    target = check_output(target, overwrite=True, kind="file")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_dead_temps(target)
        fd, name = tempfile.mkstemp(prefix=temp_prefix(target), dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _unwritable(target, exc) from None
    tmp = Path(name)
    try:
        yield tmp
        _default_mode(tmp, 0o666)  # mkstemp makes it private (0600)
        tmp.replace(target)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_LIMITS:
            raise _unwritable(target, exc) from None
        raise


@contextlib.contextmanager
def atomic_file(target: Path, mode: str = "w"):
    """Write ``target`` through a temporary file beside it (:func:`atomic_path`); replaced only when
    writing succeeded."""
    with atomic_path(target) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as fh:
        yield fh
