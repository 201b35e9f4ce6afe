"""One exception type for bad user input, and the wrapper that turns errors into a clean exit.

The math (``diffusion/``) and the lower layers raise ``ValueError``s that name a parameter
(``diffusion.ParameterError`` carries it as ``.parameter``); the CLI boundary names the flag.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

R = TypeVar("R")


INTERRUPTED = (
    "stopped by Ctrl-C; every output is written under a temporary name and renamed, so "
    "nothing half-written was left"
)


def interrupt_hook(kind, value, traceback) -> None:
    """``sys.excepthook``: a Ctrl-C that reaches the top (while a script's imports load) is one
    line (Python then exits with status 130); any other exception is shown as usual."""
    if issubclass(kind, KeyboardInterrupt) and not os.environ.get("DIFFUSIONBERT_DEBUG"):
        print(INTERRUPTED, file=sys.stderr)
        return
    sys.__excepthook__(kind, value, traceback)


class UsageError(ValueError):
    """Bad input: the message says what is wrong, where, and how to fix it."""


def as_flag_message(error: Exception, flags: Mapping[str, str]) -> str:
    """The error's message with its parameter written as the script's flag.

    ``flags`` maps parameter names to flags where they differ (``step_size`` →
    ``--eval_step_size``); any other parameter becomes ``--<parameter>``. An error without a
    ``parameter`` attribute (a ``UsageError`` already names its flag) is returned unchanged.
    """
    message = str(error)
    parameter = getattr(error, "parameter", None)
    if parameter is None or not message.startswith(parameter):
        return message
    return flags.get(parameter, f"--{parameter}") + message[len(parameter) :]


def exit_on_usage_error(
    main: Callable[..., R] | None = None, *, flags: Mapping[str, str] | None = None
):
    """Print ``error: <message>`` and exit with status 2 instead of a traceback.

    A Ctrl-C (``KeyboardInterrupt``) is one line and status 130. Catches ``UsageError`` and
    the ``ValueError`` the diffusion math raises on bad settings
    (its parameter written as the flag, see ``as_flag_message``). Use as ``@exit_on_usage_error``
    or ``@exit_on_usage_error(flags={...})``. Set ``DIFFUSIONBERT_DEBUG=1`` to see the traceback.
    """

    def decorate(function: Callable[..., R]) -> Callable[..., R]:
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
                # past a file-size limit, a write fails with EFBIG (reported with its path by
                # common.files) instead of the signal killing the process without a word
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            try:
                return function(*args, **kwargs)
            except KeyboardInterrupt:
                if os.environ.get("DIFFUSIONBERT_DEBUG"):
                    raise
                print(INTERRUPTED, file=sys.stderr)
                sys.exit(130)
            except (ValueError, FileNotFoundError) as error:
                if os.environ.get("DIFFUSIONBERT_DEBUG"):
                    raise
                print(f"error: {as_flag_message(error, flags or {})}", file=sys.stderr)
                sys.exit(2)

        return wrapper

    return decorate(main) if main is not None else decorate
