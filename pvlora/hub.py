"""Hugging Face Hub: resolve vector names that are Hub ids."""

from __future__ import annotations

from pathlib import Path


def resolve_artifact(spec: str) -> Path:
    """A local directory as is; anything else is a Hub id (``org/name`` or ``org/name@revision``)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    from pvlora.errors import ArtifactError

    raise ArtifactError(f"{spec}: no such directory")
