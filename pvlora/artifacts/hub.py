"""Sharing on the Hugging Face Hub: model cards, push, pull, and Hub ids as vector names.

Downloads go through ``huggingface_hub.snapshot_download`` with the revision pinned, so
``HF_HUB_OFFLINE=1`` works from the local cache; every load checks weight hashes against
``pvlora.json`` (in :func:`pvlora.artifacts.peft_read.read_adapter`). Remote code is never involved: a vector
is safetensors + JSON.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvlora.artifacts.peft_read import read_adapter
from pvlora.artifacts.atomic import atomic_dir
from pvlora.core.errors import ArtifactError
from pvlora.artifacts.safe_read import MAX_WEIGHT_BYTES, portable, portable_command, read_json, read_text, regular_file
from pvlora.artifacts.locate import REPO_RE, parse_repo_spec, resolve_artifact
from pvlora.artifacts.manifest import (
    ADAPTER_CONFIG,
    MANIFEST,
    SAFE_WEIGHTS,
    AdapterManifest,
    CompositionManifest,
    Manifest,
    VectorManifest,
)
from pvlora.artifacts.records import is_number
from pvlora.core import registry as builtins

UPLOAD_FILES = (ADAPTER_CONFIG, SAFE_WEIGHTS, MANIFEST, "README.md", "pvlora-config.yaml", "eval.json",
                "chat_template.jinja")
TAGS = ["pvlora", "preference-vector", "dpo", "lora"]


# ---------------------------------------------------------------- model cards


def _recommended_eta(manifest: Manifest) -> str:
    if manifest.kind == "composition":
        return "the weights are baked in (see the recipe above); load it at scale 1"
    return ("0.5 to 1.5 (1 = the trained strength; negative η reverses the preference; "
            "beyond about 2 the model degrades)")


def _datasets(manifest: Manifest) -> list[str]:
    sources = []
    own = [manifest.data] if isinstance(manifest, AdapterManifest) else []
    made_from = manifest.sources.values() if isinstance(manifest, VectorManifest) else []
    for data in [*own, *(s.get("data") for s in made_from)]:
        src = data.get("source") if isinstance(data, dict) else None
        if src and REPO_RE.match(src) and not Path(src).exists():
            sources.append(src)
    return sorted(set(sources))


def _command(recorded: Any) -> str:
    """The recorded command line without local directory layout (see fs.portable)."""
    import shlex

    if not isinstance(recorded, str) or not recorded.strip():
        return "(not recorded)"
    try:
        return shlex.join(portable_command(shlex.split(recorded)))
    except ValueError:
        return "(not recorded)"


def build_card(directory: Path, repo_id: str):
    """A ``huggingface_hub.ModelCard`` for an adapter, vector or composition directory."""

    from huggingface_hub import ModelCard, ModelCardData

    manifest = Manifest.read(directory) or AdapterManifest()  # a plain PEFT adapter
    kind, pref = manifest.kind, manifest.preference
    direction = manifest.direction if isinstance(manifest, AdapterManifest) else None
    low_rank = manifest if isinstance(manifest, (VectorManifest, CompositionManifest)) else None
    base = manifest.base.name_or_path if manifest.base else None

    made_here = any(base == builtins.get("base", n).recorded_as for n in builtins.names("base"))
    on_hub = bool(base) and not made_here and bool(REPO_RE.match(base)) and not Path(base).exists()
    data = ModelCardData(
        base_model=base if on_hub else None, library_name="peft",
        tags=TAGS + ([f"preference-{pref}"] if pref else []), datasets=_datasets(manifest) or None,
        license=None,
    )
    name = pref or directory.name
    lines = [
        f"# {repo_id.split('/')[-1]}", "",
        f"A pvlora **{kind}**" + (f" for the preference **{pref}**" if pref else "")
        + (f" ({direction} direction)" if direction else "")
        + f", stored as a plain PEFT LoRA adapter{' for ' + base if base else ''}.", "",
        "pvlora trains each preference as two DPO LoRA adapters (on the preference data and on its reversal); "
        "the preference vector is their difference φ = ΔW+ − ΔW−, and a model is steered by "
        "θ = θ_base + Σ η_p·φ_p with weights η chosen at test time.", "",
        "| field | value |", "|---|---|",
        f"| kind | {kind} |", f"| preference | {pref or '-'} |", f"| direction | {direction or '-'} |",
        f"| base model | {base or '-'} |", f"| rank | {(low_rank and low_rank.rank) or '-'} |",
        f"| recommended η | {_recommended_eta(manifest)} |",
    ]
    if isinstance(manifest, CompositionManifest) and manifest.vectors:
        lines.append("| recipe | " + manifest.recipe() + " |")
    if low_rank and low_rank.compression:
        lines.append(f"| compression error | {low_rank.compression.relative_error:.3g} (relative Frobenius) |")
    evaluation = directory / "eval.json"
    if evaluation.exists() or evaluation.is_symlink():
        ev = read_json(evaluation)
        lines += ["", "## Evaluation", "", "| metric | value |", "|---|---|"]
        scores = ev.get("scores") if isinstance(ev.get("scores"), dict) else ev
        lines += [f"| {k} | {v:.4g} |" for k, v in scores.items() if is_number(v)]
    metrics = manifest.metrics
    if metrics:
        lines += ["", "## Training metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in metrics.items() if is_number(v)]
    lines += ["", "## How it was made", "", "```bash", _command(manifest.command), "```", "",
              "## Usage", "", "```python", "import pvlora", "",
              f'model, tokenizer = pvlora.load_composed("{base or "BASE_MODEL"}", {{"{repo_id}": 1.0}})',
              f'pvlora.set_weights(model, {{"{name}": 0.5}})  # re-weight in place', "```", "",
              "or with PEFT alone:", "", "```python", "from peft import PeftModel",
              "from transformers import AutoModelForCausalLM", "",
              f'model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained("{base or "BASE_MODEL"}"), "{repo_id}")',
              "```"]
    return ModelCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n" + "\n".join(lines) + "\n")


# ---------------------------------------------------------------- push / pull


@dataclass
class UploadPlan:
    repo_id: str
    files: list[str]
    card: str
    private: bool
    revision: str | None


def upload_target(spec: str, revision: str | None) -> tuple[str, str | None]:
    """``ORG/NAME[@REV]`` plus a separate revision -> (repo id, revision); two different revisions are refused."""
    repo, rev = parse_repo_spec(spec)
    if rev and revision and rev != revision:
        raise ArtifactError(f"{spec} names revision {rev!r} but revision {revision!r} was also given; name it once")
    return repo, rev or revision


def plan_upload(directory: str | Path, repo_id: str, private: bool = False, revision: str | None = None) -> UploadPlan:
    """Everything `push` would upload, checked locally first (readable LoRA, hashes, safetensors)."""
    directory = Path(directory)
    repo_id, revision = upload_target(repo_id, revision)
    read_adapter(directory)  # refuses broken, tampered or pickle-only directories before any upload
    card = build_card(directory, repo_id)
    files = []
    for f in UPLOAD_FILES:
        path = directory / f
        if f == "README.md" or not (path.exists() or path.is_symlink()):
            continue
        if path.is_symlink():  # it could point at anything on this machine (a key file, a home directory)
            raise ArtifactError(f"{path}: a symlink; push uploads only regular files inside {directory}. "
                                "Replace the link with a copy of the file (or remove it)")
        regular_file(path, MAX_WEIGHT_BYTES)
        files.append(f)
    files.append("README.md")
    return UploadPlan(repo_id, files, str(card), private, revision)


def shareable_config(path: Path) -> str:
    """The run's config as uploaded: every absolute or home-relative path in it (data sources, output
    directory, a local base) reduced to its last component, so no local layout leaves the machine."""
    import yaml

    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return portable(v) if isinstance(v, str) and v.startswith(("/", "~", "..")) else v

    try:
        data = yaml.safe_load(read_text(path))
    except yaml.YAMLError as exc:
        raise ArtifactError(f"{path}: not valid YAML ({exc})") from None
    return yaml.safe_dump(walk(data), sort_keys=False, allow_unicode=True)


def push(directory: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
         token: str | None = None) -> str:
    from huggingface_hub import HfApi

    plan = plan_upload(directory, repo_id, private, revision)
    repo_id, revision = plan.repo_id, plan.revision
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    import tempfile

    src = Path(directory)
    # Upload from a staging copy so the generated README.md never overwrites a file of the user's.
    with tempfile.TemporaryDirectory(prefix="pvlora-upload-") as tmp:
        for f in plan.files:
            if f == "pvlora-config.yaml":
                (Path(tmp) / f).write_text(shareable_config(src / f))
            elif f != "README.md":
                shutil.copyfile(src / f, Path(tmp) / f)
        (Path(tmp) / "README.md").write_text(plan.card)
        info = api.upload_folder(folder_path=tmp, repo_id=repo_id, revision=revision,
                                 commit_message=f"pvlora: upload {src.name}")
    return str(getattr(info, "commit_url", info))


def pull(spec: str, out: str | Path | None = None, token: str | None = None, overwrite: bool = False) -> Path:
    local = resolve_artifact(spec, token)
    read_adapter(local)  # integrity check on arrival
    if out is None:
        return local
    with atomic_dir(out, overwrite, inputs=(local,)) as tmp:  # pulling a local directory onto itself: refused
        for f in sorted(local.iterdir()):
            if f.name in UPLOAD_FILES:  # the artifact's own files only, each a bounded regular file
                regular_file(f, MAX_WEIGHT_BYTES, local)
                shutil.copyfile(f, tmp / f.name)
    return Path(out)
