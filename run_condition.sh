#!/usr/bin/env bash
# bash run_condition.sh              the embedded offline seq2seq demo: MiniLM-L6 on the toy
#                                    active → passive task, CPU, about 7 minutes
#                                    (outputs in outputs/toy_seq2seq)
# bash run_condition.sh wiki-keywords|wiki-next [ARGS]
#                                    real English built offline from wiki-summaries: MiniLM-L6,
#                                    spindle off (the paper's conditional runs), CPU
#                                    (outputs in outputs/<task>_seq2seq)
# bash run_condition.sh TASK [ARGS]  a DiffuSeq task (qqp, QT, wiki_alignment, CC) read from
#                                    DATA_DIR (default datasets/<DiffuSeq folder name>):
#                                    bert-base-uncased under torchrun --nproc_per_node ${NGPU:-1},
#                                    then MBR decoding of its test split
# Extra ARGS pass through to main.py; DECODE="..." adds flags to the decoding
# (predict_downstream_condition.py: later flags win, e.g. DECODE="--max_examples 20"). See
# docs/seq2seq.md.
set -euo pipefail
cd "$(dirname "$0")"
task="${1:-toy}"
[ $# -gt 0 ] && shift

case "$task" in
toy)
  out="${OUT:-outputs/toy_seq2seq}"
  python3 word_freq.py --model_name_or_path minilm-l6 --task toy --output "$out/word_freq.pt"
  # shellcheck disable=SC2046  # the preset's flags (training/presets.py), split on purpose
  python3 main.py $(python3 -m training.presets toy-seq2seq) \
    --word_freq_file "$out/word_freq.pt" --output_dir "$out" --fitlog_dir logs "$@"
  python3 predict_downstream_condition.py --checkpoint "$out/best" --task toy --split test \
    --max_examples 100 --mbr_size 4 --num_steps 16 --sampler cached --batch_size 80 \
    --output_dir "$out/generation" ${DECODE:-}
  echo "toy seq2seq: checkpoints in $out/best and $out/last, training log" \
    "$out/train_log.jsonl, outputs and metrics in $out/generation/"
  ;;
wiki-keywords|wiki-next)
  out="${OUT:-outputs/${task}_seq2seq}"
  # shellcheck disable=SC2046
  python3 main.py $(python3 -m training.presets wiki-seq2seq) --task "$task" \
    --output_dir "$out" --fitlog_dir logs "$@"
  python3 predict_downstream_condition.py --checkpoint "$out/best" --task "$task" --split test \
    --max_examples 200 --mbr_size 4 --num_steps 64 --sampler cached --batch_size 64 \
    --output_dir "$out/generation" ${DECODE:-}
  echo "$task seq2seq: checkpoints in $out/best and $out/last, outputs and metrics in" \
    "$out/generation/"
  ;;
*)
  folder="$(python3 -m conditional_data "$task")" || {
    echo "usage: bash run_condition.sh [toy|TASK] [main.py arguments]" >&2
    exit 2
  }
  data="${DATA_DIR:-datasets/$folder}"
  out="${OUT:-outputs/${task}_seq2seq}"
  python3 word_freq.py --model_name_or_path bert-base-uncased --task "$task" --data_dir "$data" \
    --output "$out/word_freq.pt"
  # shellcheck disable=SC2046
  torchrun --nproc_per_node "${NGPU:-1}" main.py $(python3 -m training.presets diffuseq) \
    --task "$task" --data_dir "$data" --word_freq_file "$out/word_freq.pt" \
    --output_dir "$out" "$@"
  python3 predict_downstream_condition.py --checkpoint "$out/best" --task "$task" \
    --data_dir "$data" --split test --mbr_size 10 --num_steps 2048 --sampler cached \
    --batch_size 256 --output_dir "$out/generation" ${DECODE:-}
  ;;
esac
