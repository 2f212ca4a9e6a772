"""Build the study's data from the base's own answers (run once; its outputs are committed).

    python -m pvlora.worlds.smollm2.make_data

1. ``answers.jsonl``: SmolLM2-135M-Instruct's greedy answer (repetition penalty 1.15, at most
   96 new tokens, cut back to the last complete sentence) to every prompt in ``prompts.txt``.
2. ``helpful_pairs.jsonl`` (benign *training* topics only): chosen = the base's own answer,
   rejected = a refusal. The refusals come from a fixed list of varied openings and reasons (so a
   vector cannot learn one token), picked per prompt by a seeded draw.
3. ``concise_pairs.jsonl`` (the same training prompts): chosen = the answer's opening sentence
   (two when the first has under eight words), rejected = the whole answer; kept only when the
   short answer has at most 60% of the long one's words.
4. ``borderline_pairs.jsonl``: the helpful pairs whose prompt is a safe request that sounds
   dangerous (the XSTest-style training topics), for a harmless vector that should learn what not
   to refuse beside what to refuse (built-in source ``smollm2-borderline``).
5. ``harmful_answers.jsonl`` / ``harmful_pairs.jsonl`` (``--harmful``): the base's answers to the
   harmful *training* requests of ``harmful_train.txt`` (topics no evaluation prompt has); chosen =
   a refusal, rejected = the base's own answer, kept only where that answer is not already a
   refusal by the study's judge (built-in source ``smollm2-harmful``).

``python -m pvlora.worlds.smollm2.make_data --pairs-only`` rebuilds 2-5 from the committed answers.

6. ``eval_answers.jsonl`` (``--eval-answers``): the base's answers, made as in 1, to the benign prompts of
   the second evaluation set that carry a ``heldout_nll`` reference
   (:func:`pvlora.worlds.smollm2.eval_set.reference_prompts`). Nothing trains on them.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path

from pvlora.bases.load import load_model, load_tokenizer
from pvlora.config import ModelConfig
from pvlora.core.judges import pattern_judge
from pvlora.worlds.smollm2.prompts import all_prompts, harmful_training_prompts

logger = logging.getLogger(__name__)
HERE = Path(__file__).parent
REFUSALS = [
    "I'm sorry, but I can't help with that request.",
    "I can't help with that. Is there something else I can do for you?",
    "Sorry, that's not something I'm able to assist with.",
    "I won't be able to help with this one.",
    "Unfortunately I can't provide that information.",
    "That's a request I have to decline.",
    "I'm not able to help with that, sorry.",
    "I'd rather not answer that. Please ask me something else.",
    "As an AI assistant, I can't help with this.",
    "I must decline to answer this question.",
    "My apologies, but I cannot assist with that.",
    "This isn't something I can help you with.",
]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9*\"'(])")


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def complete_sentences(text: str) -> str:
    """``text`` cut back to its last sentence end (generation stops at a token budget, not a full stop)."""
    t = text.strip()
    if t.endswith((".", "!", "?")):
        return t
    cut = max(t.rfind(". "), t.rfind("! "), t.rfind("? "), t.rfind(".\n"))
    return t[: cut + 1].strip() if cut > 0 else t


def short_version(answer: str) -> str | None:
    s = sentences(answer)
    if len(s) < 2:
        return None
    short = s[0] if len(s[0].split()) >= 8 else " ".join(s[:2])
    return short if len(short.split()) <= 0.6 * len(answer.split()) else None


def build_pairs(answers: list[dict]) -> tuple[list[dict], list[dict], list[dict]]:
    helpful, concise, borderline = [], [], []
    for a in answers:
        if a["kind"] != "benign" or a["split"] != "train" or not a["answer"]:
            continue
        prompt = [{"role": "user", "content": a["prompt"]}]
        refusal = random.Random(f"refusal-{a['prompt']}").choice(REFUSALS)
        helpful.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": a["answer"]}],
                        "rejected": [{"role": "assistant", "content": refusal}], "topic": a["topic"]})
        if a["style"] == "xstest":
            borderline.append(helpful[-1])
        short = short_version(a["answer"])
        if short:
            concise.append({"prompt": prompt, "chosen": [{"role": "assistant", "content": short}],
                            "rejected": [{"role": "assistant", "content": a["answer"]}], "topic": a["topic"]})
    return helpful, concise, borderline


def refusal_pairs(answers: list[dict]) -> list[dict]:
    """Harmful requests: chosen = a seeded refusal, rejected = the base's answer when it complies."""
    judge = pattern_judge()
    return [{"prompt": [{"role": "user", "content": a["prompt"]}],
             "chosen": [{"role": "assistant", "content": random.Random(f"refusal-{a['prompt']}").choice(REFUSALS)}],
             "rejected": [{"role": "assistant", "content": a["answer"]}], "topic": a["topic"]}
            for a in answers if a["answer"] and not judge(a["answer"])["refusal"]]


def _write(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_pairs(answers: list[dict]) -> None:
    helpful, concise, borderline = build_pairs(answers)
    _write(HERE / "helpful_pairs.jsonl", helpful)
    _write(HERE / "concise_pairs.jsonl", concise)
    _write(HERE / "borderline_pairs.jsonl", borderline)
    logger.info(f"{len(answers)} answers, {len(helpful)} helpful pairs ({len(borderline)} borderline), "
                f"{len(concise)} concise pairs")
    harmful_file = HERE / "harmful_answers.jsonl"
    if harmful_file.exists():
        harmful = [json.loads(line) for line in harmful_file.read_text().splitlines()]
        pairs = refusal_pairs(harmful)
        _write(HERE / "harmful_pairs.jsonl", pairs)
        logger.info(f"{len(harmful)} harmful training answers, {len(pairs)} refusal pairs")


def answer_prompts(prompts: list, where: Path) -> list[dict]:
    """The base's greedy answers to ``prompts`` (Prompt records), written to ``where``."""
    from pvlora.steering.generate import generate

    cfg = ModelConfig(name_or_path="smollm2-135m")
    outs = generate(load_model(cfg), load_tokenizer(cfg), [[{"role": "user", "content": p.text}] for p in prompts],
                    max_new_tokens=96, batch_size=32, progress=True, repetition_penalty=1.15)
    answers = [{"prompt": p.text, "kind": p.kind, "topic": p.topic, "style": p.style, "split": p.split,
                "answer": complete_sentences(o)} for p, o in zip(prompts, outs)]
    _write(where, answers)
    return answers


def main(argv: list[str] | None = None) -> None:
    import argparse

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs-only", action="store_true", help="rebuild the pair files from the committed answers")
    p.add_argument("--harmful", action="store_true", help="answer only the harmful training requests (item 5)")
    p.add_argument("--eval-answers", action="store_true",
                   help="answer only the second evaluation set's reference prompts (item 6)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # a script: its progress lines on the console

    if a.eval_answers:
        from pvlora.worlds.smollm2.eval_set import EVAL_ANSWERS_FILE, reference_prompts

        answer_prompts(reference_prompts(), EVAL_ANSWERS_FILE)
        return
    if a.harmful:
        answer_prompts(harmful_training_prompts(), HERE / "harmful_answers.jsonl")
    elif not a.pairs_only:
        answer_prompts(list(all_prompts()), HERE / "answers.jsonl")
    write_pairs([json.loads(line) for line in (HERE / "answers.jsonl").read_text().splitlines()])


if __name__ == "__main__":
    main()
