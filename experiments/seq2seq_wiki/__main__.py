"""python3 -m experiments.seq2seq_wiki: the study, then its summary (run.py)."""

from experiments.seq2seq_wiki.run import main

if __name__ == "__main__":
    main()
