"""`pvlora data`, `sft` and `train`: what a preference trains on, and the training stages."""

from __future__ import annotations

import json
from pathlib import Path

from pvlora.cli.base import Command, UsageError, add_config, add_overwrite
from pvlora.artifacts.atomic import atomic_file
from pvlora.artifacts.atomic import check_output
from pvlora.config import load_config
from pvlora.data import load_preference_data


def _data_args(p) -> None:
    add_config(p)
    p.add_argument("--preference", "-p", required=True, help="preference name from the config")
    p.add_argument("--direction", choices=["positive", "negative"], default="positive",
                   help="negative = chosen and rejected swapped (the reversed set D−)")
    p.add_argument("--limit", type=int, default=3, help="pairs to print (default 3)")
    p.add_argument("--export", metavar="FILE.jsonl", help="write all training pairs as JSON lines")
    add_overwrite(p, "--export file")


def cmd_data(a) -> int:
    cfg = load_config(a.config, a.overrides)
    pref = cfg.preference(a.preference)
    if a.export:
        check_output(a.export, a.overwrite, "file", flag="--export")
    src = Path(pref.source).expanduser()
    if a.export and src.exists() and (Path(a.export).resolve() == src.resolve()
                                      or Path(a.export).resolve().is_relative_to(src.resolve())):
        raise UsageError(f"--export {a.export} would overwrite the data it reads ({pref.source}); choose another file")
    data = load_preference_data(pref, a.direction, seed=cfg.seed)
    print(data.summary())
    for i, pair in enumerate(data.train[: max(a.limit, 0)]):
        print(f"\n--- pair {i + 1}")
        for k in ("prompt", "chosen", "rejected"):
            print(f"{k}: {_short(pair[k])}")
    if a.export:
        with atomic_file(Path(a.export)) as fh:
            for pair in data.train:
                fh.write(json.dumps(pair, ensure_ascii=False) + "\n")
        print(f"\nexported {len(data.train)} pairs to {a.export}")
    return 0


def _short(value, n: int = 300) -> str:
    if isinstance(value, list):
        value = " | ".join(f"{m['role']}: {m['content']}" for m in value)
    value = str(value).replace("\n", "\\n")
    return value if len(value) <= n else value[: n - 3] + "..."


def _sft_args(p) -> None:
    add_config(p)
    p.add_argument("--out", help="adapter directory (default: OUTPUT_DIR/sft; the merged model goes to OUT-merged)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="redo the stage and replace its outputs")


def cmd_sft(a) -> int:
    from pvlora.training.sft import run_sft, sft_dirs

    cfg = load_config(a.config, a.overrides)
    target, merged = sft_dirs(cfg, a.out)
    # only where they go is checked here (overwrite=True): whether existing ones are redone, resumed or
    # kept is run_sft's decision. Checked now, not when the finished run is saved.
    check_output(target, True, "dir", flag="--out" if a.out else None)
    if cfg.sft.merge:
        check_output(merged, True, "dir")
    run_sft(cfg, a.out, resume=a.resume, overwrite=a.overwrite, command=a.recorded)
    return 0


def _train_args(p) -> None:
    add_config(p)
    p.add_argument("--preference", "-p", help="one preference (default: every preference in the config)")
    p.add_argument("--direction", choices=["positive", "negative", "both"], default="both")
    p.add_argument("--out", help="directory for the adapters (default: OUTPUT_DIR/adapters)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run: finished adapters are "
                   "skipped, the unfinished one continues from its last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="retrain and replace existing adapters")


def cmd_train(a) -> int:
    from pvlora.training.dpo import train_all

    cfg = load_config(a.config, a.overrides)
    # the folder the adapters go into, checked before training rather than when the first one is saved
    check_output(a.out or Path(cfg.output.dir) / "adapters", kind="into", flag="--out" if a.out else None)
    train_all(cfg, a.preference, a.direction, a.out, resume=a.resume, overwrite=a.overwrite, command=a.recorded)
    return 0


COMMANDS = [
    Command("data", "preview, count and export the pairs a preference trains on", _data_args, cmd_data),
    Command("sft", "supervised fine-tuning of the base before DPO (the paper's first stage), LoRA or QLoRA",
            _sft_args, cmd_sft, {
                "description": "Train a LoRA/QLoRA SFT adapter on instruction data (config block `sft:`; its `args:` "
                "take any trl.SFTConfig field) and, unless sft.merge is false, merge it into unquantised base weights "
                "as OUT-merged. Then train preferences on the SFT'd base: --set model.name_or_path=OUT-merged.",
                "epilog": "example: pvlora sft --config C --set sft.source=tatsu-lab/alpaca --set sft.format=alpaca"}),
    Command("train", "train DPO LoRA adapters (positive and negative) per preference", _train_args, cmd_train),
]
