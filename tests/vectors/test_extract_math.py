"""Extraction, composition, compression and similarity checked against dense arithmetic done by
PEFT itself (each LoRA layer's ``get_delta_weight``) and against torch's dense SVD."""

import json

import pytest
import torch
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM

from pvlora.core import lora_math
from pvlora.artifacts.peft_read import read_adapter
from pvlora.vectors.compose import compose
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter


def rel_err(x, y):
    return float(torch.linalg.norm(x - y) / torch.linalg.norm(y))


def dense_deltas(base_dir, adapter_dir):
    """{module name: ΔW} computed by PEFT from the saved adapter (the independent reference)."""
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter_dir))
    return {n: m.get_delta_weight("default").double() for n, m in model.named_modules()
            if isinstance(m, LoraLayer) and "default" in m.lora_A}


def combine_dense(terms):
    out = {}
    for deltas, w in terms:
        for k, v in deltas.items():
            out[k] = out.get(k, 0) + w * v
    return out


@pytest.fixture(scope="module")
def adapters(random_base_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("adapters")
    pos = make_adapter(random_base_dir, d / "pos", 1, r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "up_proj"])
    # different rank, alpha, rsLoRA, a rank_pattern/alpha_pattern, and partly different modules
    neg = make_adapter(random_base_dir, d / "neg", 2, r=6, lora_alpha=3, use_rslora=True,
                       target_modules=["v_proj", "o_proj", "up_proj"],
                       rank_pattern={"layers.1.mlp.up_proj": 2}, alpha_pattern={"o_proj": 7})
    third = make_adapter(random_base_dir, d / "third", 3, r=3, lora_alpha=5, target_modules=["q_proj", "down_proj"])
    return {"pos": pos, "neg": neg, "third": third}


def test_extract_equals_dense_difference(random_base_dir, adapters, tmp_path):
    manifest = extract_vector(adapters["pos"], adapters["neg"], tmp_path / "vec")
    expected = combine_dense([(dense_deltas(random_base_dir, adapters["pos"]), 1.0),
                              (dense_deltas(random_base_dir, adapters["neg"]), -1.0)])
    got = dense_deltas(random_base_dir, tmp_path / "vec")  # plain PEFT reload of what we wrote
    assert set(got) == set(expected)  # modules from either side, including one-sided ones
    for k in expected:
        assert rel_err(got[k], expected[k]) <= 1e-6, k
    assert manifest.exact_rank == 4 + 6
    cfg = json.loads((tmp_path / "vec" / "adapter_config.json").read_text())
    assert cfg["r"] == cfg["lora_alpha"] == 10 and not cfg.get("rank_pattern")


def test_positive_only_is_delta_plus(random_base_dir, adapters, tmp_path):
    extract_vector(adapters["pos"], None, tmp_path / "vec", positive_only=True)
    expected = dense_deltas(random_base_dir, adapters["pos"])
    got = dense_deltas(random_base_dir, tmp_path / "vec")
    for k in expected:
        assert rel_err(got[k], expected[k]) <= 1e-6


@pytest.mark.parametrize("weights", [(1.0, 0.5), (-1.0, 2.0), (0.0, 1.3), (0.7, -0.25)])
def test_compose_equals_dense_weighted_sum(random_base_dir, adapters, tmp_path, weights):
    extract_vector(adapters["pos"], adapters["neg"], tmp_path / "v1")
    w1, w2 = weights
    compose(str(random_base_dir), {str(tmp_path / "v1"): w1, str(adapters["third"]): w2}, tmp_path / "comp")
    phi1 = dense_deltas(random_base_dir, tmp_path / "v1")
    third = dense_deltas(random_base_dir, adapters["third"])
    expected = combine_dense([(phi1, w1), (third, w2)])
    got = dense_deltas(random_base_dir, tmp_path / "comp")
    for k, v in expected.items():
        if torch.linalg.norm(v) == 0:
            assert torch.linalg.norm(got[k]) == 0
        else:
            assert rel_err(got[k], v) <= 1e-6, k


def test_compression_matches_eckart_young(random_base_dir, adapters, tmp_path):
    k = 3
    manifest = extract_vector(adapters["pos"], adapters["neg"], tmp_path / "vec", rank=k)
    full = combine_dense([(dense_deltas(random_base_dir, adapters["pos"]), 1.0),
                          (dense_deltas(random_base_dir, adapters["neg"]), -1.0)])
    got = dense_deltas(random_base_dir, tmp_path / "vec")
    err2 = tot2 = 0.0
    for name, dense in full.items():
        s = torch.linalg.svdvals(dense)
        optimal = float(torch.sqrt((s[k:] ** 2).sum()))
        actual = float(torch.linalg.norm(got[name] - dense))
        assert abs(actual - optimal) <= 1e-5 * max(1.0, float(torch.linalg.norm(dense)))
        err2 += optimal**2
        tot2 += float((s**2).sum())
        key = next(m for m in manifest.compression.per_module_relative_error if m.endswith(name))
        assert manifest.compression.per_module_relative_error[key] == pytest.approx(
            optimal / float(torch.linalg.norm(dense)), abs=1e-5)
    assert manifest.compression.relative_error == pytest.approx((err2 / tot2) ** 0.5, abs=1e-5)
    assert json.loads((tmp_path / "vec" / "adapter_config.json").read_text())["r"] == k


def test_truncate_hand_worked():
    # B·A = diag(3, 2, 1) embedded in 4x3; the best rank-1 keeps 3, error sqrt(2² + 1²).
    A = torch.eye(3, dtype=torch.float64)
    B = torch.zeros(4, 3, dtype=torch.float64)
    B[0, 0], B[1, 1], B[2, 2] = 3.0, 2.0, 1.0
    lr, err, total = lora_math.truncate(lora_math.LowRank(A, B), 1)
    assert err == pytest.approx(5**0.5) and total == pytest.approx(14**0.5)
    expected = torch.zeros(4, 3, dtype=torch.float64)
    expected[0, 0] = 3.0
    torch.testing.assert_close(lr.dense(), expected)


def test_cosine_and_norm_from_factors_match_dense(adapters):
    a, b = read_adapter(adapters["pos"]), read_adapter(adapters["neg"])
    keys = sorted(set(a.factors) | set(b.factors))

    def flat(f, k):
        shape = (a.factors.get(k) or b.factors.get(k)).shape
        return (f[k].dense() if k in f else torch.zeros(shape, dtype=torch.float64)).flatten()

    va = torch.cat([flat(a.factors, k) for k in keys])
    vb = torch.cat([flat(b.factors, k) for k in keys])
    assert lora_math.total_norm(a.factors) == pytest.approx(float(va.norm()), rel=1e-9)
    assert lora_math.cosine(a.factors, b.factors) == pytest.approx(float(va @ vb / (va.norm() * vb.norm())), abs=1e-9)
    assert lora_math.cosine(a.factors, a.factors) == pytest.approx(1.0)
