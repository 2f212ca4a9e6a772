import os
import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
# 1,800 real HH-RLHF pairs kept beside the repository (not shipped in it); override the location
# with $PVLORA_HH_RLHF_FILE.
HH_FILE = Path(os.environ.get("PVLORA_HH_RLHF_FILE") or SHARED / "data" / "hh-rlhf" / "harmless-base-test-dev.jsonl.gz")


@pytest.fixture(scope="session")
def random_base_dir(tmp_path_factory):
    """A tiny random-weight Llama saved to disk: a base for the pure composition tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from pvlora.tiny import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("random-base")
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def tiny_base_dir():
    """The real built-in tiny base (built once, cached under $PVLORA_CACHE)."""
    from pvlora.tiny import ensure_tiny_base

    return ensure_tiny_base(seed=0)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, tiny_base_dir):
    """`pvlora demo` run once for the session; its adapters, vectors and results are what the
    training, demo and notebook tests examine."""
    from pvlora.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "run"
    run_demo(out)
    return out
