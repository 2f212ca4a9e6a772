"""Vectors added to and removed from a loaded model (pvlora.add_vector / remove_vector): every check
load_composed makes, outputs equal to a fresh load, memory that returns; and PEFT's weighted merging
(pvlora.merge_weighted) against pvlora compose and the dense sum."""

import gc
import json
import shutil
import weakref

import pytest
import torch
from safetensors.torch import load_file, save_file

import pvlora
from pvlora.artifacts.manifest import MANIFEST, AdapterManifest
from pvlora.artifacts.peft_read import read_adapter
from pvlora.core.errors import ArtifactError, EtaError, RequestError
from pvlora.steering.swap import lora_bytes
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter

IDS = torch.tensor([[1, 5, 9, 13, 2, 7, 30, 41], [3, 3, 8, 1, 22, 17, 4, 6]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture(scope="module")
def extra(random_base_dir, tmp_path_factory):
    """A third vector on the same base, and a trained adapter (kind adapter) beside it."""
    d = tmp_path_factory.mktemp("extra")
    p = make_adapter(random_base_dir, d / "extra-positive", 31, r=3, lora_alpha=6, target_modules=["k_proj", "v_proj"])
    n = make_adapter(random_base_dir, d / "extra-negative", 32, r=2, lora_alpha=2, target_modules=["v_proj", "gate_proj"])
    for path, direction in ((p, "positive"), (n, "negative")):
        AdapterManifest(preference="extra", direction=direction).write(path)
    extract_vector(p, n, d / "extra", preference="extra")
    return d


def fresh(random_base_dir, vectors):
    model, _ = pvlora.load_composed(str(random_base_dir), vectors)
    return model


def test_add_then_remove_equals_fresh_loads_and_memory_returns(random_base_dir, two_vectors, extra):
    h, hl, x = two_vectors["helpful"], two_vectors["harmless"], str(extra / "extra")
    model, tok = pvlora.load_composed(str(random_base_dir), {h: 1.0, hl: 0.5})
    before, bytes_before = logits(model), lora_bytes(model)
    assert pvlora.add_vector(model, x, eta=0.7) == "extra"
    assert pvlora.get_weights(model) == pytest.approx({"helpful": 1.0, "harmless": 0.5, "extra": 0.7})
    assert torch.equal(logits(model), logits(fresh(random_base_dir, {h: 1.0, hl: 0.5, x: 0.7})))
    mix = [{"extra": 1.5, "helpful": -1.0}, {"harmless": 2.0}]
    prompts = ["a b c", "x y"]
    assert pvlora.generate(model, tok, prompts, mix, max_new_tokens=4) == pvlora.generate(
        fresh(random_base_dir, {h: 1.0, hl: 0.5, x: 0.7}), tok, prompts, mix, max_new_tokens=4)
    grown = lora_bytes(model)
    assert grown["adapters"] > bytes_before["adapters"] and grown["rowwise_cache"] > 0  # the per-row path ran
    gone = [weakref.ref(p) for n, p in model.named_parameters() if ".extra." in n]
    assert gone

    pvlora.remove_vector(model, "extra")
    gc.collect()
    assert [r for r in gone if r() is not None] == []  # the removed vector's tensors are freed
    assert lora_bytes(model) == {**bytes_before, "total": bytes_before["adapters"]}  # the stacked cache too
    assert torch.equal(logits(model), before)

    pvlora.remove_vector(model, "helpful")  # a vector loaded at start
    assert list(pvlora.get_weights(model)) == ["harmless"]
    assert torch.equal(logits(model), logits(fresh(random_base_dir, {hl: 0.5})))
    assert pvlora.generate(model, tok, prompts, [{}, {"harmless": -1.0}], max_new_tokens=4) == pvlora.generate(
        fresh(random_base_dir, {hl: 0.5}), tok, prompts, [{}, {"harmless": -1.0}], max_new_tokens=4)
    with pytest.raises(RequestError, match="only vector") as e:
        pvlora.remove_vector(model, "harmless")
    assert e.value.field == "name"
    pvlora.add_vector(model, h, eta=1.0)  # back in, after the others: same sum
    assert torch.allclose(logits(model), before, atol=1e-6)


def _edited(src, dst, manifest=None, weights=None):
    shutil.copytree(src, dst)
    if manifest:
        m = json.loads((dst / MANIFEST).read_text())
        manifest(m)
        (dst / MANIFEST).write_text(json.dumps(m))
    if weights:
        (dst / MANIFEST).unlink()
        t = load_file(dst / "adapter_model.safetensors")
        weights(t)
        save_file(t, dst / "adapter_model.safetensors")
    return str(dst)


def test_every_check_of_load_composed_and_the_model_unchanged(random_base_dir, two_vectors, extra, tmp_path):
    model, _ = pvlora.load_composed(str(random_base_dir), {two_vectors["helpful"]: 1.0})
    start, weights = logits(model), pvlora.get_weights(model)
    x = extra / "extra"
    other_base = _edited(x, tmp_path / "other", manifest=lambda m: m.update(
        base={"name_or_path": "org/another", "config_sha256": "f" * 64}))

    def widen(t):
        k = next(k for k in t if "v_proj.lora_A" in k)
        t[k] = torch.randn(t[k].shape[0], t[k].shape[1] + 3)

    def poison(t):
        t[sorted(t)[0]][0, 0] = float("nan")

    altered = tmp_path / "altered"
    shutil.copytree(x, altered)
    (altered / "adapter_model.safetensors").write_bytes((altered / "adapter_model.safetensors").read_bytes()[:-8] + b"\0" * 8)
    cases = [
        (lambda: pvlora.add_vector(model, str(x), eta=float("nan")), EtaError, "must be finite"),
        (lambda: pvlora.add_vector(model, str(x), eta=1e9), EtaError, "at most"),
        (lambda: pvlora.add_vector(model, str(extra / "extra-positive")), ArtifactError, "kind 'adapter'"),
        (lambda: pvlora.add_vector(model, other_base), ArtifactError, "org/another"),
        (lambda: pvlora.add_vector(model, _edited(x, tmp_path / "wide", weights=widen)), ArtifactError, "different base"),
        (lambda: pvlora.add_vector(model, _edited(x, tmp_path / "nan", weights=poison)), ArtifactError, "holds NaN or Inf"),
        (lambda: pvlora.add_vector(model, str(altered)), ArtifactError, "sha256|changed|hash"),
        (lambda: pvlora.add_vector(model, str(tmp_path / "missing")), ArtifactError, "no such directory"),
        (lambda: pvlora.add_vector(model, two_vectors["helpful"]), ArtifactError, "already loaded as 'helpful'"),
        (lambda: pvlora.add_vector(model, str(x), name="helpful"), RequestError, "'helpful' is already loaded"),
        (lambda: pvlora.add_vector(model, str(x), name="../up"), RequestError, "not valid"),
        (lambda: pvlora.remove_vector(model, "nope"), RequestError, "no vector named 'nope'"),
    ]
    for call, error, needle in cases:
        with pytest.raises(error, match=needle):
            call()
        assert pvlora.get_weights(model) == weights and list(model.peft_config) == ["helpful"]
    assert torch.equal(logits(model), start)
    assert pvlora.add_vector(model, str(x), name="extra_v2") == "extra_v2"  # and a good one still loads


# ---------------------------------------------------------------- merge_weighted: PEFT's cat


@pytest.fixture(scope="module")
def plain(random_base_dir, tmp_path_factory):
    """Plain PEFT adapters (no pvlora.json) of different ranks, one with an alpha_pattern."""
    d = tmp_path_factory.mktemp("plain")
    make_adapter(random_base_dir, d / "pa", 41, r=4, lora_alpha=8, alpha_pattern={"v_proj": 3},
                 target_modules=["q_proj", "v_proj", "down_proj"])
    make_adapter(random_base_dir, d / "pb", 42, r=2, lora_alpha=4, target_modules=["q_proj", "o_proj", "up_proj"])
    make_adapter(random_base_dir, d / "rs", 43, r=2, lora_alpha=4, use_rslora=True, target_modules=["q_proj"])
    make_adapter(random_base_dir, d / "rp", 44, r=2, lora_alpha=4, rank_pattern={"q_proj": 3}, target_modules=["q_proj"])
    return d


def dense_reference(path, w):
    """{module: w·s·B·A} in float64 straight from PEFT's files (alpha_pattern and r read by hand)."""
    cfg = json.loads((path / "adapter_config.json").read_text())
    t = load_file(path / "adapter_model.safetensors")
    out = {}
    for k in t:
        if ".lora_A." in k:
            module = k.split(".lora_A.")[0].removeprefix("base_model.model.")
            A, B = t[k].double(), t[k.replace("lora_A", "lora_B")].double()
            alpha = next((a for p, a in (cfg.get("alpha_pattern") or {}).items() if module.endswith(p)), cfg["lora_alpha"])
            out[module] = w * alpha / A.shape[0] * (B @ A)
    return out


def merged_dense(model, name):
    from peft.tuners.lora import LoraLayer

    from pvlora.steering.scales import unit_scale

    return {n.removeprefix("base_model.model."): unit_scale(m, name) * (m.lora_B[name].weight.double() @ m.lora_A[name].weight.double())
            for n, m in model.named_modules() if isinstance(m, LoraLayer) and name in m.lora_A}


def test_compose_peft_cat_and_dense_sum_agree(random_base_dir, two_vectors, plain, tmp_path):
    from pathlib import Path

    mix = {str(plain / "pa"): 1.3, str(plain / "pb"): -0.8, two_vectors["helpful"]: -0.5}
    with pytest.warns(UserWarning, match="no pvlora.json"):
        model, _ = pvlora.load_composed(str(random_base_dir), {p: 0.0 for p in mix})
    pvlora.set_weights(model, {"pa": 0.25})  # merge_weighted must not fold the current η in (PEFT would)
    names = dict(zip(mix, pvlora.get_weights(model)))  # path -> adapter name, in load order
    assert pvlora.merge_weighted(model, {names[p]: w for p, w in mix.items()}, "mix") == "mix"
    assert pvlora.get_weights(model) == pytest.approx({"pa": 0.25, "pb": 0.0, "helpful": 0.0, "mix": 0.0})
    peft_cat = merged_dense(model, "mix")
    pvlora.compose(str(random_base_dir), mix, tmp_path / "composed")
    written = {k.removeprefix("base_model.model."): lr.dense()
               for k, lr in read_adapter(tmp_path / "composed").factors.items()}
    dense: dict = {}
    for p, w in mix.items():
        for k, v in dense_reference(Path(p), w).items():
            dense[k] = dense.get(k, 0) + v
    assert set(peft_cat) == set(written) == set(dense)
    scale = max(v.abs().max().item() for v in dense.values())
    diff_cat = max((peft_cat[k] - dense[k]).abs().max().item() for k in dense)
    diff_written = max((written[k] - dense[k]).abs().max().item() for k in dense)
    diff_pair = max((peft_cat[k] - written[k]).abs().max().item() for k in dense)
    print(f"\nmax |ΔW|: {scale:.3g}; max abs diff: PEFT cat vs dense {diff_cat:.3g}, compose vs dense "
          f"{diff_written:.3g}, PEFT cat vs compose {diff_pair:.3g}")
    assert max(diff_cat, diff_written, diff_pair) <= 1e-6 * scale  # fp32 rounding (eps 1.2e-7) of the stored factors
    # and the model: the composition alone at η = 1 runs as the three at their weights
    pvlora.set_weights(model, {"pa": 0.0, "mix": 1.0})
    alone = logits(model)
    pvlora.set_weights(model, {"mix": 0.0, **{names[p]: w for p, w in mix.items()}})
    assert torch.allclose(alone, logits(model), atol=1e-5)


def test_merge_guards(random_base_dir, two_vectors, plain):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    with pytest.warns(UserWarning):
        model, _ = pvlora.load_composed(str(random_base_dir), {two_vectors["helpful"]: 1.0, str(plain / "rs"): 0.0,
                                                               str(plain / "rp"): 0.0})
    pvlora.merge_weighted(model, {"helpful": 2.0}, "twice")  # one source: PEFT switches to linear, still exact
    assert torch.allclose(merged_dense(model, "twice")["model.layers.0.self_attn.q_proj"],
                          2 * merged_dense(model, "helpful")["model.layers.0.self_attn.q_proj"], atol=1e-6)
    for weights, new, error, needle in [
        ({"helpful": 1.0}, "twice", RequestError, "already exists; PEFT would keep it unchanged"),
        ({"helpful": 1.0}, "helpful", RequestError, "already exists"),
        ({"rs": 1.0, "helpful": 1.0}, "m", ArtifactError, "'rs' uses rsLoRA"),
        ({"helpful": 1.0, "rp": 1.0}, "m", ArtifactError, "'rp' uses a rank_pattern"),
        ({"nope": 1.0}, "m", RequestError, "no vector named 'nope'"),
        ({"helpful": float("inf")}, "m", EtaError, "finite"),
        ({}, "m", RequestError, "non-empty"),
        ({"helpful": 1.0}, "a.b", RequestError, "not valid"),
    ]:
        loaded = list(model.peft_config)
        with pytest.raises(error, match=needle):
            pvlora.merge_weighted(model, weights, new)
        assert list(model.peft_config) == loaded
    dora = get_peft_model(AutoModelForCausalLM.from_pretrained(random_base_dir),
                          LoraConfig(r=2, use_dora=True, target_modules=["q_proj"]), adapter_name="d1")
    dora.add_adapter("d2", LoraConfig(r=2, use_dora=True, target_modules=["q_proj"]))
    with pytest.raises(ArtifactError, match="'d1' uses DoRA"):
        pvlora.merge_weighted(dora, {"d1": 1.0, "d2": 1.0}, "m")
