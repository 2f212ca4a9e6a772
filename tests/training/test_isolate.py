"""train.process_per_preference: each preference trains in a child process; same adapters, same errors."""

import os

import pytest
import torch
from safetensors.torch import load_file

from pvlora.config import load_config
from pvlora.core.errors import ConfigError, DataError
from pvlora.training.dpo import adapter_dir, train_all
from pvlora.training.isolate import ChildFailed, run_in_child

SMALL = ["dpo.max_steps=2", "preferences.concise.limit=32", "preferences.helpful.limit=32",
         "train.heldout_max_pairs=8"]


def _weights(cfg, pref, direction):
    return load_file(adapter_dir(cfg, pref, direction) / "adapter_model.safetensors")


@pytest.mark.slow
def test_children_train_the_same_adapters_as_one_process(tmp_path, tiny_base_dir):
    """Two preferences, both directions, in one process and in two children: byte-equal adapters,
    the same manifest metrics, and the children's results read back from disk."""
    runs = {}
    for name, isolate in (("one", "false"), ("children", "true")):
        cfg = load_config(None, [f"output.dir={tmp_path / name}", *SMALL, f"train.process_per_preference={isolate}"])
        cfg.preferences = [cfg.preference("concise"), cfg.preference("helpful")]
        runs[name] = (cfg, train_all(cfg, None, "both"))
    (one, res_one), (kids, res_kids) = runs["one"], runs["children"]
    assert [r.path.name for r in res_kids] == [r.path.name for r in res_one] == [
        "concise-positive", "concise-negative", "helpful-positive", "helpful-negative"]
    for pref in ("concise", "helpful"):
        for d in ("positive", "negative"):
            a, b = _weights(one, pref, d), _weights(kids, pref, d)
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), (pref, d)
    for r1, r2 in zip(res_one, res_kids):
        for key in ("train_steps", "train_loss", "heldout_accuracy", "heldout_accuracy_base"):
            assert r1.manifest.metrics.get(key) == r2.manifest.metrics.get(key), (r1.path.name, key)


def test_a_refusal_in_the_child_is_raised_in_the_parent(tmp_path, tiny_base_dir):
    """The data file is read in the child: its DataError/ConfigError comes back as itself, naming the file."""
    missing = tmp_path / "nowhere.jsonl"
    cfg = load_config(None, [f"output.dir={tmp_path / 'out'}", "train.process_per_preference=true"])
    cfg.preferences = [cfg.preference("concise")]
    cfg.preferences[0].source = str(missing)
    cfg.preferences[0].format = "messages"
    with pytest.raises((DataError, ConfigError, FileNotFoundError), match="nowhere.jsonl"):
        train_all(cfg, None, "positive")
    assert not adapter_dir(cfg, "concise", "positive").exists()


def test_a_child_that_dies_is_reported_with_its_exit_code():
    with pytest.raises(ChildFailed, match="exit code 3"):
        run_in_child(os._exit, 3)  # exits before it can answer
