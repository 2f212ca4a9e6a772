"""DPO training on the tiny base: determinism and the QLoRA path (what the demo's adapters changed and
learned, and their manifests: tests/e2e/test_demo.py, which shares the demo's run; a kill and its resume:
tests/e2e/test_train_real_path.py)."""

import pytest
import torch
from safetensors.torch import load_file

from pvlora.artifacts.peft_read import read_adapter
from pvlora.config import load_config
from pvlora.training.dpo import adapter_dir, train_all

pytestmark = pytest.mark.slow


def test_same_seed_gives_identical_weights(tmp_path, tiny_base_dir):
    weights = []
    for run in ("a", "b"):
        cfg = load_config(None, [f"output.dir={tmp_path / run}", "dpo.max_steps=4", "preferences.concise.limit=64"])
        train_all(cfg, "concise", "positive")
        weights.append(load_file(adapter_dir(cfg, "concise", "positive") / "adapter_model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_qlora_path_runs_on_cpu(tmp_path, tiny_base_dir):
    from pvlora.bases.load import load_base

    cfg = load_config(None, [f"output.dir={tmp_path}", "model.quantization=nf4", "dpo.max_steps=3",
                             "preferences.harmless.limit=48"])
    model, _, _ = load_base(cfg.model)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())  # really 4-bit NF4
    res = train_all(cfg, "harmless", "positive")[0]
    assert res.manifest.training["quantization"] == "nf4" and res.manifest.metrics["train_steps"] == 3
    assert read_adapter(res.path).factors


