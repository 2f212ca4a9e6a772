"""Integrity on load: every file a manifest hashes must match, and a manifest that hashes anything
must cover every file that decides the math."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pvlora.core.errors import ArtifactError
from pvlora.artifacts.safe_read import plain_name, sha256_file
from pvlora.artifacts.manifest import (
    ADAPTER_CONFIG,
    MANIFEST,
    PICKLE_WEIGHTS,
    SAFE_WEIGHTS,
    Manifest,
)

CONFIG_HASHED_SINCE = (0, 2)  # manifests hash adapter_config.json from pvlora 0.2 on


def _older_than(version: Any, since: tuple[int, int]) -> bool:
    try:
        return tuple(int(x) for x in str(version).split(".")[:2]) < since
    except ValueError:
        return False


def verify_hashes(directory: Path, manifest: Manifest | None) -> None:
    """Each file listed in the manifest must hash to what the manifest says, and a manifest that
    hashes anything must cover every file that decides the math (so dropping an entry from
    ``weights_sha256`` does not switch the check off for that file)."""
    if manifest is None or manifest.weights_sha256 is None:
        return
    directory = Path(directory)
    listed = manifest.weights_sha256
    for name in (ADAPTER_CONFIG, SAFE_WEIGHTS, PICKLE_WEIGHTS):
        if name not in listed and ((directory / name).exists() or (directory / name).is_symlink()):
            if name == ADAPTER_CONFIG and _older_than(manifest.pvlora_version, CONFIG_HASHED_SINCE):
                import warnings

                warnings.warn(f"{directory}: made by pvlora {manifest.pvlora_version}, whose manifests do not "
                              f"hash {ADAPTER_CONFIG}; its config is unchecked (re-extract to cover it)", stacklevel=3)
                continue
            raise ArtifactError(f"{directory / name}: not covered by the sha256 list in {MANIFEST}; the artifact "
                                "was altered (or made by an older pvlora): re-create or re-download it")
    for name, expected in listed.items():
        path = plain_name(directory, name, f"{directory / MANIFEST} (weights_sha256)")
        if not path.exists() and not path.is_symlink():
            raise ArtifactError(f"{path}: listed in {MANIFEST} but missing")
        if sha256_file(path) != expected:
            raise ArtifactError(
                f"{path}: sha256 does not match {MANIFEST}; the file was modified or corrupted. "
                "Re-download or re-create it."
            )
