"""Training as a real QLoRA user runs it, on the tiny base on a CPU: adapters that move at DPO's
learning rate on a 4-bit base, nothing lost to a crash after training or to a kill, several
processes under `accelerate launch`, and the run's cost said up front."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pvlora.artifacts.peft_read import read_adapter
from pvlora.config import load_config
from pvlora.training.dpo import adapter_dir, cast_trainable_to_fp32, partial_dir, train_all
from pvlora.training.runs import checkpoint_complete

pytestmark = pytest.mark.slow
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def _run_lr_1e6(tmp_path, monkeypatch, quantization, cast=True):
    """Three DPO steps at lr 1e-6; returns (initial, final) LoRA weights as fp32 and the trainable dtypes."""
    import pvlora.training.dpo as T

    seen = {}

    def spy(model):
        if cast:
            cast_trainable_to_fp32(model)
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        seen["dtypes"] = {p.dtype for p in trainable.values()}
        # PEFT's parameter names carry the adapter name; the saved file does not
        seen["init"] = {n.replace(".default.", "."): p.detach().float().clone() for n, p in trainable.items()}

    monkeypatch.setattr(T, "cast_trainable_to_fp32", spy)
    cfg = load_config(None, [f"output.dir={tmp_path / quantization / str(cast)}", f"model.quantization={quantization}",
                             "dpo.learning_rate=1e-6", "dpo.max_steps=3", "dpo.per_device_train_batch_size=8",
                             "dpo.save_strategy=no", "preferences.harmless.limit=48", "train.heldout_max_pairs=0"])
    res = train_all(cfg, "harmless", "positive")[0]
    final = {k: v.float() for k, v in load_file(res.path / "adapter_model.safetensors").items()}
    assert set(final) == set(seen["init"])
    return seen, final, res


def _movement(init, final):
    changed = sum(int((final[k] != init[k]).sum()) for k in final)
    total = sum(final[k].numel() for k in final)
    changed_a = sum(int((final[k] != init[k]).sum()) for k in final if "lora_A" in k)
    total_a = sum(final[k].numel() for k in final if "lora_A" in k)
    norm = sum(float(((final[k] - init[k]) ** 2).sum()) for k in final) ** 0.5
    return changed / total, changed_a / total_a, norm


def test_qlora_adapter_moves_like_fp32_at_paper_lr(tmp_path, monkeypatch, tiny_base_dir):
    ref_seen, ref_final, _ = _run_lr_1e6(tmp_path, monkeypatch, "none")
    q_seen, q_final, res = _run_lr_1e6(tmp_path, monkeypatch, "nf4")
    assert ref_seen["dtypes"] == q_seen["dtypes"] == {torch.float32}
    ref, q = _movement(ref_seen["init"], ref_final), _movement(q_seen["init"], q_final)
    print(f"\nchanged fraction / changed fraction of A / update norm: fp32 base {ref}, 4-bit base {q}")
    assert ref[0] > 0.9 and ref[2] > 0
    assert q[0] == pytest.approx(ref[0], rel=0.10) and q[1] == pytest.approx(ref[1], rel=0.10)
    assert q[2] == pytest.approx(ref[2], rel=0.10)
    # the chat template the adapter was trained with is saved beside it
    assert (res.path / "chat_template.jinja").read_text().startswith("{% for m in messages %}")

    # TRL's own cast (bf16 LoRA weights on a 4-bit base) loses A's updates: what the fix prevents
    bf_seen, bf_final, _ = _run_lr_1e6(tmp_path, monkeypatch, "nf4", cast=False)
    assert bf_seen["dtypes"] == {torch.bfloat16}
    bf = _movement(bf_seen["init"], bf_final)
    print(f"without the fp32 cast: {bf}")
    assert bf[1] < 0.5 * ref[1]


def test_crash_in_heldout_pass_keeps_the_trained_adapter(tmp_path, monkeypatch, tiny_base_dir):
    import pvlora.training.dpo as T

    def oom(*a, **k):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(T, "adapter_and_base_accuracy", oom)  # the held-out pass as train_one calls it
    lines = []
    cfg = load_config(None, [f"output.dir={tmp_path}", "dpo.max_steps=4", "preferences.concise.limit=64"])
    with pytest.raises(RuntimeError, match="out of memory"):
        train_all(cfg, "concise", "positive", log=lines.append)
    target = adapter_dir(cfg, "concise", "positive")
    a = read_adapter(target)  # complete, hash-checked
    assert a.factors and a.manifest.metrics["train_steps"] == 4 and "heldout_accuracy" not in a.manifest.metrics
    assert not partial_dir(target).exists()
    # the cost was reported before training: pairs, steps, tokens, then a time estimate
    assert any("64 examples, 4 optimiser steps" in ln and "M tokens" in ln for ln in lines), lines
    assert any("s/step over the first 3 steps" in ln for ln in lines), lines


def _cmd(out, *extra):
    return [sys.executable, "-m", "pvlora.cli", "train", "--preference", "concise", "--direction", "both",
            "--set", f"output.dir={out}", "--set", "dpo.max_steps=12", "--set", "dpo.save_steps=3",
            "--set", "dpo.save_total_limit=3", "--set", "dpo.per_device_train_batch_size=4",
            "--set", "train.heldout_max_pairs=0", *extra]


def _run_until(cmd, path: Path, timeout=180, ready=Path.exists):
    """Start ``cmd`` and SIGKILL it as soon as ``ready(path)``."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and not ready(path) and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ready(path), f"{path} never appeared"


def test_killed_two_direction_run_resumes_to_identical_weights(tmp_path, tiny_base_dir, capsys):
    from pvlora.cli import main

    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    subprocess.run(_cmd(ref_dir), env=ENV, check=True, capture_output=True)
    cfg = load_config(None, [f"output.dir={run_dir}"])
    pos, neg = adapter_dir(cfg, "concise", "positive"), adapter_dir(cfg, "concise", "negative")

    # kill 1: during the positive adapter, once its first checkpoint is complete (a kill mid-write
    # leaves nothing to resume from, by design)
    _run_until(_cmd(run_dir), partial_dir(pos) / "checkpoint-3", ready=checkpoint_complete)
    assert not pos.exists()
    # without --resume the user is told what to do, and nothing is deleted
    capsys.readouterr()
    assert main(_cmd(run_dir)[3:]) == 2 and "--resume" in capsys.readouterr().err
    assert (partial_dir(pos) / "checkpoint-3").exists()
    # a resume under changed training settings is refused, naming them; the checkpoint is kept
    assert main(_cmd(run_dir, "--resume", "--set", "dpo.learning_rate=0.001", "--set", "seed=3")[3:]) == 2
    err = capsys.readouterr().err
    assert "training settings changed" in err and "trainer.learning_rate" in err and "seed (0 -> 3)" in err, err
    assert (partial_dir(pos) / "checkpoint-3").exists()
    # kill 2: resumed, then killed during the negative adapter (the positive one is finished)
    _run_until(_cmd(run_dir, "--resume"), partial_dir(neg) / "checkpoint-6")
    assert (pos / "pvlora.json").exists()
    # a kill in the middle of writing a checkpoint: everything but trainer_state.json (written last)
    newest = max(partial_dir(neg).glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    torn = partial_dir(neg) / f"checkpoint-{int(newest.name.split('-')[1]) + 3}"
    shutil.copytree(newest, torn)
    (torn / "trainer_state.json").write_text('{"global_step": ')  # cut off mid-write

    r = subprocess.run(_cmd(run_dir, "--resume"), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "concise-positive: already trained" in r.stdout and "resuming at step" in r.stdout
    for d in (pos, neg):
        ref = load_file(adapter_dir(load_config(None, [f"output.dir={ref_dir}"]), "concise", d.name.split("-")[1])
                        / "adapter_model.safetensors")
        got = load_file(d / "adapter_model.safetensors")
        assert ref.keys() == got.keys()
        for k in ref:
            torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-7)
        assert json.loads((d / "pvlora.json").read_text())["metrics"]["train_steps"] == 12
        assert not partial_dir(d).exists()


def test_accelerate_launch_with_two_processes_writes_once(tmp_path, tiny_base_dir):
    """The shipped DDP config, two CPU processes (gloo): both train, only the main process writes."""
    repo = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(repo / "configs/accelerate/ddp.yaml"),
           "--mixed_precision", "no", "--main_process_port", "29533", "-m", "pvlora.cli", "train",
           "--preference", "concise", "--set", f"output.dir={tmp_path}", "--set", "dpo.max_steps=3",
           "--set", "dpo.save_steps=2", "--set", "train.heldout_max_pairs=32"]
    r = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=420)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "x 2 process(es)" in r.stdout
    cfg = load_config(None, [f"output.dir={tmp_path}"])
    for d in ("positive", "negative"):
        target = adapter_dir(cfg, "concise", d)
        assert r.stdout.count(f"concise-{d}: 3 steps") == 1  # one summary line: the main process's
        m = read_adapter(target).manifest
        assert m.metrics["train_steps"] == 3 and m.metrics["heldout_pairs"] == 32
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir()) == ["concise-negative", "concise-positive"]


def test_reference_logps_computed_once_and_shared_swapped_by_both_directions(tmp_path, monkeypatch, tiny_base_dir):
    from trl import DPOTrainer

    import pvlora.training.dpo as T

    passes, seen = [], {}
    real_pre, real_share = DPOTrainer._precompute_ref_logps, T.share_reference

    def count(self, *a, **k):
        passes.append(1)
        return real_pre(self, *a, **k)

    def spy(trainer, preference, store, stored):
        real_share(trainer, preference, store, stored)
        ds = trainer.train_dataset
        seen[trainer.args.output_dir] = (trainer.precompute_ref_logps, list(ds["ref_chosen_logps"]),
                                         list(ds["ref_rejected_logps"]))

    monkeypatch.setattr(DPOTrainer, "_precompute_ref_logps", count)
    monkeypatch.setattr(T, "share_reference", spy)
    both = load_config(None, [f"output.dir={tmp_path / 'both'}", "dpo.max_steps=2", "train.heldout_max_pairs=0",
                              "train.share_reference_logps=true"])
    train_all(both, "concise")
    assert len(passes) == 1  # one reference pass for two adapters
    alone = load_config(None, [f"output.dir={tmp_path / 'alone'}", "dpo.max_steps=2", "train.heldout_max_pairs=0",
                               "train.share_reference_logps=true"])
    train_all(alone, "concise", "negative")  # the negative adapter computing its own reference
    assert len(passes) == 2
    shared = seen[str(partial_dir(adapter_dir(both, "concise", "negative")))]
    own = seen[str(partial_dir(adapter_dir(alone, "concise", "negative")))]
    assert shared[0] and own[0]
    torch.testing.assert_close(torch.tensor(shared[1]), torch.tensor(own[1]), rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(torch.tensor(shared[2]), torch.tensor(own[2]), rtol=1e-5, atol=1e-4)
