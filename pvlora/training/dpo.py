"""Train one DPO LoRA adapter per (preference, direction) with TRL's DPOTrainer.

The reference policy is the base with the adapter disabled (TRL does this when given a
``peft_config``), so only one copy of the base is in memory. Both directions start from the same
base and the same LoRA initialisation (same seed). Checkpoints go to a hidden ``.NAME.partial``
directory beside the output, which ``--resume`` continues from (from the last *complete*
checkpoint: one cut short by a kill is ignored); the finished adapter is written to a temporary
directory and renamed into place before any post-training pass, so an output directory is always
complete and a crash in the held-out pass loses nothing. Under ``accelerate launch`` every process
trains, and only the main process writes.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pvlora.config import ExperimentConfig
from pvlora.core.errors import ArtifactError, ConfigError
from pvlora.artifacts.manifest import AdapterManifest, Manifest
from pvlora.bases.load import ResolvedBase, check_chat_template, load_model, load_tokenizer, resolve_base
from pvlora.training.runs import (  # noqa: F401  (partial_dir, cast_trainable_to_fp32, TrainResult: part of this module's API)
    CostReport,
    TrainResult,
    cast_trainable_to_fp32,
    cleanup_unstarted,
    is_main_process,
    join_process_group,
    multi_process_launch,
    partial_dir,
    prepare_partial,
    save_run,
    silent,
    trainer_kwargs,
    training_settings,
    wait_for_everyone,
)
from pvlora.core.logs import quieted
from pvlora.core.memory import release_memory
from pvlora.core.seeded import heldout_sample
from pvlora.data import load_preference_data
from pvlora.steering.logprobs import adapter_and_base_accuracy

logger = logging.getLogger(__name__)
DIRECTIONS = ("positive", "negative")
DPO_DEFAULTS: dict[str, Any] = {
    "report_to": [], "save_strategy": "steps", "save_steps": 100, "logging_steps": 10,
    "dataloader_num_workers": 0, "disable_tqdm": False,
    # every LoRA weight takes part in each forward pass; True costs an extra graph walk per step
    "ddp_find_unused_parameters": False,
}


def adapter_dir(cfg: ExperimentConfig, preference: str, direction: str, out: str | Path | None = None) -> Path:
    return Path(out or Path(cfg.output.dir) / "adapters") / f"{preference}-{direction}"


def plan(cfg: ExperimentConfig, preference: str | None, direction: str) -> list[tuple[str, str]]:
    prefs = [cfg.preference(preference).name] if preference else [p.name for p in cfg.preferences]
    if not prefs:
        raise ConfigError("the config lists no preferences to train")
    dirs = DIRECTIONS if direction == "both" else (direction,)
    for d in dirs:
        if d not in DIRECTIONS:
            raise ConfigError(f"direction must be positive, negative or both, got {d!r}")
    return [(p, d) for p in prefs for d in dirs]


def check_targets(cfg: ExperimentConfig, jobs: list[tuple[str, str]], out, resume: bool, overwrite: bool,
                  skip_finished: bool = False) -> None:
    """All refusals happen before any training starts."""
    for pref, direction in jobs:
        target = adapter_dir(cfg, pref, direction, out)
        part = partial_dir(target)
        if target.exists() and not overwrite and not skip_finished:
            raise ArtifactError(f"{target} already exists; pass overwrite=True to retrain it")
        if part.exists() and not resume and not overwrite:
            raise ArtifactError(
                f"{part} holds an unfinished run of {pref}-{direction}; pass resume=True to continue it "
                f"or overwrite=True to start over"
            )


def train_all(cfg: ExperimentConfig, preference: str | None = None, direction: str = "both", out=None,
              resume: bool = False, overwrite: bool = False, skip_finished: bool = False,
              log=logger.info, command: str | None = None) -> list[TrainResult]:
    cfg.check()  # settings changed after loading (a NaN β, a zero batch) are refused before anything starts
    jobs = plan(cfg, preference, direction)
    skip_finished = skip_finished or resume  # --resume: finished adapters are kept, the rest continue
    join_process_group()
    check_targets(cfg, jobs, out, resume, overwrite, skip_finished)
    wait_for_everyone()  # every process has checked before the main one creates anything
    if not is_main_process():
        log = silent
    if cfg.train.process_per_preference and not multi_process_launch():
        return train_in_children(cfg, jobs, direction, out, resume, overwrite, skip_finished, command)
    results = []
    # Base log-probs of held-out texts, shared by the two directions of a preference (the negative
    # held-out set is the positive one with chosen and rejected swapped): the base is scored once.
    base_cache: dict[tuple[tuple[int, ...], int], float] = {}
    # The same for the reference log-probs of the training pairs (see share_reference).
    ref_store: dict[str, tuple[list[int], list[float], list[float]]] | None = (
        {} if cfg.train.share_reference_logps else None)
    base: ResolvedBase | None = None  # resolved when the first adapter is trained, not for finished runs
    for pref, d in jobs:
        target = adapter_dir(cfg, pref, d, out)
        if skip_finished and target.exists() and not overwrite:
            log(f"[pvlora] {pref}-{d}: already trained ({target}); skipped")
            results.append(TrainResult(target, Manifest.read(target) or AdapterManifest()))
            continue
        with cleanup_unstarted(partial_dir(target)):
            base = base or resolve_base(cfg.model)  # once, for every adapter of the run
            res = train_one(cfg, pref, d, target, resume=resume, base_cache=base_cache, log=log, base=base,
                            ref_store=ref_store, command=command)
        m = res.manifest.metrics
        acc = (f", held-out accuracy {m['heldout_accuracy']:.3f} (base {m['heldout_accuracy_base']:.3f})"
               if "heldout_accuracy" in m else "")
        log(f"[pvlora] {pref}-{d}: {m['train_steps']} steps in {m['train_seconds']:.1f}s, "
            f"loss {m['train_loss']:.4f}{acc} -> {target}")
        results.append(res)
    return results


def train_in_children(cfg: ExperimentConfig, jobs: list[tuple[str, str]], direction: str, out, resume: bool,
                      overwrite: bool, skip_finished: bool, command: str | None) -> list[TrainResult]:
    """:func:`train_all`, each preference in its own child process (``train.process_per_preference``);
    the results are read back from the finished adapters' manifests."""
    from pvlora.training.isolate import run_in_child, without_isolation

    child_cfg = without_isolation(cfg)
    results = []
    for pref in dict.fromkeys(p for p, _ in jobs):
        run_in_child(train_all, child_cfg, pref, direction, out, resume=resume, overwrite=overwrite,
                     skip_finished=skip_finished, command=command)
        for p, d in jobs:
            if p == pref:
                target = adapter_dir(cfg, p, d, out)
                results.append(TrainResult(target, Manifest.read(target) or AdapterManifest()))
    return results


def _final(history: list[dict[str, Any]], key: str) -> float | None:
    for entry in reversed(history):
        if key in entry:
            return float(entry[key])
    return None


def dpo_tokens(dataset, max_length: int | None) -> int:
    """Tokens one pass over a tokenised DPO dataset feeds the model (chosen and rejected sequences)."""
    cap = max_length or 10**9
    return sum(min(cap, len(p) + len(c)) + min(cap, len(p) + len(r))
               for p, c, r in zip(dataset["prompt_ids"], dataset["chosen_ids"], dataset["rejected_ids"]))


def _row_keys(dataset, swap: bool = False) -> list[int]:
    """One key per tokenised pair; ``swap`` gives the keys of the same pairs with chosen and rejected swapped."""
    cols = ("prompt_ids", "rejected_ids", "chosen_ids") if swap else ("prompt_ids", "chosen_ids", "rejected_ids")
    return [hash((tuple(p), tuple(c), tuple(r))) for p, c, r in zip(*(dataset[k] for k in cols))]


def share_reference(trainer, preference: str, store: dict, stored) -> None:
    """Reuse reference log-probs across the two directions of a preference.

    D- is D+ with chosen and rejected swapped, and the reference (the base, adapter disabled) scores
    a text the same whichever label it carries: the negative adapter's ref_chosen_logps are the
    positive run's ref_rejected_logps. The first direction runs TRL's precompute pass; the second
    gets the swapped columns and TRL's precompute flag, so its steps skip the reference forward
    (a quarter of a DPO step: forward, backward, reference forward). Rows are matched by their
    token ids; if anything differs, the second run computes its own reference as usual."""
    ds = trainer.train_dataset
    if stored is None:
        if getattr(trainer, "precompute_ref_logps", False) and "ref_chosen_logps" in ds.column_names:
            store[preference] = (_row_keys(ds, swap=True), list(ds["ref_rejected_logps"]), list(ds["ref_chosen_logps"]))
    elif stored[0] == _row_keys(ds):
        trainer.train_dataset = ds.add_column("ref_chosen_logps", stored[1]).add_column("ref_rejected_logps", stored[2])
        trainer.precompute_ref_logps = True  # TRL's compute_loss then reads the reference from the batch


def train_one(cfg: ExperimentConfig, preference: str, direction: str, target: Path, resume: bool = False,
              base_cache: dict | None = None, log=logger.info, ref_store: dict | None = None,
              command: str | None = None, base: ResolvedBase | None = None) -> TrainResult:
    """Train one adapter into ``target``; ``base``: ``cfg.model`` resolved, when the caller has it."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    from pvlora.training.lm_head import CompactDPOTrainer  # imports trl

    data = load_preference_data(cfg.preference(preference), direction, seed=cfg.seed)
    base = base or resolve_base(cfg.model)
    tok = load_tokenizer(base)
    check_chat_template(tok, bool(data.train) and isinstance(data.train[0]["prompt"], list), cfg.model,
                        f"the {preference} data ({data.source})")
    part = partial_dir(target)
    dpo_kwargs = trainer_kwargs(DPO_DEFAULTS, {**cfg.dpo, **cfg.preference(preference).dpo}, part, cfg)
    data_fp = {k: v for k, v in data.fingerprint().items() if k != "source"} | {"source": data.source}
    ckpt = prepare_partial(part, resume, training_settings(cfg, dpo_kwargs, data_fp))

    set_seed(cfg.seed)  # the LoRA init below draws from this seed: identical for both directions
    model = load_model(base)
    lora_kwargs = {"task_type": "CAUSAL_LM", **cfg.lora}
    peft_config = LoraConfig(**lora_kwargs)
    stored = ref_store.get(preference) if ref_store is not None else None
    if ref_store is not None and stored is None:
        dpo_kwargs.setdefault("precompute_ref_log_probs", True)  # computed once here, reused by the other direction
    args = DPOConfig(**dpo_kwargs)
    # completion positions only through the LM head, a bounded number at a time (see training/lm_head.py)
    compact = {"token_chunk": cfg.train.lm_head_tokens} if cfg.train.lm_head_tokens else None
    with quieted("transformers"):  # its set-up warnings about our own arguments; the caller's level after
        trainer = (CompactDPOTrainer if compact else DPOTrainer)(
            model=model, args=args, train_dataset=Dataset.from_list(data.train), processing_class=tok,
            peft_config=peft_config, **(compact or {}),
        )
    if ref_store is not None:
        share_reference(trainer, preference, ref_store, stored)
    cast_trainable_to_fp32(trainer.model)  # before train() builds the optimiser
    trainer.add_callback(CostReport(trainer, f"{preference}-{direction}", log, dpo_tokens))
    t0 = time.perf_counter()
    with quieted("transformers"):
        result = trainer.train(resume_from_checkpoint=str(ckpt) if ckpt else None)
    seconds = time.perf_counter() - t0
    peft_model = trainer.model

    metrics: dict[str, Any] = {
        "train_loss": result.training_loss, "train_steps": trainer.state.global_step,
        "max_steps": trainer.state.max_steps, "train_seconds": seconds,
        "reward_accuracy": _final(trainer.state.log_history, "rewards/accuracies"),
        "reward_margin": _final(trainer.state.log_history, "rewards/margins"),
        "final_loss": _final(trainer.state.log_history, "loss"),
    }
    manifest = AdapterManifest(
        preference=preference, direction=direction, base=base.fingerprint,
        data=data.fingerprint(), seed=cfg.seed, metrics=metrics, command=command,
        training={"lora": {k: v for k, v in peft_config.to_dict().items() if k in lora_kwargs or k in ("r", "lora_alpha")},
                  "dpo": {k: v for k, v in dpo_kwargs.items() if k != "output_dir"},
                  "quantization": cfg.model.quantization, "trainer": "trl.DPOTrainer",
                  "chat_template": cfg.model.chat_template},
    )
    # Save first: whatever happens in the held-out pass below, the trained adapter is on disk.
    if is_main_process():
        save_run(target, part, trainer, tok, cfg, manifest)
        heldout = heldout_sample(data.heldout, cfg.train.heldout_max_pairs, cfg.seed)
        if heldout:
            acc = adapter_and_base_accuracy(
                peft_model, tok, heldout, cfg.train.heldout_batch_size, base_cache,
                max_length=int(args.max_length or 512), batch_tokens=cfg.train.heldout_batch_tokens,
                chunk_tokens=cfg.train.heldout_chunk_tokens)
            metrics.update(heldout_accuracy=acc["accuracy"], heldout_margin=acc["margin"],
                           heldout_accuracy_base=acc["base_accuracy"], heldout_pairs=acc["n"],
                           heldout_pairs_available=len(data.heldout))
            manifest.write(target)  # atomic: replaces the first one whole
    wait_for_everyone()
    del trainer, model, peft_model
    release_memory()
    return TrainResult(target, manifest)

