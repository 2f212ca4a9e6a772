"""Per-row weights: every row of one batch at its own mix equals that row run alone at its mix."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import pvlora
from pvlora.core.errors import ArtifactError, RequestError
from pvlora.steering.rowwise import generate, row_weights, rowwise_delta, stack_layer
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter

# mixed signs, a row at the base (all zero), a row naming one vector only, a large weight
ROWS = [{"helpful": 0.8, "harmless": -0.4}, {"helpful": -1.5, "harmless": 2.0}, {}, {"harmless": 0.3},
        {"helpful": 3.0, "harmless": 0.0}]
IDS = torch.tensor([[1, 5, 9, 13, 2, 7, 30, 41], [3, 8, 8, 21, 4, 6, 11, 19], [2, 2, 40, 9, 17, 5, 6, 7],
                    [9, 10, 11, 12, 13, 14, 15, 16], [41, 30, 7, 2, 13, 9, 5, 1]])


@pytest.fixture(scope="module")
def model(random_base_dir, two_vectors):
    m, _ = pvlora.load_composed(str(random_base_dir), {two_vectors["helpful"]: 1.0, two_vectors["harmless"]: 1.0})
    return m


def alone(model, ids, row):
    pvlora.set_weights(model, {"helpful": row.get("helpful", 0.0), "harmless": row.get("harmless", 0.0)})
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_each_row_equals_that_row_alone_at_its_mix(model, random_base_dir):
    with torch.no_grad(), row_weights(model, ROWS):
        batched = model(input_ids=IDS).logits  # (5, 8, vocab)
    for i, row in enumerate(ROWS):
        ref = alone(model, IDS[i:i + 1], row)
        assert (batched[i:i + 1] - ref).abs().max() <= 1e-5, row
    # the all-zero row is the base model itself, and the rows really differ from each other
    base = AutoModelForCausalLM.from_pretrained(random_base_dir)
    with torch.no_grad():
        assert (batched[2] - base(input_ids=IDS[2:3]).logits[0]).abs().max() <= 1e-5
        assert (alone(model, IDS[0:1], ROWS[1]) - alone(model, IDS[0:1], ROWS[0])).abs().max() > 1e-2


def test_the_model_is_unchanged_after_the_block(model):
    pvlora.set_weights(model, {"helpful": 0.5, "harmless": -0.5})
    with torch.no_grad():
        before = model(input_ids=IDS[:1]).logits
        with row_weights(model, [{"helpful": 2.0}]):
            inside = model(input_ids=IDS[:1]).logits
        after = model(input_ids=IDS[:1]).logits
    assert torch.equal(before, after) and (inside - before).abs().max() > 1e-3
    assert pvlora.get_weights(model) == pytest.approx({"helpful": 0.5, "harmless": -0.5})
    assert not any(m._forward_hooks for m in model.modules())


def test_layer_math_equals_dense_deltas_in_float64():
    """B·((A·x)⊙s) against Σ_p η_ip·unit_p·B_p·A_p·x built densely, per row."""
    torch.manual_seed(0)

    class Layer:  # the attributes stack_layer reads from a PEFT LoraLayer
        def __init__(self):
            self.lora_A = {n: torch.nn.Linear(7, r, bias=False).double() for n, r in (("a", 3), ("b", 2))}
            self.lora_B = {n: torch.nn.Linear(r, 5, bias=False).double() for n, r in (("a", 3), ("b", 2))}
            self.r, self.lora_alpha, self.use_rslora = {"a": 3, "b": 2}, {"a": 6, "b": 1}, {}

    layer = Layer()
    st = stack_layer(layer, ["a", "b"])
    eta = torch.tensor([[1.0, -2.0], [0.0, 0.0], [0.25, 3.0]], dtype=torch.float64)
    x = torch.randn(6, 4, 7, dtype=torch.float64)  # each of the 3 rows repeated twice (beams)
    got = rowwise_delta(x, st, eta)
    dense = {n: layer.lora_B[n].weight @ layer.lora_A[n].weight * layer.lora_alpha[n] / layer.r[n] for n in "ab"}
    for i in range(6):
        W = eta[i // 2, 0] * dense["a"] + eta[i // 2, 1] * dense["b"]  # (5, 7)
        torch.testing.assert_close(got[i], x[i] @ W.T, rtol=0, atol=1e-12)


def _tok(random_base_dir):
    tok = AutoTokenizer.from_pretrained(random_base_dir)
    tok.pad_token = tok.pad_token or tok.eos_token
    return tok


@pytest.mark.parametrize("kw", [{}, {"num_beams": 2}, {"num_beams": 3, "num_return_sequences": 2}])
def test_generate_per_row_equals_each_prompt_alone(model, random_base_dir, kw):
    tok = _tok(random_base_dir)
    prompts = ["a b c", "hello there friend", "x", "one two", "z z z z"]  # different lengths: left padding
    got = generate(model, tok, prompts, ROWS, max_new_tokens=6, **kw)
    k = kw.get("num_return_sequences", 1)
    assert len(got) == k * len(prompts)
    from pvlora.steering.generate import generate as plain

    for i, (p, row) in enumerate(zip(prompts, ROWS)):
        pvlora.set_weights(model, {"helpful": row.get("helpful", 0.0), "harmless": row.get("harmless", 0.0)})
        assert got[i * k:(i + 1) * k] == plain(model, tok, [p], max_new_tokens=6, **kw), (p, row)
    assert len(set(generate(model, tok, ["a b c"] * 5, ROWS, max_new_tokens=6))) > 1  # the mixes matter


def test_sampling_runs_with_per_row_weights(model, random_base_dir):
    tok = _tok(random_base_dir)
    out = generate(model, tok, ["a b", "c d"], [{"helpful": 1.0}, {"harmless": -1.0}], max_new_tokens=4,
                   do_sample=True, temperature=0.8, seed=3)
    again = generate(model, tok, ["a b", "c d"], [{"helpful": 1.0}, {"harmless": -1.0}], max_new_tokens=4,
                     do_sample=True, temperature=0.8, seed=3)
    assert len(out) == 2 and out == again  # seeded


@pytest.mark.parametrize("rows, match", [
    ([{"helpfull": 1.0}], "not loaded; loaded: helpful, harmless"),
    ([{"helpful": float("nan")}], "must be finite"),
    ([{"helpful": 1e6}], "at most"),
    ([["helpful", 1.0]], "row 0 must be a mapping"),
    ({"helpful": 1.0}, "one .* mapping per row"),
    ([], "non-empty list"),
])
def test_bad_rows_are_refused_before_any_hook(model, rows, match):
    with pytest.raises(RequestError, match=match), row_weights(model, rows):
        pass
    assert not any(m._forward_hooks for m in model.modules())


def test_batch_not_a_multiple_of_the_rows_is_refused(model, random_base_dir):
    with pytest.raises(ArtifactError, match="whole multiple"), torch.no_grad(), row_weights(model, ROWS[:2]):
        model(input_ids=IDS[:3])
    with pytest.raises(RequestError, match="one mapping per prompt: 2 prompts, got 1"):
        generate(model, _tok(random_base_dir), ["a", "b"], [{}], max_new_tokens=2)


def test_a_4bit_base_takes_per_row_weights(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from pvlora.bases.load import bnb_config

    torch.manual_seed(0)  # bitsandbytes' CPU kernels need rows of at least one 64-wide block
    cfg = LlamaConfig(vocab_size=64, hidden_size=128, intermediate_size=256, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32)
    LlamaForCausalLM(cfg).save_pretrained(tmp_path / "base")
    vecs = {}
    for name, seed in (("helpful", 1), ("harmless", 3)):
        p, n = (make_adapter(tmp_path / "base", tmp_path / f"{name}{d}", seed + i, r=4, lora_alpha=8,
                             target_modules=["q_proj", "down_proj"]) for i, d in enumerate("+-"))
        extract_vector(p, n, tmp_path / name, preference=name)
        vecs[name] = str(tmp_path / name)
    q4 = AutoModelForCausalLM.from_pretrained(tmp_path / "base", quantization_config=bnb_config(), dtype=torch.bfloat16)
    model, _ = pvlora.load_composed(q4, {vecs["helpful"]: 1.0, vecs["harmless"]: 1.0})
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    rows, ids = ROWS[:3], IDS[:3] % 64
    with torch.no_grad(), row_weights(model, rows):
        batched = model(input_ids=ids).logits.float()
    refs = [alone(model, ids[i:i + 1], r).float() for i, r in enumerate(rows)]
    for i, ref in enumerate(refs):  # bf16 compute: agreement to bf16 rounding of the logits
        assert (batched[i:i + 1] - ref).abs().max() <= 0.02 * ref.abs().max(), rows[i]
    assert (refs[0] - refs[1]).abs().max() > 0.05 * refs[0].abs().max()


def test_score_per_row_equals_each_example_alone(model, random_base_dir):
    from pvlora.steering.logprobs import sequence_logprobs
    from pvlora.steering.rowwise import score

    tok = _tok(random_base_dir)
    prompts = ["a b c", "hello there friend", "x", "one two", "z z z z"]
    completions = ["d e", "how are you", "y z", "three", "z"]
    got = score(model, tok, prompts, completions, ROWS, batch_size=2)  # batches of 2: the rows' weights follow
    assert got.shape == (5,)
    for i, row in enumerate(ROWS):
        pvlora.set_weights(model, {"helpful": row.get("helpful", 0.0), "harmless": row.get("harmless", 0.0)})
        alone, _ = sequence_logprobs(model, tok, [prompts[i]], [completions[i]])
        assert abs(float(got[i]) - float(alone[0])) <= 1e-4, row
    same = score(model, tok, ["a b c"] * 2, ["d e"] * 2, [ROWS[0], ROWS[1]])
    assert abs(float(same[0] - same[1])) > 1e-3  # the mixes matter
    with pytest.raises(RequestError, match="one completion and one weights mapping per prompt: 2 prompts, 1"):
        score(model, tok, ["a", "b"], ["c"], [{}, {}])
