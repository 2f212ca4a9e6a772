"""Exceptions that the CLI turns into one clear line and a non-zero exit."""


class PvloraError(Exception):
    """Base class: a user-facing problem with a message that says what to do."""


class ConfigError(PvloraError):
    """A config file, key, or CLI flag is wrong."""


class DataError(PvloraError):
    """Preference data cannot be read or has no usable row."""


class ArtifactError(PvloraError):
    """An adapter/vector directory is missing, malformed, unsafe or incompatible."""
