"""`pvlora extract`, `compose`, `inspect` and `export`: vectors from adapters, and what is made of them."""

from __future__ import annotations

import json
import sys

from pvlora.cli.base import Command, UsageError, add_allow_pickle, add_overwrite, raw
from pvlora.artifacts.atomic import check_output
from pvlora.cli.grammar import vector_specs


def _extract_args(p) -> None:
    p.add_argument("--positive", required=True, help="adapter trained on the preference data (any PEFT LoRA dir)")
    p.add_argument("--negative", help="adapter trained on the reversed data")
    p.add_argument("--out", required=True, help="output directory (a PEFT LoRA adapter + pvlora.json)")
    p.add_argument("--rank", type=int, help="compress to rank K by a truncated SVD of the factors (default: exact)")
    p.add_argument("--positive-only", action="store_true", help="φ = ΔW+ (the paper's ablation)")
    p.add_argument("--preference", help="name stored in the manifest (default: from the positive adapter)")
    add_overwrite(p)
    add_allow_pickle(p)


def cmd_extract(a) -> int:
    from pvlora.vectors.extract import extract_vector

    if not a.negative and not a.positive_only:
        raise UsageError("--negative is required (or pass --positive-only for φ = ΔW+)")
    check_output(a.out, a.overwrite, "dir", inputs=tuple(p for p in (a.positive, a.negative) if p), flag="--out")
    m = extract_vector(a.positive, a.negative, a.out, rank=a.rank, positive_only=a.positive_only,
                       overwrite=a.overwrite, allow_pickle=a.allow_pickle, preference=a.preference,
                       command=a.recorded)
    extra = f", relative error {m.compression.relative_error:.3g}" if m.compression else ""
    print(f"[pvlora] vector {m.preference}: rank {m.rank} (exact {m.exact_rank}){extra}, ‖φ‖_F {m.norm:.4g} -> {a.out}")
    return 0


def _compose_args(p) -> None:
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
    add_overwrite(p)
    add_allow_pickle(p)


def cmd_compose(a) -> int:
    from pvlora.vectors.compose import compose

    if a.dtype and not a.merge:
        raise UsageError("--dtype applies to --merge only (an adapter is always written in float32)")
    check_output(a.out, a.overwrite, "dir", flag="--out")
    m = compose(a.base, vector_specs(a.vector), a.out, rank=a.rank, merge=a.merge,
                overwrite=a.overwrite, allow_pickle=a.allow_pickle, revision=a.revision, dtype=a.dtype,
                command=a.recorded)
    for path in m.unverified:
        print(f"[pvlora] note: {path}: no pvlora.json, or one without weights_sha256, so no integrity check of "
              "its files was possible", file=sys.stderr)
    recipe = m.recipe()
    print(f"[pvlora] composition {recipe}: rank {m.rank} ({m.method}) -> {a.out}")
    return 0


def _inspect_args(p) -> None:
    p.add_argument("dirs", nargs="+", metavar="DIR")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_allow_pickle(p)


def cmd_inspect(a) -> int:
    from pvlora.vectors.inspect import inspect_dirs, render

    rep = inspect_dirs(a.dirs, a.allow_pickle)
    print(json.dumps(rep, indent=2, default=str) if a.json else render(rep))
    return 0


def _export_args(p) -> None:
    p.add_argument("src", help="vector, composition or adapter directory")
    p.add_argument("--format", required=True, choices=["vllm", "gguf"])
    p.add_argument("--out", required=True, help="vllm: a directory; gguf: a .gguf file")
    p.add_argument("--rank", type=int, help="vllm only: the rank to write (default: the smallest accepted that is exact)")
    p.add_argument("--base", help="gguf only: the base to read the architecture from (default: the one SRC records)")
    add_overwrite(p)


def cmd_export(a) -> int:
    from pvlora.vectors.export import export_gguf, export_vllm

    # gguf: one file, written by export_gguf itself; checked here before the base config is read
    check_output(a.out, a.overwrite, "file" if a.format == "gguf" else "dir", inputs=(a.src,), flag="--out")

    if a.format == "vllm":
        if a.base:
            raise UsageError("--base applies to --format gguf only")
        e = export_vllm(a.src, a.out, rank=a.rank, overwrite=a.overwrite, command=a.recorded).export
        how = "exact, zero-padded" if e.rank >= e.exact_rank else f"compressed, relative error {e.relative_error:.3g}"
        print(f"[pvlora] {a.src} (rank {e.exact_rank}) -> {a.out}: PEFT adapter of rank {e.rank} ({how})")
    else:
        if a.rank:
            raise UsageError("--rank applies to --format vllm only (a GGUF adapter keeps the exact rank)")
        g = export_gguf(a.src, a.out, base=a.base, overwrite=a.overwrite)
        print(f"[pvlora] {a.src} -> {a.out}: llama.cpp LoRA, {g['tensors']} modules, rank {g['rank']}, alpha {g['alpha']:g} "
              "(llama.cpp's lora scale = η)")
    return 0


EXPORT_HELP = raw(
    "vllm: a PEFT adapter whose rank vLLM accepts (8, 16, 32, 64, 128, 256, 320, 512),\n"
    "zero-padded (exact) or, with a smaller --rank, compressed by SVD with the error printed.\n"
    "gguf: a llama.cpp LoRA adapter file (Llama-architecture bases) with alpha = rank, so llama.cpp's\n"
    "per-request lora scale is η.",
    "examples:\n  pvlora export vectors/harmless --format vllm --out export/harmless-vllm\n"
    "  pvlora export vectors/harmless --format gguf --out harmless.gguf\n"
    "  llama-server -m base.gguf --lora harmless.gguf --lora helpful.gguf   # then per request: "
    "\"lora\": [{\"id\": 0, \"scale\": 1.5}, ...]")

COMMANDS = [
    Command("extract", "build a preference vector φ = ΔW+ − ΔW− from two adapters", _extract_args, cmd_extract),
    Command("compose", "weighted composition Σ η_p·φ_p as one adapter (or a merged model)", _compose_args, cmd_compose),
    Command("inspect", "manifest, rank, norms, per-layer norms, cosine similarity of vectors", _inspect_args, cmd_inspect),
    Command("export", "a vector or composition for vLLM (a PEFT adapter of an accepted rank) or llama.cpp (GGUF LoRA)",
            _export_args, cmd_export, EXPORT_HELP),
]
