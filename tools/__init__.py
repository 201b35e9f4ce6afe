"""Tools: the GPU acceptance check (bash tools/gpu_check.sh OUTDIR, docs/gpu.md)."""
