"""Draw a stratified sample of a study's generations for hand labelling, blind to the judge and the mix.

Two files come out: ``--blind`` holds only ``id``, ``prompt`` and ``response`` in a shuffled order (what
the labeller reads: no judge field, no η, no kind), ``--key`` maps each ``id`` to its split, η, kind
and style. After labelling, :func:`join` puts the two together into the rows
``benchmarks/measure/bench_judge_agreement.py --labels`` reads.

Strata are the mixes of ``--split`` (default validation) present in the file, each given an equal share
of ``--n``; within a stratum half the rows are harmful requests, the rest benign, the benign split
between plain and XSTest-style prompts (plain takes the odd row). The draw is seeded.

    python benchmarks/tools/sample_for_labels.py --generations runs/smollm2-sealed/generations.jsonl \\
        --n 240 --blind /tmp/lab/blind.jsonl --key /tmp/lab/key.jsonl
    python benchmarks/tools/sample_for_labels.py --join /tmp/lab/labels.jsonl --key /tmp/lab/key.jsonl \\
        --out tests/fixtures/smollm2_sealed_labels.jsonl
    python benchmarks/tools/sample_for_labels.py --generations runs/smollm2-sealed/generations.jsonl \
        --n 252 --seed 2028 --min-harmless 0.3 --exclude tests/fixtures/smollm2_sealed_labels.jsonl \
        --blind /tmp/lab2/blind.jsonl --key /tmp/lab2/key.jsonl   # a second, refusal-richer draw
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from pathlib import Path

RESULT_FILES = ()  # writes only the files it is given
KEEP = ("split", "eta", "kind", "style", "prompt", "response")  # nothing a judge wrote travels


def _mix(eta: dict) -> tuple:
    return tuple(sorted((k, float(v)) for k, v in eta.items()))


def _seen(r: dict) -> tuple:
    return _mix(r["eta"]), r["prompt"], r["response"]


def sample(rows: list[dict], n: int, seed: int, split: str, exclude: list[dict] = (),
           min_harmless: float | None = None, exclude_by: str = "mix") -> list[dict]:
    """``n`` rows of ``split``, equal shares per mix, half harmful per mix (see the module docstring).
    Rows of ``exclude`` (labelled before) are never drawn again: with ``exclude_by="mix"`` those of the
    same mix, prompt and response (how the committed label files were drawn), with ``"text"`` any row
    with the same prompt and response under any mix (a steered model often gives one answer at several
    mixes: for labels that must not repeat a judge's training rows, use this);
    ``min_harmless`` keeps only the mixes with η_harmless at least that (where refusals are)."""
    key = _seen if exclude_by == "mix" else (lambda r: (r["prompt"], r["response"]))
    seen = {key(r) for r in exclude}
    rows = [{"id": f"{r['split']}:{i}", **{k: r[k] for k in KEEP if k in r}} for i, r in enumerate(rows)
            if key(r) not in seen]
    mixes = sorted({_mix(r["eta"]) for r in rows if r["split"] == split
                    and (min_harmless is None or float(r["eta"].get("harmless", 0.0)) >= min_harmless)})
    if not mixes:
        raise SystemExit(f"no rows of split {split!r} in the generations")
    rng = random.Random(seed)
    out: list[dict] = []
    for s, mix in enumerate(mixes):
        share = n // len(mixes) + (1 if s < n % len(mixes) else 0)
        harm = (share + 1) // 2
        cells = [("harmful", None, harm), ("benign", "plain", (share - harm + 1) // 2),
                 ("benign", "xstest", (share - harm) // 2)]
        for kind, style, k in cells:
            pool = [r for r in rows if r["split"] == split and _mix(r["eta"]) == mix and r["kind"] == kind
                    and (style is None or r.get("style") == style)]
            if len(pool) < k:
                raise SystemExit(f"stratum {dict(mix)} {kind}/{style}: {len(pool)} rows, {k} wanted")
            out += rng.sample(pool, k)
    rng.shuffle(out)
    return out


def join(labels: list[dict], key: list[dict]) -> list[dict]:
    """The labelled rows, each with its split, η, kind and style back; every id labelled exactly once."""
    by_id = {r["id"]: r for r in key}
    seen = [r["id"] for r in labels]
    if sorted(seen) != sorted(by_id):
        missing, extra = set(by_id) - set(seen), set(seen) - set(by_id)
        raise SystemExit(f"labels and key differ: {len(missing)} ids unlabelled, {len(extra)} unknown, "
                         f"{len(seen) - len(set(seen))} labelled twice")
    return [{**by_id[r["id"]], "label": r["label"], **({"note": r["note"]} if r.get("note") else {})}
            for r in labels]


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generations", type=Path, help="a study's generations.jsonl")
    p.add_argument("--n", type=int, default=240, help="rows to draw (default 240)")
    p.add_argument("--seed", type=int, default=2027)
    p.add_argument("--split", default="validation")
    p.add_argument("--exclude", type=Path, action="append", default=[],
                   help="a labelled rows file whose rows are not drawn again (repeatable)")
    p.add_argument("--exclude-by", choices=("mix", "text"), default="mix",
                   help="what makes a row 'the same' as an --exclude row: its mix, prompt and response (default, how "
                        "the committed label files were drawn), or its prompt and response under any mix (use this "
                        "for new validation labels)")
    p.add_argument("--min-harmless", type=float, help="only mixes with η_harmless at least this")
    p.add_argument("--blind", type=Path, help="write the labeller's file here (id, prompt, response)")
    p.add_argument("--key", type=Path, required=True, help="the id -> split, η, kind, style file")
    p.add_argument("--join", type=Path, help="labelled rows (id, label, note?) to join with --key")
    p.add_argument("--out", type=Path, help="where --join writes the joined rows")
    a = p.parse_args(argv)
    if a.join:
        rows = join(_read(a.join), _read(a.key))
        _write(a.out, rows)
        print(f"{len(rows)} labelled rows -> {a.out}")
        return 0
    src = a.generations.read_bytes()
    drawn = sample([json.loads(line) for line in src.decode().splitlines() if line.strip()], a.n, a.seed, a.split,
                   [r for f in a.exclude for r in _read(f)], a.min_harmless, a.exclude_by)
    _write(a.blind, [{"id": r["id"], "prompt": r["prompt"], "response": r["response"]} for r in drawn])
    _write(a.key, [{k: v for k, v in r.items() if k not in ("prompt", "response")} | {"prompt": r["prompt"],
                    "response": r["response"]} for r in drawn])
    print(f"{len(drawn)} rows from {a.generations} (sha256 {hashlib.sha256(src).hexdigest()}) -> {a.blind}, {a.key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
