"""Benchmarks of speed and memory (python3 -m bench.bench --help); results in bench/results/."""
