"""Count every token id of a training split: the frequency statistic of the spindle schedule.

python word_freq.py --model_name_or_path minilm-l6 --dataset toy [--output FILE]
python word_freq.py --model_name_or_path minilm-l6 --task toy      (seq2seq: the targets)

Unconditional datasets are counted from the token cache main.py trains from (the same
--max_length truncation; built here if missing, see corpora/cache.py), with np.bincount.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import common.interrupt
import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from transformers import AutoTokenizer

from common.checks import check_output_file, check_outputs_apart
from common.cli import Parser, choices
from common.errors import exit_on_usage_error
from common.progress import set_quiet
from conditional_data import TASKS, load_pairs
from corpora.cache import cached_token_ids
from corpora.counting import (
    check_counted,
    count_ids,
    count_tokens,
    default_counts_path,
    save_counts,
)
from models import resolve_model_name


def build_parser() -> Parser:
    p = Parser(description=__doc__)
    a = p.flag
    a(
        "--model_name_or_path",
        default="minilm-l6",
        help="whose tokenizer counts: minilm-l6 (embedded), a local folder or a hub name",
    )
    a("--dataset", default="toy", help="toy, wiki-summaries, lm1b, a .txt/.jsonl file or a folder")
    a(
        "--task",
        default=None,
        choices=choices(TASKS),
        help="seq2seq task: count its targets (default: none)",
    )
    a("--data_dir", default=None, help="the task's DiffuSeq folder")
    a("--split", default="train", help="the split to count")
    a(
        "--output",
        type=Path,
        default=None,
        help="the counts file (default: word_freq/<model>_<dataset>.pt, main.py's default)",
    )
    a("--max_length", type=int, default=128, help="truncation, as main.py's --max_length")
    a(
        "--cache_dir",
        default=None,
        help="token cache (default: $DIFFUSIONBERT_CACHE or ~/.cache/diffusionbert)",
    )
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    set_quiet(False)  # off a terminal: no carriage-return floods from datasets' bars
    output = args.output or default_counts_path(args.model_name_or_path, args.dataset, args.task)
    check_output_file(output, "--output")
    local = Path(args.dataset) if Path(args.dataset).exists() else None
    check_outputs_apart({"--output": output}, {"--dataset": local, "--data_dir": args.data_dir})
    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name(args.model_name_or_path))
    if args.task:
        pairs = load_pairs(args.task, args.split, args.data_dir)
        counts = count_tokens(pairs.select_columns(["trg"]).rename_column("trg", "text"), tokenizer)
        counts[tokenizer.sep_token_id] += len(pairs)  # the [SEP] that ends every target
    else:
        encoded = cached_token_ids(
            args.dataset, args.split, tokenizer, args.max_length, cache_dir=args.cache_dir
        )
        counts = count_ids(encoded, len(tokenizer))
    what = f"--task {args.task} split {args.split}" if args.task else f"--dataset {args.dataset}"
    check_counted(counts, what if args.task else f"{what} (split {args.split})")
    save_counts(counts, output)
    print(f"counted {int(counts.sum())} tokens ({int((counts > 0).sum())} distinct) → {output}")


if __name__ == "__main__":
    main()
