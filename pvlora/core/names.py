"""What a preference may be called: a name becomes a directory (adapters/NAME-positive, vectors/NAME),
a PEFT adapter name and a manifest field, so one rule, checked wherever a name comes in."""

from __future__ import annotations

import re
from typing import Any

from pvlora.core.errors import ConfigError

# A preference name becomes a directory name (adapters/NAME-positive, vectors/NAME) and a PEFT adapter
# name, so it is a plain identifier: no path separators, no leading dot, nothing PEFT would split on.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not a valid preference name; use 1-64 letters, digits, '_' or '-', "
                          "starting with a letter or digit (e.g. helpful, harmless_v2)")
    return name
