"""benchmarks/tools/sample_for_labels.py: the labeller's file carries nothing but id, prompt and
response; strata get equal shares, half harmful; the same seed draws the same rows; joining gives
every labelled row its mix back and refuses a label set that misses or repeats an id."""

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks" / "tools"))
try:
    import sample_for_labels as tool
finally:
    sys.path.pop(0)


def generations() -> list[dict]:
    rows = []
    for split in ("validation", "test"):
        for h in (0.0, 0.5, 1.0):
            for kind, style, n in (("harmful", "plain", 9), ("benign", "plain", 7), ("benign", "xstest", 5)):
                rows += [{"split": split, "eta": {"helpful": 0.0, "harmless": h}, "kind": kind, "style": style,
                          "prompt": f"{split} {h} {kind} {style} {i}", "response": f"answer {i}",
                          "judge": "refusal", "refused": True} for i in range(n)]
    return rows


def test_blind_file_holds_only_the_text_and_strata_are_balanced(tmp_path):
    src = tmp_path / "generations.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in generations()))
    blind, key = tmp_path / "blind.jsonl", tmp_path / "key.jsonl"
    assert tool.main(["--generations", str(src), "--n", "20", "--blind", str(blind), "--key", str(key)]) == 0
    shown = [json.loads(line) for line in blind.read_text().splitlines()]
    assert len(shown) == 20 and all(set(r) == {"id", "prompt", "response"} for r in shown)
    keyed = [json.loads(line) for line in key.read_text().splitlines()]
    assert all("judge" not in r and "refused" not in r and r["split"] == "validation" for r in keyed)
    # 3 mixes share 20 rows as 7, 7, 6; harmful takes the larger half; plain benign the odd row
    counts = {}
    for r in keyed:
        counts.setdefault(r["eta"]["harmless"], []).append((r["kind"], r["style"]))
    assert sorted(len(v) for v in counts.values()) == [6, 7, 7]
    assert sorted(counts[0.0]) == sorted([("harmful", "plain")] * 4 + [("benign", "plain")] * 2 + [("benign", "xstest")])
    again = tmp_path / "again.jsonl"
    tool.main(["--generations", str(src), "--n", "20", "--blind", str(again), "--key", str(tmp_path / "k2.jsonl")])
    assert again.read_text() == blind.read_text()


def test_join_puts_the_mix_back_and_refuses_gaps(tmp_path):
    drawn = tool.sample(generations(), 12, 1, "validation")
    key = [{k: v for k, v in r.items()} for r in drawn]
    labels = [{"id": r["id"], "label": "compliance"} for r in drawn]
    joined = tool.join(labels, key)
    assert [r["eta"] for r in joined] == [r["eta"] for r in drawn] and {r["label"] for r in joined} == {"compliance"}
    with pytest.raises(SystemExit, match="1 ids unlabelled"):
        tool.join(labels[1:], key)
    with pytest.raises(SystemExit, match="labelled twice"):
        tool.join(labels + labels[:1], key)


def test_a_stratum_too_small_is_named():
    with pytest.raises(SystemExit, match="harmful/None: 9 rows, 30 wanted"):
        tool.sample(generations(), 180, 0, "validation")


def test_excluding_by_text_skips_the_same_answer_under_another_mix():
    rows = generations()
    for r in rows:  # one answer at every mix: the prompt no longer names the mix
        r["prompt"] = r["prompt"].split(" ", 2)[2]
    earlier = [dict(r) for r in rows if r["split"] == "validation" and r["eta"]["harmless"] == 0.0][:4]
    labelled = {(r["prompt"], r["response"]) for r in earlier}
    # the two other mixes, every harmful row drawn: by mix, the labelled answers come back; by text, never
    by_mix = tool.sample(rows, 34, 0, "validation", earlier, min_harmless=0.5)
    assert sum((r["prompt"], r["response"]) in labelled for r in by_mix) == 2 * len(earlier)
    by_text = tool.sample(rows, 12, 0, "validation", earlier, min_harmless=0.5, exclude_by="text")
    assert by_text and not any((r["prompt"], r["response"]) in labelled for r in by_text)
    with pytest.raises(SystemExit, match="rows, 9 wanted"):  # 9 harmful answers, 4 of them labelled before
        tool.sample(rows, 34, 0, "validation", earlier, min_harmless=0.5, exclude_by="text")
