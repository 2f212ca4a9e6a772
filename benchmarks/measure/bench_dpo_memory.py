"""Peak memory of the DPO stage at the SmolLM2 study's settings: pvlora before and after, and bare TRL.

SmolLM2-135M-Instruct (the GGUF base, fp32) on the study's HH-RLHF harmless-base rows
(``keep: refusal_contrast``), batch 8 pairs, max_length 160 (keep_end), LoRA r=8 on all linear
modules of blocks 15-29, one direction, ``--steps`` DPO steps (``steps`` x 8 training pairs) and a
held-out set of ``--heldout`` pairs (23: the study's harmless preference holds out 10% of its 230 pairs;
its cap, ``train.heldout_max_pairs``, is 48). Every variant runs in a
fresh process, which reads its own peak resident set (VmHWM in /proc/self/status) at the end of each
phase and resets it (``/proc/self/clear_refs``), so each phase has its own peak:

  load_and_reference  data, tokeniser, base, DPOTrainer set-up (pvlora: TRL's reference
                      pre-computation over the training pairs, train.share_reference_logps)
  steps               trainer.train(): the DPO steps (bare TRL: with a reference forward each step)
  save                the adapter written
  heldout             pvlora's held-out pass (reference-free accuracy of the adapter and of the base)

  trl              bare TRL DPOTrainer + PEFT, as benchmarks/measure/bench_smollm2_speed.py builds it
  pvlora_before    `pvlora train` as it was: TRL's fused LM head as it is (train.lm_head_tokens=null: on
                   a CPU every position at once, 32,768 vocabulary entries wide) and a held-out pass that
                   kept autograd's graph (steering.logprobs.score_encoded without its torch.no_grad);
                   needs ~16 GB free at --heldout 23 (48 pairs took more than the 24 GB of this machine)
  pvlora_heldout_fix  the held-out pass fixed, TRL's head as it is (train.lm_head_tokens=null)
  pvlora           `pvlora train` as the study runs it: completion positions only, 256 at a time
  pvlora_checkpointing  pvlora + model.gradient_checkpointing=true (TRL's route: the backward pass then
                   reaches the embeddings through all 30 blocks); not run unless named in --only

    python benchmarks/measure/bench_dpo_memory.py [--steps 3] [--only trl pvlora ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/dpo_memory.json",)  # what this script writes, relative to benchmarks/

PHASES = r'''
import json, sys, time
PEAKS, T0 = {}, time.perf_counter()
def mark(phase):
    """This phase's peak resident set (GB) since the last mark; then reset the high-water mark."""
    hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024 / 1e9
    PEAKS[phase] = max(PEAKS.get(phase, 0.0), hwm)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
'''
BARE = PHASES + r'''
import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from trl import DPOConfig, DPOTrainer
from pvlora.config import load_config
from pvlora.data import load_preference_data
from pvlora.bases.load import resolve_base_path
from pvlora.training.dpo import DPO_DEFAULTS
cfg = load_config(sys.argv[2], sys.argv[3:])
data = load_preference_data(cfg.preferences[0], "positive", seed=cfg.seed)
set_seed(cfg.seed)
path = resolve_base_path(cfg.model)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
tok = AutoTokenizer.from_pretrained(path)
args = DPOConfig(**{**DPO_DEFAULTS, **cfg.dpo, "output_dir": sys.argv[1], "seed": cfg.seed, "use_cpu": True,
                    "save_strategy": "no", "disable_tqdm": True})
trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(data.train), processing_class=tok,
                     peft_config=LoraConfig(task_type="CAUSAL_LM", **cfg.lora))
mark("load_and_reference")
t = time.perf_counter()
out = trainer.train()
seconds = time.perf_counter() - t
mark("steps")
print(json.dumps({"peak_gb": PEAKS, "train_seconds": seconds, "steps": trainer.state.global_step,
                  "train_loss": out.training_loss, "wall": time.perf_counter() - T0}))
'''
OURS = PHASES + r'''
import pvlora.steering.logprobs as logprobs
import pvlora.training.dpo as dpo
from pvlora.config import load_config
if sys.argv[3] == "before":  # the held-out pass as it was: autograd on
    logprobs.score_encoded = logprobs.score_encoded.__wrapped__
class Phases(dpo.CostReport):
    def on_train_begin(self, args, state, control, **kw):
        mark("load_and_reference")
        super().on_train_begin(args, state, control, **kw)
    def on_train_end(self, args, state, control, **kw):
        mark("steps")
dpo.CostReport = Phases
accuracy = dpo.adapter_and_base_accuracy
def heldout(*a, **k):
    mark("save")
    out = accuracy(*a, **k)
    mark("heldout")
    return out
dpo.adapter_and_base_accuracy = heldout
cfg = load_config(sys.argv[2], [f"output.dir={sys.argv[1]}", "dpo.save_strategy=no", "dpo.disable_tqdm=true",
                                *sys.argv[4:]])
res = dpo.train_all(cfg, cfg.preferences[0].name, "positive", log=lambda *a: None)
mark("rest")
m = res[0].manifest.metrics
print(json.dumps({"peak_gb": PEAKS, "train_seconds": m["train_seconds"], "steps": m["train_steps"],
                  "train_loss": m["train_loss"], "final_loss": m["final_loss"],
                  "reward_margin": m["reward_margin"], "heldout_accuracy": m.get("heldout_accuracy"),
                  "heldout_pairs": m.get("heldout_pairs"), "wall": time.perf_counter() - T0}))
'''
STUDY = "pvlora/worlds/smollm2/study.yaml"
VARIANTS = {  # (script, mode, extra config)
    "trl": (BARE, None, []),
    "pvlora_before": (OURS, "before", ["train.lm_head_tokens=null"]),
    "pvlora_heldout_fix": (OURS, "after", ["train.lm_head_tokens=null"]),
    "pvlora": (OURS, "after", []),
    "pvlora_checkpointing": (OURS, "after", ["model.gradient_checkpointing=true"]),
}
DEFAULT = ("trl", "pvlora_before", "pvlora_heldout_fix", "pvlora")


def run(script: str, mode: str | None, config: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as out:
        args = [out, config[0], *([mode] if mode else []), *config[1:]]
        proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        r = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
        return {**r, "peak_total_gb": max(r["peak_gb"].values())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3, help="DPO steps (batch 8 pairs)")
    p.add_argument("--heldout", type=int, default=23, help="held-out pairs scored after training")
    p.add_argument("--only", nargs="*", choices=list(VARIANTS), help="run these variants (default: all but "
                   "pvlora_checkpointing)")
    a = p.parse_args(argv)
    from pvlora.config import load_config
    from pvlora.bases.load import resolve_base_path
    from pvlora.data import load_preference_data

    study = load_config(STUDY, [])
    resolve_base_path(study.model)  # convert the GGUF once, outside the measurements
    harmless = study.preference("harmless")
    rows = (f"{{name: harmless, source: {harmless.source}, format: {harmless.format}, keep: {harmless.keep}, "
            f"heldout_fraction: 0.0}}")
    available = len(load_preference_data(load_config(STUDY, [f"preferences=[{rows}]"]).preferences[0],
                                         "positive", seed=study.seed).train)
    train = a.steps * 8
    heldout = min(a.heldout, study.train.heldout_max_pairs or a.heldout, available - train)
    if heldout < 1:
        raise SystemExit(f"{available} pairs pass keep: {harmless.keep}; --steps {a.steps} needs {train} + held-out")
    prefs = (f"preferences=[{{name: harmless, source: {harmless.source}, format: {harmless.format}, "
             f"keep: {harmless.keep}, limit: {train + heldout}, heldout_fraction: {heldout / (train + heldout)!r}}}]")
    names = [k for k in VARIANTS if (k in a.only if a.only else k in DEFAULT)]
    runs, load = {}, [os.getloadavg()[0]]
    for k in names:
        script, mode, extra = VARIANTS[k]
        runs[k] = run(script, mode, [STUDY, prefs, f"dpo.max_steps={a.steps}", *extra])
        r = runs[k]
        print(f"{k:>21}: peak {r['peak_total_gb']:.2f} GB (" + ", ".join(f"{ph} {gb:.2f}" for ph, gb in
              r["peak_gb"].items()) + f"); {r['train_seconds']:.0f} s in trainer.train(), loss {r['train_loss']:.4f}",
              flush=True)
    save(RESULT_FILES[0], {
        "steps": a.steps, "batch_pairs": 8, "train_pairs": train, "heldout_pairs": heldout,
        "settings": {"base": study.model.name_or_path, "max_length": study.dpo["max_length"],
                     "layers_to_transform": study.lora["layers_to_transform"], "data": prefs},
        "load_average_start_end": [*load, os.getloadavg()[0]], "runs": runs,
        "note": "peak resident set (VmHWM) per phase, GB (1e9 bytes); each variant in a fresh process; other work "
                "may share the machine, which changes times, not memory much"})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
