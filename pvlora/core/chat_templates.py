"""Chat templates for bases that ship without one (Llama-3.x base, Mistral-7B-v0.1, ...).

Preference data is conversational and TRL, our scoring and generation all call
``apply_chat_template``; a base without a template would crash only after its weights have
loaded. ``model.chat_template`` names one of these built-ins or a Jinja file; the template used is
saved beside every adapter (``chat_template.jinja``) so the adapter is used with the text it was
trained on. transformers has no registry of stock templates, hence this small one.
"""

from __future__ import annotations

from pathlib import Path

from pvlora.core.errors import ConfigError

TEMPLATE_FILE = "chat_template.jinja"
MAX_TEMPLATE_BYTES = 64 * 1024  # a chat template is a few hundred bytes; refuse anything absurd

BUILTIN: dict[str, str] = {
    # ChatML (Qwen, SmolLM2, many community SFTs)
    "chatml": (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    ),
    # Llama 3 / 3.1 / 3.2 instruct format; the special tokens exist in every Llama-3 tokenizer
    "llama3": (
        "{{ bos_token }}{% for m in messages %}"
        "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' + m['content'] | trim + '<|eot_id|>' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
    ),
    # Mistral-7B-Instruct's [INST] format (system text, if any, is prepended to the first user turn)
    "mistral": (
        "{{ bos_token }}{% set ns = namespace(sys='') %}{% for m in messages %}"
        "{% if m['role'] == 'system' %}{% set ns.sys = m['content'] + '\\n\\n' %}"
        "{% elif m['role'] == 'user' %}{{ '[INST] ' + ns.sys + m['content'] + ' [/INST]' }}{% set ns.sys = '' %}"
        "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
    ),
    # Zephyr-style plain-text markers: works with any tokenizer (no special tokens needed)
    "zephyr": (
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] + eos_token + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    ),
}


def resolve_chat_template(spec: str, where: str = "model.chat_template") -> str:
    """The Jinja text for a built-in name or a file path; errors name the field and say what to do."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{where}: {spec!r} is neither a built-in template ({', '.join(BUILTIN)}) nor a readable file; "
            "name a built-in or a path to a .jinja file"
        )
    if path.stat().st_size > MAX_TEMPLATE_BYTES:
        raise ConfigError(f"{where}: {path} is larger than {MAX_TEMPLATE_BYTES} bytes; is it really a chat template?")
    text = path.read_text(encoding="utf-8")
    if "messages" not in text:
        raise ConfigError(f"{where}: {path} does not iterate over 'messages'; it is not a chat template")
    return text


def carry_template(sources, out: Path) -> None:
    """Copy the chat template the sources were trained with into ``out`` when they all agree (a
    vector or composition is then used with the same text as its adapters). Only regular files
    inside each source directory are read, with a size bound."""
    texts = set()
    for src in sources:
        f = Path(src) / TEMPLATE_FILE
        if f.is_symlink() or not f.is_file() or f.stat().st_size > MAX_TEMPLATE_BYTES:
            return
        texts.add(f.read_text(encoding="utf-8"))
    if len(texts) == 1:
        (Path(out) / TEMPLATE_FILE).write_text(texts.pop(), encoding="utf-8")
