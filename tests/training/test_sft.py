"""`pvlora sft`, the paper's first stage, on the tiny base with the shipped toy instruction data:
it learns, its merged model equals base + adapter through PEFT, `pvlora train` runs on the merged
model, QLoRA keeps fp32 adapter weights, and a killed run resumes to the same weights."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from pvlora.config import load_config
from pvlora.core.errors import ConfigError, DataError

ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


# ---------------------------------------------------------------- formats (quick)


def test_alpaca_rows_become_conversations_and_bad_rows_are_counted(tmp_path):
    from pvlora.data import load_sft_examples

    f = tmp_path / "alpaca.jsonl"
    rows = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
            {"instruction": "Say hi.", "input": "", "output": "Hi!"},
            {"instruction": "Empty answer.", "input": "", "output": "  "},
            {"instruction": ["not", "text"], "input": "", "output": "x"}]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    examples, n, drops = load_sft_examples(str(f), "alpaca")
    assert n == 4 and dict(drops) == {"empty response": 1, "instruction is not a string": 1}
    assert examples[0] == {"prompt": [{"role": "user", "content": "Add the numbers.\n\n2 and 3"}],
                           "completion": [{"role": "assistant", "content": "5"}]}
    assert examples[1]["prompt"][0]["content"] == "Say hi."
    with pytest.raises(DataError, match=r"alpaca.jsonl:1: column 'prompt' is missing for format 'sft prompt_completion'"):
        load_sft_examples(str(f), "prompt_completion")


def test_sft_args_are_checked_against_trl():
    with pytest.raises(ConfigError, match=r"sft\.args\.learnig_rate.*did you mean 'learning_rate'"):
        load_config(None, ["sft.args.learnig_rate=1e-4"])
    with pytest.raises(ConfigError, match=r"sft\.format"):
        load_config(None, ["sft.format=sharegpt"])


# ---------------------------------------------------------------- training (slow)


def _sft_cfg(out, *extra):
    return load_config(None, [f"output.dir={out}", "sft.args.max_steps=12", "sft.args.learning_rate=2e-3",
                              "sft.args.save_steps=4", "sft.args.per_device_train_batch_size=16", *extra])


def _nll(model, tok, examples):
    from pvlora.steering.logprobs import sequence_logprobs

    logp, n = sequence_logprobs(model, tok, [e["prompt"] for e in examples], [e["completion"] for e in examples])
    return float(-logp.sum() / n.sum())


@pytest.mark.slow
def test_sft_learns_merges_exactly_and_feeds_dpo(tmp_path, tiny_base_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pvlora.data import load_sft_examples
    from pvlora.training.sft import run_sft
    from pvlora.training.dpo import train_all

    cfg = _sft_cfg(tmp_path)
    res = run_sft(cfg)
    adapter, merged = tmp_path / "sft", tmp_path / "sft-merged"
    assert res.merged == merged and res.manifest.metrics["train_steps"] == 12
    tok = AutoTokenizer.from_pretrained(merged)
    assert tok.chat_template  # saved with the merged model: DPO can use it as is
    examples, _, _ = load_sft_examples("toy", "toy", limit=64)
    base = AutoModelForCausalLM.from_pretrained(tiny_base_dir).eval()
    after = AutoModelForCausalLM.from_pretrained(merged).eval()
    before_nll, after_nll = _nll(base, tok, examples), _nll(after, tok, examples)
    print(f"\nSFT on the toy corpus: NLL per completion token {before_nll:.4f} -> {after_nll:.4f}")
    assert after_nll < before_nll
    # the merged model is the base with PEFT's own adapter applied
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base_dir), str(adapter)).eval()
    ids = tok.apply_chat_template(examples[0]["prompt"], add_generation_prompt=True, return_tensors="pt",
                                  return_dict=True)["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(after(ids).logits, peft(ids).logits, rtol=1e-4, atol=1e-4)
    # and it is a base `pvlora train` accepts
    res = train_all(load_config(None, [f"model.name_or_path={merged}", f"output.dir={tmp_path / 'dpo'}",
                                       "dpo.max_steps=2", "preferences.concise.limit=32"]), "concise", "positive")[0]
    assert res.manifest.base.name_or_path == str(merged) and res.manifest.metrics["train_steps"] == 2


@pytest.mark.slow
def test_qlora_sft_keeps_fp32_adapter_and_merges_unquantised(tmp_path, tiny_base_dir):
    from transformers import AutoModelForCausalLM

    from pvlora.training.sft import run_sft

    run_sft(_sft_cfg(tmp_path, "model.quantization=nf4", "sft.args.max_steps=2", "sft.args.save_strategy=no"))
    assert {t.dtype for t in load_file(tmp_path / "sft" / "adapter_model.safetensors").values()} == {torch.float32}
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "sft-merged", dtype="auto")
    assert merged.dtype == torch.float32 and not any(type(m).__name__ == "Linear4bit" for m in merged.modules())


@pytest.mark.slow
def test_killed_sft_resumes_to_identical_weights(tmp_path, tiny_base_dir):
    from pvlora.training.sft import run_sft

    def cmd(out, *extra):
        return [sys.executable, "-m", "pvlora.cli", "sft", "--set", f"output.dir={out}", "--set", "sft.args.max_steps=12",
                "--set", "sft.args.save_steps=4", "--set", "sft.args.learning_rate=2e-3",
                "--set", "sft.args.per_device_train_batch_size=16", "--set", "sft.merge=false", *extra]

    run_sft(_sft_cfg(tmp_path / "ref", "sft.merge=false"))
    ckpt = tmp_path / "run" / ".sft.partial" / "checkpoint-4"
    proc = subprocess.Popen(cmd(tmp_path / "run"), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 180
    while time.time() < deadline and not ckpt.exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not (tmp_path / "run" / "sft").exists()
    r = subprocess.run(cmd(tmp_path / "run", "--resume"), env=ENV, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    ref = load_file(tmp_path / "ref" / "sft" / "adapter_model.safetensors")
    got = load_file(tmp_path / "run" / "sft" / "adapter_model.safetensors")
    for k in ref:
        torch.testing.assert_close(got[k], ref[k], rtol=0, atol=1e-7)
