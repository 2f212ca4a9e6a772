"""`pvlora` command line: a table of subcommands, each registering its parser and handler together
(pvlora/cli/<stage>.py), all parsing weights with one grammar (pvlora/cli/grammar.py).

Heavy libraries (torch, transformers, TRL) are imported inside the handlers so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
from collections.abc import Iterator

from pvlora import __version__
from pvlora.cli import evaluation, judging, serving, sharing, training, vectors
from pvlora.cli.base import Command, UsageError
from pvlora.artifacts.safe_read import portable_command
from pvlora.core.errors import PvloraError
from pvlora.core.files import sigterm_raises

EPILOG = """\
typical session (the built-in tiny model, on a CPU):
  pvlora demo                                   # everything below, end to end
  pvlora demo --base smollm2                    # the same on the real SmolLM2-135M-Instruct (an hour or more on 2 cores)
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

# the order of `pvlora --help`: the demo, then the pipeline's stages, then serving and sharing
ORDER = ["demo", "data", "sft", "train", "extract", "compose", "inspect", "eval", "sweep", "tune", "judge", "export",
         "serve", "push", "pull"]
_BY_NAME = {c.name: c for m in (evaluation, judging, training, vectors, serving, sharing)
            for c in m.COMMANDS}
assert sorted(_BY_NAME) == sorted(ORDER), "every registered command has a place in ORDER"
COMMANDS: list[Command] = [_BY_NAME[name] for name in ORDER]


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pvlora", description="Steer a language model with separately trained DPO preference vectors "
        "(θ = θ_base + Σ η_p·φ_p, each φ_p stored as a PEFT LoRA adapter).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pvlora {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for c in COMMANDS:
        c.arguments(sub.add_parser(c.name, help=c.help, **c.parser_kwargs))
    return parser


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


class _Below(logging.Filter):
    def __init__(self, level: int):
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


@contextlib.contextmanager
def _console() -> Iterator[None]:
    """While a command runs, the library's log lines (``logging.getLogger(__name__)`` under ``pvlora``)
    are its console output, as plain lines: INFO on stdout, warnings and errors on stderr. Removed
    afterwards, so ``main`` can run many times in one process without doubling lines."""
    out, err = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    out.addFilter(_Below(logging.WARNING))
    err.setLevel(logging.WARNING)
    logger = logging.getLogger("pvlora")
    before = logger.level
    for h in (out, err):
        h.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(h)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for h in (out, err):
            logger.removeHandler(h)
        logger.setLevel(before)


# Library errors name an option by its Python keyword (``overwrite=True``), which is what a library
# caller passes; on the command line the same advice names the flag.
FLAGS = {"overwrite=True": "--overwrite", "allow_pickle=True": "--allow-pickle", "resume=True": "--resume",
         "hh_rlhf=FILE": "--hh-rlhf FILE", "base=MODEL": "--base MODEL", "vectors=DIR": "--vectors DIR",
         "out=DIR": "--out DIR"}


def as_flags(message: str) -> str:
    for keyword, flag in FLAGS.items():
        message = message.replace(keyword, flag)
    return message


def main(argv: list[str] | None = None) -> int:
    parser = make_parser()
    a = parser.parse_args(argv)
    if not a.command:
        parser.print_help()
        return 1

    _quiet_libraries()
    import shlex

    # recorded in every manifest the command writes (passed explicitly to the library)
    a.recorded = "pvlora " + shlex.join(portable_command(sys.argv[1:] if argv is None else argv))
    run = next(c.run for c in COMMANDS if c.name == a.command)
    try:
        with _console(), sigterm_raises(Terminated):
            return run(a)
    except (PvloraError, UsageError) as exc:
        print(f"pvlora {a.command}: error: {as_flags(str(exc))}", file=sys.stderr)
        return 2
    except Terminated:
        print(f"\npvlora {a.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"\npvlora {a.command}: interrupted", file=sys.stderr)
        return 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so it unwinds as Ctrl-C does: every atomic write
    removes its temporary and lock, and the destination stays the old artifact (or is the new one)."""


__all__ = ["COMMANDS", "FLAGS", "as_flags", "main", "make_parser"]
