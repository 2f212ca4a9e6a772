"""``pvlora.json``: what an artifact is and the sha256 of every file that changes its math."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pvlora import __version__
from pvlora.atomic import atomic_file
from pvlora.errors import ArtifactError
from pvlora.fs import plain_name, read_json, sha256_file

MANIFEST = "pvlora.json"
ADAPTER_CONFIG = "adapter_config.json"
SAFE_WEIGHTS = "adapter_model.safetensors"
PICKLE_WEIGHTS = "adapter_model.bin"
# The layout of pvlora.json. A manifest without "schema" predates it (schema 1); a larger one was
# written by a newer pvlora and may mean things this one would misread: refused, never guessed at.
SCHEMA = 1
KINDS = ("adapter", "vector", "composition")


def weight_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file that decides the math: the weights and ``adapter_config.json`` (its
    ``lora_alpha``, ``r`` and ``target_modules`` scale and place ΔW as much as the weights do)."""
    return {p.name: sha256_file(p) for p in sorted(Path(directory).iterdir())
            if (p.suffix in (".safetensors", ".bin") or p.name == ADAPTER_CONFIG) and p.is_file() and not p.is_symlink()}


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """``pvlora.json`` checked for shape: an object whose ``weights_sha256`` maps plain file names to
    hex digests and whose ``base`` (if any) is an object."""
    path = Path(directory) / MANIFEST
    if not path.exists() and not path.is_symlink():
        return None
    manifest = read_json(path)
    schema = manifest.get("schema", 1)
    if not isinstance(schema, int) or isinstance(schema, bool) or schema < 1:
        raise ArtifactError(f"{path}: schema must be a positive integer, got {schema!r:.40}")
    if schema > SCHEMA:
        raise ArtifactError(f"{path}: written by a newer pvlora ({manifest.get('pvlora_version', '?')!s:.20}, manifest "
                            f"schema {schema}); this pvlora reads schema {SCHEMA}: upgrade pvlora to use it")
    if manifest.get("kind") is not None and manifest["kind"] not in KINDS:
        raise ArtifactError(f"{path}: kind {manifest['kind']!r:.40} is not one of {', '.join(KINDS)}")
    hashes = manifest.get("weights_sha256")
    if hashes is not None and not (isinstance(hashes, dict) and all(
            isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) for v in hashes.values())):
        raise ArtifactError(f"{path}: weights_sha256 must map file names to sha256 hex digests, got {hashes!r:.80}")
    for name in hashes or {}:
        plain_name(Path(directory), name, f"{path} (weights_sha256)")
    if manifest.get("preference") is not None:
        from pvlora.config import NAME_RE

        if not isinstance(manifest["preference"], str) or not NAME_RE.fullmatch(manifest["preference"]):
            raise ArtifactError(f"{path}: preference {manifest['preference']!r:.80} is not a valid preference name "
                                "(letters, digits, '_' or '-')")
    for key in ("base", "metrics", "data"):
        if manifest.get(key) is not None and not isinstance(manifest[key], dict):
            raise ArtifactError(f"{path}: {key} must be an object, got {type(manifest[key]).__name__}")
    from pvlora.compat import BaseFingerprint

    BaseFingerprint.from_dict(manifest.get("base"), str(path))  # its fields' types, checked on read
    return manifest


def write_manifest(directory: Path, manifest: dict[str, Any], command: str | None = None) -> None:
    """Write ``pvlora.json`` with the version, ``command`` (the ``pvlora ...`` line that made it, when
    the caller has one) and the sha256 of every file that changes the math."""
    extra = {"command": command} if command and "command" not in manifest else {}
    manifest = {"pvlora_version": __version__, "schema": SCHEMA, **manifest, **extra,
                "weights_sha256": weight_hashes(directory)}
    with atomic_file(Path(directory) / MANIFEST) as fh:  # a rewrite never leaves half a manifest
        fh.write(json.dumps(manifest, indent=2, default=str) + "\n")


CONFIG_HASHED_SINCE = (0, 2)  # manifests hash adapter_config.json from pvlora 0.2 on


def _older_than(version: Any, since: tuple[int, int]) -> bool:
    try:
        return tuple(int(x) for x in str(version).split(".")[:2]) < since
    except ValueError:
        return False


def verify_hashes(directory: Path, manifest: dict[str, Any] | None) -> None:
    """Each file listed in the manifest must hash to what the manifest says, and a manifest that
    hashes anything must cover every file that decides the math (so dropping an entry from
    ``weights_sha256`` does not switch the check off for that file)."""
    if not manifest or "weights_sha256" not in manifest:
        return
    directory = Path(directory)
    listed = manifest["weights_sha256"]
    for name in (ADAPTER_CONFIG, SAFE_WEIGHTS, PICKLE_WEIGHTS):
        if name not in listed and ((directory / name).exists() or (directory / name).is_symlink()):
            if name == ADAPTER_CONFIG and _older_than(manifest.get("pvlora_version"), CONFIG_HASHED_SINCE):
                import warnings

                warnings.warn(f"{directory}: made by pvlora {manifest.get('pvlora_version')}, whose manifests do not "
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
