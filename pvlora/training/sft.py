"""The paper's first stage: supervised fine-tuning of the base (on Alpaca in the paper) before DPO.

TRL's SFTTrainer trains a LoRA (or, with ``model.quantization: nf4``, QLoRA) adapter with the
config's ``lora:`` block; the run lives in a hidden ``.NAME.partial`` directory that ``--resume``
continues from, and the finished adapter is renamed into place atomically. With ``sft.merge`` (the
default) the adapter is also merged into unquantised base weights, layer by layer, and written as
``OUT-merged``, a full model with its tokenizer and chat template: set ``model.name_or_path`` of
``pvlora train`` to it.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pvlora.core.logs import quieted
from pvlora.training import runs
from pvlora.artifacts.peft_read import read_adapter
from pvlora.artifacts.atomic import atomic_dir
from pvlora.config import ExperimentConfig
from pvlora.core.errors import ArtifactError
from pvlora.artifacts.manifest import AdapterManifest
from pvlora.bases.load import ResolvedBase, check_chat_template, load_model, load_tokenizer, resolve_base
from pvlora.data import load_sft_examples
from pvlora.vectors.compose import merge_into_base

logger = logging.getLogger(__name__)
SFT_DEFAULTS: dict[str, Any] = {
    "report_to": [], "save_strategy": "steps", "save_steps": 100, "logging_steps": 10,
    "dataloader_num_workers": 0, "disable_tqdm": False, "ddp_find_unused_parameters": False,
    "num_train_epochs": 1, "learning_rate": 2e-4, "max_length": 512,
}


def sft_dirs(cfg: ExperimentConfig, out: str | Path | None = None) -> tuple[Path, Path]:
    """(adapter directory, merged-model directory)."""
    target = Path(out) if out else Path(cfg.output.dir) / "sft"
    return target, target.parent / f"{target.name}-merged"


def sft_tokens(dataset, max_length: int | None) -> int:
    cap = max_length or 10**9
    return sum(min(cap, len(ids)) for ids in dataset["input_ids"])


def run_sft(cfg: ExperimentConfig, out: str | Path | None = None, resume: bool = False, overwrite: bool = False,
            log=logger.info, command: str | None = None) -> runs.TrainResult:
    """Train (or, with ``resume``, finish) the SFT adapter and, with ``cfg.sft.merge``, the merged
    model. Returns the adapter's directory and manifest, and the merged model's directory (``merged``)."""
    cfg.check()  # settings changed after loading are refused before anything starts
    target, merged = sft_dirs(cfg, out)
    part = runs.partial_dir(target)
    runs.join_process_group()
    for path in (target, merged if cfg.sft.merge else None):
        if path is not None and path.exists() and not overwrite and not resume:
            raise ArtifactError(f"{path} already exists; pass overwrite=True to redo the SFT stage")
    if part.exists() and not resume and not overwrite:
        raise ArtifactError(f"{part} holds an unfinished SFT run; pass resume=True to continue it or overwrite=True "
                            "to start over")
    runs.wait_for_everyone()
    if target.exists() and not overwrite:
        log(f"[pvlora] sft: adapter already trained ({target}); skipped")
        manifest = read_adapter(target).manifest or AdapterManifest()
        base = None
    else:
        base = resolve_base(cfg.model)  # once, for training and merging
        with runs.cleanup_unstarted(part):
            manifest = _train(cfg, base, target, part, resume, log, command)
    if cfg.sft.merge and runs.is_main_process() and (overwrite or not merged.exists()):
        _merge(cfg, base or resolve_base(cfg.model), target, merged)
        log(f"[pvlora] sft: merged model -> {merged} (use it as model.name_or_path)")
    runs.wait_for_everyone()
    return runs.TrainResult(target, manifest, merged if cfg.sft.merge else None)


def _train(cfg: ExperimentConfig, base: ResolvedBase, target: Path, part: Path, resume: bool, log,
           command: str | None = None) -> AdapterManifest:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    s = cfg.sft
    examples, rows, drops = load_sft_examples(s.source, s.format, s.split, s.subset, s.limit, cfg.seed)
    tok = load_tokenizer(base)
    check_chat_template(tok, True, cfg.model, f"the SFT data ({s.source})")
    sft_kwargs = runs.trainer_kwargs(SFT_DEFAULTS, s.args, part, cfg)
    ckpt = runs.prepare_partial(part, resume, runs.training_settings(
        cfg, sft_kwargs, {"source": s.source, "format": s.format, "split": s.split, "subset": s.subset,
                          "limit": s.limit, "examples": len(examples)}))

    set_seed(cfg.seed)
    model = load_model(base)
    lora_kwargs = {"task_type": "CAUSAL_LM", **cfg.lora}
    with quieted("transformers"):  # its set-up warnings about our own arguments; the caller's level after
        trainer = SFTTrainer(model=model, args=SFTConfig(**sft_kwargs), train_dataset=Dataset.from_list(examples),
                             processing_class=tok, peft_config=LoraConfig(**lora_kwargs))
    runs.cast_trainable_to_fp32(trainer.model)  # see runs.cast_trainable_to_fp32: bf16 LoRA weights stall
    trainer.add_callback(runs.CostReport(trainer, "sft", log, sft_tokens))
    t0 = time.perf_counter()
    with quieted("transformers"):
        result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    manifest = AdapterManifest(
        preference="sft", stage="sft", base=base.fingerprint, seed=cfg.seed,
        data={"source": s.source, "format": s.format, "rows_read": rows, "train": len(examples),
              "dropped": dict(drops)},
        training={"lora": lora_kwargs, "sft": {k: v for k, v in sft_kwargs.items() if k != "output_dir"},
                  "quantization": cfg.model.quantization, "trainer": "trl.SFTTrainer",
                  "chat_template": cfg.model.chat_template},
        metrics={"train_loss": result.training_loss, "train_steps": trainer.state.global_step,
                 "max_steps": trainer.state.max_steps, "train_seconds": time.perf_counter() - t0},
        command=command,
    )
    if runs.is_main_process():
        runs.save_run(target, part, trainer, tok, cfg, manifest)
        m = manifest.metrics
        log(f"[pvlora] sft: {m['train_steps']} steps in {m['train_seconds']:.1f}s, loss {m['train_loss']:.4f} -> {target}")
    runs.wait_for_everyone()
    return manifest


def _merge(cfg: ExperimentConfig, base: ResolvedBase, adapter: Path, merged: Path) -> None:
    """Merge the SFT adapter into unquantised base weights (see compose.merge_into_base) and save
    it with the tokenizer the adapter was trained with (chat template included)."""
    a = read_adapter(adapter)
    tok = load_tokenizer(base)
    with atomic_dir(merged, overwrite=True) as tmp:
        dtype = merge_into_base(tmp, base, a.factors, cfg.sft.merge_dtype, tok=tok)
        (tmp / "pvlora-sft.json").write_text(json.dumps(
            {"base": a.base_fingerprint.to_dict() if a.base_fingerprint else None, "sft_adapter": adapter.name,
             "dtype": dtype, "adapter_weights_sha256": a.manifest.weights_sha256 if a.manifest else None},
            indent=2) + "\n")
