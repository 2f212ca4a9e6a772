"""Where a vector named on the command line or in code lives: a local directory as is, a Hub id
(``org/name[@revision]``) as its pinned snapshot in the Hugging Face cache. Only locating: checking
the files is :func:`pvlora.artifacts.peft_read.read_adapter`, sharing them is :mod:`pvlora.artifacts.hub`."""

from __future__ import annotations

import re
from pathlib import Path

from pvlora.core.errors import ArtifactError
from pvlora.artifacts.manifest import ADAPTER_CONFIG, MANIFEST

REPO_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)(?:@(?P<rev>[\w./-]+))?$")
_COMMIT = re.compile(r"[0-9a-f]{40}|(?!\.\.?$)[\w.-]{1,255}")  # a snapshot folder: a commit hash (or a plain name)


def parse_repo_spec(spec: str) -> tuple[str, str | None]:
    m = REPO_RE.match(spec)
    if not m:
        raise ArtifactError(f"{spec}: neither a local directory nor a Hub id (ORG/NAME or ORG/NAME@REVISION)")
    rev = m["rev"]
    if rev is not None and (rev.startswith("/") or any(p in ("", ".", "..") for p in rev.split("/"))):
        # huggingface_hub joins a revision onto cache paths (refs/REV, snapshots/REV): "..", "/x" or "a//b"
        # there would name folders outside the repo's cache
        raise ArtifactError(f"{spec}: revision {rev!r} is not a branch, tag or commit name (no '..', '.', "
                            "empty or leading '/' parts)")
    return m["repo"], rev


def _check_snapshot(spec: str, local: Path) -> Path:
    """A snapshot folder huggingface_hub returned must be ``.../models--ORG--NAME/snapshots/COMMIT``: the
    commit is read from the cache's ``refs/REV`` file, which anyone who can write the cache (a shared
    drive, a synced home) controls. ``refs/main`` holding ``../../..`` would make a Hub id name any
    local directory."""
    repo = local.parent.parent
    if not (".." not in local.parts and _COMMIT.fullmatch(local.name) and local.parent.name == "snapshots"
            and repo.name.startswith("models--") and local.resolve().is_relative_to(repo.resolve())):
        raise ArtifactError(f"{spec}: the Hugging Face cache resolves it to {local}, not a plain commit folder of "
                            "the repo's snapshots; the cache's refs file was altered: delete that repo from the "
                            "cache and download it again")
    return local


def resolve_artifact(spec: str, token: str | None = None) -> Path:
    """A local directory as is; ``org/name[@revision]`` is downloaded (or found in the HF cache)."""
    path = Path(spec).expanduser()
    if path.exists():
        return path
    # A Hub id is exactly ORG/NAME; anything that reads as a local path (absolute, relative with
    # dots, deeper than one slash, or whose first part is a local directory) is a missing directory,
    # not a download to attempt.
    first = spec.split("@", 1)[0].split("/")[0]
    if spec.startswith((".", "/", "~")) or spec.split("@", 1)[0].count("/") != 1 or Path(first).is_dir():
        raise ArtifactError(f"{spec}: no such directory")
    repo_id, revision = parse_repo_spec(spec)
    from huggingface_hub import snapshot_download

    try:
        local = snapshot_download(repo_id, revision=revision, token=token,
                                  allow_patterns=[ADAPTER_CONFIG, "*.safetensors", MANIFEST, "*.json", "*.md"])
    except Exception as exc:  # offline without a cached copy, unknown repo or revision, no access
        raise ArtifactError(
            f"cannot get {spec} from the Hugging Face Hub: {exc}. Check the id and revision, your token "
            "(huggingface-cli login), or unset HF_HUB_OFFLINE"
        ) from None
    return _check_snapshot(spec, Path(local))
