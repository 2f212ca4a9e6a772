"""Bad data and arguments: a clear error naming the file, row and column, never a silent wrong result."""

import json

import pytest

from pvlora.config import PreferenceConfig
from pvlora.data import load_preference_data
from pvlora.core.errors import DataError


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD_PAIR = {"prompt": "p", "chosen": "a", "rejected": "b"}
MSGS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


@pytest.mark.parametrize(("fmt", "row", "column", "got"), [
    ("pairs", {"prompt": "p", "chosen": ["a", "b"], "rejected": "c"}, "chosen", "list"),
    ("pairs", {"prompt": {"text": "p"}, "chosen": "a", "rejected": "c"}, "prompt", "dict"),
    ("pairs", {"prompt": "p", "chosen": "a", "rejected": 3}, "rejected", "int"),
    ("hh_rlhf", {"chosen": ["\n\nHuman: x\n\nAssistant: y"], "rejected": "\n\nHuman: x\n\nAssistant: z"}, "chosen", "list"),
    ("pku_saferlhf", {"prompt": "p", "response_0": 1.5, "response_1": "b", "better_response_id": 0}, "response_0", "float"),
    ("messages", {"prompt": [{"role": "user", "content": ["x"]}], "chosen": MSGS[1:], "rejected": MSGS[1:]},
     r"prompt\[0\].content", "list"),
])
def test_non_text_fields_are_refused_with_file_line_and_column(tmp_path, fmt, row, column, got):
    rows = [GOOD_PAIR, row] if fmt == "pairs" else [row]  # the error names the offending line
    f = write_rows(tmp_path / "d.jsonl", rows)
    with pytest.raises(DataError, match=rf"d\.jsonl:{len(rows)}: column '{column}': expected text, got {got}"):
        load_preference_data(PreferenceConfig(name="p", source=str(f), format=fmt))


def test_message_rows_fed_to_pairs_name_the_right_format(tmp_path):
    f = write_rows(tmp_path / "d.jsonl", [{"prompt": MSGS[:1], "chosen": MSGS[1:], "rejected": MSGS[1:]}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: column 'prompt': .*use format: messages"):
        load_preference_data(PreferenceConfig(name="p", source=str(f), format="pairs"))


def test_unknown_message_roles_are_refused(tmp_path):
    bad = [{"role": "hacker", "content": "hi"}]
    f = write_rows(tmp_path / "d.jsonl", [{"prompt": bad, "chosen": MSGS[1:], "rejected": [{"role": "assistant", "content": "x"}]}])
    with pytest.raises(DataError, match=r"d\.jsonl:1: column 'prompt\[0\].role': 'hacker' is not one of system, user"):
        load_preference_data(PreferenceConfig(name="p", source=str(f), format="messages"))


def test_max_turns_keeps_single_turn_dialogues(tmp_path):
    two = [*MSGS, {"role": "user", "content": "more"}]
    rows = [{"prompt": MSGS[:1], "chosen": [{"role": "assistant", "content": f"a{i}"}],
             "rejected": [{"role": "assistant", "content": f"b{i}"}]} for i in range(3)]
    rows.append({"prompt": two, "chosen": MSGS[1:], "rejected": [{"role": "assistant", "content": "no"}]})
    f = write_rows(tmp_path / "d.jsonl", rows)
    d = load_preference_data(PreferenceConfig(name="p", source=str(f), format="messages", max_turns=1,
                                              heldout_fraction=0.0))
    assert len(d.train) == 3 and d.drops == {"more than 1 user turn(s)": 1}
    with pytest.raises(DataError, match="no pair has at most 1 user turn"):
        load_preference_data(PreferenceConfig(name="p", source=str(write_rows(tmp_path / "e.jsonl", rows[3:])),
                                              format="messages", max_turns=1))


def test_a_huge_row_is_dropped_before_tokenising(tmp_path):
    rows = [GOOD_PAIR, {"prompt": "p", "chosen": "x" * 300_000, "rejected": "b"}]
    d = load_preference_data(PreferenceConfig(name="p", source=str(write_rows(tmp_path / "d.jsonl", rows)),
                                              format="pairs", heldout_fraction=0.0))
    assert len(d.train) == 1 and d.drops == {"a text longer than 200,000 characters": 1}


def test_unwritable_destination_is_a_one_line_error(tmp_path):
    from pvlora.artifacts.atomic import atomic_dir
    from pvlora.core.errors import ArtifactError

    (tmp_path / "afile").write_text("x")  # a parent that cannot be a directory (as root, read-only is writable)
    with pytest.raises(ArtifactError, match=r"afile/v: cannot write there .*choose a writable location"), \
            atomic_dir(tmp_path / "afile" / "v"):
        pass


def test_huge_or_odd_weights_are_refused_by_value(tmp_path):
    from pvlora.core.errors import ArtifactError, EtaError, RequestError
    from pvlora.steering.load import check_eta

    with pytest.raises(EtaError, match=r"weight for 'h' is 1e\+308; \|η\| must be at most 1000") as err:
        check_eta("h", 1e308)
    assert err.value.field == "h" and isinstance(err.value, RequestError) and not isinstance(err.value, ArtifactError)
    with pytest.raises(EtaError, match="must be finite"):
        check_eta("h", "nan")
    assert check_eta("h", "-2.5") == -2.5
    with pytest.raises(EtaError, match=r"weight for 'h' is too large; \|η\| must be at most 1000"):
        check_eta("h", 10**400)  # a JSON integer literal too long for a float
    with pytest.raises(EtaError, match="must be a number") as err:
        check_eta("h", "lots", field="preference_weights.h")
    assert err.value.field == "preference_weights.h"


def test_eval_vectors_with_a_broken_manifest_name_the_file(tmp_path):
    from pvlora.core.errors import ArtifactError
    from pvlora.evaluation.evaluator import find_vectors

    (tmp_path / "helpful").mkdir()
    (tmp_path / "helpful" / "pvlora.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=r"helpful/pvlora.json: not valid JSON"):
        find_vectors(tmp_path)
