"""Exceptions that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class PvloraError(Exception):
    """Base class: a user-facing problem with a message that says what to do."""


class ConfigError(PvloraError):
    """A setting is wrong: a config file or key, a CLI flag, a server setting, or an option of a call
    (``rank``, ``dtype``, ``direction``)."""


class DataError(PvloraError):
    """Preference data cannot be read or has no usable row."""


class ArtifactError(PvloraError):
    """An adapter/vector directory is missing, malformed, unsafe or incompatible."""


class RequestError(PvloraError):
    """A value a call or a server request passes is wrong (per-row weights, a request field); ``field``
    names it, so the server answers with a 400 that names it too."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class EtaError(RequestError):
    """An η (a vector's weight) is not a finite number of at most ``MAX_ETA`` in size; ``field`` is the
    name it was given under (the vector's name or path)."""
