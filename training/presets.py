"""The training runs the project ships, each declared once as main.py flags: run.sh's ``demo``
and ``lm1b``, run_condition.sh's ``toy-seq2seq``, ``wiki-seq2seq`` and ``diffuseq`` (the
DiffuSeq tasks on a GPU box); the GPU check trains ``demo`` on CUDA. The scripts add what
differs per call (the token-count file, the output folder, the backbone and data of lm1b).

python3 -m training.presets NAME   prints NAME's flags, one line (for the shell scripts)
"""

from __future__ import annotations

import shlex

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.cli import Parser

PRESETS: dict[str, str] = {
    "demo": "--model_name_or_path minilm-l6 --dataset toy --word_freq_lambda 0.3 --num_steps 2048 "
    "--objective d3pm --hybrid_lambda 0.01 --timestep none --max_steps 200 --batch_size 32 "
    "--lr 3e-4 --lr_schedule constant --warmup_steps 20 --max_length 32 --dev_size 256 "
    "--logging_steps 25 --eval_steps 100",
    "lm1b": "--word_freq_lambda 0.3 --num_steps 2048 --schedule mutual --objective d3pm "
    "--hybrid_lambda 0.01 --timestep none --lr 5e-5 --lr_schedule invsqrt --warmup_steps 10000 "
    "--batch_size 128 --max_length 128 --eval_steps 2000 --logging_steps 100",
    "toy-seq2seq": "--task toy --model_name_or_path minilm-l6 --word_freq_lambda 0.3 "
    "--num_steps 2048 --objective d3pm --hybrid_lambda 0.01 --timestep none --max_steps 200 "
    "--batch_size 32 --lr 5e-4 --lr_schedule constant --warmup_steps 20 --max_length 48 "
    "--max_target_length 16 --dev_size 128 --logging_steps 25 --eval_steps 100",
    "wiki-seq2seq": "--model_name_or_path minilm-l6 --word_freq_lambda 0 --num_steps 2048 "
    "--objective d3pm --hybrid_lambda 0.01 --timestep none --max_steps 2000 --batch_size 32 "
    "--lr 3e-4 --lr_schedule constant --warmup_steps 100 --max_length 96 "
    "--max_target_length 48 --dev_size 256 --logging_steps 50 --eval_steps 250",
    "diffuseq": "--model_name_or_path bert-base-uncased --word_freq_lambda 0.3 --num_steps 2048 "
    "--objective d3pm --hybrid_lambda 0.01 --timestep none --lr 1e-4 --lr_schedule invsqrt "
    "--warmup_steps 10000 --batch_size 64 --max_steps 100000 --max_length 128 "
    "--max_target_length 64 --eval_steps 2000 --logging_steps 100",
}


def preset(name: str) -> list[str]:
    """The main.py flags of preset ``name`` (KeyError for an unknown name)."""
    return shlex.split(PRESETS[name])


def build_parser() -> Parser:
    p = Parser(prog="python3 -m training.presets", description=__doc__.splitlines()[0])
    p.add_argument("name", choices=list(PRESETS), help="the preset whose flags to print")
    return p


def main(argv: list[str] | None = None) -> None:
    print(PRESETS[build_parser().parse_args(argv).name])


if __name__ == "__main__":
    main()
