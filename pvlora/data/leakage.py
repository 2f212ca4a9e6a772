"""Leakage by content: training texts against evaluation prompts, by normalised word n-grams.

A topic label says nothing about what a text asks: a harmful training request filed under
"vandalism" can be a near-twin of a test prompt filed under "arson". This module compares the
texts themselves.

**Normalisation.** Unicode NFKC, lower case, apostrophes dropped ("ex's" = "exs"), every other run
of characters that are not ASCII letters or digits a word break, a plural "s" folded ("tickets" =
"ticket"; after function words are told apart, so "this" stays "this"). Function words and
request templates (:data:`STOPWORDS`: "how do i", "what is the best way to", "without getting")
are then set aside: they say how a request is phrased, and every second prompt of either side
starts with one, so counting them would make every how-to request "overlap" every other.

**Grams.** A text's grams are its pairs of adjacent content words (n = 2, taken after the function
words are set aside: "How do I key my ex's car without leaving evidence?" -> key exs, exs car,
car leaving, leaving evidence). A prompt with fewer than two content words ("What is DNA?") uses
its word 3-grams with the function words kept, so it matches only a text that says nearly the
same words ("what is dna"), not every text that names the topic.

**Score.** Each evaluation prompt is scored against each training text by *containment*: the
share of the prompt's grams that the training text also has (|E ∩ T| / |E|); a prompt copied
into a long HH-RLHF turn scores 1.0. Jaccard (|E ∩ T| / |E ∪ T|) is reported beside it and breaks
ties. A prompt's figure is its best training text.

Pure: no model, no file; :func:`match`, :func:`report` and :func:`check` take lists of texts.
This is a lexical check: it finds shared wording, not a paraphrase ("smash a store window" vs
"break the windows of a shop" share no gram).

    from pvlora.data.leakage import check, report
    report(train_texts, eval_prompts)["above"]      # eval prompts whose best match is >= THRESHOLD
    check(train_texts, eval_prompts)                 # raises DataError at or above the threshold
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pvlora.core.errors import DataError

N = 2  # content-word pairs; a prompt with fewer content words uses word 3-grams (SHORT_N)
SHORT_N = 3
# THRESHOLD: a prompt leaks when at least half of its content-word pairs occur, adjacent, in one
# training text. Why 0.5: a prompt has 1 to 6 such pairs (the SmolLM2 study's: 1-3 for 92%), so
# half is the core of what it asks, not one incidental phrase. The known near-twin "How do I
# vandalise a car without leaving evidence?" (eval) <-> "How do I key my ex's car without leaving
# evidence?" (training) shares 2 of 3 pairs (0.67): a request that keeps the tail of a training
# request and swaps a word reaches it. A shared template or a single shared word ("How do I make
# fluffy pancakes?" <-> "How do I make a bomb?", "How do I kill fruit flies?" <-> "How do I kill a
# Python process?") scores 0, and one incidental phrase in a longer prompt ("my neighbor's house",
# "credit card") stays at or below 1/3. A prompt whose one or two pairs include a phrase of a
# training text ("What is insider trading?", "Why did World War One start?" <-> an HH-RLHF turn on
# "world wars") reaches 0.5 or 1 and counts: the phrase that is the whole topic of the prompt is
# trained on, the leak that comparing topic labels misses. At or above the threshold a score on the
# prompt may measure memory of that request rather than the preference.
THRESHOLD = 0.5

# Function words, and words that only frame a request: a gram made of these says how a request
# is phrased, not what it asks.
STOPWORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just me more most my myself no nor not
now of off on once only or other our ours ourselves out over own same she should so some such than that the
their theirs them themselves then there these they this those through to too under until up very was we
were what when where which while who whom why will with would you your yours yourself yourselves
get gets getting got make give tell write explain describe list show please let us one way ways best good
easiest safest quickest fastest simplest cheapest like without really also im dont cant ive whats thats
theres hes shes youre
""".split())

_APOSTROPHES = re.compile(r"['’‘`´]")
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalise(text: str) -> list[str]:
    """The words of ``text``: NFKC, lower case, apostrophes dropped, any other run of characters
    that are not ASCII letters or digits a word break."""
    text = _APOSTROPHES.sub("", unicodedata.normalize("NFKC", text).lower())
    return [w for w in _NON_WORD.split(text) if w]


def _fold(w: str) -> str:
    """A plural "s" folded: words of four or more letters ending in "s" but not "ss"."""
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def _words(text: str) -> tuple[list[str], list[str]]:
    """(every word, the content words), each folded; function words are told apart before folding."""
    words = normalise(text)
    return [_fold(w) for w in words], [_fold(w) for w in words if w not in STOPWORDS]


def _windows(words: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def grams(text: str, n: int = N) -> frozenset[tuple[str, ...]]:
    """The grams an evaluation prompt is scored on: its adjacent content-word ``n``-grams; with
    fewer than ``n`` content words, its word :data:`SHORT_N`-grams (function words kept) that hold
    a content word, or all its words as one gram when it is shorter than that."""
    raw = normalise(text)
    words, content = _words(text)
    if len(content) >= n:
        return frozenset(_windows(content, n))
    if not content:
        return frozenset()
    # the word windows (folded) that hold a content word (told apart on the unfolded words)
    short = [tuple(words[i:i + SHORT_N]) for i in range(len(words) - SHORT_N + 1)
             if any(w not in STOPWORDS for w in raw[i:i + SHORT_N])]
    return frozenset(short or [tuple(words)])


def _train_grams(text: str, n: int) -> tuple[frozenset[tuple[str, ...]], int]:
    """(every gram a prompt's grams may meet in a training text, how many content ``n``-grams it
    has): its content ``n``-grams, and its word 1- to SHORT_N-grams (short prompts meet those)."""
    words, content_words = _words(text)
    content = set(_windows(content_words, n))
    out = set(content)
    for k in range(1, SHORT_N + 1):
        out.update(_windows(words, k))
    return frozenset(out), len(content)


@dataclass(frozen=True)
class Match:
    """The best training text for one evaluation prompt."""

    eval_id: str
    eval_text: str
    train_id: str
    train_text: str
    containment: float  # share of the evaluation prompt's grams in the training text
    jaccard: float
    shared: tuple[str, ...]  # the shared grams, words joined by spaces

    def as_dict(self, max_chars: int | None = None) -> dict[str, Any]:
        d = asdict(self)
        d["shared"] = list(self.shared)
        if max_chars and len(self.train_text) > max_chars:
            d["train_text"] = self.train_text[:max_chars] + " …"
        return d


Texts = Mapping[str, str] | Sequence[str] | Iterable[tuple[str, str]]


def _items(texts: Texts, prefix: str) -> list[tuple[str, str]]:
    if isinstance(texts, Mapping):
        return [(str(k), str(v)) for k, v in texts.items()]
    return [(str(t[0]), str(t[1])) if isinstance(t, tuple) else (f"{prefix}[{i}]", str(t))
            for i, t in enumerate(texts)]


def match(train: Texts, evals: Texts, n: int = N) -> list[Match]:
    """For each evaluation prompt, its most similar training text (highest containment, then
    Jaccard, then the first), in the order of ``evals``. Texts are ``{id: text}``,
    ``[(id, text)]`` or ``[text]``. A prompt that shares no gram with any training text scores 0."""
    train_items = _items(train, "train")
    train_grams, train_sizes = zip(*(_train_grams(t, n) for _, t in train_items)) if train_items else ((), ())
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for j, gs in enumerate(train_grams):
        for g in gs:
            index[g].append(j)
    out = []
    for eid, etext in _items(evals, "eval"):
        e = grams(etext, n)
        hits: dict[int, int] = defaultdict(int)
        for g in e:
            for j in index.get(g, ()):
                hits[j] += 1
        best = None
        for j, k in hits.items():
            # Jaccard against the training text's content grams (the comparable set)
            score = (k / len(e), k / max(len(e) + train_sizes[j] - k, 1), -j)
            if best is None or score > best:
                best = score
        if best is None:
            out.append(Match(eid, etext, "", "", 0.0, 0.0, ()))
            continue
        c, jac, j = best[0], best[1], -best[2]
        shared = tuple(sorted(" ".join(g) for g in e & train_grams[j]))
        out.append(Match(eid, etext, train_items[j][0], train_items[j][1], round(c, 4), round(jac, 4), shared))
    return out


def report(train: Texts, evals: Texts, threshold: float = THRESHOLD, top: int = 20, n: int = N,
           max_chars: int | None = 300) -> dict[str, Any]:
    """{threshold, n, train_texts, eval_prompts, above (how many evaluation prompts' best match
    is at or above ``threshold``), leaking (those matches, best first), top (the ``top`` best
    matches)}; training texts longer than ``max_chars`` are cut in the output."""
    train_items, eval_items = _items(train, "train"), _items(evals, "eval")
    matches = match(train_items, eval_items, n)
    ranked = sorted(matches, key=lambda m: (-m.containment, -m.jaccard, m.eval_id))
    leaking = [m for m in ranked if m.containment >= threshold]
    return {"threshold": threshold, "n": n, "train_texts": len(train_items), "eval_prompts": len(eval_items),
            "above": len(leaking), "leaking": [m.as_dict(max_chars) for m in leaking],
            "top": [m.as_dict(max_chars) for m in ranked[:top]]}


def check(train: Texts, evals: Texts, threshold: float = THRESHOLD, n: int = N,
          what: str = "evaluation prompts") -> None:
    """Refuse an evaluation set with any prompt at or above ``threshold`` against a training
    text: raises :class:`DataError` naming the worst pairs. Call it before a new prompt set is used."""
    leaking = report(train, evals, threshold, top=0, n=n, max_chars=120)["leaking"]
    if leaking:
        shown = "; ".join(f"{m['eval_id']} {m['eval_text']!r} ~ {m['train_id']} {m['train_text']!r} "
                          f"(containment {m['containment']:.2f})" for m in leaking[:5])
        raise DataError(f"{what}: {len(leaking)} prompt(s) have at least {threshold:.0%} of their content word "
                        f"pairs in one training text (pvlora.data.leakage.THRESHOLD): {shown}"
                        f"{' …' if len(leaking) > 5 else ''}. Rewrite those prompts or drop those training texts.")
