"""Benchmarks of speed and memory (python3 bench/bench.py --help); results in bench/results/."""
