"""Imported first by every command: a command line that is only ``--help`` (or ``-h``) prints
the command's stored help text, ``docs/cli/<command>.txt``, and exits 0 before torch,
transformers and datasets load (5–7 s on a 2-core CPU). The texts are the parsers' own output
at 100 columns, written by ``python3 -m tools.help_texts``; ``tests/test_cli_help.py`` fails
when one differs from its parser. Any other command line parses as usual."""

from __future__ import annotations

import os
import sys
from pathlib import Path

HELP_DIR = Path(__file__).resolve().parents[1] / "docs" / "cli"
LIVE = "DIFFUSIONBERT_LIVE_HELP"  # set (to anything) to build --help from the parser instead


def command_name() -> str:
    """The running command as typed: a script's stem (``main``) or the module after ``-m``
    (``experiments.ablation``), known even while a package's ``__init__`` still loads."""
    argv = sys.orig_argv
    if "-m" in argv[:-1]:
        return argv[argv.index("-m") + 1].removesuffix(".__main__")
    return Path(sys.argv[0]).stem


def print_stored_help(argv: list[str]) -> None:
    """Print the stored help and exit 0 when ``argv`` asks for help alone and it is stored."""
    if argv not in (["-h"], ["--help"]) or os.environ.get(LIVE):
        return
    path = HELP_DIR / f"{command_name()}.txt"
    if path.is_file():
        sys.stdout.write(path.read_text(encoding="utf-8"))
        raise SystemExit(0)


print_stored_help(sys.argv[1:])
