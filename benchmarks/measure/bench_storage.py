"""Storage: bytes of one preference vector against its base model, for the built-in tiny base
(measured on disk) and, computed, for Llama-3.1-8B with r = 16 adapters on all linear layers.

    python benchmarks/measure/bench_storage.py [--vector DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/storage.json",)  # what this script writes, relative to benchmarks/

L8B = dict(hidden=4096, inter=14336, kv=1024, layers=32, vocab=128256)


def llama8b_numbers(r_each: int = 16) -> dict:
    h, i, kv, n = L8B["hidden"], L8B["inter"], L8B["kv"], L8B["layers"]
    shapes = [(h, h), (kv, h), (kv, h), (h, h), (i, h), (i, h), (h, i)]  # q k v o gate up down: (d_out, d_in)
    r = 2 * r_each  # φ = [A+; A−], [B+, −B−]
    lora_params = n * sum(r * (o + i_) for o, i_ in shapes)
    base_params = n * sum(o * i_ for o, i_ in shapes) + 2 * L8B["vocab"] * h + (2 * n + 1) * h
    return {"vector_rank": r, "vector_bytes_fp32": lora_params * 4, "vector_bytes_bf16": lora_params * 2,
            "base_bytes_bf16": base_params * 2, "ratio_bf16": (lora_params * 2) / (base_params * 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--vector", help="a vector directory (default: the harmless vector of ./pvlora-demo)",
                   default=str(Path(__file__).resolve().parents[2] / "pvlora-demo" / "vectors" / "harmless"))
    a = p.parse_args(argv)
    from pvlora.worlds.toy.base import ensure_tiny_base

    base = ensure_tiny_base(0)
    base_bytes = (base / "model.safetensors").stat().st_size
    out = {"llama_3_1_8b_r16": llama8b_numbers()}
    vec = Path(a.vector) / "adapter_model.safetensors"
    if vec.exists():
        out["tiny"] = {"vector_bytes": vec.stat().st_size, "base_bytes": base_bytes, "ratio": vec.stat().st_size / base_bytes}
        print(f"tiny: vector {vec.stat().st_size / 1e3:.0f} kB vs base {base_bytes / 1e6:.2f} MB "
              f"({100 * out['tiny']['ratio']:.1f}%)")
    else:
        print(f"tiny: no vector at {vec} (run `pvlora demo` first)")
    L = out["llama_3_1_8b_r16"]
    print(f"Llama-3.1-8B, r=16 per adapter (vector rank {L['vector_rank']}): vector {L['vector_bytes_bf16'] / 2**20:.0f} MiB "
          f"in bf16 ({L['vector_bytes_fp32'] / 2**20:.0f} MiB fp32) vs base {L['base_bytes_bf16'] / 2**30:.1f} GiB "
          f"({100 * L['ratio_bf16']:.2f}%)")
    save(RESULT_FILES[0], out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
