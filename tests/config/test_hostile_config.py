"""Third round of hostile inputs (issue 30): settings a config or ``--set`` gives (YAML aliases, values of
the wrong type, numbers that are not finite or not positive), config files that are not text files, η
grids too large to hold, data directories with other splits' and hidden files, empty prompts, and two
vectors for one preference. Each is one error line naming the key, file or grid and what is expected,
before any model loads."""

import json
import os
import shutil
import threading
import time

import pytest

from pvlora.cli import main
from pvlora.config import EvalConfig, ModelConfig, PreferenceConfig, load_config
from pvlora.core.errors import ConfigError, DataError
from tests.helpers import one_line_error

PAIR = {"prompt": "p", "chosen": "a", "rejected": "b"}



# ---------------------------------------------------------------- --set overrides


@pytest.mark.parametrize("override, needles", [
    ("lora.r=&a 1", ["lora.r=&a 1", "YAML anchors (&) and aliases (*) are not allowed"]),
    ("lora.r=*a", ["lora.r=*a", "YAML anchors (&) and aliases (*) are not allowed"]),
    ("lora.target_modules=[", ["lora.target_modules=[", "the value is not valid YAML", "quote"]),
    ("preferences.helpful=3", ["preferences.helpful", "a preference is a mapping",
                               "e.g. preferences.helpful.limit=3"]),
    ("lora.r=true", ["lora.r: expected an integer, got True"]),
    ("dpo.max_steps=1e400", ["dpo.max_steps: expected an integer, got inf"]),
    ("model.tiny_seed=-1", ["model.tiny_seed must be an integer in [0, 4294967295], got -1"]),
    ("seed=-1", ["seed must be an integer in [0, 4294967295], got -1"]),
    ("lora=3", ["lora: expected a mapping, got int"]),
    ("eval.scorers=refusal_harmful", ["eval.scorers: expected a list, got str"]),
])
def test_set_overrides_are_one_line_errors_naming_the_key(override, needles, capsys):
    assert main(["data", "-p", "helpful", "--set", override]) == 2
    one_line_error(capsys, *needles)


def test_an_alias_in_an_override_never_reaches_yaml_composer():
    with pytest.raises(ConfigError, match=r"override 'dpo.beta=\*x'.*anchors"):
        load_config(None, ["dpo.beta=*x"])


def test_integral_numbers_are_taken_for_integer_settings():
    cfg = load_config(None, ["dpo.max_steps=1e3", "lora.r=4.0", "eval.batch_size=8"])
    assert cfg.dpo["max_steps"] == 1000 and type(cfg.dpo["max_steps"]) is int
    assert cfg.lora["r"] == 4 and type(cfg.lora["r"]) is int
    with pytest.raises(ConfigError, match="lora.r: expected an integer, got 4.5"):
        load_config(None, ["lora.r=4.5"])
    alpha = tuple(load_config(None, [f"lora.lora_alpha={a}"]).lora["lora_alpha"] for a in ("16", "0.5"))
    assert alpha == (16, 0.5) and type(alpha[0]) is int  # PEFT scales by alpha / r: any positive number


# ---------------------------------------------------------------- numbers


@pytest.mark.parametrize("override, needle", [
    ("dpo.beta=nan", "dpo.beta: must be a finite number, got nan"),
    ("dpo.learning_rate=1e400", "dpo.learning_rate: must be a finite number, got inf"),
    ("lora.lora_alpha=.nan", "lora.lora_alpha: must be a finite number, got nan"),
    ("lora.lora_dropout=.inf", "lora.lora_dropout: must be a finite number, got inf"),
    ("dpo.loss_weights=[1, .nan]", r"dpo.loss_weights\[1\]: must be a finite number, got nan"),
    ("lora.rank_pattern={q_proj: .nan}", "lora.rank_pattern.q_proj: must be a finite number, got nan"),
    ("dpo.beta=0", "dpo.beta must be positive, got 0"),
    ("dpo.learning_rate=-1e-5", "dpo.learning_rate must be positive, got -1e-05"),
    ("lora.r=0", "lora.r must be positive, got 0"),
    ("lora.lora_dropout=1", r"lora.lora_dropout must be in \[0, 1\), got 1"),
    ("dpo.per_device_train_batch_size=0", "dpo.per_device_train_batch_size must be positive, got 0"),
    ("preferences.helpful.dpo.beta=nan", r"preferences\[helpful\].dpo.beta: must be a finite number, got nan"),
    ("sft.args.learning_rate=inf", "sft.args.learning_rate: must be a finite number, got inf"),
    ("eval.batch_size=0", "eval.batch_size must be positive, got 0"),
    ("eval.max_new_tokens=0", "eval.max_new_tokens must be positive, got 0"),
    ("eval.temperature=nan", "eval.temperature: must be a finite number, got nan"),
])
def test_non_finite_and_non_positive_numbers_are_refused_at_load_naming_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [override])


def test_a_sampling_temperature_must_be_positive():
    with pytest.raises(ConfigError, match="eval.temperature must be positive, got 0"):
        load_config(None, ["eval.do_sample=true", "eval.temperature=0"])
    assert load_config(None, ["eval.temperature=0"]).eval.temperature == 0  # greedy: unused


def test_train_refuses_a_nan_setting_before_training(capsys, monkeypatch):
    import pvlora.training.dpo as dpo

    monkeypatch.setattr(dpo, "train_all", lambda *a, **k: pytest.fail("training started"))
    assert main(["train", "-p", "helpful", "--set", "dpo.beta=nan"]) == 2
    one_line_error(capsys, "dpo.beta: must be a finite number, got nan")
    assert main(["train", "-p", "helpful", "--set", "dpo.per_device_train_batch_size=0"]) == 2
    one_line_error(capsys, "dpo.per_device_train_batch_size must be positive, got 0")


@pytest.mark.parametrize("stage", ["train_all", "run_sft"])
def test_training_rechecks_a_config_changed_after_loading(stage, monkeypatch, tmp_path):
    import pvlora.training.dpo as dpo
    import pvlora.training.sft as sft

    for module in (dpo, sft):
        monkeypatch.setattr(module, "resolve_base", lambda *a, **k: pytest.fail("a base was resolved"))
    cfg = load_config(None, [f"output.dir={tmp_path}"])
    if stage == "train_all":
        cfg.preference("helpful").dpo["beta"] = float("nan")
        with pytest.raises(ConfigError, match=r"preferences\[helpful\].dpo.beta: must be a finite number, got nan"):
            dpo.train_all(cfg, "helpful")
    else:
        cfg.sft.args["per_device_train_batch_size"] = 0
        with pytest.raises(ConfigError, match="sft.args.per_device_train_batch_size must be positive, got 0"):
            sft.run_sft(cfg)
    assert list(tmp_path.iterdir()) == []


def test_yaml_numbers_without_a_dot_are_numbers_in_files(tmp_path):
    """YAML 1.1 reads ``1e-5`` as text; a float setting takes it as the number it spells."""
    p = tmp_path / "c.yaml"
    p.write_text("dpo: {learning_rate: 1e-5, beta: 1e400}\n")
    with pytest.raises(ConfigError, match=f"dpo.beta: must be a finite number, got inf.*{p.name}"):
        load_config(p)
    p.write_text("dpo: {learning_rate: 1e-5}\neval: {temperature: 5e-1}\n")
    cfg = load_config(p)
    assert cfg.dpo["learning_rate"] == 1e-5 and cfg.eval.temperature == 0.5


def test_typed_blocks_check_their_fields_however_they_are_built():
    with pytest.raises(ConfigError, match=r"model.quantization: 'int8' is not one of \['none', 'nf4'\]"):
        ModelConfig(quantization="int8")
    with pytest.raises(ConfigError, match="eval.temperature: must be a finite number, got nan"):
        EvalConfig(temperature=float("nan"))
    with pytest.raises(ConfigError, match=r"preferences\[a\].limit: expected an integer, got True"):
        PreferenceConfig(name="a", limit=True)
    with pytest.raises(ConfigError, match=r"eval.grid.helpful: expected a list, got str"):
        EvalConfig(grid={"helpful": "0:1:0.5"})


def test_load_composed_refuses_int8_before_loading(two_vectors):
    from pvlora.steering.load import load_composed

    with pytest.raises(ConfigError, match=r"model.quantization: 'int8' is not one of \['none', 'nf4'\]"):
        load_composed("tiny", {two_vectors["helpful"]: 1.0}, quantization="int8")


# ---------------------------------------------------------------- config files


def test_a_binary_config_is_refused(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe" * 10)
    assert main(["data", "-p", "helpful", "-c", str(p)]) == 2
    one_line_error(capsys, f"config {p}: not UTF-8 text")


def test_dev_zero_as_config_is_refused(capsys):
    assert main(["data", "-p", "helpful", "-c", "/dev/zero"]) == 2
    one_line_error(capsys, "config /dev/zero: not a regular file")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_as_config_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo)
    result = {}

    def load():
        try:
            load_config(fifo)
        except ConfigError as exc:
            result["error"] = str(exc)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(20)
    if t.is_alive():  # unblock the reader so the thread can end, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("load_config blocked on a FIFO")
    assert "not a regular file" in result["error"] and str(fifo) in result["error"]


def test_a_huge_config_file_is_refused_before_reading_it_all(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match=f"config {p}: .* bytes, over the 1048576-byte bound"):
        load_config(p)


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path, capsys):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, (prev, name) in enumerate(zip("abcdefgh", "bcdefghi")):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    p = tmp_path / "bomb.yaml"
    p.write_text("\n".join(lines) + "\n")
    assert p.stat().st_size < 600  # expands to 10^9 values
    start = time.monotonic()
    assert main(["data", "-p", "helpful", "-c", str(p)]) == 2
    one_line_error(capsys, f"config {p}", "expands to more than 100,000 values through YAML aliases")
    assert time.monotonic() - start < 10


def test_a_recursive_alias_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lora: &a {r: 8, more: *a}\n")
    with pytest.raises(ConfigError, match="refers to itself through a YAML alias"):
        load_config(p)


def test_nesting_too_deep_is_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("lora: {rank_pattern: " + "[" * 5000 + "]" * 5000 + "}\n")
    with pytest.raises(ConfigError, match=f"config {p}: nested more than 100 levels deep"):
        load_config(p)


def test_a_config_that_is_not_a_mapping_is_refused_even_with_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match=f"config: expected a mapping in {p}, got list"):
        load_config(p, ["model.name_or_path=x"])


def test_invalid_yaml_is_one_line_with_its_position(tmp_path, capsys):
    p = tmp_path / "c.yaml"
    p.write_text("model:\n  name_or_path: [unclosed\n")
    assert main(["data", "-p", "helpful", "-c", str(p)]) == 2
    one_line_error(capsys, f"{p}: invalid YAML at line")


def test_ordinary_anchors_still_work_and_are_independent_copies(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("dpo: &d {beta: 0.1, learning_rate: 1.0e-4}\n"
                 "preferences:\n- {name: a, dpo: *d}\n- {name: b, dpo: {<<: *d, beta: 0.3}}\n")
    cfg = load_config(p, ["dpo.beta=0.2"])
    assert cfg.dpo["beta"] == 0.2
    assert cfg.preference("a").dpo == {"beta": 0.1, "learning_rate": 1e-4}
    assert cfg.preference("b").dpo == {"beta": 0.3, "learning_rate": 1e-4}


# ---------------------------------------------------------------- grids


@pytest.mark.parametrize("item", ["helpful=0:1e300:1e-300", "helpful=0:1:1e-10", "helpful=0:1e400:1"])
def test_sweep_grid_ranges_are_capped(item, capsys):
    start = time.monotonic()
    assert main(["sweep", "--grid", item]) == 2
    err = one_line_error(capsys, f"--grid {item!r}")
    assert "more than 1,000 points" in err or "not a finite number" in err, err
    assert time.monotonic() - start < 10


def test_sweep_grid_product_is_capped(capsys):
    assert main(["sweep", "--grid", "a=0:199:1", "--grid", "b=0:99:1"]) == 2
    one_line_error(capsys, "--grid: 20,000 points in all (a 200 x b 100), more than 10,000")


def test_grid_points_and_tune_refuse_a_string_grid():
    from pvlora.evaluation.grid import grid_points
    from pvlora.evaluation.tune import tune

    with pytest.raises(ConfigError, match=r"grid helpful: expected a list of numbers, got str '0:1:0.5'"):
        grid_points({"helpful": "0:1:0.5"})

    class NoModel:
        def set_split(self, split):
            pass

        def score(self, w):
            pytest.fail("scored a point")

    with pytest.raises(ConfigError, match=r"grid helpful: expected a list of numbers"):
        tune(NoModel(), "m", [], ["helpful"], {"helpful": "0,1"}, scorers=["m"])
    with pytest.raises(ConfigError, match=r"grid helpful\[1\]: expected a number, got 'x'"):
        grid_points({"helpful": [0, "x"]})
    with pytest.raises(ConfigError, match=r"grid helpful\[0\]: expected a finite number, got nan"):
        grid_points({"helpful": [float("nan")]})
    with pytest.raises(ConfigError, match="grid helpful: 1,001 points, more than 1,000"):
        grid_points({"helpful": [0.0] * 1001})
    assert grid_points({"a": [0, 1], "b": [2]}) == [{"a": 0, "b": 2}, {"a": 1, "b": 2}]


def test_tune_with_a_string_grid_in_the_config_is_a_load_error():
    with pytest.raises(ConfigError, match="eval.grid.helpful: expected a list, got str '0,1'"):
        load_config(None, ["eval.grid.helpful=0,1"])
    with pytest.raises(ConfigError, match=r"eval.grid.helpful\[1\]: expected a number, got 'x'"):
        load_config(None, ["eval.grid.helpful=[0, x]"])


def test_tune_gives_a_preference_without_a_grid_the_default_one():
    from pvlora.evaluation.grid import DEFAULT_GRID
    from pvlora.evaluation.tune import tune

    seen = []

    class Flat:
        def set_split(self, split):
            pass

        def score(self, w):
            seen.append(dict(w))
            return {"m": 1.0}

    result = tune(Flat(), "m", [], ["a", "b"], {"a": [0.0, 1.0]}, rounds=0, scorers=["m"], score_test=False)
    assert sorted({w["b"] for w in seen}) == DEFAULT_GRID and result["points_evaluated"] == 2 * len(DEFAULT_GRID)
    with pytest.raises(ConfigError, match=r"the grid names \['c'\] but only a, b are tuned"):
        tune(Flat(), "m", [], ["a", "b"], {"c": [0.0]}, scorers=["m"])


# ---------------------------------------------------------------- data directories


def write_rows(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pref(source, split="train"):
    return PreferenceConfig(name="p", source=str(source), format="pairs", split=split, heldout_fraction=0.0)


def test_a_data_directory_skips_hidden_folders_and_files(tmp_path):
    from pvlora.data import load_preference_data

    write_rows(tmp_path / "train.jsonl", [PAIR])
    write_rows(tmp_path / ".ipynb_checkpoints" / "train-checkpoint.jsonl", [{**PAIR, "prompt": "stale"}])
    write_rows(tmp_path / ".train.jsonl", [{**PAIR, "prompt": "hidden"}])
    data = load_preference_data(pref(tmp_path))
    assert [p["prompt"] for p in data.train] == ["p"]


def test_a_data_directory_never_falls_back_to_other_splits(tmp_path, capsys):
    from pvlora.data import load_preference_data

    write_rows(tmp_path / "test.jsonl", [{**PAIR, "prompt": "test"}])
    write_rows(tmp_path / "data" / "validation-00000-of-00001.jsonl", [{**PAIR, "prompt": "val"}])
    with pytest.raises(DataError, match=r"data source .*: no file for split 'train'.*found: "
                                        r"data/validation-00000-of-00001.jsonl \(validation\), test.jsonl \(test\)"):
        load_preference_data(pref(tmp_path))
    assert [p["prompt"] for p in load_preference_data(pref(tmp_path, "test")).train] == ["test"]
    assert [p["prompt"] for p in load_preference_data(pref(tmp_path, "validation")).train] == ["val"]


def test_a_data_directory_of_unnamed_shards_reads_them_all(tmp_path):
    from pvlora.data import load_preference_data

    write_rows(tmp_path / "part-0.jsonl", [{**PAIR, "prompt": "0"}])
    write_rows(tmp_path / "part-1.jsonl", [{**PAIR, "prompt": "1"}])
    write_rows(tmp_path / "training_notes.jsonl", [{**PAIR, "prompt": "2"}])  # "training" is not split "train"
    assert [p["prompt"] for p in load_preference_data(pref(tmp_path)).train] == ["0", "1", "2"]


def test_split_folders_count_as_split_names(tmp_path):
    from pvlora.data import load_preference_data

    write_rows(tmp_path / "train" / "0.jsonl", [{**PAIR, "prompt": "tr"}])
    write_rows(tmp_path / "test" / "0.jsonl", [{**PAIR, "prompt": "te"}])
    assert [p["prompt"] for p in load_preference_data(pref(tmp_path)).train] == ["tr"]


# ---------------------------------------------------------------- empty prompts


def test_empty_prompts_in_data_rows_name_the_first_file_and_line(tmp_path, capsys):
    src = write_rows(tmp_path / "d.jsonl", [{**PAIR, "prompt": ""}, {**PAIR, "prompt": "  "}])
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"preferences:\n- {{name: p, source: {src}, format: pairs}}\n")
    assert main(["data", "-c", str(cfg), "-p", "p"]) == 2
    one_line_error(capsys, "no usable preference pair left out of 2 rows",
                   f"(2 empty prompt); first dropped: {src}:1 (empty prompt)")


def test_an_empty_message_prompt_in_an_eval_file_names_file_and_line(tmp_path):
    from pvlora.evaluation.prompt_sets import read_prompt_file

    p = tmp_path / "e.jsonl"
    p.write_text(json.dumps({"prompt": "hi", "kind": "benign"}) + "\n"
                 + json.dumps({"prompt": [{"role": "user", "content": " "}], "kind": "benign"}) + "\n")
    with pytest.raises(DataError, match=f"{p}:2: the final user message of 'prompt' is empty"):
        read_prompt_file(p)
    p.write_text(json.dumps({"prompt": "", "kind": "benign"}) + "\n")
    with pytest.raises(DataError, match=f"{p}:1: 'prompt' must be non-empty text"):
        read_prompt_file(p)


# ---------------------------------------------------------------- vectors


def test_two_vector_directories_for_one_preference_are_refused(two_vectors, tmp_path):
    from pvlora.evaluation.evaluator import find_vectors

    shutil.copytree(two_vectors["helpful"], tmp_path / "helpful-old")
    shutil.copytree(two_vectors["helpful"], tmp_path / "helpful-new")
    shutil.copytree(two_vectors["harmless"], tmp_path / "harmless")
    with pytest.raises(ConfigError, match=r"two vector directories for preference 'helpful': .*helpful-new and "
                                          r".*helpful-old; keep one"):
        find_vectors(tmp_path)
    shutil.rmtree(tmp_path / "helpful-old")
    assert sorted(find_vectors(tmp_path)) == ["harmless", "helpful"]
