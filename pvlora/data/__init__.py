"""Preference data: read a source in a registered format, drop unusable rows by reason, split
off held-out pairs, and reverse for the negative direction (the paper's D-)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pvlora.data.formats import FORMATS, BadValue, Drop, MissingColumn, pku_label_column
from pvlora.data.sources import iter_rows
from pvlora.core.errors import DataError
from pvlora.artifacts.safe_read import portable
from pvlora.core.seeded import permutation
from pvlora.core import registry as builtins
from pvlora.core.judges import pattern_judge
from pvlora.data.sft import SFT_FORMATS

if TYPE_CHECKING:  # config imports the format registry from this package
    from pvlora.config import PreferenceConfig

__all__ = ["PreferenceData", "load_preference_data", "reverse"]


@dataclass
class PreferenceData:
    preference: str
    direction: str
    source: str
    format: str
    train: list[dict[str, Any]]
    heldout: list[dict[str, Any]]
    rows_read: int
    drops: dict[str, int] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        return {
            "source": " + ".join(portable(x) for x in self.source.split(" + ")), "format": self.format, "rows_read": self.rows_read,
            "kept": len(self.train) + len(self.heldout), "train": len(self.train),
            "heldout": len(self.heldout), "dropped": dict(self.drops),
        }

    def summary(self) -> str:
        drops = ", ".join(f"{n} {r}" for r, n in sorted(self.drops.items())) or "none"
        return (f"{self.preference} ({self.direction}) from {self.source} [{self.format}]: {self.rows_read} rows read, "
                f"{len(self.train)} train + {len(self.heldout)} held-out pairs kept; dropped: {drops}")


def user_turns(prompt: str | list[dict[str, str]]) -> int:
    """User turns in a pair's prompt: a plain string is one request; a message list counts its user messages."""
    return 1 if isinstance(prompt, str) else sum(m["role"] == "user" for m in prompt)


def _last_text(side: str | list[dict[str, str]]) -> str:
    return side if isinstance(side, str) else (side[-1]["content"] if side else "")


def keep_rule(name: str):
    """A named pair filter (config ``preferences[].keep``)."""
    if name == "refusal_contrast":
        judge = pattern_judge()
        return lambda p: judge(_last_text(p["chosen"]))["refusal"] and not judge(_last_text(p["rejected"]))["refusal"]
    raise DataError(f"unknown keep rule {name!r}")


def reverse(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """D- : the same pairs with chosen and rejected swapped (no relabelling)."""
    return [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]


class Drops(Counter):
    """Rows dropped, counted by reason; ``first[reason]`` is where the first such row is (file:line)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.first: dict[str, str] = {}

    def detail(self, empty: str = "the source is empty") -> str:
        """``(2 empty prompt, 1 identical responses); first dropped: d.jsonl:1 (empty prompt), d.jsonl:4
        (identical responses)``: what a "no usable row" error says about the rows."""
        counts = ", ".join(f"{c} {r}" for r, c in self.items()) or empty
        first = ", ".join(f"{w} ({r})" for r, w in self.first.items())
        return f"({counts})" + (f"; first dropped: {first}" if first else "")


def parse_rows(rows, parse, fmt: str, limit: int | None = None) -> tuple[list[dict[str, Any]], int, Drops]:
    """Apply ``parse(row)`` (one format's parser) to ``(where, row)`` items, stopping after ``limit``
    usable rows; returns (parsed rows, rows read, drop counts by reason with the first row of each)."""
    pairs, drops, n = [], Drops(), 0
    for where, row in rows:
        n += 1
        try:
            pairs.append(parse(row))
        except Drop as d:
            drops[d.reason] += 1
            drops.first.setdefault(d.reason, where)
        except BadValue as b:
            raise DataError(f"{where}: column {b.column!r}: {b.detail}. Fix or remove the row.") from None
        except MissingColumn as m:
            raise DataError(
                f"{where}: column {m.column!r} is missing for format {fmt!r} (row has: {', '.join(m.available)}). "
                "Pick the format that matches the data, or rename the column."
            ) from None
        if limit and len(pairs) >= limit:
            break
    return pairs, n, drops


def _source_pairs(pref: PreferenceConfig, where: str | None = None) -> tuple[list[dict[str, Any]], int, Counter]:
    """One source's usable pairs after ``max_turns``, ``keep`` and ``limit`` (rows read, drops by reason)."""
    where = where or f"preferences[{pref.name}]"
    label = pku_label_column(pref.name, pref.label_column) if pref.format == "pku_saferlhf" else None
    parser = FORMATS[pref.format]
    pairs, n, drops = parse_rows(iter_rows(pref.source, pref.split, pref.subset), lambda r: parser(r, label),
                                 pref.format)
    if not pairs:
        raise DataError(f"data source {pref.source}: no usable preference pair left out of {n} rows {drops.detail()}")
    if pref.max_turns:
        kept = [p for p in pairs if user_turns(p["prompt"]) <= pref.max_turns]
        drops[f"more than {pref.max_turns} user turn(s)"] += len(pairs) - len(kept)
        pairs = kept
        if not pairs:
            raise DataError(f"data source {pref.source}: no pair has at most {pref.max_turns} user turn(s) "
                            f"({where}.max_turns); raise or remove it")
    if pref.keep:
        rule = keep_rule(pref.keep)
        kept = [p for p in pairs if rule(p)]
        drops[f"not {pref.keep}"] += len(pairs) - len(kept)
        pairs = kept
        if not pairs:
            raise DataError(f"data source {pref.source}: no pair passes {where}.keep: {pref.keep}")
    if pref.limit:
        pairs = pairs[: pref.limit]
    return pairs, n, drops


def builtin_world(source: str, fmt: str, kind: str) -> str | None:
    """The built-in world a source names (``source: toy``, or the format of that name), else None."""
    return next((n for n in (source, fmt) if builtins.has(kind, n)), None)


def load_preference_data(pref: PreferenceConfig, direction: str = "positive", seed: int = 0) -> PreferenceData:
    if direction not in ("positive", "negative"):
        raise DataError(f"direction must be 'positive' or 'negative', got {direction!r}")

    world = builtin_world(pref.source, pref.format, "preference_data")
    if world is not None:  # a built-in world makes its own pairs and its own held-out split
        train, heldout = builtins.get("preference_data", world)(pref, seed)
        data = PreferenceData(pref.name, direction, world, world, train, heldout, len(train) + len(heldout))
    else:
        pairs, n, drops = _source_pairs(pref)
        for i, extra in enumerate(pref.extra_sources):  # joined before the split: held out alike
            sub = dataclasses.replace(pref, **{"limit": None, "max_turns": None, "keep": None, **extra},
                                      extra_sources=[])
            more, m, d = _source_pairs(sub, f"preferences[{pref.name}].extra_sources[{i}]")
            pairs, n = pairs + more, n + m
            drops.update({f"{k} ({sub.source})": v for k, v in d.items()})
        # Deterministic held-out split, the same for both directions so D+ and D- hold out the same prompts.
        order = permutation(len(pairs), seed)
        n_ho = int(round(len(pairs) * pref.heldout_fraction))
        if pref.heldout_fraction > 0 and len(pairs) > 1:
            n_ho = max(1, min(n_ho, len(pairs) - 1))
        heldout = [pairs[i] for i in sorted(order[:n_ho])]
        train = [pairs[i] for i in sorted(order[n_ho:])]
        source = " + ".join([pref.source, *(e["source"] for e in pref.extra_sources)])
        fmt = " + ".join(dict.fromkeys([pref.format, *(e.get("format", pref.format) for e in pref.extra_sources)]))
        data = PreferenceData(pref.name, direction, source, fmt, train, heldout, n, dict(drops))
    if direction == "negative":
        data.train, data.heldout = reverse(data.train), reverse(data.heldout)
    return data


def load_sft_examples(source: str, fmt: str, split: str = "train", subset: str | None = None,
                      limit: int | None = None, seed: int = 0) -> tuple[list[dict[str, Any]], int, Counter]:
    """(examples, rows read, drop counts) for the configured SFT data."""
    world = builtin_world(source, fmt, "sft_data")
    if world is not None:
        examples = builtins.get("sft_data", world)(seed)
        return examples[:limit] if limit else examples, len(examples), Counter()
    out, n, drops = parse_rows(iter_rows(source, split, subset), SFT_FORMATS[fmt], f"sft {fmt}", limit)
    if not out:
        raise DataError(f"sft data source {source}: no usable example out of {n} rows {drops.detail()}")
    return out, n, drops
