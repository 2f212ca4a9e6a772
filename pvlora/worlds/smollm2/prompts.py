"""The study's prompts (``prompts.txt``) and their split by topic.

Topics, not rows, are split: the benign plain and XSTest-style topics are each divided train /
validation / test in a fixed seeded order (drawn before any model output was seen); harmful topics
are evaluation only, half validation, half test. The checks here compare topic *labels* only:
training text can still resemble evaluation prompts (harmful_train.txt holds near-twins of test
"arson" prompts under other labels, and HH-RLHF rows ask for things on test topics; docs/studies.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pvlora.core.errors import ConfigError
from pvlora.core.seeded import permutation

PROMPTS_FILE = Path(__file__).with_name("prompts.txt")
SPLITS = ("train", "validation", "test")
# share of each group's topics per split (train, validation, test)
SHARES = {("benign", "plain"): (10, 5, 5), ("benign", "xstest"): (6, 3, 3), ("harmful", "plain"): (0, 6, 6)}


@dataclass(frozen=True)
class Prompt:
    text: str
    kind: str  # benign | harmful
    topic: str
    style: str  # plain | xstest (a safe request that sounds dangerous)
    split: str


def parse(text: str, where: str = str(PROMPTS_FILE),
          styles: tuple[str, ...] = ("plain", "xstest")) -> list[tuple[str, str, str, str]]:
    """(text, kind, topic, style) rows from the ``[kind topic style]`` sections of ``text``; ``styles``
    are the third words a header may have (the second evaluation set's forms, there)."""
    rows, header = [], None
    for i, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            parts = line.strip("[]").split()
            if len(parts) != 3 or parts[0] not in ("benign", "harmful") or parts[2] not in styles:
                raise ConfigError(f"{where}:{i}: expected a header [benign|harmful TOPIC {'|'.join(styles)}], "
                                  f"got {line!r}")
            header = tuple(parts)
            continue
        if header is None:
            raise ConfigError(f"{where}:{i}: a prompt before the first [kind topic style] header")
        rows.append((line, header[0], header[1], header[2]))
    return rows


def topic_splits(rows) -> dict[str, str]:
    """{topic: split}: each (kind, style) group's topics shuffled with a fixed seed, then cut by SHARES."""
    out: dict[str, str] = {}
    for group, shares in SHARES.items():
        topics = sorted({t for _, k, t, s in rows if (k, s) == group})
        if len(topics) != sum(shares):
            raise ConfigError(f"{group}: {len(topics)} topics, SHARES expects {sum(shares)}")
        topics = [topics[i] for i in permutation(len(topics), f"pvlora-smollm2-{group[0]}-{group[1]}")]
        cuts = [0, shares[0], shares[0] + shares[1], len(topics)]
        for split, a, b in zip(SPLITS, cuts, cuts[1:]):
            out.update({t: split for t in topics[a:b]})
    return out


@lru_cache(maxsize=1)
def all_prompts() -> tuple[Prompt, ...]:
    rows = parse(PROMPTS_FILE.read_text())
    split_of = topic_splits(rows)
    return tuple(Prompt(t, k, topic, s, split_of[topic]) for t, k, topic, s in rows)


def prompts(split: str | None = None, kind: str | None = None) -> list[Prompt]:
    """The prompts of one split ('all' or None = every split) and kind."""
    return [p for p in all_prompts() if split in (None, "all", p.split) and kind in (None, p.kind)]


HARMFUL_TRAIN_FILE = Path(__file__).with_name("harmful_train.txt")


def harmful_training_prompts() -> list[Prompt]:
    """The harmful requests the harmless vector may train on: topics disjoint from every evaluation
    topic (checked here, so a new topic cannot leak into both files)."""
    rows = parse(HARMFUL_TRAIN_FILE.read_text(), str(HARMFUL_TRAIN_FILE))
    if any(k != "harmful" for _, k, _, _ in rows):
        raise ConfigError(f"{HARMFUL_TRAIN_FILE}: every section must be [harmful TOPIC plain|xstest]")
    shared = {t for _, _, t, _ in rows} & {p.topic for p in all_prompts()}
    if shared:
        raise ConfigError(f"{HARMFUL_TRAIN_FILE}: harmful training topics must be new; shared: {sorted(shared)}")
    return [Prompt(t, k, topic, s, "train") for t, k, topic, s in rows]


ANSWERS_FILE = Path(__file__).with_name("answers.jsonl")


@lru_cache(maxsize=1)
def base_answers() -> dict[str, str]:
    """{prompt: the base's own answer} from ``answers.jsonl`` (built by ``make_data``)."""
    import json

    if not ANSWERS_FILE.exists():
        return {}
    return {r["prompt"]: r["answer"] for r in map(json.loads, ANSWERS_FILE.read_text().splitlines())}


def eval_rows(split: str) -> list[dict]:
    """Evaluation rows {prompt, kind, style, reference?} of the held-out topics: 'validation',
    'test', or 'all' (both). Every other benign row (half of them: scoring a reference costs as
    much as generating for a whole point on a CPU) carries the base's own answer as its reference,
    whose NLL under a composed model shows over-scaling; harmful rows have none."""
    if split not in ("validation", "test", "all"):
        raise ConfigError(f"split must be validation, test or all, got {split!r}")
    answers = base_answers()
    rows = [p for p in all_prompts() if p.split != "train" and split in ("all", p.split)]
    return [{"prompt": p.text, "kind": p.kind, "style": p.style,
             "reference": answers.get(p.text) if p.kind == "benign" and i % 2 == 0 else None}
            for i, p in enumerate(rows)]
