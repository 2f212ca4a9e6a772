"""The life of one training run, shared by `pvlora train` (DPO) and `pvlora sft`.

A run trains in a hidden ``.NAME.partial`` directory beside its target, resumes from the last
*complete* checkpoint there, keeps the trainable LoRA weights in fp32, writes from the main process
only under ``accelerate launch``, and says what it will cost before it starts.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

# runs.py is imported only by the training stages
from transformers import TrainerCallback

from pvlora.artifacts.manifest import Manifest
from pvlora.artifacts.atomic import atomic_dir, atomic_file
from pvlora.config import save_config
from pvlora.core.chat_templates import TEMPLATE_FILE
from pvlora.core.errors import ArtifactError


def partial_dir(target: Path) -> Path:
    return target.parent / f".{target.name}.partial"


def silent(*_args, **_kwargs) -> None:
    pass


def is_main_process() -> bool:
    """True outside ``accelerate launch`` / ``torchrun`` and on the global rank 0 process. Read from
    the launcher's environment: the trainer sets up the process group only later, and an early
    ``PartialState()`` would not see it on CPU-only machines."""
    from accelerate.utils import get_int_from_env

    return get_int_from_env(["RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"], 0) == 0


def multi_process_launch() -> bool:
    """True under ``accelerate launch`` / ``torchrun`` with more than one process."""
    from accelerate.utils import get_int_from_env

    return get_int_from_env(["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"], 1) > 1


def join_process_group() -> None:
    """Under a multi-process launch, set up the process group now (the trainer would only do it
    later), so processes can wait for each other around the main process's writes."""
    import torch

    if multi_process_launch():
        from accelerate import PartialState

        PartialState(cpu=not torch.cuda.is_available())


def wait_for_everyone() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


RUN_SETTINGS = "pvlora-run.json"
# Trainer arguments that change how a run is logged or saved, not what it learns: a resume may change them.
_BOOKKEEPING = {"output_dir", "logging_steps", "logging_dir", "logging_first_step", "save_steps", "save_total_limit",
                "save_strategy", "report_to", "disable_tqdm", "run_name", "eval_steps", "dataloader_num_workers"}


def training_settings(cfg, trainer_args: dict, data: dict | None = None) -> dict:
    """What a run learns from: base, LoRA, trainer arguments (less bookkeeping), data and seed."""
    import dataclasses

    return json.loads(json.dumps({
        "model": dataclasses.asdict(cfg.model), "lora": cfg.lora, "seed": cfg.seed, "data": data,
        "trainer": {k: v for k, v in trainer_args.items() if k not in _BOOKKEEPING},
    }, sort_keys=True, default=str))


def _diff(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in sorted(set(old) | set(new)) for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix[:-1]} ({old!r} -> {new!r})"]


def prepare_partial(part: Path, resume: bool, settings: dict | None = None) -> Path | None:
    """Create (or, without ``resume``, recreate) a run's partial directory; returns the checkpoint
    to resume from, if any. A resume whose training settings differ from the ones the checkpoint
    was made with is refused, naming them: it would otherwise finish (or skip) training that never
    happened under the settings it records. Only the main process touches the file system."""
    ckpt = None
    if is_main_process():
        if part.exists() and not resume:
            shutil.rmtree(part)  # --overwrite: start over
        part.mkdir(parents=True, exist_ok=True)
        ckpt = last_complete_checkpoint(part) if resume else None
        stored = part / RUN_SETTINGS
        if ckpt is not None and settings is not None and stored.exists():
            old = json.loads(stored.read_text())
            # what the user set first (model, LoRA, trainer, seed), then what follows from it (data)
            diffs = [d for k in ("model", "lora", "trainer", "seed", "data") for d in
                     _diff({k: old.get(k)}, {k: settings.get(k)})]
            if diffs:
                raise ArtifactError(f"{part}: cannot resume, the training settings changed since its checkpoint: "
                                    f"{'; '.join(diffs[:12])}{' ...' if len(diffs) > 12 else ''}. Restore them, or "
                                    "start over with overwrite=True")
        if settings is not None and (ckpt is None or not stored.exists()):
            with atomic_file(stored) as fh:
                fh.write(json.dumps(settings, indent=1) + "\n")
    wait_for_everyone()
    return last_complete_checkpoint(part) if resume else None


def checkpoint_complete(path: Path) -> bool:
    """transformers writes ``trainer_state.json`` last: a checkpoint without a readable one was cut
    short (killed mid-write) and cannot be resumed from."""
    try:
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(part: Path) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``part``; newer incomplete ones are removed so that
    the trainer's own checkpoint rotation never counts them."""
    ckpts = sorted((p for p in part.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
                   key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for ckpt in ckpts:
        if checkpoint_complete(ckpt):
            return ckpt
        if is_main_process():
            shutil.rmtree(ckpt, ignore_errors=True)
    return None


@contextlib.contextmanager
def cleanup_unstarted(part: Path):
    """On failure, remove ``part`` if no checkpoint reached it: a run that died before saving anything
    (a late data error, a failed model load, Ctrl-C during warm-up) leaves nothing to resume and
    should not make the next run demand --resume."""
    try:
        yield
    except BaseException:
        if is_main_process() and part.is_dir() and not any(part.glob("checkpoint-*")):
            shutil.rmtree(part, ignore_errors=True)
        raise


def trainer_kwargs(defaults: dict, user: dict, part: Path, cfg) -> dict:
    """Keyword arguments for a TRL config (DPOConfig, SFTConfig): pvlora's defaults, the user's block,
    then what pvlora owns (the run directory and seeds); CPU and checkpointing from ``cfg.model``."""
    import torch

    kwargs = {**defaults, **user, "output_dir": str(part), "seed": cfg.seed, "data_seed": cfg.seed}
    if not torch.cuda.is_available():
        kwargs.setdefault("use_cpu", True)
    if cfg.model.gradient_checkpointing:
        kwargs.setdefault("gradient_checkpointing", True)
    return kwargs


@dataclass
class TrainResult:
    """A finished training run: its adapter directory and manifest (and, for the SFT stage with
    ``sft.merge``, the merged model's directory)."""

    path: Path
    manifest: Manifest
    merged: Path | None = None


def save_run(target: Path, part: Path, trainer, tok, cfg, manifest: Manifest) -> None:
    """Write a finished run atomically: the PEFT adapter, the chat template it was trained with, the
    resolved config, the trainer's log and ``pvlora.json``; then drop the partial directory. Call it
    on the main process only."""
    with atomic_dir(target, overwrite=True) as tmp:
        trainer.model.save_pretrained(str(tmp))
        if getattr(tok, "chat_template", None):
            (tmp / TEMPLATE_FILE).write_text(tok.chat_template)
        save_config(cfg, tmp / "pvlora-config.yaml")
        (tmp / "trainer_log.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        manifest.write(tmp)
    shutil.rmtree(part, ignore_errors=True)


def cast_trainable_to_fp32(model) -> int:
    """Keep trainable (LoRA) weights in fp32; returns how many tensors were cast.

    With a 4-bit base, TRL's DPOTrainer casts the trainable LoRA weights to bf16. At DPO's usual
    learning rates (the paper's 1e-6) most AdamW updates are below bf16's resolution and round away:
    the adapter barely moves. PEFT's LoRA layers cast their input to the adapter's dtype, so compute
    around the 4-bit weights stays bf16 while the weights and optimiser state are fp32. The cost is
    small: LoRA weights are ~0.5% of an 8B model's parameters."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if getattr(base, "hf_quantizer", None) is None:
        return 0  # unquantised: PEFT already keeps LoRA in fp32 unless TRL chose bf16 on purpose (ZeRO-3)
    n = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()
            n += 1
    return n


class CostReport(TrainerCallback):
    """Says what a run will cost before it starts (examples, optimiser steps, tokens) and, once the
    first steps are timed, how long it will take; TRL's progress bar stays as it is.
    ``count_tokens(tokenised train dataset, max_length)`` gives the tokens of one epoch."""

    def __init__(self, trainer, name: str, log, count_tokens, timed_steps: int = 3):
        self.name, self.log, self.timed_steps = name, log, timed_steps
        self.examples = len(trainer.train_dataset)
        self.tokens_per_epoch = count_tokens(trainer.train_dataset, trainer.args.max_length)
        self.t0 = self.start_step = None

    def on_train_begin(self, args, state, control, **kwargs):
        per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        seen = min(self.examples * (state.num_train_epochs or args.num_train_epochs), state.max_steps * per_step)
        tokens = self.tokens_per_epoch * seen / max(self.examples, 1)
        resumed = f", resuming at step {state.global_step}" if state.global_step else ""
        self.log(f"[pvlora] {self.name}: {self.examples} examples, {state.max_steps} optimiser steps of {per_step} "
                 f"examples (batch {args.per_device_train_batch_size} x accumulation "
                 f"{args.gradient_accumulation_steps} x {args.world_size} process(es)), about "
                 f"{tokens / 1e6:.3g}M tokens{resumed}")
        self.t0, self.start_step = time.perf_counter(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step - self.start_step
        if done == self.timed_steps and state.max_steps > state.global_step:
            per_step = (time.perf_counter() - self.t0) / done
            left = per_step * (state.max_steps - state.global_step)
            self.log(f"[pvlora] {self.name}: {per_step:.2f} s/step over the first {done} steps; "
                     f"about {_duration(left)} to go")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
