"""The library reports through logging and leaves other libraries' log levels alone; the command line
shows its lines on the console."""

import ast
import dataclasses
import logging
from pathlib import Path

import pvlora.cli as cli
from pvlora.core.logs import quieted

PKG = Path(__file__).resolve().parents[2] / "pvlora"
# What prints on purpose: the command line, and the demos' narrative (the output of `pvlora demo`).
PRINTS_ALLOWED = ("cli/", "worlds/toy/demo.py", "worlds/smollm2/demo.py")


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_the_library_does_not_print():
    found = [f"{p.relative_to(PKG)}:{n.lineno}" for p in PKG.rglob("*.py")
             if not str(p.relative_to(PKG)).startswith(PRINTS_ALLOWED)
             for n, name in _calls(p) if name == "print"]
    assert found == []
    defaults = [f"{p.relative_to(PKG)}:{n.lineno}" for p in PKG.rglob("*.py")
                for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.Name) and n.id == "print"
                and not str(p.relative_to(PKG)).startswith(PRINTS_ALLOWED)]
    assert defaults == []  # nor passes print along (``log=print``)


def test_only_the_command_line_sets_another_library_s_log_level():
    found = [f"{p.relative_to(PKG)}:{n.lineno}" for p in PKG.rglob("*.py")
             if not str(p.relative_to(PKG)).startswith(("cli/", "core/logs.py"))
             for n, name in _calls(p) if name.endswith(("setLevel", "set_verbosity", "set_verbosity_error",
                                                       "set_verbosity_warning", "disable_progress_bars"))]
    assert found == []


def test_quieted_restores_the_level_it_found():
    log = logging.getLogger("pvlora-test-quieted")
    log.setLevel(logging.INFO)
    with quieted("pvlora-test-quieted"):
        assert log.getEffectiveLevel() == logging.ERROR
    assert log.level == logging.INFO
    log.setLevel(logging.CRITICAL)  # already quieter: left as it is
    with quieted("pvlora-test-quieted"):
        assert log.level == logging.CRITICAL
    assert log.level == logging.CRITICAL
    log.setLevel(logging.NOTSET)


def test_library_log_lines_are_the_command_s_console_output(capsys, monkeypatch):
    def run(a):
        logging.getLogger("pvlora.vectors.extract").info("[pvlora] vector x: rank 2")
        logging.getLogger("pvlora.training.dpo").warning("a warning")
        logging.getLogger("pvlora.training.dpo").debug("not shown")
        return 0

    monkeypatch.setattr(cli, "COMMANDS", [dataclasses.replace(c, run=run) if c.name == "inspect" else c
                                          for c in cli.COMMANDS])
    before = list(logging.getLogger("pvlora").handlers)
    assert cli.main(["inspect", "somewhere"]) == 0
    out, err = capsys.readouterr()
    assert out == "[pvlora] vector x: rank 2\n" and err == "a warning\n"
    assert logging.getLogger("pvlora").handlers == before  # gone after the command: no doubled lines next time
    assert cli.main(["inspect", "somewhere"]) == 0
    assert capsys.readouterr().out == "[pvlora] vector x: rank 2\n"
