"""`pvlora serve`: the OpenAI-compatible server with per-request preference weights."""

from __future__ import annotations

from pathlib import Path

from pvlora.cli.base import Command, raw
from pvlora.core.errors import ConfigError
from pvlora.cli.grammar import vector_specs
from pvlora.serving.app import ServeSettings, serve
from pvlora.serving.guards import sigterm_as_interrupt


def _serve_args(p) -> None:
    p.add_argument("--base", required=True, help="base model: Hub id, local directory, 'tiny' or 'smollm2-135m'")
    p.add_argument("--revision", help="base model revision")
    p.add_argument("--vector", action="append", required=True, metavar="DIR[=ETA]",
                   help="vector directory or Hub id and its default η (default 0); repeatable")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="1 to 65535 (default: 8000)")
    p.add_argument("--max-batch", type=int, default=16, help="rows generated together, 1 to 4096 (default: 16)")
    p.add_argument("--max-wait-ms", type=float, default=10.0,
                   help="how long a request waits for others to batch with, 0 to 10000 (default: 10)")
    p.add_argument("--max-tokens", type=int, default=256, help="most new tokens per request, and the default (256)")
    p.add_argument("--max-prompt-tokens", type=int, default=2048, help="longer prompts get a 400 (default: 2048)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="when a request gives none, 0 to 2 (default: 0 = greedy, reproducible)")
    p.add_argument("--allow-vector-swap", action="store_true",
                   help="turn on POST /v1/vectors (load a vector) and DELETE /v1/vectors/NAME (remove one) while "
                        "serving; off by default")
    p.add_argument("--vector-dir", action="append", default=[], metavar="DIR",
                   help="with --allow-vector-swap: POST /v1/vectors may load {\"path\": ...} from DIR or below; repeatable")
    p.add_argument("--vector-org", action="append", default=[], metavar="ORG",
                   help="with --allow-vector-swap: POST /v1/vectors may download {\"hub_id\": \"ORG/NAME[@REV]\"}; "
                        "repeatable")


def cmd_serve(a) -> int:
    vectors = vector_specs(a.vector, default=0.0)
    if (a.vector_dir or a.vector_org) and not a.allow_vector_swap:
        raise ConfigError("--vector-dir and --vector-org say where POST /v1/vectors may load from; they need "
                          "--allow-vector-swap")
    for d in a.vector_dir:
        if not Path(d).is_dir():
            raise ConfigError(f"--vector-dir {d}: no such directory")
    with sigterm_as_interrupt():  # SIGTERM (kill, systemd, docker stop) stops it as Ctrl-C does
        serve(ServeSettings(base=a.base, vectors=vectors, host=a.host, port=a.port, max_batch=a.max_batch,
                            max_wait_ms=a.max_wait_ms, max_tokens=a.max_tokens, max_prompt_tokens=a.max_prompt_tokens,
                            temperature=a.temperature, revision=a.revision, allow_vector_swap=a.allow_vector_swap,
                            vector_dirs=tuple(a.vector_dir), vector_orgs=tuple(a.vector_org)))
    return 0


COMMANDS = [
    Command("serve", "OpenAI-compatible chat server; each request may carry its own preference_weights",
            _serve_args, cmd_serve, raw(
                "Load a base and vectors once and serve POST /v1/chat/completions. A request may add\n"
                "\"preference_weights\": {\"harmless\": 1.0, ...} (vector names as loaded; names it leaves out keep\n"
                "the server's η from --vector). Requests that arrive together are generated in one batch, each row\n"
                "at its own mix, exactly; \"stream\": true sends the text as server-sent events while it is made.\n"
                "With --allow-vector-swap, POST /v1/vectors {\"path\" or \"hub_id\", \"name\"?, \"eta\"?} loads a vector\n"
                "(from a --vector-dir or a --vector-org only) and DELETE /v1/vectors/NAME removes one, between\n"
                "batches, without a restart; GET /v1/vectors and GET /v1/models list the set.\n"
                "Needs: pip install 'pvlora[serve]'.",
                "example:\n  pvlora serve --base tiny --vector runs/tiny-demo/vectors/helpful=1 "
                "--vector runs/tiny-demo/vectors/harmless=0.5\n  curl localhost:8000/v1/chat/completions -H "
                "'Content-Type: application/json' -d '{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], "
                "\"preference_weights\": {\"harmless\": 1.5}}'")),
]
