"""The built-in tiny base: deterministic from its seed, cached, and showing both behaviours."""

import pytest
import torch
from safetensors.torch import load_file

from pvlora.config import ModelConfig
from pvlora.steering.generate import generate
from pvlora.bases.load import fingerprint, load_base
from pvlora.worlds.toy import corpus as toy
from pvlora.worlds.toy.base import TinyRecipe, build_tiny_base, ensure_tiny_base

pytestmark = pytest.mark.slow


def test_same_seed_rebuilds_identically(tmp_path):
    quick = TinyRecipe(epochs=0.15)  # the same recipe code, fewer steps, to keep the test short
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d, seed in ((a, 3), (b, 3), (c, 4)):
        d.mkdir()
        build_tiny_base(d, seed, quick)
    wa, wb, wc = (load_file(d / "model.safetensors") for d in (a, b, c))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert (a / "tokenizer.json").read_text() == (b / "tokenizer.json").read_text()


def test_cached_base_is_reused(tiny_base_dir):
    stamp = (tiny_base_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_base(seed=0) == tiny_base_dir
    assert (tiny_base_dir / "model.safetensors").stat().st_mtime_ns == stamp


def test_tiny_base_shows_both_behaviours(tiny_base_dir):
    model, tok, fp = load_base(ModelConfig(name_or_path="tiny"))
    assert fp["name_or_path"] == "pvlora/tiny-toy-assistant" and len(fp["config_sha256"]) == 64
    n = sum(p.numel() for p in model.parameters())
    assert 0.5e6 < n < 1.5e6
    reqs = toy.requests("eval")
    responses = generate(model, tok, [[{"role": "user", "content": r.prompt}] for r in reqs], max_new_tokens=64)
    rates = {}
    for kind in ("harmful", "benign"):
        said = [s for s, r in zip(responses, reqs) if r.kind == kind]
        got = [toy.classify(s) for s in said]
        rates[kind] = sum(g["refusal"] for g in got) / len(got)
        # the base answers in the corpus' format: every response refuses or is shaped as an answer
        # (about which topic is the judge's business: see the demo's table)
        assert all(g["refusal"] or "Here is how to " in s or " To " in s for g, s in zip(got, said))
    print(f"\ntiny base refusal rate on held-out prompts: harmful {rates['harmful']:.3f}, benign {rates['benign']:.3f}")
    assert 0 < rates["harmful"] < 1 and 0 < rates["benign"] < 1


def test_hub_or_path_loads_through_the_same_function(tiny_base_dir):
    model, tok, fp = load_base(ModelConfig(name_or_path=str(tiny_base_dir)))
    tiny_fp = fingerprint(ModelConfig(name_or_path="tiny"), model.config)
    assert fp["config_sha256"] == tiny_fp["config_sha256"] and fp["name_or_path"] == str(tiny_base_dir)
