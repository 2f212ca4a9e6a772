"""`pvlora export`: a vector, composition or adapter in the form the servers people run load.

- ``vllm``: a plain PEFT adapter whose rank is one vLLM accepts (``VLLM_RANKS``): zero-padded up
  to the next accepted rank (exact), or compressed to a smaller one by the exact low-rank SVD
  (:func:`pvlora.core.lora_math.compress`), with the relative error recorded and printed.
- ``gguf``: a llama.cpp LoRA adapter (``general.type = adapter``, ``adapter.type = lora``,
  ``adapter.lora.alpha``), tensors named after the base's GGUF tensors + ``.lora_a`` / ``.lora_b``
  as llama.cpp's ``convert_lora_to_gguf.py`` writes them. alpha = rank, so llama.cpp's scale
  (``scale · alpha / rank``) is exactly η: its per-request ``lora: [{id, scale}]`` are the mix.

Own code, not llama.cpp's converter: that script needs the llama.cpp source tree and the base's
full HF config and tokenizer; the mapping it applies is small (the ``gguf`` package's tensor name
map, and for Llama the q/k row permutation of ``convert_hf_to_gguf.LlamaModel.permute``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from pvlora.core import lora_math
from pvlora.core.errors import ArtifactError, ConfigError
from pvlora.artifacts.manifest import AdapterManifest, Manifest
from pvlora.artifacts.records import ExportRecord
from pvlora.artifacts.atomic import atomic_dir, atomic_path
from pvlora.artifacts.atomic import check_output
from pvlora.artifacts.compat import base_module_name, base_shapes, check_shapes
from pvlora.artifacts.peft_read import read_adapter
from pvlora.artifacts.peft_write import write_factors
from pvlora.bases.load import loadable_name, resolve_base
from pvlora.config import ModelConfig
from pvlora.core.chat_templates import carry_template
from pvlora.core.files import alive, glob_escape
from pvlora.vectors.extract import check_against_base, compress_to_rank, exact_rank

VLLM_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's max_lora_rank choices
# HF model_type -> does convert_hf_to_gguf permute q/k rows for it (rotary layout)?
GGUF_ARCHES = {"llama": True, "mistral": True}


def vllm_rank(exact: int, rank: int | None) -> int:
    """The rank to write: ``rank`` if given (must be accepted), else the smallest accepted ≥ exact
    (or the largest, compressing, if exact exceeds them all)."""
    if rank is not None:
        if rank not in VLLM_RANKS:
            raise ConfigError(f"rank {rank} is not one vLLM accepts; choose one of {', '.join(map(str, VLLM_RANKS))}")
        return rank
    return next((r for r in VLLM_RANKS if r >= exact), VLLM_RANKS[-1])


def export_vllm(src: str | Path, out: str | Path, rank: int | None = None, overwrite: bool = False,
                command: str | None = None) -> Manifest:
    """Write ``src`` (a pvlora vector, composition or adapter) to ``out`` as a PEFT adapter of a vLLM rank.

    Returns:
        The new manifest (its ``export`` block: format, rank, exact rank, relative error).
    Raises:
        ConfigError: a rank vLLM does not accept.
        ArtifactError: anything :func:`read_adapter` refuses.
    """
    a = read_adapter(src)
    exact = exact_rank(a.factors)
    r = vllm_rank(exact, rank)
    check_against_base([a])  # vLLM would fail on a module its base lacks, after the model loaded
    factors, compression = compress_to_rank(a.factors, r)  # compressed when r < exact; zero-padded to r on write
    record = ExportRecord(format="vllm", rank=r, exact_rank=exact,
                          relative_error=compression.relative_error if compression else 0.0,
                          per_module_relative_error=compression.per_module_relative_error if compression else {},
                          source=Path(src).name)
    # the source's manifest, whatever its kind (a plain PEFT adapter: an adapter), plus what export did
    manifest = dataclasses.replace(a.manifest or AdapterManifest(), weights_sha256=None, command=None, export=record)
    with atomic_dir(out, overwrite, inputs=[a.path]) as tmp:
        write_factors(tmp, factors, a.config.get("base_model_name_or_path"), rank=r,
                      revision=a.config.get("revision"))
        carry_template([a.path], tmp)
        manifest.write(tmp, command)
    return manifest


def permute_rows(W: torch.Tensor, n_head: int) -> torch.Tensor:
    """llama.cpp's rotary row order for q/k (``convert_hf_to_gguf.LlamaModel.permute``): within
    each head, the two rotary halves interleaved. W: (n_head·head_dim, ...) -> same shape."""
    return W.reshape(n_head, 2, W.shape[0] // n_head // 2, *W.shape[1:]).swapaxes(1, 2).reshape(W.shape)


def gguf_tensors(factors: lora_math.Factors, config) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{GGUF base tensor name: (A (r, d_in), B (d_out, r))} in llama.cpp's layout."""
    import gguf

    kind = getattr(config, "model_type", None)
    if kind not in GGUF_ARCHES:
        raise ArtifactError(f"GGUF export supports bases of type {', '.join(GGUF_ARCHES)}; this base is {kind!r}")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    n_head = config.num_attention_heads
    n_kv = getattr(config, "num_key_value_heads", None) or n_head
    out = {}
    for module, lr in factors.items():
        hf = base_module_name(module)
        name = names.get_name(hf + ".weight", try_suffixes=(".weight",))
        if name is None:
            raise ArtifactError(f"module {hf!r} has no llama.cpp tensor; GGUF LoRA covers the transformer blocks' linears")
        A, B = lr.A.to(torch.float32), lr.B.to(torch.float32)
        if GGUF_ARCHES[kind] and hf.endswith(("q_proj", "k_proj")):  # llama.cpp stores these rows permuted
            B = permute_rows(B, n_head if hf.endswith("q_proj") else n_kv)
        out[name] = (A.contiguous(), B.contiguous())
    return out


def export_gguf(src: str | Path, out: str | Path, base: str | None = None, overwrite: bool = False) -> dict[str, Any]:
    """Write ``src`` to the file ``out`` as a llama.cpp GGUF LoRA adapter at η = 1 per unit of scale.

    Args:
        base: the base to read the architecture from (default: the one ``src`` records).
    Returns:
        {"tensors": n, "rank": r, "alpha": r, "architecture": ...}.
    Raises:
        ArtifactError: an unsupported architecture, an existing ``out`` without ``overwrite``.
    """
    import gguf

    a = read_adapter(src)
    out = check_output(out, overwrite, "file", inputs=(a.path,))
    recorded = a.base_fingerprint
    name = base or (loadable_name(recorded) if recorded else None)
    if not name:
        raise ArtifactError(f"{src} records no base; pass base=MODEL (the model whose architecture it adapts)")
    revision = recorded.revision if recorded and not base else None
    config = resolve_base(ModelConfig(name_or_path=name, revision=revision)).config
    check_shapes([a], base_shapes(config), repr(name))  # llama.cpp would refuse it, or read it misaligned
    tensors = gguf_tensors(a.factors, config)
    r = max(lr.rank for lr in a.factors.values())
    _remove_old_partials(out)
    with atomic_path(out) as tmp:  # renamed over ``out`` only when complete
        w = gguf.GGUFWriter(str(tmp), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(r))  # every module padded to rank r: scale = η
        if a.manifest and a.manifest.preference:
            w.add_name(a.manifest.preference)
        for tname, (A, B) in sorted(tensors.items()):
            lr = lora_math.pad_rank(lora_math.LowRank(A, B), r)
            w.add_tensor(f"{tname}.lora_a", lr.A.numpy())  # (r, d_in): GGUF ne = [d_in, r]
            w.add_tensor(f"{tname}.lora_b", lr.B.numpy())  # (d_out, r): GGUF ne = [r, d_out]
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return {"tensors": len(tensors), "rank": r, "alpha": float(r), "architecture": "llama", "base": name}


def _remove_old_partials(out: Path) -> None:
    """``.NAME.PID.partial``: what a killed export of pvlora 0.2 left (removed once its pid is gone)."""
    for path in out.parent.glob(f".{glob_escape(out.name)}.*.partial"):
        pid = path.name[len(out.name) + 2:-len(".partial")]
        if pid.isdigit() and not alive(int(pid)):
            path.unlink(missing_ok=True)


__all__ = ["VLLM_RANKS", "export_gguf", "export_vllm", "gguf_tensors", "permute_rows", "vllm_rank"]
