"""Real preference data: harmless+ and harmless− DPO adapters on the 1,800 shipped HH-RLHF
harmless-base pairs (10% held out), on the built-in tiny base, and the held-out preference accuracy
of base, +, and − (mean log-probability per response token; see pvlora.steering.logprobs).

The tiny base is the only base that trains here in minutes on a CPU with no download. It has
never seen English outside the toy corpus, so what it can learn from HH-RLHF is surface form
(length, refusal wording); the check is that the two directions move accuracy apart, not that
the model understands harm.

    python benchmarks/measure/bench_hh_rlhf.py [--data FILE]   # default: the rows shipped in pvlora/data/shipped/hh-rlhf
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/hh_rlhf.json",)  # what this script writes, relative to benchmarks/

from pvlora.data.sources import BUILTIN_SOURCES

DEFAULT = BUILTIN_SOURCES["hh-rlhf-harmless-base"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT))
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=2e-4)
    a = p.parse_args(argv)
    from peft import PeftModel

    from pvlora.config import PreferenceConfig, load_config
    from pvlora.data import load_preference_data
    from pvlora.steering.logprobs import preference_accuracy
    from pvlora.bases.load import load_base
    from pvlora.training.dpo import adapter_dir, train_all

    with tempfile.TemporaryDirectory() as out:
        cfg = load_config(None, [f"output.dir={out}", "dpo.max_length=256", f"dpo.num_train_epochs={a.epochs}",
                                 f"dpo.learning_rate={a.lr}", "dpo.per_device_train_batch_size=8"])
        cfg.preferences = [PreferenceConfig(name="harmless", source=a.data, format="hh_rlhf", heldout_fraction=0.1)]
        train_all(cfg, "harmless", "both")
        data = load_preference_data(cfg.preferences[0], "positive", cfg.seed)
        model, tok, _ = load_base(cfg.model)
        model = PeftModel.from_pretrained(model, str(adapter_dir(cfg, "harmless", "positive")), adapter_name="pos")
        model.load_adapter(str(adapter_dir(cfg, "harmless", "negative")), adapter_name="neg")
        with model.disable_adapter():
            base = preference_accuracy(model, tok, data.heldout)
        model.set_adapter("pos")
        pos = preference_accuracy(model, tok, data.heldout)
        model.set_adapter("neg")
        neg = preference_accuracy(model, tok, data.heldout)
    print(data.summary())
    print(f"held-out preference accuracy ({base['n']} pairs): base {base['accuracy']:.3f}, "
          f"harmless+ {pos['accuracy']:.3f}, harmless− {neg['accuracy']:.3f}")
    save(RESULT_FILES[0], {"data": data.fingerprint(), "base": base, "positive": pos, "negative": neg,
                     "settings": {"dpo": cfg.dpo, "lora": cfg.lora, "tiny_base": "pvlora built-in, seed 0"}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
