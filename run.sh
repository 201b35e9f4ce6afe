#!/usr/bin/env bash
# bash run.sh [demo] [ARGS]  the embedded offline demo: MiniLM-L6 on the toy corpus, spindle
#                          schedule, CPU, about 5 minutes on 2 cores (outputs in outputs/demo,
#                          pictures in outputs/demo/plots); word_freq.py, main.py, compute_elbo.py,
#                          predict.py, compute_metric.py, then the pictures
# bash run.sh lm1b [ARGS]  the paper's LM1B configuration (bert-base-uncased, T=2048, λ=0.3,
#                          hybrid 0.01) under torchrun --nproc_per_node ${NGPU:-1}; MODEL and
#                          DATASET override the backbone and the data (a local copy)
# bash run.sh ablation [ARGS]  the paper's Table 2 ablation at small scale, nice'd
#                          (python3 -m experiments.ablation; resumable)
# Extra ARGS pass through to main.py (to experiments.ablation for ablation). See README.md and
# docs/training.md, docs/results.md.
set -euo pipefail
cd "$(dirname "$0")"
preset="${1:-demo}"
[ $# -gt 0 ] && shift

case "$preset" in
demo)
  out="${OUT:-outputs/demo}"
  python3 word_freq.py --model_name_or_path minilm-l6 --dataset toy --output "$out/word_freq.pt"
  # shellcheck disable=SC2046  # the preset's flags (training/presets.py), split on purpose
  python3 main.py $(python3 -m training.presets demo) --word_freq_file "$out/word_freq.pt" \
    --output_dir "$out" --fitlog_dir logs "$@"
  python3 compute_elbo.py --checkpoint "$out/best" --dataset toy --split validation \
    --bound continuous --mc_samples 4 --max_examples 256 --json "$out/elbo_validation.json"
  python3 predict.py --checkpoint "$out/best" --num_samples 32 --batch_size 32 --num_steps 64 \
    --output "$out/samples.txt" --show_process
  python3 compute_metric.py --generated "$out/samples.txt" --dataset toy --split test \
    --json "$out/metrics.json"
  python3 -m evaluation.plots "$out" --elbo "$out/elbo_validation.json" \
    --process "$out/samples.txt.process.json" --bench bench/results/sample_sweep.jsonl \
    --out "$out/plots"
  echo "demo: checkpoints in $out/best and $out/last (each with a model card README.md and" \
    "training_args.json), training log $out/train_log.jsonl, fitlog in logs/" \
    "(fitlog log logs --ip 127.0.0.1), samples $out/samples.txt, bound" \
    "$out/elbo_validation.json, metrics $out/metrics.json, pictures $out/plots/"
  ;;
ablation)
  nice -n 10 python3 -m experiments.ablation "$@"
  ;;
lm1b)
  out="${OUT:-outputs/lm1b}"
  model="${MODEL:-bert-base-uncased}"
  data="${DATASET:-lm1b}"
  python3 word_freq.py --model_name_or_path "$model" --dataset "$data" \
    --output "$out/word_freq.pt"
  # shellcheck disable=SC2046
  torchrun --nproc_per_node "${NGPU:-1}" main.py $(python3 -m training.presets lm1b) \
    --model_name_or_path "$model" --dataset "$data" --word_freq_file "$out/word_freq.pt" \
    --output_dir "$out" "$@"
  ;;
*)
  echo "usage: bash run.sh [demo|lm1b|ablation] [arguments]" >&2
  exit 2
  ;;
esac
