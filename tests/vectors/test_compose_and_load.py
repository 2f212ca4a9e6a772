"""Runtime composition (all vectors active, re-weighted in place) against written adapters and merged
weights, and every refusal case of extract/compose."""

import json
import shutil

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

import pvlora
from pvlora.vectors.compose import compose
from pvlora.core.errors import ArtifactError, EtaError, RequestError
from pvlora.artifacts.manifest import MANIFEST
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter

IDS = torch.tensor([[1, 5, 9, 13, 2, 7, 30, 41]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits.double()


@pytest.fixture(scope="module")
def vecs(random_base_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("vecs")
    for name, seeds in {"helpful": (11, 12), "harmless": (21, 22)}.items():
        p = make_adapter(random_base_dir, d / f"{name}-pos", seeds[0], r=4, lora_alpha=8,
                         target_modules=["q_proj", "v_proj", "down_proj"])
        n = make_adapter(random_base_dir, d / f"{name}-neg", seeds[1], r=2, lora_alpha=4,
                         target_modules=["q_proj", "v_proj", "o_proj"])
        extract_vector(p, n, d / name, preference=name)
    return d


def test_written_composition_reloads_with_plain_peft_and_matches_runtime(random_base_dir, vecs, tmp_path):
    weights = {str(vecs / "helpful"): 0.8, str(vecs / "harmless"): -0.4}
    compose(str(random_base_dir), weights, tmp_path / "comp")
    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(random_base_dir), str(tmp_path / "comp"))
    runtime, _ = pvlora.load_composed(str(random_base_dir), weights)
    torch.testing.assert_close(logits(plain), logits(runtime), rtol=1e-5, atol=1e-5)
    base = logits(AutoModelForCausalLM.from_pretrained(random_base_dir))
    assert (logits(plain) - base).abs().max() > 1e-3  # the composition does something


def test_set_weights_equals_merged_composition(random_base_dir, vecs, tmp_path):
    model, _ = pvlora.load_composed(str(random_base_dir), {str(vecs / "helpful"): 1.0, str(vecs / "harmless"): 1.0})
    assert pvlora.get_weights(model) == pytest.approx({"helpful": 1.0, "harmless": 1.0})
    ptrs = {n: p.data_ptr() for n, p in model.named_parameters()}
    for eta in [(0.5, 1.5), (-1.0, 0.0), (2.0, -0.5)]:
        pvlora.set_weights(model, {"helpful": eta[0], "harmless": eta[1]})
        assert pvlora.get_weights(model) == pytest.approx({"helpful": eta[0], "harmless": eta[1]})
        out = tmp_path / f"merged-{eta[0]}-{eta[1]}"
        compose(str(random_base_dir), {str(vecs / "helpful"): eta[0], str(vecs / "harmless"): eta[1]}, out, merge=True)
        merged = AutoModelForCausalLM.from_pretrained(out)
        torch.testing.assert_close(logits(model), logits(merged), rtol=1e-4, atol=1e-5)
    assert {n: p.data_ptr() for n, p in model.named_parameters()} == ptrs  # no weight copies


def test_set_weights_rejects_unknown_name_and_nan(random_base_dir, vecs):
    model, _ = pvlora.load_composed(str(random_base_dir), {str(vecs / "helpful"): 1.0})
    with pytest.raises(RequestError, match="no adapter named 'nope'"):
        pvlora.set_weights(model, {"nope": 1.0})
    with pytest.raises(EtaError, match="finite"):
        pvlora.set_weights(model, {"helpful": float("nan")})


# ---------------------------------------------------------------- refusals, nothing written


def edited_copy(src, dst, edit):
    """Copy an adapter without its manifest (so no hash check stops us first) and edit its tensors."""
    shutil.copytree(src, dst)
    (dst / MANIFEST).unlink()
    t = load_file(dst / "adapter_model.safetensors")
    key = edit(t)
    save_file(t, dst / "adapter_model.safetensors")
    return key


def _assert_no_output(path):
    assert not path.exists()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(f".{path.name}")]


def test_different_bases_refused_naming_both(random_base_dir, vecs, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(vecs / "harmless", other)
    m = json.loads((other / MANIFEST).read_text())
    m["base"] = {"name_or_path": "org/another-base", "config_sha256": "f" * 64}
    (other / MANIFEST).write_text(json.dumps(m))
    m2 = json.loads((vecs / "helpful" / MANIFEST).read_text())
    m2["base"] = {"name_or_path": "org/first-base", "config_sha256": "0" * 64}
    first = tmp_path / "first"
    shutil.copytree(vecs / "helpful", first)
    (first / MANIFEST).write_text(json.dumps(m2))
    with pytest.raises(ArtifactError, match="org/first-base.*org/another-base"):
        compose(str(random_base_dir), {str(first): 1, str(other): 1}, tmp_path / "out")
    _assert_no_output(tmp_path / "out")


def test_shape_mismatch_refused(random_base_dir, vecs, tmp_path):
    def widen(t):
        k = next(k for k in t if "q_proj.lora_A" in k)
        t[k] = torch.randn(t[k].shape[0], t[k].shape[1] + 3)

    bad = tmp_path / "bad"
    edited_copy(vecs / "harmless", bad, widen)
    with pytest.raises(ArtifactError, match="different base"):
        compose(str(random_base_dir), {str(vecs / "helpful"): 1, str(bad): 1}, tmp_path / "out")
    _assert_no_output(tmp_path / "out")


def test_non_finite_weight_refused_naming_file_and_tensor(random_base_dir, vecs, tmp_path):
    def poison(t):
        k = sorted(t)[0]
        t[k][0, 0] = float("inf")
        return k

    bad = tmp_path / "nan"
    k = edited_copy(vecs / "harmless", bad, poison)
    with pytest.raises(ArtifactError, match=rf"adapter_model.safetensors: tensor '{k}'"):
        extract_vector(bad, vecs / "helpful", tmp_path / "out")
    _assert_no_output(tmp_path / "out")


@pytest.mark.parametrize("eta", [float("nan"), float("inf"), "abc"])
def test_bad_eta_refused(random_base_dir, vecs, tmp_path, eta):
    with pytest.raises(EtaError, match="weight for"):
        compose(str(random_base_dir), {str(vecs / "helpful"): eta}, tmp_path / "out")
    _assert_no_output(tmp_path / "out")


def test_pickle_refused_unless_allowed(random_base_dir, vecs, tmp_path):
    pk = tmp_path / "pk"
    shutil.copytree(vecs / "helpful", pk)
    (pk / MANIFEST).unlink()
    torch.save(load_file(pk / "adapter_model.safetensors"), pk / "adapter_model.bin")
    (pk / "adapter_model.safetensors").unlink()
    with pytest.raises(ArtifactError, match="pickle.*allow_pickle=True"):
        compose(str(random_base_dir), {str(pk): 1.0}, tmp_path / "out")
    _assert_no_output(tmp_path / "out")
    compose(str(random_base_dir), {str(pk): 1.0}, tmp_path / "out", allow_pickle=True)
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()


def test_missing_adapter_config_refused(vecs, tmp_path):
    d = tmp_path / "noconf"
    shutil.copytree(vecs / "helpful", d)
    (d / "adapter_config.json").unlink()
    with pytest.raises(ArtifactError, match="missing adapter_config.json"):
        extract_vector(d, vecs / "harmless", tmp_path / "out")
    _assert_no_output(tmp_path / "out")


def test_existing_output_refused_and_kept_unless_overwrite(random_base_dir, vecs, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="overwrite=True"):
        compose(str(random_base_dir), {str(vecs / "helpful"): 1.0}, out)
    assert (out / "precious.txt").read_text() == "keep me"
    compose(str(random_base_dir), {str(vecs / "helpful"): 1.0}, out, overwrite=True)
    assert not (out / "precious.txt").exists() and (out / "adapter_config.json").exists()


def test_inspect_reports_rank_norm_and_cosine(vecs):
    from pvlora.vectors.inspect import inspect_dirs, render

    rep = inspect_dirs([vecs / "helpful", vecs / "harmless"])
    assert [it["rank"] for it in rep["items"]] == [6, 6]
    assert rep["cosine"][0][0] == pytest.approx(1.0) and rep["cosine"][0][1] == pytest.approx(rep["cosine"][1][0])
    text = render(rep)
    assert "cosine similarity" in text and "per-layer norm" in text
    norms = rep["items"][0]["per_layer_norm"]
    assert set(norms) == {"0", "1"}
    assert (norms["0"] ** 2 + norms["1"] ** 2) ** 0.5 == pytest.approx(rep["items"][0]["norm"])
