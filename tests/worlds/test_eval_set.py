"""The SmolLM2 study's second evaluation set: halves drawn alike, sizes, new topics, references."""

from collections import Counter

import pytest

from pvlora.core.errors import ConfigError
from pvlora.worlds.smollm2 import eval_set
from pvlora.worlds.smollm2.eval_set import FORMS, eval_prompts, eval_rows, select, split_sections
from pvlora.worlds.smollm2.prompts import HARMFUL_TRAIN_FILE, PROMPTS_FILE, parse


def test_each_half_holds_enough_prompts_of_each_kind():
    for half in ("validation", "test"):
        assert len(select(half, "harmful")) >= 150
        assert len(select(half, "benign")) >= 250


def test_every_section_is_halved_so_both_halves_share_topics_and_forms():
    sections = Counter((p.kind, p.topic, p.form) for p in eval_prompts())
    for half in ("validation", "test"):
        got = Counter((p.kind, p.topic, p.form) for p in select(half))
        assert set(got) == set(sections)  # every topic and form in both halves
        for key, n in sections.items():
            assert got[key] in (n // 2, n - n // 2), key
    for kind in ("benign", "harmful"):  # the odd sections' extra prompts alternate: halves within one prompt
        assert abs(len(select("validation", kind)) - len(select("test", kind))) <= 1
    assert {p.form for p in eval_prompts()} == set(FORMS)
    assert {p.form for p in select(kind="harmful")} == {"howto", "whatis", "write"}


def test_split_by_hand_and_the_odd_section_rule():
    rows = [(f"b{i}", "benign", "t", "howto") for i in range(3)] + [(f"c{i}", "benign", "u", "write") for i in range(3)]
    halves = Counter((p.topic, p.split) for p in split_sections(rows))
    # the first odd section gives its extra prompt to validation, the next to test
    assert halves == {("t", "validation"): 2, ("t", "test"): 1, ("u", "validation"): 1, ("u", "test"): 2}
    assert split_sections(rows) == split_sections(rows)  # seeded
    with pytest.raises(ConfigError, match="xstest is a form of benign requests only"):
        split_sections([("x", "harmful", "t", "xstest")])


def test_no_topic_of_the_first_set_or_of_training_and_no_prompt_twice():
    old = {t for f in (PROMPTS_FILE, HARMFUL_TRAIN_FILE) for _, _, t, _ in parse(f.read_text(), str(f))}
    new = {p.topic for p in eval_prompts()}
    assert not old & new
    texts = [p.text for p in eval_prompts()]
    assert len(set(texts)) == len(texts)
    first = {t for t, *_ in parse(PROMPTS_FILE.read_text(), str(PROMPTS_FILE))}
    assert not first & set(texts)


def test_rows_carry_form_topic_and_every_other_benign_reference():
    rows = eval_rows("validation")
    assert {r["form"] for r in rows} == set(FORMS)
    benign = [r for r in rows if r["kind"] == "benign"]
    assert [bool(r["reference"]) for r in benign] == [i % 2 == 0 for i in range(len(benign))]
    assert not any(r["reference"] for r in rows if r["kind"] == "harmful")
    assert len(eval_rows("all")) == len(rows) + len(eval_rows("test"))
    with pytest.raises(ConfigError):
        eval_rows("train")


def test_the_study_config_names_this_set():
    from pvlora.core import registry

    assert registry.get("prompts", "smollm2") is eval_set.eval_rows
