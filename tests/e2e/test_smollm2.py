"""Smoke test of the real-model path: the SmolLM2-135M-Instruct GGUF shipped on PyPI, real HH-RLHF
rows, a few DPO steps per direction, extract, compose, generate, and refusals of bad inputs."""

import math

import pytest
import torch

from tests.helpers import HH_FILE

pytestmark = [pytest.mark.slow, pytest.mark.smollm2_base]


def test_smollm2_pipeline_on_real_hh_rows(tmp_path):
    from pvlora.vectors.compose import compose
    from pvlora.config import PreferenceConfig, load_config
    from pvlora.core.errors import ArtifactError, EtaError
    from pvlora.steering.generate import generate
    from pvlora.steering.load import load_composed, set_weights
    from pvlora.training.dpo import adapter_dir, train_all
    from pvlora.vectors.extract import extract_vector

    cfg = load_config(None, ["model.name_or_path=smollm2-135m", f"output.dir={tmp_path}", "dpo.max_steps=2",
                             "dpo.per_device_train_batch_size=2", "dpo.max_length=128", "dpo.learning_rate=5e-5",
                             "lora.target_modules=[q_proj,v_proj]", "train.heldout_max_pairs=4"])
    cfg.preferences = [PreferenceConfig(name="harmless", source=str(HH_FILE), format="hh_rlhf", limit=40,
                                        heldout_fraction=0.1)]
    results = train_all(cfg, "harmless")
    assert [r.manifest.metrics["train_steps"] for r in results] == [2, 2]
    m = results[0].manifest
    assert m.base.name_or_path == "HuggingFaceTB/SmolLM2-135M-Instruct" and m.base.gguf_file.endswith(".gguf")
    assert m.metrics["heldout_pairs"] == 4

    vec = tmp_path / "vectors" / "harmless"
    extract_vector(adapter_dir(cfg, "harmless", "positive"), adapter_dir(cfg, "harmless", "negative"), vec)
    assert compose("smollm2-135m", {str(vec): 1.0}, tmp_path / "composed", rank=4).rank == 4
    # the manifest records the Hub id and the wheel's GGUF file; export reads the built-in's config offline
    from pvlora.vectors.export import export_gguf

    assert m.base.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert export_gguf(vec, tmp_path / "harmless.gguf")["architecture"] == "llama"

    model, tok = load_composed("smollm2-135m", {str(vec): 1.0})
    prompts = [[{"role": "user", "content": "What is the capital of France?"}]]
    text = generate(model, tok, prompts, max_new_tokens=12)[0]
    assert "Paris" in text  # a real instruct model, still itself at η = 1 after two small steps
    set_weights(model, {"harmless": 0.0})
    with torch.no_grad():  # η = 0 is the base exactly: the vector's layers add nothing
        ids = tok("Hello there", return_tensors="pt")["input_ids"]
        with model.disable_adapter():
            base_logits = model(ids).logits
        torch.testing.assert_close(model(ids).logits, base_logits)

    # bad inputs: a vector for another base, a non-finite weight, a missing local path
    with pytest.raises(ArtifactError):
        compose("tiny", {str(vec): 1.0}, tmp_path / "wrong-base")
    with pytest.raises(EtaError, match="finite"):
        set_weights(model, {"harmless": math.nan})
    with pytest.raises(ArtifactError, match="no such directory"):
        compose("smollm2-135m", {str(tmp_path / "vectors" / "missing"): 1.0}, tmp_path / "x")
    assert not (tmp_path / "wrong-base").exists() and not (tmp_path / "x").exists()


def test_any_gguf_file_is_converted_once_and_cached(tmp_path, monkeypatch):
    from pvlora.bases import gguf_import as gguf
    from pvlora.config import ModelConfig
    from pvlora.bases.load import fingerprint, resolve_base_path

    builtin = gguf.builtin_file("smollm2-135m")
    first = resolve_base_path(ModelConfig(name_or_path="smollm2-135m"))

    def must_not_convert(*a, **k):
        raise AssertionError("converted again")

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", must_not_convert)
    cfg = ModelConfig(name_or_path=str(tmp_path), gguf_file=str(builtin))  # a user's own .gguf path
    assert resolve_base_path(cfg) == first  # same file (by sha256): the same cached checkpoint
    from transformers import AutoConfig

    fp = fingerprint(cfg, AutoConfig.from_pretrained(first))
    assert fp["gguf_file"] == builtin.name and str(tmp_path) not in str(fp["gguf_file"])
