import textwrap

import pytest

from pvlora.config import load_config
from pvlora.core.errors import ConfigError

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def write(tmp_path, text):
    p = tmp_path / "exp.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_shipped_configs_load_and_builtin_matches_file():
    for p in sorted((REPO / "configs").rglob("*.yaml")):
        if "accelerate" in p.parts:
            continue
        cfg = load_config(p)
        assert cfg.preferences, p
    assert (REPO / "configs" / "tiny-demo.yaml").read_text() == (REPO / "pvlora" / "worlds" / "toy" / "demo.yaml").read_text()
    assert load_config(None).to_dict() == load_config(REPO / "configs" / "tiny-demo.yaml").to_dict()


def test_real_configs_follow_the_paper():
    for name in ("llama-3.2-3b", "llama-3.1-8b", "mistral-7b"):
        cfg = load_config(REPO / "configs" / "pku-saferlhf" / f"{name}.yaml")
        assert cfg.model.quantization == "nf4"
        assert cfg.dpo["max_length"] == 512 and cfg.dpo["learning_rate"] == 1e-6 and cfg.dpo["num_train_epochs"] == 2
        assert {p.name: p.label_column for p in cfg.preferences} == {
            "helpful": "better_response_id", "harmless": "safer_response_id"}


@pytest.mark.parametrize("yaml_text, needle", [
    ("model: {name_or_pth: x}\n", "unknown config key 'model.name_or_pth'.*exp.yaml.*did you mean 'name_or_path'"),
    ("outputs: {dir: x}\n", "unknown config key 'outputs'"),
    ("lora: {rank: 8}\n", "lora.rank: not a peft.LoraConfig field"),
    ("dpo: {betta: 0.1}\n", "dpo.betta: not a trl.DPOConfig field.*'beta'"),
    ("lora: {use_dora: true}\n", "DoRA"),
    ("model: {quantization: int3}\n", "model.quantization: 'int3' is not one of"),
    ("preferences: [{name: a, format: csv}]\n", "unknown format 'csv'"),
    ("preferences: [{name: a, limit: many}]\n", "preferences\\[0\\].limit: expected an integer"),
    ("seed: [1]\n", "seed: expected an integer"),
    ("train: {heldout_max_pairs: -1}\n", "train.heldout_max_pairs must be >= 0 or null"),
    ("train: {heldout_max_pairs: all}\n", "train.heldout_max_pairs: expected an integer"),
])
def test_bad_keys_and_values_name_key_and_file(tmp_path, yaml_text, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(write(tmp_path, yaml_text))


def test_cli_override_wins_over_yaml(tmp_path):
    p = write(tmp_path, """
        dpo: {beta: 0.1, learning_rate: 1.0e-5}
        preferences: [{name: helpful, limit: 10}]
    """)
    cfg = load_config(p, ["dpo.beta=0.25", "dpo.learning_rate=3e-4", "preferences.helpful.limit=7",
                          "model.name_or_path=org/model", "dpo.save_strategy=no"])
    assert cfg.dpo == {"beta": 0.25, "learning_rate": 3e-4, "save_strategy": "no"}
    assert cfg.preference("helpful").limit == 7 and cfg.model.name_or_path == "org/model"
    with pytest.raises(ConfigError, match="unknown config key 'model.nam'"):
        load_config(p, ["model.nam=x"])
    with pytest.raises(ConfigError, match="no preference named 'nope'"):
        load_config(p, ["preferences.nope.limit=3"])
    with pytest.raises(ConfigError, match=r"preferences\[0\]\.heldout_fraction: 1{20}\.\.\. is too large for a float"):
        load_config(p, ["preferences.helpful.heldout_fraction=" + "1" * 400])


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config .*missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(write(tmp_path, "model: [unclosed\n"))
