"""Instruction data for the SFT stage: each format turns one raw row into TRL's conversational
prompt-completion example ``{"prompt": [user message], "completion": [assistant message]}``.

Same conventions as the preference formats: :class:`Drop` for a readable but unusable row (counted
by reason), :class:`MissingColumn` for a schema problem (the whole source is in the wrong format).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pvlora.data.formats import EMPTY, EMPTY_PROMPT, Drop, _col, _messages

Example = dict[str, Any]
SFT_FORMATS: dict[str, Callable[[dict[str, Any]], Example]] = {}


def _register(name: str):
    def deco(fn):
        SFT_FORMATS[name] = fn
        return fn

    return deco


def _string(row: dict[str, Any], column: str, required: bool = True) -> str:
    value = _col(row, column) if required else row.get(column)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Drop(f"{column} is not a string")
    return value


def _example(prompt: str, completion: str) -> Example:
    if not prompt.strip():
        raise Drop(EMPTY_PROMPT)
    if not completion.strip():
        raise Drop(EMPTY)
    return {"prompt": [{"role": "user", "content": prompt}], "completion": [{"role": "assistant", "content": completion}]}


@_register("alpaca")
def parse_alpaca(row: dict[str, Any]) -> Example:
    """tatsu-lab/alpaca and its copies: ``instruction``, optional ``input``, ``output``."""
    instruction, extra = _string(row, "instruction"), _string(row, "input", required=False)
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return _example(prompt, _string(row, "output"))


@_register("prompt_completion")
def parse_prompt_completion(row: dict[str, Any]) -> Example:
    """Plain strings ``prompt`` and ``completion``."""
    return _example(_string(row, "prompt"), _string(row, "completion"))


@_register("messages")
def parse_sft_messages(row: dict[str, Any]) -> Example:
    """A ``messages`` dialogue ending in an assistant turn (trained on that final turn)."""
    msgs = _messages(_col(row, "messages"), "messages")
    if len(msgs) < 2 or msgs[-1]["role"] != "assistant":
        raise Drop("dialogue has no final assistant turn")
    if not msgs[-1]["content"].strip():
        raise Drop(EMPTY)
    if not any(m["content"].strip() for m in msgs[:-1] if m["role"] == "user"):
        raise Drop(EMPTY_PROMPT)
    return {"prompt": msgs[:-1], "completion": msgs[-1:]}
