"""Artifacts from strangers: names in a manifest, symlinks, unhashed configs, bad types, pickles and
path-like preference names are refused with one clear error, quickly, before anything is written."""

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pvlora.artifacts.peft_read import read_adapter
from pvlora.config import PreferenceConfig
from pvlora.core.errors import ArtifactError, ConfigError, RequestError
from pvlora.artifacts.hub import build_card, plan_upload, resolve_artifact
from pvlora.artifacts.manifest import weight_hashes
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter


@pytest.fixture(scope="module")
def vec(random_base_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    p = make_adapter(random_base_dir, d / "pos", 41, r=2, lora_alpha=4, target_modules=["q_proj"])
    n = make_adapter(random_base_dir, d / "neg", 42, r=2, lora_alpha=4, target_modules=["q_proj"])
    extract_vector(p, n, d / "harmless", preference="harmless")
    return d / "harmless"


def copy(vec, tmp_path, name="v"):
    out = tmp_path / name
    shutil.copytree(vec, out)
    return out


def edit_json(path, fn):
    data = json.loads(path.read_text())
    fn(data)  # edits in place
    path.write_text(json.dumps(data))


def rehash(d):
    """What an attacker who edits files can also do: recompute the manifest's hashes."""
    edit_json(d / "pvlora.json", lambda m: m.update(weights_sha256=weight_hashes(d)))


@pytest.mark.parametrize("name", ["/dev/zero", "../../etc/passwd", "sub/adapter_model.safetensors", "..", ""])
def test_manifest_names_only_plain_files_inside(vec, tmp_path, name):
    d = copy(vec, tmp_path)
    edit_json(d / "pvlora.json", lambda m: m["weights_sha256"].update({name: "0" * 64}))
    with pytest.raises(ArtifactError, match="only plain file names inside"):
        read_adapter(d)


def test_weights_symlinked_to_a_device_or_out_of_the_directory_are_refused(vec, tmp_path):
    d = copy(vec, tmp_path)
    (d / "pvlora.json").unlink()  # no manifest: the weights file itself is the only guard
    (d / "adapter_model.safetensors").unlink()
    os.symlink("/dev/zero", d / "adapter_model.safetensors")
    with pytest.raises(ArtifactError, match="symlink to /dev/zero, outside"):
        read_adapter(d)
    secret = tmp_path / "secret.safetensors"
    shutil.copyfile(vec / "adapter_model.safetensors", secret)
    (d / "adapter_model.safetensors").unlink()
    os.symlink(secret, d / "adapter_model.safetensors")
    with pytest.raises(ArtifactError, match="outside"):
        read_adapter(d)
    (d / "adapter_config.json").rename(d / "real.json")
    os.symlink("/dev/zero", d / "adapter_config.json")
    with pytest.raises(ArtifactError, match="adapter_config.json: a symlink to /dev/zero"):
        read_adapter(d)


def test_a_device_named_as_a_weight_file_is_not_read(vec, tmp_path):
    d = copy(vec, tmp_path)
    (d / "adapter_model.safetensors").unlink()
    os.mkfifo(d / "adapter_model.safetensors")  # a pipe would block a reader forever
    with pytest.raises(ArtifactError, match="not a regular file"):
        read_adapter(d)


def test_hub_cache_symlinks_into_blobs_are_followed(vec, tmp_path, offline_cache):
    """huggingface_hub stores snapshots/<rev>/FILE -> ../../blobs/<sha>: those links stay inside the repo."""
    root = offline_cache / "models--alice--vec"
    snap, blobs = root / "snapshots" / ("a" * 40), root / "blobs"
    snap.mkdir(parents=True)
    blobs.mkdir()
    for f in vec.iterdir():
        shutil.copyfile(f, blobs / f.name)
        os.symlink(os.path.join("..", "..", "blobs", f.name), snap / f.name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("a" * 40)
    a = read_adapter(resolve_artifact("alice/vec"))
    assert a.name == "harmless" and set(a.factors) == set(read_adapter(vec).factors)


def test_adapter_config_is_hashed(vec, tmp_path):
    d = copy(vec, tmp_path)
    assert "adapter_config.json" in json.loads((d / "pvlora.json").read_text())["weights_sha256"]
    edit_json(d / "adapter_config.json", lambda c: c.update(lora_alpha=1000))
    with pytest.raises(ArtifactError, match="adapter_config.json: sha256 does not match"):
        read_adapter(d)
    # dropping the config from the list does not switch its check off
    edit_json(d / "pvlora.json", lambda m: m["weights_sha256"].pop("adapter_config.json"))
    with pytest.raises(ArtifactError, match="adapter_config.json: not covered by the sha256 list"):
        read_adapter(d)


def test_target_modules_must_select_every_module_that_has_weights(vec, tmp_path):
    d = copy(vec, tmp_path)
    edit_json(d / "adapter_config.json", lambda c: c.update(target_modules=["k_proj"]))
    rehash(d)
    with pytest.raises(ArtifactError, match="target_modules .* does not select it"):
        read_adapter(d)
    edit_json(d / "adapter_config.json", lambda c: c.update(target_modules=["q_proj"], layers_to_transform=[1]))
    rehash(d)
    with pytest.raises(ArtifactError, match=r"layers\.0\..*does not select it"):
        read_adapter(d)


@pytest.mark.parametrize(("field", "value", "msg"), [
    ("lora_alpha", "16", "lora_alpha has the wrong type"), ("r", "16", "r has the wrong type"),
    ("r", 0, "r has the wrong type"), ("lora_alpha", True, "lora_alpha has the wrong type"),
    ("target_modules", 5, "target_modules has the wrong type"),
    ("lora_alpha", 10**400, "lora_alpha has the wrong type"),  # a JSON integer too long for a float
    ("lora_alpha", 1e300, "non-zero number of at most 1e\\+06 in size"),  # alpha/r would overflow the factors
    ("alpha_pattern", {"q_proj": 10**400}, "alpha_pattern has the wrong type"),
])
def test_config_fields_of_the_wrong_type(vec, tmp_path, field, value, msg):
    d = copy(vec, tmp_path)
    edit_json(d / "adapter_config.json", lambda c: c.update({field: value}))
    rehash(d)
    with pytest.raises(ArtifactError, match=msg):
        read_adapter(d)


@pytest.mark.parametrize(("manifest", "msg"), [
    ([1, 2], "expected a JSON object, got list"), ("x", "expected a JSON object, got str"),
    ({"weights_sha256": "abc"}, "weights_sha256 must map"), ({"base": "llama"}, "base must be an object"),
    ({"preference": "../../escaped"}, "not a valid preference name"),
    ({"schema": 2, "pvlora_version": "9.0"}, r"written by a newer pvlora \(9.0, manifest schema 2\); this pvlora reads "
                                             r"schema 1: upgrade pvlora"),
    ({"schema": "1"}, "schema must be a positive integer"), ({"kind": "virus"}, "kind 'virus' is not one of adapter"),
    ({"base": {"config_sha256": 5}}, "base.config_sha256 must be a string"),
    ({"kind": "composition", "vectors": [{"preference": "helpful"}]}, "vectors must be a list of {preference"),
    ({"kind": "composition", "vectors": [{"preference": "helpful", "weight": "1"}]}, "vectors must be a list of"),
    ({"kind": "composition", "vectors": [{"preference": "helpful", "weight": float("nan")}]}, "vectors must be a list"),
    ({"kind": "composition", "vectors": [{"preference": 3, "weight": 1}]}, "vectors must be a list of"),
    ({"kind": "composition", "vectors": [{"preference": "helpful", "weight": 10**400}]}, "vectors must be a list of"),
    ({"norm": 10**400}, "norm must be a number"),
    ({"compression": {"rank": 4}}, "compression must be an object with an integer rank and a finite relative_error"),
    ({"compression": {"rank": 4, "relative_error": 0.1, "per_module_relative_error": {"q": "x"}}}, "compression must be"),
])
def test_malformed_manifests(vec, tmp_path, manifest, msg):
    d = copy(vec, tmp_path)
    (d / "pvlora.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=msg):
        read_adapter(d)


def test_inspect_names_a_malformed_recipe_in_one_line(vec, tmp_path, capsys):
    from pvlora.cli import main

    d = copy(vec, tmp_path)
    edit_json(d / "pvlora.json", lambda m: m.update({"kind": "composition", "vectors": [{"preference": "helpful"}]}))
    assert main(["inspect", str(d)]) == 2
    err = capsys.readouterr().err
    assert "pvlora.json: vectors must be a list of {preference: string, weight: finite number}" in err
    assert "Traceback" not in err and "KeyError" not in err


def test_malformed_adapter_config(vec, tmp_path):
    d = copy(vec, tmp_path)
    (d / "adapter_config.json").write_text("{")
    with pytest.raises(ArtifactError, match="adapter_config.json: not valid JSON"):
        read_adapter(d)
    (d / "adapter_config.json").write_text("[]")
    with pytest.raises(ArtifactError, match="adapter_config.json: expected a JSON object, got list"):
        read_adapter(d)


def test_a_manifest_far_too_large_is_not_read(vec, tmp_path):
    d = copy(vec, tmp_path)
    with open(d / "pvlora.json", "wb") as fh:
        fh.truncate(17 << 20)  # sparse: 17 MiB of zeros
    with pytest.raises(ArtifactError, match="over the .*-byte bound"):
        read_adapter(d)


@pytest.mark.parametrize("name", ["../../escaped", "/abs", "a/b", ".hidden", "", "x" * 65, "white space"])
def test_preference_names_are_plain(name):
    with pytest.raises(ConfigError, match="not a valid preference name"):
        PreferenceConfig(name=name)


def test_extract_refuses_a_path_as_preference_name(vec, tmp_path):
    src = vec.parent
    with pytest.raises(ConfigError, match="not a valid preference name"):
        extract_vector(src / "pos", src / "neg", tmp_path / "out", preference="../escaped")
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "escaped").exists()


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/pvlora-pwned",))


def test_malicious_pickle_is_a_clear_error(vec, tmp_path):
    d = copy(vec, tmp_path)
    (d / "pvlora.json").unlink()
    tensors = load_file(d / "adapter_model.safetensors")
    (d / "adapter_model.safetensors").unlink()
    with open(d / "adapter_model.bin", "wb") as fh:
        pickle.dump({**tensors, "x": _Evil()}, fh)
    with pytest.raises(ArtifactError, match=r"adapter_model.bin: refused by torch.load\(weights_only=True\)"):
        read_adapter(d, allow_pickle=True)
    assert not os.path.exists("/tmp/pvlora-pwned")
    torch.save(tensors, d / "adapter_model.bin")  # a plain tensor dict still loads with the flag
    assert set(read_adapter(d, allow_pickle=True).factors) == set(read_adapter(vec).factors)


def test_push_refuses_symlinks_and_shares_no_local_paths(vec, tmp_path):
    d = copy(vec, tmp_path)
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    os.symlink(secret, d / "pvlora-config.yaml")
    with pytest.raises(ArtifactError, match="pvlora-config.yaml: a symlink; push uploads only regular files"):
        plan_upload(d, "alice/vec")
    (d / "pvlora-config.yaml").unlink()
    manifest = (d / "pvlora.json").read_text()  # as extract wrote it, from absolute paths
    assert str(vec.parent) not in manifest and json.loads(manifest)["sources"]["positive"]["path"] == "pos"
    edit_json(d / "pvlora.json", lambda m: m.update(command=f"pvlora extract --positive {tmp_path}/a/pos --out={tmp_path}/v"))
    card = str(build_card(d, "alice/vec"))
    assert str(tmp_path) not in card, card
    assert "--positive pos --out=v" in card


def test_the_same_vector_twice_is_refused_in_every_spelling(vec, random_base_dir, tmp_path, monkeypatch):
    from pvlora.cli import main
    from pvlora.vectors.compose import compose

    monkeypatch.chdir(vec.parent)
    for other in (f"{vec}/", "./harmless", "harmless/../harmless"):
        with pytest.raises(ArtifactError, match="are the same vector"):
            compose(str(random_base_dir), {str(vec): 1.0, other: 0.5}, tmp_path / "c")
    os.symlink(vec, tmp_path / "link")
    with pytest.raises(ArtifactError, match="are the same vector"):
        compose(str(random_base_dir), {str(vec): 1.0, str(tmp_path / "link"): 0.5}, tmp_path / "c")
    assert main(["compose", "--base", str(random_base_dir), "--vector", f"{vec}=1", "--vector", f"{vec}=2",
                 "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()


def test_extract_refuses_swapped_or_mixed_directions(vec, tmp_path):
    src = vec.parent
    pos, neg = copy(src / "pos", tmp_path, "pos"), copy(src / "neg", tmp_path, "neg")
    (pos / "pvlora.json").write_text(json.dumps({"kind": "adapter", "preference": "harmless", "direction": "positive"}))
    (neg / "pvlora.json").write_text(json.dumps({"kind": "adapter", "preference": "harmless", "direction": "negative"}))
    with pytest.raises(ArtifactError, match="is the negative adapter .* given as the positive one; swap"):
        extract_vector(neg, pos, tmp_path / "v")
    (neg / "pvlora.json").write_text(json.dumps({"kind": "adapter", "preference": "helpful", "direction": "negative"}))
    with pytest.raises(ArtifactError, match="different preferences"):
        extract_vector(pos, neg, tmp_path / "v")
    assert not (tmp_path / "v").exists()


def test_set_weights_after_an_adapter_is_replaced_through_peft(vec, random_base_dir, tmp_path):
    from peft.tuners.lora import LoraLayer

    import pvlora

    model, _ = pvlora.load_composed(str(random_base_dir), {str(vec): 1.0})
    other = make_adapter(random_base_dir, tmp_path / "other", 43, r=4, lora_alpha=32, target_modules=["q_proj"])
    model.load_adapter(str(other), adapter_name="tmp")
    pvlora.set_weights(model, {"harmless": 1.0})  # builds the scale cache for {harmless, tmp}
    model.base_model.set_adapter(["tmp"])
    model.delete_adapter("harmless")
    model.load_adapter(str(other), adapter_name="harmless")  # same name, alpha/r = 8 instead of 1
    model.base_model.set_adapter(["tmp", "harmless"])
    pvlora.set_weights(model, {"harmless": 0.5})
    scales = [m.scaling["harmless"] for m in model.modules() if isinstance(m, LoraLayer) and "harmless" in m.scaling]
    assert scales and all(s == pytest.approx(0.5 * 32 / 4) for s in scales)
    assert pvlora.get_weights(model)["harmless"] == pytest.approx(0.5)
    with pytest.raises(RequestError, match="weights must be a mapping"):
        pvlora.set_weights(model, [("harmless", 1.0)])


def test_zero_alpha_is_refused(vec, tmp_path):
    d = copy(vec, tmp_path)
    edit_json(d / "adapter_config.json", lambda c: c.update(lora_alpha=0))
    rehash(d)
    with pytest.raises(ArtifactError, match="lora_alpha has the wrong type or value"):
        read_adapter(d)


def test_push_revision_named_once(vec):
    plan = plan_upload(vec, "alice/x@v1")
    assert (plan.repo_id, plan.revision) == ("alice/x", "v1")
    assert plan_upload(vec, "alice/x", revision="v2").revision == "v2"
    with pytest.raises(ArtifactError, match="names revision 'v1' but revision 'v2' was also given"):
        plan_upload(vec, "alice/x@v1", revision="v2")


def test_an_output_that_is_an_input_is_refused(vec, random_base_dir, tmp_path):
    from pvlora.vectors.compose import compose

    d = copy(vec, tmp_path)
    before = {f.name: f.read_bytes() for f in d.iterdir()}
    with pytest.raises(ArtifactError, match="is one of this command's own inputs"):
        compose(str(random_base_dir), {str(d): 1.0}, d, overwrite=True)
    with pytest.raises(ArtifactError, match="is one of this command's own inputs"):
        compose(str(random_base_dir), {str(d): 1.0}, random_base_dir, overwrite=True, merge=True)
    src = vec.parent
    with pytest.raises(ArtifactError, match="is one of this command's own inputs"):
        extract_vector(src / "pos", src / "neg", src / "pos", overwrite=True)
    with pytest.raises(ArtifactError, match="is one of this command's own inputs"):
        extract_vector(src / "pos", src / "neg", src, overwrite=True)  # the parent of an input
    assert {f.name: f.read_bytes() for f in d.iterdir()} == before and (src / "pos" / "adapter_config.json").exists()


def test_replacing_a_file_with_a_directory_leaves_nothing_behind(vec, random_base_dir, tmp_path):
    from pvlora.vectors.compose import compose

    (tmp_path / "out").write_text("old")
    compose(str(random_base_dir), {str(vec): 1.0}, tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "pvlora.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_second_writer_is_kept_out_while_the_first_one_builds(tmp_path):
    from pvlora.artifacts.atomic import atomic_dir

    with atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a").write_text("first")
        with pytest.raises(ArtifactError, match="is being written by another pvlora process"), \
                atomic_dir(tmp_path / "out", overwrite=True):
            pass
    assert (tmp_path / "out" / "a").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # lock released, no leftovers
    # a lock left by a dead process is taken over
    (tmp_path / ".out.lock").write_text(f"{__import__('socket').gethostname()} 999999999")
    with atomic_dir(tmp_path / "out", overwrite=True) as tmp:
        (tmp / "b").write_text("second")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b"]


def _disk_states(fn, files, root, every: int = 3) -> list:
    """Run ``fn`` and copy ``root`` (the destination's folder) at every ``every``-th executed line of
    ``files``: each copy is what a kill at that line (SIGKILL, no cleanup) would leave on disk."""
    import sys
    import tempfile

    states, seen = [], [0]
    store = Path(tempfile.mkdtemp(prefix="pvlora-states-"))

    def tracer(frame, event, arg):
        if frame.f_code.co_filename not in files:
            return None
        if event == "line":
            seen[0] += 1
            if seen[0] % every == 0:
                dst = store / str(seen[0])
                shutil.copytree(root, dst, symlinks=True)
                states.append(dst)
        return tracer

    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
    return states


@pytest.mark.parametrize("exchange", [True, False], ids=["atomic-exchange", "two-renames"])
def test_killed_anywhere_the_destination_is_the_old_or_the_new_artifact(vec, random_base_dir, tmp_path, monkeypatch,
                                                                        exchange):
    """Kill extract and compose at every line of the writing code (including between the renames
    of a replacement): the destination is the old complete artifact or the new one (with two renames:
    once the next writer has recovered it), and the next run, taking over the dead writer's lock,
    succeeds and leaves no temporary directory or lock behind."""
    import socket

    import pvlora.artifacts.peft_read as artifacts
    import pvlora.artifacts.atomic as atomic
    import pvlora.vectors.compose as compose_mod
    import pvlora.artifacts.integrity as integrity_mod
    import pvlora.artifacts.manifest as manifest_mod
    import pvlora.vectors.extract as vector_mod
    from pvlora.vectors.compose import compose

    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    src = vec.parent
    files = {artifacts.__file__, atomic.__file__, manifest_mod.__file__, integrity_mod.__file__, vector_mod.__file__,
             compose_mod.__file__}
    for name, write in [
        ("extract", lambda out: extract_vector(src / "pos", src / "neg", out, overwrite=True, preference="harmless")),
        ("compose", lambda out: compose(str(random_base_dir), {str(vec): 0.5}, out, overwrite=True)),
    ]:
        root = tmp_path / name
        out = root / "dest"
        extract_vector(src / "pos", None, out, positive_only=True)  # the old artifact: another vector
        old = read_adapter(out).factors
        states = _disk_states(lambda: write(out), files, root, every=1)  # noqa: B023 (called at once)
        new = read_adapter(out).factors
        assert len(states) > 20 and sorted(p.name for p in root.iterdir()) == ["dest"]
        kinds = set()
        for state in states:
            dest = state / "dest"
            lock = state / ".dest.lock"
            if lock.exists():
                lock.write_text(f"{socket.gethostname()} 999999999")  # its writer is dead
            if not exchange:
                atomic.recover(dest)  # what the next writer does first, under its lock
            got = read_adapter(dest).factors
            same = [set(got) == set(f) and all(torch.equal(got[m].A, f[m].A) and torch.equal(got[m].B, f[m].B)
                                              for m in f) for f in (old, new)]
            assert any(same), f"{name}, {state.name}th line: the destination is neither the old nor the new artifact"
            kinds.add(same.index(True))
        assert kinds == {0, 1}  # kills before and after the replacement were both exercised
        last = states[len(states) // 2]  # the next run after a kill mid-write
        write(last / "dest")
        assert sorted(p.name for p in last.iterdir()) == ["dest"]


def test_the_uploaded_config_carries_no_local_paths(tmp_path):
    from pvlora.artifacts.hub import shareable_config

    f = tmp_path / "pvlora-config.yaml"
    f.write_text(f"output:\n  dir: {tmp_path}/runs\npreferences:\n- name: h\n  source: /home/alice/secret/hh.jsonl\n"
                 "- name: g\n  source: org/dataset\nmodel:\n  name_or_path: ~/models/llama\n")
    text = shareable_config(f)
    assert "alice" not in text and str(tmp_path) not in text and "~" not in text
    assert "hh.jsonl" in text and "org/dataset" in text and "dir: runs" in text


def test_bases_that_differ_only_in_tiny_seed_are_described_apart():
    from pvlora.artifacts.compat import BaseFingerprint

    a = {"name_or_path": "tiny", "config_sha256": "ab" * 32, "tiny_seed": 0}
    one = str(BaseFingerprint.from_dict({**a, "tiny_seed": 1}))
    assert str(BaseFingerprint.from_dict(a)) != one and "tiny_seed 1" in one


def test_data_export_onto_its_own_source_is_refused(tmp_path, capsys):
    from pvlora.cli import main

    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    before = src.read_text()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"preferences:\n- {{name: p, source: {src}, format: pairs}}\n")
    assert main(["data", "--config", str(cfg), "--preference", "p", "--export", str(src), "--overwrite"]) == 2
    assert "would overwrite the data it reads" in capsys.readouterr().err and src.read_text() == before


def test_pull_has_the_overwrite_it_suggests():
    from pvlora.cli import make_parser

    a = make_parser().parse_args(["pull", "alice/vec", "--out", "x", "--overwrite"])
    assert a.overwrite is True


def test_a_model_object_from_another_base_is_refused(vec, random_base_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    import pvlora
    from pvlora.bases.load import base_fingerprint_of

    d = copy(vec, tmp_path)
    edit_json(d / "pvlora.json", lambda m: m.update(base=base_fingerprint_of(str(random_base_dir))))
    model = AutoModelForCausalLM.from_pretrained(random_base_dir)
    pvlora.load_composed(model, {str(d): 1.0})  # its own base: fine
    other = AutoModelForCausalLM.from_pretrained(random_base_dir)
    other.config.rope_theta = 1234.0  # same shapes, another model
    with pytest.raises(ArtifactError, match="not on the model object given"):
        pvlora.load_composed(other, {str(d): 1.0})


def test_a_card_leaves_out_metrics_no_float_can_hold(vec, tmp_path):
    d = copy(vec, tmp_path)
    edit_json(d / "pvlora.json", lambda m: m.update({"metrics": {"huge": 10**400, "loss": 0.25}}))
    (d / "eval.json").write_text('{"scores": {"refusal": 1' + "0" * 400 + ', "compliance": 0.5}}')
    card = str(build_card(d, "alice/vec"))
    assert "| loss | 0.25 |" in card and "| compliance | 0.5 |" in card
    assert "huge" not in card and "| refusal |" not in card
