"""python3 -m experiments.seq2seq_wiki: the study, then its summary (run.py)."""

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from experiments.seq2seq_wiki.run import main

if __name__ == "__main__":
    main()
