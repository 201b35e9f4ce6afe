"""python3 -m experiments.ablation: the grid (experiments/ablation/run.py)."""

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from experiments.ablation.run import main

if __name__ == "__main__":
    main()
