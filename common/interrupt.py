"""Imported first by a script: from then on a Ctrl-C while its (slow) imports load is one
line and exit status 130, not a traceback (``common.errors.interrupt_hook``)."""

import sys

from common.errors import interrupt_hook

sys.excepthook = interrupt_hook
