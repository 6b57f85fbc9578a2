"""Logging: the library logs to module loggers and never prints; the ``tada`` command chooses what a user sees."""

import ast
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_library_never_prints():
    """Only the command line (tada_core/cli) writes to stdout; everything else logs."""
    offenders = []
    for path in (ROOT / "tada_core").rglob("*.py"):
        if "cli" in path.relative_to(ROOT / "tada_core").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_quiet_and_verbose_choose_what_the_command_shows(cli, tmp_path):
    out = tmp_path / "a.wav"
    code, _, err = cli("generate", "--model", "tiny-stable-audio", "--prompt", "x", "--out", out)
    assert code == 0 and "loaded in" in err                     # progress notes by default (INFO)
    code, _, err = cli("generate", "--model", "tiny-stable-audio", "--prompt", "x", "--out", out, "-q")
    assert code == 0 and "loaded in" not in err                 # -q after the subcommand
    code, _, err = cli("-q", "generate", "--model", "tiny-stable-audio", "--prompt", "x", "--out", out)
    assert code == 0 and "loaded in" not in err                 # or before it
    code, _, err = cli("-v", "generate", "--model", "tiny-stable-audio", "--prompt", "x", "--out", out)
    assert code == 0 and "loaded in" in err
    assert logging.getLogger("tada_core").level == logging.DEBUG
    cli("generate", "--model", "tiny-stable-audio", "--prompt", "x", "--out", out)
    assert logging.getLogger("tada_core").level == logging.INFO  # each command sets its own level
