"""The config's ``eval`` and ``output`` blocks: fields, defaults, the help text CLI flags show, and their
own checks (the training-side blocks are :mod:`pvlora.config.stages`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from pvlora.config.values import check_fields
from pvlora.core import registry as builtins
from pvlora.core.errors import ConfigError


@dataclass
class EvalConfig:
    scorers: list[str] = field(
        default_factory=lambda: ["refusal_harmful", "compliance_benign", "mean_length"],
        metadata={"help": "Scorer names from the registry (pvlora.evaluation.scorers)."},
    )
    prompts: str = field(default="toy", metadata={"help": f"A built-in set ({', '.join(builtins.names('prompts'))}), a public test set shipped with pvlora (harmbench, advbench) or a .jsonl file of {{prompt, kind, style?}} rows (kind harmful or benign; a row with \"test\": true makes the file a test set: pvlora.evaluation.prompt_sets)."})
    max_new_tokens: int = field(default=48, metadata={"help": "Generation length."})
    do_sample: bool = field(default=False, metadata={"help": "Greedy by default."})
    temperature: float = field(default=1.0, metadata={"help": "Only with do_sample."})
    batch_size: int = field(default=64, metadata={"help": "Generation batch size."})
    refusal_patterns: list[str] = field(default_factory=list, metadata={"help": "Extra refusal regexes."})
    reward_model: str | None = field(default=None, metadata={"help": "Sequence-classification reward model."})
    cost_model: str | None = field(default=None, metadata={"help": "Sequence-classification cost model."})
    grid: dict[str, list[float]] = field(default_factory=dict, metadata={"help": "Sweep grid per preference."})

    def __post_init__(self) -> None:
        check_fields(self, "eval")
        for name in ("max_new_tokens", "batch_size"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"eval.{name} must be positive, got {getattr(self, name)}")
        if self.do_sample and self.temperature <= 0:
            raise ConfigError(f"eval.temperature must be positive, got {self.temperature:g} (for greedy decoding set "
                              "eval.do_sample: false)")


@dataclass
class OutputConfig:
    dir: str = field(default="runs/experiment", metadata={"help": "Root directory for adapters, vectors and results."})

    def __post_init__(self) -> None:
        check_fields(self, "output")
