"""Log-prob scoring behind held-out preference accuracy: batching, caching, sampling."""

import pytest
import torch

from pvlora.steering.logprobs import _pad_id, encode, preference_accuracy, score_encoded
from pvlora.training.dpo import heldout_sample

PROMPTS = ["How do I bake bread?", "Sorry", "Can you tell me how to fix a bike? Please help me.", "Teach me"]
COMPLETIONS = [" Sure. To bake bread, take your time.", " I can not help.", " Sure.",
               " Sure. Here is how to fix a bike. First, get the right tools. Next, check each step."]


@pytest.fixture(scope="module")
def model_tok(random_base_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(random_base_dir).eval()
    tok = AutoTokenizer.from_pretrained(random_base_dir)
    return model, tok


def test_length_sorted_batches_match_one_sequence_at_a_time(model_tok):
    model, tok = model_tok
    encoded = encode(tok, PROMPTS, COMPLETIONS)
    scores, counts = score_encoded(model, encoded, _pad_id(tok), batch_size=3)  # mixed lengths, padded
    for i, (ids, n_c) in enumerate(encoded):
        assert n_c == len(tok(COMPLETIONS[i], add_special_tokens=False)["input_ids"])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]  # (t-1, V), no padding at all
        logp = torch.log_softmax(logits.double(), -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
        assert float(scores[i]) == pytest.approx(float(logp[-n_c:].sum()), abs=1e-4)
        assert float(counts[i]) == n_c


def test_cache_answers_without_running_the_model(model_tok):
    model, tok = model_tok
    encoded = encode(tok, PROMPTS, COMPLETIONS)
    cache: dict = {}
    first, _ = score_encoded(model, encoded, _pad_id(tok), 2, cache)
    assert len(cache) == len(encoded)

    class MustNotRun(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, **kw):
            raise AssertionError("cached scores were recomputed")

    again, _ = score_encoded(MustNotRun(), list(reversed(encoded)), _pad_id(tok), 2, cache)
    assert torch.equal(again, first.flip(0))


def test_preference_accuracy_of_swapped_pairs_is_the_complement(model_tok):
    model, tok = model_tok
    pairs = [{"prompt": p, "chosen": c, "rejected": COMPLETIONS[(i + 1) % 4]} for i, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS))]
    swapped = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]
    a, b = preference_accuracy(model, tok, pairs), preference_accuracy(model, tok, swapped)
    assert a["accuracy"] + b["accuracy"] == pytest.approx(1.0)
    assert a["margin"] == pytest.approx(-b["margin"], abs=1e-9)


def test_heldout_sample_is_capped_and_the_same_for_both_directions():
    pairs = [{"prompt": str(i), "chosen": "a", "rejected": "b"} for i in range(50)]
    swapped = [{**p, "chosen": "b", "rejected": "a"} for p in pairs]
    pos, neg = heldout_sample(pairs, 20, seed=0), heldout_sample(swapped, 20, seed=0)
    assert len(pos) == 20 and [p["prompt"] for p in pos] == [p["prompt"] for p in neg]
    assert len({p["prompt"] for p in pos}) == 20
    assert heldout_sample(pairs, None, 0) == pairs and heldout_sample(pairs, 0, 0) == []
    assert heldout_sample(pairs, 20, seed=1) != pos
