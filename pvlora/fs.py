"""Reading files of an artifact directory that may come from a stranger (the Hub, a shared drive).

Every name an artifact gives (a manifest's ``weights_sha256`` keys, PEFT's fixed file names) is a
plain file name inside the directory; only regular files are read, each up to a size bound; a
symlink is followed only when it stays inside the directory or, for a Hugging Face cache snapshot
(whose files are symlinks into the repo's ``blobs/``), inside that repo's cache folder. So a
manifest naming ``/dev/zero`` or ``../../etc/passwd``, or a weights file linked to a device or a
secret, is refused with a one-line error instead of hanging or leaking.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

from pvlora.errors import ArtifactError

MAX_JSON_BYTES = 16 << 20  # manifests, adapter configs, eval reports: kilobytes in practice
MAX_TEXT_BYTES = 16 << 20  # chat templates, model cards
MAX_WEIGHT_BYTES = 256 << 30  # adapter weights: the largest LoRA of a 400B-parameter base is far below


def plain_name(directory: Path, name: Any, where: str) -> Path:
    """``directory / name`` when ``name`` is a plain file name; ``where`` says who named it."""
    if (not isinstance(name, str) or name in ("", ".", "..") or "/" in name or "\\" in name or "\0" in name
            or os.path.isabs(name)):
        raise ArtifactError(f"{where} names {name!r}: only plain file names inside {directory} are allowed; "
                            "the artifact is malformed or hostile")
    return Path(directory) / name


def _confinement(directory: Path) -> Path:
    """The folder a symlink inside ``directory`` may point into (resolved)."""
    d = Path(directory).absolute()
    for parent in (d, *d.parents):
        if parent.name == "snapshots" and parent.parent.name.startswith(("models--", "datasets--", "spaces--")):
            return parent.parent.resolve()  # huggingface_hub cache: snapshots/<rev>/f -> ../../blobs/<sha>
    return d.resolve()


def regular_file(path: Path, max_bytes: int, directory: Path | None = None) -> os.stat_result:
    """Stat ``path`` and refuse anything but a regular file of at most ``max_bytes`` whose symlinks
    (if any) stay inside ``directory``'s confinement (default: ``path``'s own folder)."""
    path = Path(path)
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing") from None
    if stat.S_ISLNK(st.st_mode):
        root = _confinement(directory or path.parent)
        real = path.resolve()
        if not real.is_relative_to(root):
            raise ArtifactError(f"{path}: a symlink to {real}, outside {root}; copy the real file into the "
                                "artifact directory (links out of it are never followed)")
        st = real.stat()
    if not stat.S_ISREG(st.st_mode):
        raise ArtifactError(f"{path}: not a regular file (a device, pipe or directory); refused")
    if st.st_size > max_bytes:
        raise ArtifactError(f"{path}: {st.st_size} bytes, over the {max_bytes}-byte bound for this kind of file")
    return st


def read_bytes(path: Path, max_bytes: int) -> bytes:
    regular_file(path, max_bytes)
    with open(path, "rb") as fh:
        data = fh.read(max_bytes + 1)  # bounded even if the file grew after the check
    if len(data) > max_bytes:
        raise ArtifactError(f"{path}: over the {max_bytes}-byte bound for this kind of file")
    return data


def read_text(path: Path, max_bytes: int = MAX_TEXT_BYTES) -> str:
    try:
        return read_bytes(path, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise ArtifactError(f"{path}: not UTF-8 text") from None


def read_json(path: Path, expect: type = dict, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a bounded JSON file and check its top-level type (a manifest that is a list is refused)."""
    try:
        value = json.loads(read_text(path, max_bytes))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(value, expect):
        raise ArtifactError(f"{path}: expected a JSON {'object' if expect is dict else expect.__name__}, "
                            f"got {type(value).__name__}")
    return value


def sha256_file(path: Path, max_bytes: int = MAX_WEIGHT_BYTES) -> str:
    regular_file(path, max_bytes)
    h = hashlib.sha256()
    left = max_bytes + 1
    with open(path, "rb") as fh:
        while chunk := fh.read(min(1 << 20, left)):
            h.update(chunk)
            left -= len(chunk)
            if left <= 0:
                raise ArtifactError(f"{path}: over the {max_bytes}-byte bound for this kind of file")
    return h.hexdigest()


def portable(path: Any) -> Any:
    """A path as recorded in a manifest or model card that may be shared: a relative path that stays
    below the working directory is kept; anything else (absolute, ``~``, ``..``) becomes its last
    component, so no local directory layout (user names, mount points) leaves the machine. Hub ids
    and other non-path strings pass through."""
    if not isinstance(path, (str, Path)):
        return path
    s = str(path)
    p = Path(s)
    if p.is_absolute() or s.startswith("~") or ".." in p.parts:
        return p.name or s
    return s


def portable_command(argv: list[str]) -> list[str]:
    """A command line with every local path argument (``/x/y``, ``--out=/x/y``) made :func:`portable`."""
    out = []
    for arg in argv:
        flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
        local = value.startswith(("/", "~", "..")) or "/.." in value
        out.append(f"{flag}{eq}{portable(value)}" if local else arg)
    return out


def cache_root() -> Path:
    """``$PVLORA_CACHE`` or ``$XDG_CACHE_HOME/pvlora`` or ``~/.cache/pvlora``."""
    if os.environ.get("PVLORA_CACHE"):
        return Path(os.environ["PVLORA_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "pvlora"
