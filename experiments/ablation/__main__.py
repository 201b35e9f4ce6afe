"""python3 -m experiments.ablation: the grid (experiments/ablation/run.py)."""

from experiments.ablation.run import main

if __name__ == "__main__":
    main()
