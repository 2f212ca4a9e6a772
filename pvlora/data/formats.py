"""Preference-data formats: each turns one raw row into a (prompt, chosen, rejected) pair.

Pairs use TRL's formats: *conversational* (prompt = list of messages, chosen/rejected = one
assistant message each) wherever the source has a dialogue structure, so the tokenizer's chat
template is applied by TRL; *standard* (plain strings) for the ``pairs`` format.

A parser raises :class:`Drop` for a row that is readable but unusable (counted by reason) and
:class:`MissingColumn` for a schema problem (fatal: the whole source is in the wrong format).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Pair = dict[str, Any]

# Drop reasons (stable strings: they appear in reports and tests).
EMPTY = "empty response"
IDENTICAL = "identical responses"
BAD_LABEL = "label outside {0, 1}"
EMPTY_PROMPT = "empty prompt"
NOT_DIALOGUE = "transcript has no final assistant turn"
PREFIX_MISMATCH = "transcripts differ before the final assistant turn"
MAX_TEXT_CHARS = 200_000  # ~50k tokens: far past any max_length a preference pair is trained with
TOO_LONG = f"a text longer than {MAX_TEXT_CHARS:,} characters"


class Drop(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class BadValue(Exception):
    """A value of the wrong type (a list where text belongs, an unknown role): fatal, like a missing column,
    because training on its repr would silently teach the wrong text."""

    def __init__(self, column: str, detail: str):
        super().__init__(f"{column}: {detail}")
        self.column = column
        self.detail = detail


ROLES = ("system", "user", "assistant", "tool")


class MissingColumn(Exception):
    def __init__(self, column: str, available: list[str]):
        super().__init__(column)
        self.column = column
        self.available = available


FORMATS: dict[str, Callable[[dict[str, Any], str | None], Pair]] = {}


def register(name: str):
    def deco(fn):
        FORMATS[name] = fn
        return fn

    return deco


def _col(row: dict[str, Any], name: str) -> Any:
    if name not in row:
        raise MissingColumn(name, sorted(row))
    return row[name]


def _text(value: Any, column: str) -> str:
    if isinstance(value, str) and len(value) > MAX_TEXT_CHARS:
        # Tokenising it whole before TRL truncates to max_length would take gigabytes (a 50 MB row: 15 GB)
        raise Drop(TOO_LONG)
    if value is None or isinstance(value, str):
        return value or ""
    hint = ("; this looks like a list of chat messages: use format: messages" if isinstance(value, list)
            and value and all(isinstance(m, dict) and "role" in m for m in value) else "")
    raise BadValue(column, f"expected text, got {type(value).__name__} {_short(value)}{hint}")


def _short(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."


def _check_responses(chosen: str, rejected: str) -> None:
    if not chosen.strip() or not rejected.strip():
        raise Drop(EMPTY)
    if chosen.strip() == rejected.strip():
        raise Drop(IDENTICAL)


def _conversation(prompt: list[dict[str, str]], chosen: str, rejected: str) -> Pair:
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


PKU_LABEL_COLUMNS = {"helpful": "better_response_id", "harmless": "safer_response_id"}


def pku_label_column(preference: str, label_column: str | None) -> str:
    if label_column:
        return label_column
    return PKU_LABEL_COLUMNS.get(preference, "better_response_id")


@register("pku_saferlhf")
def parse_pku_saferlhf(row: dict[str, Any], label_column: str | None) -> Pair:
    """PKU-Alignment/PKU-SafeRLHF: the label column says which response is preferred."""
    label_col = label_column or "better_response_id"
    prompt = _text(_col(row, "prompt"), "prompt")
    r0, r1 = _text(_col(row, "response_0"), "response_0"), _text(_col(row, "response_1"), "response_1")
    label = _col(row, label_col)
    if isinstance(label, bool) or label not in (0, 1):
        raise Drop(BAD_LABEL)
    if not prompt.strip():
        raise Drop(EMPTY_PROMPT)
    chosen, rejected = (r0, r1) if int(label) == 0 else (r1, r0)
    _check_responses(chosen, rejected)
    return _conversation([{"role": "user", "content": prompt}], chosen, rejected)


_HH_TURN = re.compile(r"\n\n(Human|Assistant):")


def split_hh_transcript(text: str) -> list[dict[str, str]]:
    """``\\n\\nHuman: a\\n\\nAssistant: b`` -> [{user: a}, {assistant: b}] (contents stripped)."""
    parts = _HH_TURN.split(text)
    # parts = [preamble, role, content, role, content, ...]
    msgs = []
    for role, content in zip(parts[1::2], parts[2::2]):
        msgs.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return msgs


@register("hh_rlhf")
def parse_hh_rlhf(row: dict[str, Any], label_column: str | None) -> Pair:
    """Anthropic/hh-rlhf: two whole transcripts, identical up to the final assistant turn."""
    chosen_t, rejected_t = _text(_col(row, "chosen"), "chosen"), _text(_col(row, "rejected"), "rejected")
    c, r = split_hh_transcript(chosen_t), split_hh_transcript(rejected_t)
    if not c or not r or c[-1]["role"] != "assistant" or r[-1]["role"] != "assistant":
        raise Drop(NOT_DIALOGUE)
    if c[:-1] != r[:-1]:
        raise Drop(PREFIX_MISMATCH)
    if not c[:-1] or not any(m["content"] for m in c[:-1] if m["role"] == "user"):
        raise Drop(EMPTY_PROMPT)
    _check_responses(c[-1]["content"], r[-1]["content"])
    return _conversation(c[:-1], c[-1]["content"], r[-1]["content"])


@register("pairs")
def parse_pairs(row: dict[str, Any], label_column: str | None) -> Pair:
    """Plain strings: prompt, chosen, rejected (TRL's standard preference format)."""
    prompt = _text(_col(row, "prompt"), "prompt")
    chosen, rejected = _text(_col(row, "chosen"), "chosen"), _text(_col(row, "rejected"), "rejected")
    if not prompt.strip():
        raise Drop(EMPTY_PROMPT)
    _check_responses(chosen, rejected)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _messages(value: Any, column: str) -> list[dict[str, str]]:
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(m, dict) and "role" in m for m in value):
        raise Drop(f"{column} is not a list of messages")
    for i, m in enumerate(value):
        if m["role"] not in ROLES:
            raise BadValue(f"{column}[{i}].role", f"{_short(m['role'])} is not one of {', '.join(ROLES)}")
    return [{"role": m["role"], "content": _text(m.get("content"), f"{column}[{i}].content")} for i, m in enumerate(value)]


@register("messages")
def parse_messages(row: dict[str, Any], label_column: str | None) -> Pair:
    """TRL's conversational format; with no ``prompt`` column the shared prefix is the prompt."""
    chosen = _messages(_col(row, "chosen"), "chosen")
    rejected = _messages(_col(row, "rejected"), "rejected")
    if "prompt" in row:
        prompt = _messages(row["prompt"], "prompt")
    else:  # implicit prompt: everything before the final turn, which must match
        if chosen[:-1] != rejected[:-1]:
            raise Drop(PREFIX_MISMATCH)
        prompt, chosen, rejected = chosen[:-1], chosen[-1:], rejected[-1:]
    if not prompt or not any(m["content"].strip() for m in prompt):
        raise Drop(EMPTY_PROMPT)
    _check_responses(" ".join(m["content"] for m in chosen), " ".join(m["content"] for m in rejected))
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
