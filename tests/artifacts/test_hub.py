"""Hub sharing without a network: model cards, the upload plan, and loading by Hub id from a
pre-populated Hugging Face cache through the real ``snapshot_download`` code path (offline)."""

import json
import shutil

import pytest
import torch

import pvlora
from pvlora.core.errors import ArtifactError
from pvlora.artifacts.hub import build_card, plan_upload, pull, resolve_artifact
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter


@pytest.fixture(scope="module")
def vector(random_base_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("hubvec")
    p = make_adapter(random_base_dir, d / "pos", 31, r=2, lora_alpha=4, target_modules=["q_proj"])
    n = make_adapter(random_base_dir, d / "neg", 32, r=2, lora_alpha=4, target_modules=["q_proj"])
    extract_vector(p, n, d / "harmless", preference="harmless")
    m = json.loads((d / "harmless" / "pvlora.json").read_text())
    m["command"] = "pvlora extract --positive pos --negative neg --out harmless"
    from pvlora.bases.load import base_fingerprint_of

    m["base"] = {**base_fingerprint_of(str(random_base_dir)), "name_or_path": "org/base-model"}
    (d / "harmless" / "pvlora.json").write_text(json.dumps(m))
    (d / "harmless" / "eval.json").write_text(json.dumps({"scores": {"refusal_harmful": 0.91}}))
    return d / "harmless"


def populate_cache(cache, repo_id, revision_dirs: dict[str, tuple[str, object]]):
    """Write the HF cache layout: models--org--name/{refs/<ref>, snapshots/<commit>/...}."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    for ref, (commit, src) in revision_dirs.items():
        snap = root / "snapshots" / commit
        if not snap.exists():
            shutil.copytree(src, snap)
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit)


def test_model_card_fields_and_rendering(vector):
    card = build_card(vector, "alice/harmless-vec")
    data = card.data.to_dict()
    assert data["library_name"] == "peft" and data["base_model"] == "org/base-model"
    assert set(["pvlora", "preference-vector", "dpo", "lora"]) <= set(data["tags"])
    text = str(card)
    assert text.startswith("---\n") and "| preference | harmless |" in text
    assert "recommended η" in text and "| refusal_harmful | 0.91 |" in text
    assert "pvlora extract --positive pos --negative neg --out harmless" in text
    assert 'pvlora.load_composed("org/base-model", {"alice/harmless-vec": 1.0})' in text


def test_upload_plan_without_network(vector, monkeypatch):
    plan = plan_upload(vector, "alice/harmless-vec", private=True, revision="v1")
    assert plan.files == ["adapter_config.json", "adapter_model.safetensors", "pvlora.json", "eval.json", "README.md"]
    assert plan.private and plan.revision == "v1" and "preference-vector" in plan.card
    # what push hands to huggingface_hub, captured instead of sent
    calls = {}
    from huggingface_hub import HfApi

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kw: calls.setdefault("create", (repo_id, kw)))
    monkeypatch.setattr(HfApi, "create_branch", lambda self, repo_id, **kw: calls.setdefault("branch", kw))

    def fake_upload(self, folder_path, repo_id, revision=None, **kw):
        import os

        calls["upload"] = (sorted(os.listdir(folder_path)), repo_id, revision)
        return "https://example.invalid/commit"

    monkeypatch.setattr(HfApi, "upload_folder", fake_upload)
    from pvlora.artifacts.hub import push

    push(vector, "alice/harmless-vec", private=True, revision="v1", token="t")
    assert calls["create"] == ("alice/harmless-vec", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["branch"]["branch"] == "v1"
    assert calls["upload"] == (sorted(plan.files), "alice/harmless-vec", "v1")
    assert not (vector / "README.md").exists()  # the user's directory is untouched


def test_load_by_hub_id_offline_and_revision_pinning(vector, tmp_path, offline_cache, random_base_dir):
    other = tmp_path / "other"
    shutil.copytree(vector, other)
    m = json.loads((other / "pvlora.json").read_text())
    from safetensors.torch import load_file, save_file

    from pvlora.artifacts.manifest import weight_hashes

    t = load_file(other / "adapter_model.safetensors")
    save_file({k: v * 2 for k, v in t.items()}, other / "adapter_model.safetensors")
    m["weights_sha256"] = weight_hashes(other)
    (other / "pvlora.json").write_text(json.dumps(m))
    populate_cache(offline_cache, "alice/harmless-vec", {"main": ("a" * 40, vector), "v2": ("b" * 40, other)})

    assert resolve_artifact("alice/harmless-vec").name == "a" * 40
    assert resolve_artifact("alice/harmless-vec@v2").name == "b" * 40
    assert resolve_artifact("alice/harmless-vec@" + "b" * 40).name == "b" * 40
    with pytest.raises(ArtifactError, match="cannot get alice/harmless-vec@v9"):
        resolve_artifact("alice/harmless-vec@v9")

    # load_composed mixes Hub ids and local paths
    model, _ = pvlora.load_composed(str(random_base_dir), {"alice/harmless-vec@v2": 0.5, str(vector): 1.0})
    assert sorted(pvlora.get_weights(model).values()) == [0.5, 1.0]
    out = pull("alice/harmless-vec@v2", tmp_path / "pulled")
    assert torch.equal(load_file(out / "adapter_model.safetensors")[next(iter(t))], 2 * t[next(iter(t))])


def test_tampered_weight_file_is_refused(vector, tmp_path, offline_cache):
    bad = tmp_path / "bad"
    shutil.copytree(vector, bad)
    from safetensors.torch import load_file, save_file

    t = load_file(bad / "adapter_model.safetensors")
    k = next(iter(t))
    t[k] = t[k] + 1e-3
    save_file(t, bad / "adapter_model.safetensors")
    populate_cache(offline_cache, "mallory/vec", {"main": ("c" * 40, bad)})
    with pytest.raises(ArtifactError, match="adapter_model.safetensors: sha256 does not match pvlora.json"):
        pull("mallory/vec")
    with pytest.raises(ArtifactError, match="sha256 does not match"):
        plan_upload(bad, "mallory/vec")


def test_hub_vector_on_a_different_base_is_refused(vector, tmp_path, offline_cache):
    from pvlora.vectors.compose import compose

    populate_cache(offline_cache, "alice/harmless-vec", {"main": ("a" * 40, vector)})
    other_base = tmp_path / "other-base"
    from transformers import LlamaConfig, LlamaForCausalLM

    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=24, num_hidden_layers=1,
                                 num_attention_heads=2, num_key_value_heads=1)).save_pretrained(other_base)
    m = json.loads((vector / "pvlora.json").read_text())
    assert m["base"]["config_sha256"]
    with pytest.raises(ArtifactError, match="made on org/base-model.*not on the base given"):
        compose(str(other_base), {"alice/harmless-vec": 1.0}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_composition_states_its_recipe_in_inspect_and_its_card(random_base_dir, two_vectors, tmp_path):
    from pvlora.vectors.compose import compose
    from pvlora.vectors.inspect import inspect_dirs, render

    out = tmp_path / "mix"
    compose(str(random_base_dir), {two_vectors["helpful"]: 1.0, two_vectors["harmless"]: -0.5}, out)
    on_disk = json.loads((out / "pvlora.json").read_text())["vectors"]
    assert [(v["preference"], v["weight"]) for v in on_disk] == [("helpful", 1.0), ("harmless", -0.5)]
    assert "  recipe: helpful=1, harmless=-0.5" in render(inspect_dirs([out])).splitlines()
    assert "| recipe | helpful=1, harmless=-0.5 |" in str(build_card(out, "alice/mix")).splitlines()
