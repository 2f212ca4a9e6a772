"""Config YAML from anyone: a regular file of bounded size, parsed with bounded expansion.

A config is read like an artifact from a stranger (DESIGN.md §10): only a regular file (a FIFO,
``/dev/zero`` or a directory is refused at once, never read), at most :data:`MAX_CONFIG_BYTES`, UTF-8.
YAML anchors and aliases are kept (``<<: *defaults`` is handy), but an alias copies its anchor's
whole value, so 432 bytes of nested aliases can stand for a billion values (a "billion laughs"
bomb). The parser's events are counted before anything is built: the value the text *expands to*
may hold at most :data:`MAX_VALUES` scalars and collections and nest :data:`MAX_DEPTH` levels;
aliases are then copied out, so a ``--set`` on one use of an anchor never changes another.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from pvlora.core.errors import ConfigError

MAX_CONFIG_BYTES = 1 << 20  # the shipped configs are 1-4 KB
MAX_VALUES = 100_000  # scalars and collections after alias expansion: ~100x the largest shipped config
MAX_DEPTH = 100  # a config nests 4-5 levels; the YAML composer recurses per level


def read_config_file(path: str | Path) -> str:
    """The text of config file ``path``: a regular file (checked on the open descriptor, opened
    without blocking so a FIFO cannot hang), at most :data:`MAX_CONFIG_BYTES`, UTF-8."""
    file = str(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(Path(path).expanduser(), flags)
    except OSError as exc:
        raise ConfigError(f"cannot read config {file}: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"config {file}: not a regular file (a device, pipe or directory); give a YAML file")
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config {file}: {st.st_size} bytes, over the {MAX_CONFIG_BYTES}-byte bound for a "
                              "config file")
        try:
            data = fh.read(MAX_CONFIG_BYTES + 1)  # bounded even if the file grew after the check
        except OSError as exc:
            raise ConfigError(f"cannot read config {file}: {exc.strerror or exc}") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {file}: over the {MAX_CONFIG_BYTES}-byte bound for a config file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {file}: not UTF-8 text ({exc.reason} at byte {exc.start}; a binary file?)") from None


def yaml_problem(exc: yaml.YAMLError, positions: bool = True) -> str:
    """A YAML error as one line: what is wrong, and where (line and column of the text)."""
    mark = getattr(exc, "problem_mark", None)
    what = getattr(exc, "problem", None) or getattr(exc, "context", None) or str(exc).splitlines()[0]
    if positions and mark is not None:
        return f"at line {mark.line + 1}, column {mark.column + 1}: {what}"
    return what


def parse_yaml(text: str, where: str, aliases: bool = True, invalid: str | None = None) -> Any:
    """``yaml.safe_load(text)`` with its expansion bounded (see the module doc); ``where`` begins
    every error. ``aliases=False`` refuses anchors and aliases altogether (a ``--set`` value);
    ``invalid``: the message for text that is not YAML, with ``{problem}`` (default: the position too)."""
    try:
        _check_events(text, where, aliases)
        value = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 (SafeLoader)
    except yaml.YAMLError as exc:
        detail = (invalid.replace("{problem}", yaml_problem(exc, positions=False)) if invalid
                  else f"invalid YAML {yaml_problem(exc)}")
        raise ConfigError(f"{where}: {detail}") from None
    except RecursionError:  # a constructor deeper than the composer; _check_events bounds both
        raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep") from None
    return _unshare(value)


def _check_events(text: str, where: str, aliases: bool) -> None:
    """One pass over the parser's events (no recursion, nothing built): the expanded size of every
    anchored value, every alias counted at that size, the nesting depth."""
    sizes: dict[str, int] = {}  # anchor -> expanded size of its value
    stack: list[list] = []  # open collections: [anchor, expanded size so far]
    total = 0

    def add(n: int, counted: int = 0) -> None:  # n new values; ``counted`` of them already in total
        nonlocal total
        total += n - counted
        if stack:
            stack[-1][1] += n
        if total > MAX_VALUES:
            raise ConfigError(f"{where}: expands to more than {MAX_VALUES:,} values through YAML aliases (an alias "
                              "bomb?); write the values out, or use fewer aliases")

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        anchor = getattr(event, "anchor", None)
        if not aliases and (anchor or isinstance(event, yaml.AliasEvent)):
            raise ConfigError(f"{where}: YAML anchors (&) and aliases (*) are not allowed in it")
        if isinstance(event, yaml.AliasEvent):
            if anchor in sizes:
                add(sizes[anchor])
            elif any(open_anchor == anchor for open_anchor, _ in stack):
                raise ConfigError(f"{where}: the value of &{anchor} refers to itself through a YAML alias (*{anchor})")
            else:
                raise ConfigError(f"{where}: alias *{anchor} names no anchor (&{anchor}) defined before it")
        elif isinstance(event, yaml.ScalarEvent):
            add(1)
            if anchor:
                sizes[anchor] = 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            stack.append([anchor, 0])
            if len(stack) > MAX_DEPTH:
                raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            open_anchor, size = stack.pop()
            add(size + 1, counted=size)  # the collection itself; its contents were counted as they came
            if open_anchor:
                sizes[open_anchor] = size + 1


def _unshare(value: Any) -> Any:
    """Aliases load as the same object; copy them apart (bounded: the expansion was counted)."""
    if isinstance(value, dict):
        return {k: _unshare(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unshare(v) for v in value]
    return value
