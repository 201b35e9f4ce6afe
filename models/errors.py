"""One exception type for bad user input, and the wrapper that turns it into a clean exit."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

R = TypeVar("R")


class UsageError(ValueError):
    """Bad input: the message says what is wrong, where, and how to fix it."""


def exit_on_usage_error(main: Callable[..., R]) -> Callable[..., R]:
    """Print ``error: <message>`` and exit with status 2 instead of a traceback.

    Catches ``UsageError`` and the ``ValueError`` the diffusion math raises on bad settings.
    Set ``DIFFUSIONBERT_DEBUG=1`` to see the traceback.
    """

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except (ValueError, FileNotFoundError) as error:
            if os.environ.get("DIFFUSIONBERT_DEBUG"):
                raise
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)

    return wrapper
