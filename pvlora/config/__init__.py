"""Typed experiment configuration: YAML <-> dataclasses <-> CLI overrides.

One dataclass per pipeline stage. LoRA and DPO settings are *not* re-declared
here: they are plain mappings validated against PEFT's ``LoraConfig`` and TRL's
``DPOConfig`` fields, so every option those libraries have is available under
its own name and a misspelled key fails loudly.

The blocks live in :mod:`pvlora.config.stages`, the library-owned key checks in
:mod:`pvlora.config.library_keys`, every value's check by type in :mod:`pvlora.config.values`, YAML
mapping and overrides in :mod:`pvlora.config.mapping`, and reading a config file (a regular file, bounded,
YAML aliases' expansion bounded) in :mod:`pvlora.config.yaml_files`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pvlora.config.library_keys import validate_dpo_keys, validate_lora_keys
from pvlora.config.mapping import _build, apply_overrides, parse_override
from pvlora.config.eval_blocks import EvalConfig, OutputConfig
from pvlora.config.stages import (
    FORMAT_NAMES,
    KEEP_RULES,
    NAME_RE,
    SFT_FORMATS,
    Direction,
    ModelConfig,
    PreferenceConfig,
    SFTStageConfig,
    TrainConfig,
    check_name,
    check_seed,
)
from pvlora.config.values import check_fields, check_library_values
from pvlora.config.yaml_files import parse_yaml, read_config_file
from pvlora.core.errors import ConfigError

__all__ = [
    "FORMAT_NAMES", "KEEP_RULES", "NAME_RE", "SFT_FORMATS", "Direction", "EvalConfig", "ExperimentConfig",
    "ModelConfig", "OutputConfig", "PreferenceConfig", "SFTStageConfig", "TrainConfig", "apply_overrides",
    "check_name", "default_raw_config", "load_config", "parse_override", "save_config", "validate_dpo_keys",
    "validate_lora_keys",
]


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
        check_fields(self, "")
        check_seed(self.seed, "seed")
        validate_lora_keys(self.lora)
        check_library_values("LoraConfig", self.lora, "lora")
        validate_dpo_keys(self.dpo)
        check_library_values("DPOConfig", self.dpo, "dpo")
        names = [p.name for p in self.preferences]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ConfigError(f"preferences: duplicate name(s) {sorted(dup)}")

    def check(self) -> ExperimentConfig:
        """Run every block's checks again: a script may change a loaded config (``cfg.dpo["beta"] = x``),
        and training re-checks before it starts. Returns the config."""
        for block in (self.model, *self.preferences, self.sft, self.train, self.eval, self.output, self):
            block.__post_init__()
        return self

    def preference(self, name: str) -> PreferenceConfig:
        for p in self.preferences:
            if p.name == name:
                return p
        known = ", ".join(p.name for p in self.preferences) or "(none)"
        raise ConfigError(f"preference {name!r} is not in the config; configured: {known}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config (or the built-in default when ``path`` is None)."""
    if path is None:
        raw: dict[str, Any] = default_raw_config()
        file = "<built-in tiny-demo>"
    else:
        file = str(path)
        # a regular file of bounded size, its YAML aliases' expansion bounded (pvlora.config.yaml_files)
        raw = parse_yaml(read_config_file(path), f"config {file}")
        if raw is None:  # empty, or comments only
            raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config: expected a mapping in {file}, got {type(raw).__name__}")
    raw = apply_overrides(raw, overrides or [])
    return _build(ExperimentConfig, raw, "", file)


def default_raw_config() -> dict[str, Any]:
    """The built-in tiny demo config, as shipped in configs/tiny-demo.yaml."""
    from importlib import resources

    return yaml.safe_load(resources.files("pvlora.worlds.toy").joinpath("demo.yaml").read_text())


def save_config(cfg: ExperimentConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
