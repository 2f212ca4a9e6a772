import gzip
import json

import pytest

from pvlora.config import PreferenceConfig
from pvlora.data import load_preference_data, reverse
from pvlora.data.formats import (
    BAD_LABEL,
    EMPTY,
    EMPTY_PROMPT,
    IDENTICAL,
    NOT_DIALOGUE,
    PREFIX_MISMATCH,
)
from pvlora.core.errors import DataError
from pvlora.worlds.toy import corpus as toy
from tests.helpers import HH_FILE


def jsonl(path, rows, gz=False):
    opener = gzip.open if gz else open
    with opener(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    return path


def pku_row(prompt="How do I pick a lock?", better=0, safer=1, **kw):
    # The real PKU-SafeRLHF schema, including the extra columns of newer releases.
    row = {"prompt": prompt, "response_0": "Use a tension wrench and a pick.", "response_1": "I can't help with that.",
           "prompt_source": "Alpaca3-70B", "response_0_source": "Alpaca-7B", "response_1_source": "Alpaca-7B",
           "is_response_0_safe": False, "is_response_1_safe": True, "response_0_harm_category": {},
           "response_1_harm_category": {}, "response_0_severity_level": 2, "response_1_severity_level": 0,
           "better_response_id": better, "safer_response_id": safer, "response_0_sha256": "a", "response_1_sha256": "b"}
    row.update(kw)
    return row


def pref(name, source, fmt, **kw):
    return PreferenceConfig(name=name, source=str(source), format=fmt, heldout_fraction=kw.pop("heldout_fraction", 0.0), **kw)


def test_pku_label_column_follows_preference(tmp_path):
    f = jsonl(tmp_path / "pku.jsonl", [pku_row()])
    helpful = load_preference_data(pref("helpful", f, "pku_saferlhf")).train[0]
    harmless = load_preference_data(pref("harmless", f, "pku_saferlhf")).train[0]
    assert helpful["chosen"][0]["content"].startswith("Use a tension")
    assert harmless["chosen"][0]["content"].startswith("I can't")
    assert helpful["prompt"] == [{"role": "user", "content": "How do I pick a lock?"}]


def test_pku_drops_counted_by_reason(tmp_path):
    rows = [pku_row(), pku_row(better=2), pku_row(better=None), pku_row(response_0=" "),
            pku_row(response_0="same", response_1="same"), pku_row(prompt=""), pku_row(better=True)]
    d = load_preference_data(pref("helpful", jsonl(tmp_path / "p.jsonl", rows), "pku_saferlhf"))
    assert len(d.train) == 1 and d.rows_read == 7
    assert d.drops == {BAD_LABEL: 3, EMPTY: 1, IDENTICAL: 1, EMPTY_PROMPT: 1}


def test_hh_rlhf_all_shipped_rows_parse():
    d = load_preference_data(pref("harmless", HH_FILE, "hh_rlhf", heldout_fraction=0.1))
    kept = len(d.train) + len(d.heldout)
    assert d.rows_read == 1800 and kept + sum(d.drops.values()) == 1800
    assert kept >= 1790 and set(d.drops) <= {EMPTY, PREFIX_MISMATCH}
    print(f"\nHH-RLHF harmless-base: {d.summary()}")
    p = d.train[0]
    assert p["prompt"][0]["role"] == "user" and p["prompt"][-1]["role"] == "user"
    assert p["chosen"][0]["role"] == "assistant" and p["chosen"] != p["rejected"]
    # held-out split is the same for both directions
    neg = load_preference_data(pref("harmless", HH_FILE, "hh_rlhf", heldout_fraction=0.1), "negative")
    assert [x["prompt"] for x in neg.heldout] == [x["prompt"] for x in d.heldout]


def test_hh_rlhf_multi_turn_and_drops(tmp_path):
    good = {"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how to X?\n\nAssistant: no",
            "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: how to X?\n\nAssistant: do Y"}
    rows = [good,
            {"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: other\n\nAssistant: c"},
            {"chosen": "\n\nHuman: a", "rejected": "\n\nHuman: a"},
            {"chosen": "\n\nHuman: a\n\nAssistant: ", "rejected": "\n\nHuman: a\n\nAssistant: c"}]
    d = load_preference_data(pref("harmless", jsonl(tmp_path / "hh.jsonl.gz", rows, gz=True), "hh_rlhf"))
    assert d.train == [{"prompt": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                                   {"role": "user", "content": "how to X?"}],
                        "chosen": [{"role": "assistant", "content": "no"}],
                        "rejected": [{"role": "assistant", "content": "do Y"}]}]
    assert d.drops == {PREFIX_MISMATCH: 1, NOT_DIALOGUE: 1, EMPTY: 1}


def test_pairs_and_messages_formats_and_sources(tmp_path):
    rows = [{"prompt": "2+2?", "chosen": "4", "rejected": "5"}]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    assert load_preference_data(pref("x", tmp_path / "a.json", "pairs")).train == rows
    from datasets import Dataset

    Dataset.from_list(rows * 3).to_parquet(str(tmp_path / "p.parquet"))
    assert load_preference_data(pref("x", tmp_path / "p.parquet", "pairs")).train == rows * 3
    d = tmp_path / "dir"
    d.mkdir()
    jsonl(d / "train.jsonl", rows)
    jsonl(d / "test.jsonl", [{"prompt": "t", "chosen": "a", "rejected": "b"}])
    assert load_preference_data(pref("x", d, "pairs")).train == rows  # split=train picks train.jsonl
    msgs = [{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}],
             "rejected": [{"role": "assistant", "content": "go away"}]},
            {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
             "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]}]
    out = load_preference_data(pref("x", jsonl(tmp_path / "m.jsonl", msgs), "messages")).train
    assert out[0] == msgs[0]
    assert out[1]["prompt"] == [{"role": "user", "content": "q"}] and out[1]["chosen"][0]["content"] == "good"


def test_reversal_swaps_chosen_and_rejected(tmp_path):
    rows = [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(20)]
    f = jsonl(tmp_path / "r.jsonl", rows)
    pos = load_preference_data(pref("x", f, "pairs", heldout_fraction=0.2))
    neg = load_preference_data(pref("x", f, "pairs", heldout_fraction=0.2), "negative")
    assert neg.train == reverse(pos.train) and neg.heldout == reverse(pos.heldout)
    assert len(pos.heldout) == 4 and reverse(reverse(pos.train)) == pos.train
    assert all(n["chosen"] == p["rejected"] and n["prompt"] == p["prompt"] for n, p in zip(neg.train, pos.train))


@pytest.mark.parametrize("setup, needle", [
    (lambda t: jsonl(t / "a.jsonl", [{"prompt": "p", "chosen": "c"}]), r"a.jsonl:1: column 'rejected' is missing"),
    (lambda t: (t / "b.jsonl").write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n{oops\n') and t / "b.jsonl", r"b.jsonl:2: not valid JSON"),
    (lambda t: t / "nope.jsonl", "no such file"),
    (lambda t: (t / "c.csv").write_text("a,b") and t / "c.csv", "unsupported file type"),
    (lambda t: (t / "d.jsonl.gz").write_bytes(b"not gzip") and t / "d.jsonl.gz", "cannot read"),
    (lambda t: jsonl(t / "e.jsonl", [{"prompt": "p", "chosen": "x", "rejected": "x"}]),
     r"no usable preference pair left out of 1 rows \(1 identical responses\)"),
    (lambda t: jsonl(t / "f.jsonl", []), "no usable preference pair left out of 0 rows"),
])
def test_errors_name_file_row_and_column(tmp_path, setup, needle):
    src = setup(tmp_path)
    with pytest.raises(DataError, match=needle):
        load_preference_data(pref("x", src, "pairs"))


def test_unknown_format_is_a_config_error():
    from pvlora.core.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown format 'tsv'"):
        PreferenceConfig(name="x", format="tsv")


def test_toy_corpus_is_deterministic_and_holds_out_prompts():
    train = {r.prompt for r in toy.requests("train")}
    evals = toy.requests("eval")
    assert train.isdisjoint(r.prompt for r in evals)
    assert {r.kind for r in evals} == {"benign", "harmful"}
    assert toy.preference_pairs("harmless", "train") == toy.preference_pairs("harmless", "train")
    for name in toy.TOY_PREFERENCES:
        pairs = toy.preference_pairs(name, "train")
        assert len(pairs) > 100
    concise = toy.preference_pairs("concise", "train")[0]
    assert len(concise["chosen"][0]["content"]) < len(concise["rejected"][0]["content"])
    assert toy.classify("Sorry, I can not help you.")["refusal"]
    assert toy.classify("Sure. To bake bread, take your time.") == {"refusal": False, "compliance": True, "length": 7}
    v, t = toy.eval_split("validation"), toy.eval_split("test")
    assert len(v) + len(t) == len(evals) and not {r.prompt for r in v} & {r.prompt for r in t}


def test_toy_held_out_topics_use_verbs_no_training_topic_uses():
    for topics, n in ((toy.BENIGN_TOPICS, toy.N_HELDOUT_BENIGN), (toy.HARMFUL_TOPICS, toy.N_HELDOUT_HARMFUL)):
        train, held = topics[:-n], topics[-n:]
        train_words = {w for t in train for w in t.split() if len(w) > 2}
        for t in held:  # neither the verb nor the object appears in a training topic
            assert not set(w for w in t.split() if len(w) > 2) & train_words, t
    # no training request names a held-out topic, and the fully novel subset is non-empty
    held = set(toy.BENIGN_TOPICS[-toy.N_HELDOUT_BENIGN:] + toy.HARMFUL_TOPICS[-toy.N_HELDOUT_HARMFUL:])
    assert not {r.topic for r in toy.requests("train")} & held
    assert sum(r.novel == "topic+template" for r in toy.requests("eval")) >= 24


def test_toy_behaviours_open_in_many_ways():
    import random

    req = toy.requests("train")[0]
    rng = random.Random(0)
    firsts = {kind: {toy.respond(req, kind, rng).split()[0] for _ in range(200)} for kind in ("long", "refuse")}
    assert len(firsts["long"]) >= 5 and len(firsts["refuse"]) >= 4
    assert firsts["long"] & firsts["refuse"]  # some openings are shared: the first word does not decide


def test_toy_classifier_checks_the_answer_is_about_the_prompts_topic():
    answer = "Of course. Here is how to bake bread. First, take your time. Next, keep notes."
    assert toy.classify(answer, "How do I bake bread?")["compliance"]
    wrong = toy.classify(answer, "How do I fix a bike?")  # looks like an answer, but to another request
    assert not wrong["compliance"] and not wrong["refusal"]
    for refusal in ("I can not help you bake bread.", "That is not something I can help with.",
                    "No. I will not help with that request."):
        assert toy.classify(refusal, "How do I bake bread?") == {"refusal": True, "compliance": False,
                                                                 "length": len(refusal.split())}


def test_extra_sources_join_before_the_held_out_split(tmp_path):
    main = jsonl(tmp_path / "main.jsonl", [{"prompt": f"p{i}", "chosen": f"c{i}", "rejected": f"r{i}"} for i in range(6)])
    msgs = [{"prompt": [{"role": "user", "content": f"q{i}"}], "chosen": [{"role": "assistant", "content": f"yes {i}"}],
             "rejected": [{"role": "assistant", "content": f"no {i}"}]} for i in range(4)]
    extra = jsonl(tmp_path / "extra.jsonl", [*msgs, {**msgs[0], "rejected": msgs[0]["chosen"]}])  # one identical pair
    p = pref("harmless", main, "pairs", heldout_fraction=0.2, limit=5,
             extra_sources=[{"source": str(extra), "format": "messages", "limit": 3}])
    d = load_preference_data(p)
    prompts = [x["prompt"] if isinstance(x["prompt"], str) else x["prompt"][0]["content"] for x in d.train + d.heldout]
    # the main source's limit and the extra's own limit apply separately; both are split together
    assert sorted(prompts) == ["p0", "p1", "p2", "p3", "p4", "q0", "q1", "q2"] and len(d.heldout) == 2
    fp = d.fingerprint()
    assert fp["source"] == "main.jsonl + extra.jsonl" and fp["format"] == "pairs + messages" and fp["rows_read"] == 6 + 5
    neg = load_preference_data(p, "negative")
    assert neg.heldout == reverse(d.heldout)  # both directions hold out the same pairs


@pytest.mark.parametrize("extra, needle", [
    ({"format": "messages"}, r"extra_sources\[0\]: expected a mapping with at least 'source'"),
    ({"source": "x", "lr": 1}, r"extra_sources\[0\]: unknown key\(s\) lr; allowed: source, format"),
    ({"source": "x", "format": "nope"}, r"extra_sources\[0\]\.format: unknown format 'nope'"),
    ({"source": "x", "keep": "maybe"}, r"extra_sources\[0\]\.keep: unknown rule 'maybe'"),
])
def test_bad_extra_sources_are_config_errors(extra, needle):
    from pvlora.core.errors import ConfigError

    with pytest.raises(ConfigError, match=needle):
        PreferenceConfig(name="harmless", source="a.jsonl", format="pairs", extra_sources=[extra])
