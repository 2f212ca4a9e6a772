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
import re
import stat
import sys
from pathlib import Path
from typing import Any

from pvlora.core.errors import ArtifactError, PvloraError

MAX_JSON_DEPTH = 100  # manifests, adapter configs and data rows nest a few levels; Python recurses at ~1000
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
        try:
            real = path.resolve()
        except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError on a loop
            raise ArtifactError(f"{path}: a symlink loop; replace it with the real file") from None
        if not real.is_relative_to(root):
            raise ArtifactError(f"{path}: a symlink to {real}, outside {root}; copy the real file into the "
                                "artifact directory (links out of it are never followed)")
        try:
            st = real.stat()
        except OSError:  # a dangling link (or a loop): what it named is gone
            raise ArtifactError(f"{path}: a broken symlink (to {os.readlink(path)}, which does not exist); "
                                "restore the file or remove the link") from None
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


def parse_json(text: str, where: Any, error: type[PvloraError] = ArtifactError, line: int | None = None,
               fix: str = "") -> Any:
    """``json.loads`` for text from a stranger: anything Python's parser cannot hold becomes one
    ``error`` naming ``where`` (a file) and the line, instead of an exception from deep inside.

    Refused besides invalid JSON: nesting past :data:`MAX_JSON_DEPTH` (200,000 levels overflow the
    parser's recursion check; a few hundred parse, then overflow whatever recursive step meets them
    next, depending on how deep that caller already is), an integer over Python's digit limit, and a
    lone UTF-16 surrogate escape (a string no encoder can write back out). ``line``: ``text`` is that
    line of ``where`` (a JSON Lines row); otherwise positions are given as lines of ``text``.
    ``fix`` ends every message (what to do)."""
    def fail(what: str, detail: str = "", pos: int | None = None) -> PvloraError:
        if line is None and pos is not None:
            detail = f"{detail} at line {text.count(chr(10), 0, pos) + 1}".strip()
        return error(f"{where}{'' if line is None else f':{line}'}: {what}{f' ({detail})' if detail else ''}{fix}")

    deep = f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail("not valid JSON", exc.msg, exc.pos) from None
    except RecursionError:
        raise fail(deep, pos=_too_deep(text)) from None
    except ValueError:  # int(): "Exceeds the limit (4300 digits) for integer string conversion"
        digits = sys.get_int_max_str_digits()
        m = re.search(rf"\d{{{digits + 1},}}", text)
        raise fail(f"a JSON integer with more than {digits} digits", pos=m.start() if m else None) from None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and _depth(value) > MAX_JSON_DEPTH:
        raise fail(deep, pos=_too_deep(text))
    if re.search(r"\\u[dD][89a-fA-F]", text):  # a surrogate escape: fine in a pair, not alone
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError as exc:
            esc = f"\\u{ord(exc.object[exc.start]):04x}"
            m = re.search(re.escape(esc), text, re.IGNORECASE)
            raise fail("a string holds a lone UTF-16 surrogate", esc, m.start() if m else None) from None
    return value


def _depth(value: Any) -> int:
    """How deeply ``value`` nests lists and objects, without recursing (it may be hostile)."""
    deepest, stack = 0, [(value, 1)] if isinstance(value, (list, dict)) else []
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v) if isinstance(x, (list, dict)))
    return deepest


def _too_deep(text: str) -> int | None:
    """Where in ``text`` nesting first passes :data:`MAX_JSON_DEPTH` (strings skipped), or None."""
    depth = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return m.start()
        elif c in "]}":
            depth -= 1
    return None


def read_json(path: Path, expect: type = dict, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a bounded JSON file (:func:`parse_json`) and check its top-level type (a manifest that
    is a list is refused)."""
    value = parse_json(read_text(path, max_bytes), path)
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
