"""Text-quality metrics of generated text: BLEU, self-BLEU, dist-1, div-4, ROUGE-L, gen. PPL.

python compute_metric.py --generated samples.txt --dataset toy --split test
python compute_metric.py --generated qqp_mbr.txt --references ref.txt --mode conditional
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from transformers.utils import logging as hf_logging

from common.checks import check_output_file, check_outputs_apart, require_finite
from common.cli import Parser, choices
from common.errors import UsageError, exit_on_usage_error
from common.files import read_text, write_json
from corpora import load_texts, toy
from evaluation import text_metrics

MODES = ("unconditional", "conditional")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> Parser:
    p = Parser(description=__doc__)
    a = p.flag
    a("--generated", required=True, help="generated texts, one per line")
    a("--references", default=None, help="reference texts, one per line")
    a("--dataset", default=None, help="references from a dataset (toy, wiki-summaries, lm1b, file)")
    a("--split", default="test", help="the --dataset split")
    a(
        "--mode",
        default="unconditional",
        choices=choices(MODES),
        help="conditional: --references aligned line by line with --generated",
    )
    a("--candidates", default=None, help="conditional: jsonl of candidate sets")
    a(
        "--bleu_convention",
        default="diffuseq",
        choices=choices(text_metrics.BLEU_CONVENTIONS),
        help="diffuseq: DiffuSeq's argument order (its published numbers); standard: the usual",
    )
    a("--gen_ppl_model", default=None, help="causal LM folder or hub name for gen. PPL")
    a("--json", default=None, help="also write the figures to this file")
    return p


def read_lines(path: str, argument: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"{argument} {path}: no such file")
    return read_text(file, argument).splitlines()


def read_candidates(path: str) -> list[list[str]]:
    sets = []
    for number, line in enumerate(read_lines(path, "--candidates"), start=1):
        try:
            record = json.loads(line)
            if not isinstance(record["candidates"], list):
                raise TypeError
            sets.append([str(c) for c in record["candidates"]])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UsageError(
                f'{path}:{number}: expected {{"candidates": [...]}} as written by '
                "predict_downstream_condition.py"
            ) from None
        if not sets[-1]:
            raise UsageError(
                f"{path}:{number}: the candidate list is empty; every source needs at least one "
                "candidate (predict_downstream_condition.py --mbr_size ≥ 1)"
            )
    return sets


def scores(args: argparse.Namespace, generated: list[str], references: list[str] | None) -> dict:
    """The figures of ``--mode``: diversity (and BLEU against the references) of unconditional
    samples, or the seq2seq figures of outputs aligned with their references."""
    tokens = [text_metrics.tokenize(t) for t in generated]
    result: dict = {}
    if args.mode == "unconditional":
        result.update(
            self_bleu=text_metrics.self_bleu(tokens),
            dist_1=text_metrics.dist_1(tokens),
            div_4=text_metrics.div_4(tokens),
            unigram_entropy_nats=text_metrics.unigram_entropy(tokens),
            mean_length=text_metrics.mean_length(tokens),
        )  # fmt: skip
        if references is not None:
            ref_tokens = [text_metrics.tokenize(t) for t in references]
            result["bleu"] = text_metrics.mean_bleu(tokens, ref_tokens)
            result["num_references"] = len(references)
    else:
        if references is None:
            raise UsageError("--mode conditional needs --references (one line per generated line)")
        if len(references) != len(generated):
            raise UsageError(
                f"--references has {len(references)} lines but --generated {len(generated)}: "
                "they must be aligned line by line"
            )
        sets = read_candidates(args.candidates) if args.candidates else None
        if sets is not None and len(sets) != len(generated):
            raise UsageError(
                f"--candidates {args.candidates} has {len(sets)} lines but --generated "
                f"{len(generated)}: one candidate list per generated line, in the same order"
            )
        result.update(
            text_metrics.conditional_scores(generated, references, sets, args.bleu_convention)
        )
        result["bleu_convention"] = args.bleu_convention
    return result


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    hf_logging.set_verbosity_error()
    if args.mode not in MODES:
        raise UsageError(f"--mode {args.mode!r} is unknown: choose {', '.join(MODES)}")
    if args.bleu_convention not in text_metrics.BLEU_CONVENTIONS:
        raise UsageError(f"--bleu_convention {args.bleu_convention!r}: choose diffuseq or standard")
    parser = build_parser()
    if args.references:
        parser.refuse_ignored(argv, ("dataset", "split"), "--references (they are the references)")
    elif not args.dataset:
        parser.refuse_ignored(argv, ("split",), "no --dataset")
    if args.mode == "unconditional":
        parser.refuse_ignored(argv, ("candidates", "bleu_convention"), "--mode unconditional")
    if args.json:
        check_output_file(args.json, "--json")
        local = Path(args.dataset) if args.dataset and Path(args.dataset).exists() else None
        check_outputs_apart(
            {"--json": args.json},
            {"--generated": args.generated, "--references": args.references, "--dataset": local,
             "--candidates": args.candidates, "--gen_ppl_model": args.gen_ppl_model
             if args.gen_ppl_model and Path(args.gen_ppl_model).exists() else None},
        )  # fmt: skip
    generated = read_lines(args.generated, "--generated")
    if not any(line.strip() for line in generated):
        raise UsageError(
            f"--generated {args.generated} has no text (empty or whitespace only); metrics of "
            "nothing would read as zeros: pass the file predict.py wrote"
        )
    references = None
    if args.references:
        references = read_lines(args.references, "--references")
    elif args.dataset:
        references = load_texts(args.dataset, args.split)["text"]
    result: dict = {
        "generated": args.generated,
        "mode": args.mode,
        "num_texts": len(generated),
    }
    result.update(scores(args, generated, references))
    if args.dataset == "toy":
        result.update(toy.oracle(generated))
    if args.gen_ppl_model:
        try:
            from evaluation.gen_ppl import generative_perplexity

            result.update(generative_perplexity(generated, args.gen_ppl_model))
        except UsageError as error:
            result["gen_ppl_skipped"] = str(error)
    require_finite(result, "the metrics", "an empty text or a model that gives it probability 0")
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:.4f}" if isinstance(value, float) else value
        print(f"{key:{width}}  {shown}")
    if args.json:
        write_json(args.json, result)


if __name__ == "__main__":
    main()
