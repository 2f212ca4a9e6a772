"""What every command shares: the command record, the usage error, and the option helpers, so an
option means the same thing (and reads the same in --help) wherever it appears."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Command:
    """One subcommand: its parser (built by ``arguments``) and its handler, registered together."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    parser_kwargs: dict = field(default_factory=dict)  # description, epilog, formatter_class


class UsageError(Exception):
    """A flag combination the command refuses (the library is not involved yet)."""


def add_config(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", help="experiment YAML (default: the built-in configs/tiny-demo.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value (repeatable), e.g. --set dpo.beta=0.2 --set preferences.helpful.limit=500")


def add_overwrite(p: argparse.ArgumentParser, what: str = "--out") -> None:
    p.add_argument("--overwrite", action="store_true",
                   help=f"replace an existing {what} (without it an existing one is refused and kept)")


def add_allow_pickle(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-pickle", action="store_true",
                   help="also read adapter_model.bin (pickle, loaded with weights_only=True; only if trusted)")


def add_vectors(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vectors", help="directory holding one vector directory per preference (default: OUTPUT_DIR/vectors)")


def raw(description: str | None = None, epilog: str | None = None) -> dict:
    """Parser kwargs for help text with its own line breaks."""
    return {"description": description, "epilog": epilog, "formatter_class": argparse.RawDescriptionHelpFormatter}
