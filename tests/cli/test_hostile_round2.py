"""Second round of hostile inputs: output paths that are the wrong kind of thing, JSON that nests or
counts past what Python can hold, and artifacts of the wrong kind given to a command. Each is one
error line naming the path (and line) and what to do, before anything is written."""

import json
import os
import shutil

import pytest

from pvlora.cli import main
from pvlora.vectors.compose import compose
from pvlora.config import PreferenceConfig
from pvlora.data import load_preference_data
from pvlora.core.errors import ArtifactError, DataError
from pvlora.artifacts.manifest import AdapterManifest
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter, one_line_error

PAIR = {"prompt": "p", "chosen": "a", "rejected": "b"}
DEEP = "[" * 200_000 + "]" * 200_000  # far past Python's recursion limit



@pytest.fixture
def data_config(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text(json.dumps(PAIR) + "\n" + json.dumps({"prompt": "q", "chosen": "c", "rejected": "d"}) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"preferences:\n- {{name: p, source: {src}, format: pairs}}\n")
    return cfg


# ---------------------------------------------------------------- output paths


def test_data_export_onto_a_directory_is_refused_even_with_overwrite(data_config, tmp_path, capsys):
    out = tmp_path / "exported"
    out.mkdir()
    (out / "keep").write_text("mine")
    assert main(["data", "-c", str(data_config), "-p", "p", "--export", str(out), "--overwrite"]) == 2
    one_line_error(capsys, f"--export {out} is a directory", "name a file")
    assert (out / "keep").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == [
        "c.yaml", "d.jsonl", "exported"]


def test_data_export_below_a_file_is_refused(data_config, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    out = tmp_path / "afile" / "sub" / "pairs.jsonl"
    assert main(["data", "-c", str(data_config), "-p", "p", "--export", str(out)]) == 2
    one_line_error(capsys, f"--export {out}: cannot write there", f"{tmp_path / 'afile'} is a file, not a directory",
                   "choose a writable location")
    assert (tmp_path / "afile").read_text() == "x"


def test_an_unwritable_folder_is_refused_before_any_work(data_config, tmp_path, capsys, monkeypatch):
    import pvlora.artifacts.atomic as atomic

    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes anywhere os.access would allow; simulate a read-only folder
        real = os.access
        monkeypatch.setattr(atomic.os, "access", lambda p, mode, **kw: str(p) != str(ro) and real(p, mode, **kw))
    else:
        ro.chmod(0o555)
    out = ro / "pairs.jsonl"
    assert main(["data", "-c", str(data_config), "-p", "p", "--export", str(out)]) == 2
    one_line_error(capsys, f"--export {out}: cannot write there", f"{ro} is not writable")
    with pytest.raises(ArtifactError, match=r"cannot write there .*ro is not writable"):
        atomic.check_output(ro / "v", kind="dir")


@pytest.mark.parametrize(("kind", "make", "overwrite", "msg"), [
    ("file", "dir", True, "is a directory; name a file"),
    ("into", "file", False, "is a file; name a directory"),
    ("dir", "file", False, "already exists; pass overwrite=True"),
    ("file", "fifo", True, "is a device, pipe or socket"),
    ("dir", "fifo", True, "is a device, pipe or socket"),
    ("dir", "below-file", True, r"cannot write there \(.*afile is a file, not a directory\)"),
    ("file", "below-broken-link", True, r"cannot write there \(.*link is a broken link, not a directory\)"),
])
def test_the_output_rule(tmp_path, kind, make, overwrite, msg):
    from pvlora.artifacts.atomic import check_output

    target = tmp_path / "out"
    if make == "dir":
        target.mkdir()
    elif make == "file":
        target.write_text("x")
    elif make == "fifo":
        os.mkfifo(target)
    elif make == "below-file":
        (tmp_path / "afile").write_text("x")
        target = tmp_path / "afile" / "out"
    elif make == "below-broken-link":
        os.symlink(tmp_path / "nowhere", tmp_path / "link")
        target = tmp_path / "link" / "out"
    with pytest.raises(ArtifactError, match=msg):
        check_output(target, overwrite, kind)


def test_the_writers_apply_the_output_rule(tmp_path):
    """atomic_file (eval/tune JSON, data export, manifests) and atomic_dir (every artifact) both refuse."""
    from pvlora.artifacts.atomic import atomic_dir, atomic_file

    (tmp_path / "d").mkdir()
    with pytest.raises(ArtifactError, match="d is a directory; name a file"), atomic_file(tmp_path / "d"):
        pass
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ArtifactError, match="pipe is a device, pipe or socket"), \
            atomic_dir(tmp_path / "pipe", overwrite=True):
        pass
    assert (tmp_path / "d").is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["d", "pipe"]


@pytest.mark.parametrize("command", [
    ["train", "--out", "{afile}/adapters"],
    ["sft", "--out", "{afile}/sft"],
    ["demo", "--out", "{afile}/demo"],
    ["train", "--out", "{afile}"],  # the folder of adapters is itself a file
])
def test_training_commands_check_their_output_before_training(command, tmp_path, capsys, monkeypatch):
    import pvlora.training.sft
    import pvlora.worlds.toy.demo
    import pvlora.training.dpo

    def never(*a, **k):
        raise AssertionError("training started")

    for mod, name in ((pvlora.training.dpo, "train_one"), (pvlora.training.sft, "_train"), (pvlora.worlds.toy.demo, "run_demo")):
        monkeypatch.setattr(mod, name, never)
    (tmp_path / "afile").write_text("x")
    argv = [c.format(afile=tmp_path / "afile") for c in command]
    assert main(argv) == 2
    one_line_error(capsys, f"--out {argv[-1]}", "afile")


def test_export_to_a_directory_named_as_its_gguf_file(kinds, tmp_path, capsys):
    out = tmp_path / "helpful.gguf"
    out.mkdir()
    assert main(["export", str(kinds / "helpful"), "--format", "gguf", "--out", str(out), "--overwrite"]) == 2
    one_line_error(capsys, f"--out {out} is a directory")
    assert out.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["helpful.gguf"]


# ---------------------------------------------------------------- JSON no parser should be asked to hold


def read(tmp_path, text, name="d.jsonl", fmt="pairs"):
    f = tmp_path / name
    f.write_text(text)
    return load_preference_data(PreferenceConfig(name="p", source=str(f), format=fmt, heldout_fraction=0.0))


def test_a_row_nested_200000_levels_deep_names_file_and_line(tmp_path):
    text = json.dumps(PAIR) + '\n{"prompt": ' + DEEP + ', "chosen": "a", "rejected": "b"}\n'
    with pytest.raises(DataError, match=r"d\.jsonl:2: JSON nested more than 100 levels deep"):
        read(tmp_path, text)


def test_a_json_array_nested_too_deep_names_file_and_line(tmp_path):
    text = "[\n" + json.dumps(PAIR) + ",\n" + json.dumps(PAIR) + ',\n{"prompt": ' + DEEP + "}\n]\n"
    with pytest.raises(DataError, match=r"d\.json: JSON nested more than 100 levels deep \(at line 4\)"):
        read(tmp_path, text, "d.json")


def test_nesting_under_the_recursion_limit_is_refused_too(tmp_path):
    """500 levels parse, but every later step that recurses (repr, json.dumps, a tokenizer) would
    then depend on how deep the caller's stack already is: refused at the same limit."""
    with pytest.raises(DataError, match=r"d\.jsonl:1: JSON nested more than 100 levels deep"):
        read(tmp_path, '{"prompt": ' + "[" * 500 + "]" * 500 + ', "chosen": "a", "rejected": "b"}\n')


def test_an_integer_with_thousands_of_digits_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"d\.jsonl:1: a JSON integer with more than 4300 digits"):
        read(tmp_path, '{"prompt": "p", "chosen": "a", "rejected": "b", "n": ' + "7" * 5000 + "}\n")


def test_a_lone_surrogate_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"d\.jsonl:2: .*lone UTF-16 surrogate"):
        read(tmp_path, json.dumps(PAIR) + '\n{"prompt": "p\\ud800", "chosen": "a", "rejected": "b"}\n')
    # a pair of surrogates is one character, and fine
    assert read(tmp_path, '{"prompt": "\\ud83d\\ude00", "chosen": "a", "rejected": "b"}\n').train[0]["prompt"] == "😀"


def test_cli_data_names_the_deep_line(tmp_path, capsys):
    src = tmp_path / "d.jsonl"
    src.write_text('{"prompt": ' + DEEP + ', "chosen": "a", "rejected": "b"}\n')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"preferences:\n- {{name: p, source: {src}, format: pairs}}\n")
    assert main(["data", "-c", str(cfg), "-p", "p"]) == 2
    one_line_error(capsys, f"{src}:1: JSON nested more than 100 levels deep")


@pytest.fixture(scope="module")
def kinds(random_base_dir, tmp_path_factory):
    """A trained-adapter pair (pvlora.json kind adapter), the vector made from them, a composition
    of it, and a plain PEFT adapter without pvlora.json."""
    d = tmp_path_factory.mktemp("kinds")
    for direction, seed in (("positive", 51), ("negative", 52)):
        make_adapter(random_base_dir, d / f"helpful-{direction}", seed, r=2, lora_alpha=4, target_modules=["q_proj"])
        AdapterManifest(preference="helpful", direction=direction).write(d / f"helpful-{direction}")
    make_adapter(random_base_dir, d / "plain", 53, r=2, lora_alpha=4, target_modules=["q_proj"])
    extract_vector(d / "helpful-positive", d / "helpful-negative", d / "helpful")
    compose(str(random_base_dir), {str(d / "helpful"): 0.5}, d / "comp")
    return d


@pytest.mark.parametrize("name", ["pvlora.json", "adapter_config.json"])
@pytest.mark.parametrize(("value", "msg"), [
    (DEEP, r"JSON nested more than 100 levels deep \(at line 1\)"),
    ("[" * 150 + "]" * 150, r"JSON nested more than 100 levels deep \(at line 1\)"),
    ("9" * 5000, "a JSON integer with more than 4300 digits"),
    ('"\\udc00"', r"a string holds a lone UTF-16 surrogate \(\\udc00 at line 1\)"),
])
def test_artifact_json_from_a_stranger(kinds, tmp_path, name, value, msg):
    from pvlora.artifacts.peft_read import read_adapter

    d = tmp_path / "v"
    shutil.copytree(kinds / "helpful", d)
    (d / name).write_text('{"metrics": {"x": ' + value + "}}")
    with pytest.raises(ArtifactError, match=rf"v/{name}: {msg}"):
        read_adapter(d)


# ---------------------------------------------------------------- artifacts of the wrong kind


def test_compose_refuses_a_trained_adapter_as_a_vector(kinds, random_base_dir, tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["compose", "--base", str(random_base_dir), "--vector", f"{kinds / 'helpful-positive'}=1",
                 "--out", str(out)]) == 2
    one_line_error(capsys, f"{kinds / 'helpful-positive'}: its pvlora.json says kind 'adapter'",
                   "must be kind 'vector' or 'composition'", "pvlora extract")
    assert not out.exists()


def test_load_composed_refuses_a_trained_adapter(kinds, random_base_dir):
    import pvlora

    with pytest.raises(ArtifactError, match=r"helpful-negative: its pvlora.json says kind 'adapter' \(a trained LoRA "
                                            r"adapter, preference helpful, direction negative\)"):
        pvlora.load_composed(str(random_base_dir), {str(kinds / "helpful"): 1.0, str(kinds / "helpful-negative"): 1.0})


def test_serve_refuses_a_trained_adapter_before_serving(kinds, random_base_dir, capsys, monkeypatch):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("served a trained adapter as a vector"))
    assert main(["serve", "--base", str(random_base_dir), "--vector", str(kinds / "helpful-positive")]) == 2
    one_line_error(capsys, "its pvlora.json says kind 'adapter'", "must be kind 'vector' or 'composition'")


@pytest.mark.parametrize(("positive", "negative", "got"), [
    ("comp", None, "composition"), ("helpful", None, "vector"),
    ("helpful-positive", "helpful", "vector"), ("helpful", "helpful-negative", "vector"),
])
def test_extract_takes_trained_adapters_only(kinds, tmp_path, capsys, positive, negative, got):
    out = tmp_path / "v"
    argv = ["extract", "--positive", str(kinds / positive), "--out", str(out)]
    argv += ["--negative", str(kinds / negative)] if negative else ["--positive-only"]
    assert main(argv) == 2
    one_line_error(capsys, f"its pvlora.json says kind '{got}'", "must be kind 'adapter'")
    assert not out.exists()


def test_compositions_and_plain_peft_adapters_still_load(kinds, random_base_dir, tmp_path):
    """A composition is a vector-shaped adapter (scaling 1, Σ η·φ): composable and loadable. A plain
    PEFT adapter says nothing of its kind: usable as before, reported as unverified."""
    import pvlora

    m = compose(str(random_base_dir), {str(kinds / "comp"): 2.0, str(kinds / "plain"): 1.0}, tmp_path / "c2")
    assert m.unverified == ["plain"]
    model, _ = pvlora.load_composed(str(random_base_dir), {str(kinds / "comp"): 1.0})
    assert pvlora.get_weights(model) == {"comp": 1.0}
    assert extract_vector(kinds / "plain", None, tmp_path / "v", positive_only=True).kind == "vector"


def test_a_write_that_hits_a_file_size_limit_is_one_line_and_leaves_nothing(tmp_path):
    # ulimit -f (or a full disk) during the write: EFBIG inside the atomic writer, not a traceback
    import subprocess
    import sys

    script = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048)); "
              "from pvlora.cli import main; sys.exit(main(['data', '--preference', 'harmless', '--export', 'out.jsonl']))")
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and "the write failed (File too large" in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []  # no partial file, no temporary
