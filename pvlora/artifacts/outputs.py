"""The one rule for every path a command writes (files, directories, folders written into), checked
before any work: a bad destination is one line naming it, never an OSError traceback after minutes
of training, and never a write that destroys one of the command's own inputs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from pvlora.core.errors import ArtifactError

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
