"""Prompts as the model reads them: a message list through the tokenizer's chat template; a plain string
as raw text, or, asked for (``chat_template=True``), as one user message through the template, the way
``pvlora serve`` renders a request's messages. An empty prompt is refused before any work."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pvlora.core.errors import ConfigError, RequestError
from pvlora.steering.logprobs import prompt_text


def is_blank(prompt: Any) -> bool:
    """True for a string of only whitespace, or a message list whose every content is."""
    if isinstance(prompt, str):
        return not prompt.strip()
    if isinstance(prompt, list):
        return all(isinstance(m, Mapping) and isinstance(m.get("content"), (str, type(None)))
                   and not (m.get("content") or "").strip() for m in prompt)
    return False


def has_chat_template(tok) -> bool:
    return bool(getattr(tok, "chat_template", None))


def prompt_texts(tok, prompts: Sequence[Any], chat_template: bool = False) -> list[str]:
    """Each prompt's text for the model, every prompt checked first.

    Raises:
        RequestError: an empty prompt (its ``field`` is ``prompts[i]``).
        ConfigError: ``chat_template=True`` with a tokenizer that has no chat template.
    """
    for i, p in enumerate(prompts):
        if is_blank(p):
            raise RequestError(f"prompts[{i}] is empty: a prompt needs some text", f"prompts[{i}]")
    if chat_template and not has_chat_template(tok):
        raise ConfigError("chat_template=True, but the tokenizer has no chat template; set tok.chat_template, "
                          "or pass chat_template=False to use the strings as raw text")
    return [prompt_text(tok, [{"role": "user", "content": p}] if chat_template and isinstance(p, str) else p)
            for p in prompts]


def strings_as_raw_text(tok, prompts: Sequence[Any]) -> bool:
    """``chat_template=None`` in :func:`pvlora.generate`: False (strings as raw text, as pvlora trains and
    evaluates on them), with a warning when strings meet a tokenizer that has a chat template."""
    if any(isinstance(p, str) for p in prompts) and has_chat_template(tok):
        import warnings

        warnings.warn("pvlora.generate: plain-string prompts are used as raw text, without the tokenizer's chat "
                      "template; pass chat_template=True to send each as one user message (as pvlora serve "
                      "does), or chat_template=False to keep raw text and silence this warning", UserWarning,
                      stacklevel=4)
    return False


__all__ = ["has_chat_template", "is_blank", "prompt_texts", "strings_as_raw_text"]
