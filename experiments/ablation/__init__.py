"""The paper's ablation (Table 2) at small scale: the grid (``grid``), its runner (``run``,
``python3 -m experiments.ablation``), its summary (``table``) and pictures (``plots``);
results in experiments/ablation/results/."""
