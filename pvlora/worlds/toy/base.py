"""The built-in tiny base: a ~1M-parameter Llama SFT'd from scratch on the toy corpus.

Built deterministically from a seed on the CPU (tokenizer with `tokenizers`, model from a
`LlamaConfig`, supervised fine-tuning with TRL's SFTTrainer) and cached, so the demo and the tests
need no download and no GPU.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from pvlora.core.logs import quieted
from pvlora.core.registry import BuiltinBase
from pvlora.worlds.toy import corpus as toy
from pvlora.core.files import build_once
from pvlora.artifacts.safe_read import cache_root

BUILD_VERSION = 4  # bump when the corpus, tokenizer or recipe changes: invalidates caches

CHAT_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}"
    "{% else %}<|assistant|>{{ m['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<|pad|>", "<|bos|>", "<|end|>", "<|user|>", "<|assistant|>", "<|system|>"]


@dataclass(frozen=True)
class TinyRecipe:
    vocab_size: int = 384
    hidden_size: int = 128
    intermediate_size: int = 320
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    epochs: float = 3.0
    per_prompt: int = 8
    batch_size: int = 32
    learning_rate: float = 3e-3


def tiny_cache_dir(seed: int, recipe: TinyRecipe = TinyRecipe()) -> Path:
    tag = "default" if recipe == TinyRecipe() else "custom"
    return cache_root() / f"tiny-base-v{BUILD_VERSION}-{tag}-seed{seed}"


def ensure_tiny_base(seed: int = 0, recipe: TinyRecipe = TinyRecipe(), out: Path | None = None) -> Path:
    """Return the cached tiny base directory, building it (about a minute on 2 cores) if absent."""
    target = Path(out) if out else tiny_cache_dir(seed, recipe)
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target

    return build_once(target, lambda tmp: build_tiny_base(tmp, seed, recipe))


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TinyRecipe.vocab_size, special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tk.train_from_iterator(toy.corpus_text(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<|bos|>", eos_token="<|end|>", pad_token="<|pad|>",
        additional_special_tokens=["<|user|>", "<|assistant|>", "<|system|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "left"  # generation-friendly; TRL pads its own batches
    return tok


def build_tiny_base(out: Path, seed: int = 0, recipe: TinyRecipe = TinyRecipe()) -> None:
    import torch
    from datasets import Dataset
    from transformers import LlamaConfig, LlamaForCausalLM, set_seed
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    set_seed(seed)
    tok = build_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=recipe.hidden_size, intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers, num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_key_value_heads, max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    train = Dataset.from_list(toy.sft_examples(seed, recipe.per_prompt))
    args = SFTConfig(
        output_dir=str(out / "_sft"), num_train_epochs=recipe.epochs, per_device_train_batch_size=recipe.batch_size,
        learning_rate=recipe.learning_rate, lr_scheduler_type="cosine", warmup_steps=10, weight_decay=0.0,
        logging_steps=50, save_strategy="no", report_to=[], seed=seed, data_seed=seed, max_length=128,
        use_cpu=not torch.cuda.is_available(), dataloader_num_workers=0, disable_tqdm=False,
    )
    with quieted("transformers"):  # its set-up warnings about our own arguments; the caller's level after
        trainer = SFTTrainer(model=model, args=args, train_dataset=train, processing_class=tok)
        result = trainer.train()
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    shutil.rmtree(out / "_sft", ignore_errors=True)
    (out / "pvlora-tiny.json").write_text(
        json.dumps(
            {"seed": seed, "build_version": BUILD_VERSION, "recipe": asdict(recipe),
             "parameters": sum(p.numel() for p in model.parameters()),
             "train_loss": result.training_loss, "build_seconds": round(time.perf_counter() - t0, 1)}, indent=2
        )
    )


# ``model.name_or_path: tiny`` (see pvlora.core.registry): built from the config's seed, recorded under a
# fixed name with that seed, so manifests never carry a local cache path
BUILTIN = BuiltinBase(
    recorded_as="pvlora/tiny-toy-assistant",
    build=lambda cfg: ensure_tiny_base(seed=cfg.tiny_seed),
    fingerprint_extra=lambda cfg: {"tiny_seed": cfg.tiny_seed},
)
