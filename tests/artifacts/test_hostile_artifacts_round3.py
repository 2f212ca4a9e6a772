"""Third round of hostile artifacts and outputs (issue 30): an output inside an input, regexes that
never finish, keys PEFT would drop, modules or shapes the base lacks, ranks past a module's size,
broken links, stale temporaries and locks, SIGTERM mid-write, and a Hub cache ref that points out of
the cache. Each is one clear error (or the right result), and nothing is left behind."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import pvlora
from pvlora.artifacts.manifest import VectorManifest, weight_hashes
from pvlora.artifacts.peft_read import read_adapter
from pvlora.cli import main
from pvlora.core.errors import ArtifactError, EtaError
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter, one_line_error

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "([a-z_.0-9]+)+X"  # exponential backtracking on any module name



@pytest.fixture(scope="module")
def src(random_base_dir, tmp_path_factory):
    """pos / neg adapters (q_proj: 32×32, k_proj: 16×32) and their vector."""
    d = tmp_path_factory.mktemp("round3")
    for name, seed in (("pos", 51), ("neg", 52)):
        make_adapter(random_base_dir, d / name, seed, r=12, lora_alpha=12, target_modules=["q_proj", "k_proj"])
    extract_vector(d / "pos", d / "neg", d / "vec", preference="harmless")
    return d


def copy(path, tmp_path, name=None):
    out = tmp_path / (name or Path(path).name)
    shutil.copytree(path, out, symlinks=True)
    return out


def listing(path):
    return sorted(p.name for p in Path(path).iterdir())


def edit_json(path, fn):
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data))


def rehash(d):
    if (d / "pvlora.json").exists():
        edit_json(d / "pvlora.json", lambda m: m.update(weights_sha256=weight_hashes(d)))


def edit_weights(d, fn):
    save_file(fn(load_file(d / "adapter_model.safetensors")), d / "adapter_model.safetensors")
    rehash(d)


def snapshot(d):
    return {p.name: p.read_bytes() for p in Path(d).iterdir() if p.is_file()}


# ---------------------------------------------------------------- data loss: an output inside an input


@pytest.mark.parametrize("command", ["extract", "compose"])
def test_an_output_inside_an_input_directory_is_refused(command, src, random_base_dir, tmp_path, capsys):
    d = copy(src / ("pos" if command == "extract" else "vec"), tmp_path, "input")
    before = snapshot(d)
    out = d / "adapter_model.safetensors"
    argv = (["extract", "--positive", str(d), "--negative", str(src / "neg")] if command == "extract" else
            ["compose", "--base", str(random_base_dir), "--vector", f"{d}=1"])
    assert main([*argv, "--out", str(out), "--overwrite"]) == 2
    one_line_error(capsys, f"{out} is inside {d}", "choose another output")
    assert snapshot(d) == before and listing(tmp_path) == ["input"]


def test_gguf_export_into_its_own_source_is_refused(src, random_base_dir, tmp_path, capsys):
    from pvlora.vectors.export import export_gguf

    d = copy(src / "vec", tmp_path, "vec")
    before = snapshot(d)
    out = d / "adapter_model.safetensors"
    assert main(["export", str(d), "--format", "gguf", "--out", str(out), "--overwrite",
                 "--base", str(random_base_dir)]) == 2
    one_line_error(capsys, f"{out} is inside {d}")
    with pytest.raises(ArtifactError, match="is inside"):  # the library applies the same rule
        export_gguf(d, out, base=str(random_base_dir), overwrite=True)
    assert snapshot(d) == before


def test_pull_onto_its_own_directory_is_refused(src, tmp_path, capsys):
    from pvlora.artifacts.hub import pull

    d = copy(src / "vec", tmp_path, "vec")
    (d / "notes.txt").write_text("mine")
    before = snapshot(d)
    assert main(["pull", str(d), "--out", str(d), "--overwrite"]) == 2
    one_line_error(capsys, f"--out {d} is one of this command's own inputs")
    with pytest.raises(ArtifactError, match="own inputs"):
        pull(str(d), d, overwrite=True)
    assert snapshot(d) == before


@pytest.mark.parametrize("out", [".", ".."])
def test_out_dot_or_dotdot_is_refused_and_leaves_nothing(out, src, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "mine").write_text("x")
    monkeypatch.chdir(work)
    assert main(["extract", "--positive", str(src / "pos"), "--negative", str(src / "neg"), "--out", out,
                 "--overwrite"]) == 2
    one_line_error(capsys, f"--out {out}", "the directory you are working in")
    assert listing(tmp_path) == ["work"] and listing(work) == ["mine"]


# ---------------------------------------------------------------- regexes from strangers


def test_hostile_patterns_are_refused_without_running_them(src, tmp_path):
    """Run in a child with a deadline: before the fix, the first of these never returned."""
    cases = {
        "alpha": ("alpha_pattern", {HOSTILE: 2}),
        "rank": ("rank_pattern", {HOSTILE: 12}),
        "target": ("target_modules", HOSTILE),
        "exclude": ("exclude_modules", "(a|a)*X"),
        "layers": ("layers_pattern", "(.*)*X"),
        "many": ("target_modules", ".*.*.*.*.*X"),
        "backref": ("target_modules", r"(.*)\1X"),
        "invalid": ("alpha_pattern", {"(": 2}),
    }
    for name, (field, value) in cases.items():
        d = copy(src / "vec", tmp_path, name)
        edit_json(d / "adapter_config.json", lambda c: c.update({field: value}))  # noqa: B023
        if field == "layers_pattern":
            edit_json(d / "adapter_config.json", lambda c: c.update(layers_to_transform=[0, 1]))
        rehash(d)
    script = textwrap.dedent(f"""
        import json
        from pvlora.artifacts.peft_read import read_adapter
        from pvlora.core.errors import ArtifactError
        out = {{}}
        for name in {list(cases)!r}:
            try:
                read_adapter({str(tmp_path)!r} + "/" + name)
                out[name] = "read"
            except ArtifactError as exc:
                out[name] = str(exc)
        print(json.dumps(out))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    for name, (field, _) in cases.items():
        assert field in got[name] and "adapter_config.json" in got[name], (name, got[name])
    assert "nested" in got["alpha"] and "backreference" in got["backref"] and "not a valid" in got["invalid"]
    assert "more than 3" in got["many"]


@pytest.mark.parametrize(("field", "value"), [
    ("target_modules", r".*\.(q_proj|k_proj)"),
    ("target_modules", r"model\.layers\.\d+\.self_attn\.(q|k)_proj"),
    ("rank_pattern", {"q_proj": 12, r"^model.layers.0.self_attn.k_proj": 12}),
    ("alpha_pattern", {"model.layers.1.self_attn.q_proj": 24}),
])
def test_ordinary_peft_patterns_still_read(src, tmp_path, field, value):
    d = copy(src / "pos", tmp_path)
    edit_json(d / "adapter_config.json", lambda c: c.update({field: value}))
    a = read_adapter(d)
    assert len(a.factors) == 4
    if field == "alpha_pattern":  # PEFT's semantics: scale 24/12 on that module only
        plain = read_adapter(src / "pos").factors
        key = "base_model.model.model.layers.1.self_attn.q_proj"
        torch.testing.assert_close(a.factors[key].B, 2 * plain[key].B)


# ---------------------------------------------------------------- silently wrong


def test_keys_without_peft_prefix_are_refused_by_name(src, random_base_dir, tmp_path):
    d = copy(src / "vec", tmp_path)
    edit_weights(d, lambda t: {k.removeprefix("base_model.model."): v for k, v in t.items()})
    with pytest.raises(ArtifactError, match=r"tensor 'model\.layers\.0\..*' does not start with PEFT's "
                                            r"'base_model\.model\.'"):
        read_adapter(d)
    with pytest.raises(ArtifactError, match="base_model.model."):
        pvlora.load_composed(str(random_base_dir), {str(d): 3.0})


def test_a_manifest_without_hashes_is_reported_unverified(src, random_base_dir, tmp_path, capsys):
    d = copy(src / "vec", tmp_path)
    edit_json(d / "pvlora.json", lambda m: m.pop("weights_sha256"))
    with pytest.warns(UserWarning, match="no integrity check"):
        pvlora.load_composed(str(random_base_dir), {str(d): 1.0})
    assert main(["compose", "--base", str(random_base_dir), "--vector", f"{d}=1", "--out", str(tmp_path / "c")]) == 0
    err = capsys.readouterr().err
    assert "note: vec:" in err and "no integrity check" in err and "weights_sha256" in err, err
    assert json.loads((tmp_path / "c" / "pvlora.json").read_text())["unverified"] == ["vec"]


def _vector_with(tmp_path, name, factors, base):
    """A vector directory holding ``factors`` as they are (no check against any base), as a stranger makes it."""
    from pvlora.artifacts.peft_write import write_factors
    from pvlora.bases.load import base_fingerprint_of
    from pvlora.artifacts.fingerprint import BaseFingerprint

    d = tmp_path / name
    d.mkdir()
    r = write_factors(d, factors, str(base))
    VectorManifest(preference="harmless", base=BaseFingerprint.from_dict(base_fingerprint_of(str(base))),
                   rank=r, exact_rank=r).write(d)
    return d


def test_a_module_the_base_lacks_is_refused_by_extract_and_export(src, random_base_dir, tmp_path):
    from pvlora.core.lora_math import LowRank
    from pvlora.vectors.export import export_vllm

    d = copy(src / "pos", tmp_path)
    extra = "base_model.model.model.layers.9.self_attn.q_proj"
    edit_weights(d, lambda t: {**t, f"{extra}.lora_A.weight": torch.randn(12, 32),
                               f"{extra}.lora_B.weight": torch.randn(32, 12)})
    with pytest.raises(ArtifactError, match=r"module 'model\.layers\.9\.self_attn\.q_proj' does not exist in"):
        extract_vector(d, src / "neg", tmp_path / "v")
    v = _vector_with(tmp_path, "bad", {extra: LowRank(torch.randn(2, 32), torch.randn(32, 2))}, random_base_dir)
    with pytest.raises(ArtifactError, match="does not exist in"):
        export_vllm(v, tmp_path / "vllm")
    assert not (tmp_path / "v").exists() and not (tmp_path / "vllm").exists()


def test_gguf_export_checks_shapes_against_the_named_base(src, tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    from pvlora.vectors.export import export_gguf

    wide = tmp_path / "wide-base"
    LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2)).save_pretrained(wide)
    with pytest.raises(ArtifactError, match=r"has shape \(\d+, 32\) \(d_out, d_in\) but .*wide-base.* has \(\d+, 64\)"):
        export_gguf(src / "vec", tmp_path / "v.gguf", base=str(wide))
    assert listing(tmp_path) == ["wide-base"]


def test_eta_overflow_names_the_eta(src, random_base_dir, tmp_path):
    d = copy(src / "vec", tmp_path, "big")
    edit_weights(d, lambda t: {k: v * 1e36 if "lora_B" in k else v for k, v in t.items()})
    with pytest.raises(EtaError, match=r"weight 1000 .*big.* float32") as info:
        pvlora.compose(str(random_base_dir), {str(d): 1000.0}, tmp_path / "out")
    assert ".tmp-" not in str(info.value) and listing(tmp_path) == ["big"]


# ---------------------------------------------------------------- tracebacks


def test_rank_above_a_modules_smaller_dimension_is_exact(src, random_base_dir, tmp_path):
    """k_proj is 16×32 and the vector has rank 24: any K ≥ 16 keeps that module exact."""
    m = extract_vector(src / "pos", src / "neg", tmp_path / "v20", rank=20)
    assert m.rank == 20
    want, got = read_adapter(src / "vec").factors, read_adapter(tmp_path / "v20").factors
    k = "base_model.model.model.layers.0.self_attn.k_proj"
    torch.testing.assert_close(got[k].dense(), want[k].dense(), rtol=1e-5, atol=1e-5)
    c = pvlora.compose(str(random_base_dir), {str(src / "vec"): 1.0}, tmp_path / "c", rank=20)
    assert c.rank == 20


def test_vllm_export_of_a_composition_above_rank_512(random_base_dir, tmp_path):
    from pvlora.core.lora_math import LowRank
    from pvlora.vectors.export import export_vllm

    torch.manual_seed(0)
    key = "base_model.model.model.layers.0.self_attn.k_proj"
    v = _vector_with(tmp_path, "wide", {key: LowRank(torch.randn(520, 32), torch.randn(16, 520))}, random_base_dir)
    m = export_vllm(v, tmp_path / "vllm")
    assert m.export.rank == 512 and m.export.relative_error < 1e-6  # the module's rank is 16: nothing is lost


def test_rank_zero_tensors_are_refused(src, tmp_path):
    d = copy(src / "pos", tmp_path)
    edit_weights(d, lambda t: {k: v[:0] if "lora_A" in k else v[:, :0] for k, v in t.items()})
    with pytest.raises(ArtifactError, match="rank 0"):
        read_adapter(d)


def test_a_missing_r_means_peft_default(src, random_base_dir, tmp_path):
    d = copy(src / "vec", tmp_path)
    edit_json(d / "adapter_config.json", lambda c: c.pop("r"))
    rehash(d)
    with pytest.raises(ArtifactError, match=r"rank 24 but adapter_config.json says 8 \(PEFT's default: it has no "
                                            r"'r'\)"):
        pvlora.load_composed(str(random_base_dir), {str(d): 1.0})


@pytest.mark.parametrize("name", ["pvlora.json", "adapter_config.json", "adapter_model.safetensors", "eval.json"])
def test_dangling_symlinks_are_one_clear_error(src, tmp_path, name):
    from pvlora.artifacts.hub import plan_upload, pull

    d = copy(src / "vec", tmp_path)
    if (d / name).exists():
        (d / name).unlink()
    os.symlink(d / "gone", d / name)
    with pytest.raises(ArtifactError, match=rf"{name}: a broken symlink"):
        pull(str(d), tmp_path / "out") if name == "eval.json" else read_adapter(d)
    with pytest.raises(ArtifactError, match=rf"{name}: "):
        plan_upload(d, "alice/x")


def test_compose_with_a_vector_as_the_base(src, tmp_path, capsys):
    v = src / "vec"
    assert main(["compose", "--base", str(v), "--vector", f"{v}=1", "--out", str(tmp_path / "c")]) == 2
    one_line_error(capsys, str(v), "is a PEFT adapter directory, not a base model",
                   "the base it was made on")


# ---------------------------------------------------------------- leftovers and locks


def test_an_immutable_target_leaves_nothing_behind(src, tmp_path, monkeypatch):
    import pvlora.artifacts.atomic as atomic

    out = tmp_path / "dest"
    extract_vector(src / "pos", None, out, positive_only=True)
    before = snapshot(out)
    real = Path.rename

    def immutable(self, target):
        if Path(self) == out:
            raise PermissionError(1, "Operation not permitted")
        return real(self, target)

    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    monkeypatch.setattr(Path, "rename", immutable)
    with pytest.raises(ArtifactError, match=r"dest: cannot write there \(Operation not permitted\)"):
        extract_vector(src / "pos", src / "neg", out, overwrite=True)
    assert listing(tmp_path) == ["dest"] and snapshot(out) == before


def test_temporaries_of_dead_writers_are_removed(src, random_base_dir, tmp_path):
    from pvlora.artifacts.atomic import atomic_file
    from pvlora.core.files import build_once
    from pvlora.core.files import host
    from pvlora.vectors.export import export_gguf

    dead = 2**22 + 12345  # above any pid this machine hands out
    (tmp_path / f".v.gguf.tmp-{host()}-{dead}-abc").write_bytes(b"half")
    (tmp_path / f".v.gguf.{dead}.partial").write_bytes(b"half")  # what pvlora 0.2 left
    (tmp_path / f".v.gguf.tmp-otherhost-{dead}-abc").write_bytes(b"another machine's")
    export_gguf(src / "vec", tmp_path / "v.gguf", base=str(random_base_dir))
    assert listing(tmp_path) == [f".v.gguf.tmp-otherhost-{dead}-abc", "v.gguf"]

    (tmp_path / f".j.json.tmp-{host()}-{dead}-xyz").write_text("{")
    with atomic_file(tmp_path / "j.json") as fh:
        fh.write("{}")
    (tmp_path / f".base.tmp-{host()}-{dead}-q1").mkdir()  # a killed tiny-base build
    build_once(tmp_path / "base", lambda tmp: (tmp / "config.json").write_text("{}"))
    assert listing(tmp_path) == [f".v.gguf.tmp-otherhost-{dead}-abc", "base", "j.json", "v.gguf"]


@pytest.mark.parametrize("content", ["", "garbage\0", "pid", "{host} notapid"])
def test_an_empty_or_garbage_lock_is_taken_over(tmp_path, content):
    from pvlora.artifacts.atomic import atomic_dir

    import socket

    (tmp_path / ".out.lock").write_text(content.format(host=socket.gethostname()))
    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a").write_text("x")
    assert listing(tmp_path) == ["out"]


def test_sigterm_mid_write_is_handled_like_ctrl_c(src, tmp_path):
    out = tmp_path / "dest"
    extract_vector(src / "pos", None, out, positive_only=True)
    before = snapshot(out)
    script = textwrap.dedent(f"""
        import os, signal, sys, time
        import pvlora.vectors.extract as ex
        real = ex.write_factors
        def write_then_terminated(*a, **k):
            r = real(*a, **k)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
            return r
        ex.write_factors = write_then_terminated
        from pvlora.cli import main
        sys.exit(main(["extract", "--positive", {str(src / 'pos')!r}, "--negative", {str(src / 'neg')!r},
                       "--out", {str(out)!r}, "--overwrite"]))
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 128 + signal.SIGTERM, (run.returncode, run.stderr[-2000:])
    assert "pvlora extract: terminated" in run.stderr and "Traceback" not in run.stderr
    assert listing(tmp_path) == ["dest"] and snapshot(out) == before


# ---------------------------------------------------------------- outside its place


def test_a_hub_ref_pointing_out_of_the_cache_is_refused(src, tmp_path, offline_cache):
    from pvlora.artifacts.locate import resolve_artifact

    victim = copy(src / "vec", tmp_path, "victim")
    root = offline_cache / "models--alice--vec"
    (root / "refs").mkdir(parents=True)
    (root / "snapshots").mkdir()
    (root / "refs" / "main").write_text(os.path.relpath(victim, root / "snapshots"))
    with pytest.raises(ArtifactError, match="not a plain commit"):
        resolve_artifact("alice/vec")
    for spec in ("alice/vec@../../x", "alice/vec@refs/../../x", "alice/vec@/etc"):
        with pytest.raises(ArtifactError, match="revision"):
            resolve_artifact(spec)
