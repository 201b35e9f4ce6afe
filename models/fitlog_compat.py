"""fitlog, importable on NumPy ≥ 1.24."""

from __future__ import annotations

import numpy as np


def import_fitlog():
    # fitlog 0.9.15 calls np.str, which NumPy 1.24 removed; it means the builtin str.
    if "str" not in vars(np):
        np.str = str
    import fitlog

    return fitlog
