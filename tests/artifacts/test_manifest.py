"""The typed artifact contract: ``Manifest`` round-trips ``pvlora.json`` (known fields typed, unknown
keys kept), hashes stay mandatory once listed, built-in names resolve through one registry, and the
package keeps its layering (no cycle, no import up a layer)."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from pvlora.core import registry as builtins
from pvlora.artifacts.peft_read import read_adapter
from pvlora.artifacts.compat import BaseFingerprint
from pvlora.core.errors import ArtifactError, ConfigError
from pvlora.artifacts.manifest import SCHEMA, Manifest
from pvlora.vectors.extract import extract_vector
from tests.helpers import make_adapter

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def vec(random_base_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("manifest")
    p = make_adapter(random_base_dir, d / "pos", 51, r=2, lora_alpha=4, target_modules=["q_proj"])
    n = make_adapter(random_base_dir, d / "neg", 52, r=3, lora_alpha=6, target_modules=["q_proj"])
    extract_vector(p, n, d / "helpful", preference="helpful", command="pvlora extract ...")
    return d / "helpful"


def test_manifest_round_trips_the_file_and_types_its_fields(vec):
    on_disk = json.loads((vec / "pvlora.json").read_text())
    m = Manifest.read(vec)
    assert m.to_dict() == on_disk  # nothing lost, nothing added
    assert (m.kind, m.preference, m.method, m.schema) == ("vector", "helpful", "difference", SCHEMA)
    assert m.exact_rank == 2 + 3 and m.rank == 5 and m.compression is None
    assert isinstance(m.base, BaseFingerprint) and m.base.config_sha256 == on_disk["base"]["config_sha256"]
    assert set(m.sources) == {"positive", "negative"} and m.command == "pvlora extract ..."
    assert read_adapter(vec).manifest == m


def test_unknown_keys_are_kept_and_written_back(vec, tmp_path):
    d = tmp_path / "v"
    shutil.copytree(vec, d)
    raw = json.loads((d / "pvlora.json").read_text())
    raw["reviewed_by"] = {"name": "someone", "ok": True}  # a field a newer pvlora of the same schema may add
    (d / "pvlora.json").write_text(json.dumps(raw))
    m = Manifest.read(d)
    assert m.extra == {"reviewed_by": {"name": "someone", "ok": True}}
    m.write(d)
    assert json.loads((d / "pvlora.json").read_text())["reviewed_by"] == {"name": "someone", "ok": True}
    read_adapter(d)  # rewritten hashes still verify


def test_an_empty_hash_list_does_not_switch_verification_off(vec, tmp_path):
    d = tmp_path / "v"
    shutil.copytree(vec, d)
    raw = json.loads((d / "pvlora.json").read_text())
    raw["weights_sha256"] = {}
    (d / "pvlora.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="not covered by the sha256 list"):
        read_adapter(d)


@pytest.mark.parametrize(("field", "value", "msg"), [
    ("rank", "16", "rank must be an integer"), ("norm", [1.0], "norm must be a number"),
    ("vectors", {"a": 1}, "vectors must be a list of {preference: string, weight: finite number} objects"), ("direction", "sideways", "direction 'sideways' is not one of"),
    ("metrics", 3, "metrics must be an object"), ("unverified", [1], "unverified must be a list of strings"),
])
def test_each_field_type_is_checked_on_read(vec, tmp_path, field, value, msg):
    d = tmp_path / "v"
    shutil.copytree(vec, d)
    raw = json.loads((d / "pvlora.json").read_text())
    raw[field] = value
    (d / "pvlora.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match=msg) as e:
        Manifest.read(d)
    assert "pvlora.json" in str(e.value)


def test_file_names_are_pefts_own():
    from peft.utils.constants import CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME

    from pvlora.artifacts.manifest import ADAPTER_CONFIG, PICKLE_WEIGHTS, SAFE_WEIGHTS

    assert (ADAPTER_CONFIG, SAFE_WEIGHTS, PICKLE_WEIGHTS) == (CONFIG_NAME, SAFETENSORS_WEIGHTS_NAME, WEIGHTS_NAME)


def test_builtin_names_resolve_through_one_registry():
    from pvlora.config import FORMAT_NAMES, SFT_FORMATS, ModelConfig
    from pvlora.data.formats import FORMATS
    from pvlora.bases.load import fingerprint

    assert set(FORMAT_NAMES) == set(FORMATS) | set(builtins.names("preference_data")) and "toy" in FORMAT_NAMES
    assert "toy" in SFT_FORMATS and builtins.names("prompts") == ["smollm2", "smollm2-first", "toy"]
    with pytest.raises(ConfigError, match="no built-in base named 'huge'; built-in: tiny"):
        builtins.get("base", "huge")
    made = builtins.get("base", "tiny")
    fp = fingerprint(ModelConfig(name_or_path="tiny", tiny_seed=3), {"model_type": "llama"})
    assert fp["name_or_path"] == made.recorded_as and fp["tiny_seed"] == 3



def test_each_kind_reads_as_its_own_type_with_typed_records(vec, random_base_dir, tmp_path):
    from pvlora.artifacts.manifest import AdapterManifest, CompositionManifest, VectorManifest
    from pvlora.artifacts.records import RecipeEntry
    from pvlora.vectors.compose import compose

    assert type(Manifest.read(vec)) is VectorManifest and Manifest.read(vec.parent / "pos") is None  # plain PEFT
    comp = compose(str(random_base_dir), {str(vec): 0.5}, tmp_path / "comp", rank=2)
    m = Manifest.read(tmp_path / "comp")
    assert type(m) is CompositionManifest and m == comp and m.recipe() == "helpful=0.5"
    assert m.vectors == [RecipeEntry(preference="helpful", weight=0.5, path="helpful",
                                     weights_sha256=Manifest.read(vec).weights_sha256)]
    assert m.compression.rank == 2 and 0 < m.compression.relative_error < 1
    assert type(Manifest.from_dict({"preference": "helpful"})) is AdapterManifest  # no kind: as before kinds
    with pytest.raises(ArtifactError, match="pvlora.json: kind is 'vector', not 'adapter'"):
        AdapterManifest.from_dict({"kind": "vector"})
    with pytest.raises(TypeError, match="build an AdapterManifest"):
        Manifest()


def test_fields_of_another_kind_and_old_recipes_are_written_back_as_read():
    raw = {"kind": "composition", "schema": 1, "preference": "mix", "direction": "positive", "base": None,
           "vectors": [{"preference": "a", "weight": 1}, {"path": None, "preference": "b", "weight": -0.5,
                                                          "weights_sha256": None, "note": "kept"}],
           "metrics": {}, "weights_sha256": {"adapter_model.safetensors": "0" * 64}}
    m = Manifest.from_dict(json.loads(json.dumps(raw)))
    assert m.extra == {"direction": "positive"} and m.vectors[1].extra == {"note": "kept"}
    assert json.dumps(m.to_dict()) == json.dumps(raw)  # same keys, same order, nothing added or lost


def test_a_base_is_resolved_once_with_the_fingerprint_training_records(random_base_dir):
    from pvlora.bases.load import load_base, resolve_base
    from pvlora.config import ModelConfig

    base = resolve_base(ModelConfig(name_or_path=str(random_base_dir)))
    assert base.path == str(random_base_dir) and base.config.hidden_size == 32
    _, _, loaded = load_base(base)  # the fingerprint of the loaded model's own config
    assert isinstance(base.fingerprint, BaseFingerprint) and base.fingerprint.to_dict() == loaded
