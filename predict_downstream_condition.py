"""Seq2seq generation from a checkpoint trained with main.py --task: candidates, MBR, metrics
(the reverse diffusion, or left to right for an autoregressive checkpoint: --decoding).

python predict_downstream_condition.py --checkpoint outputs/toy_seq2seq/best --task toy \
    --mbr_size 4 --num_steps 64 --output_dir outputs/toy_seq2seq/generation
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import common.interrupt
import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.checks import check_number, check_output_dir, check_outputs_apart
from common.cli import Parser, choices
from common.errors import UsageError, exit_on_usage_error
from common.files import write_json, write_text
from common.precision import announced_precision, autocast
from common.progress import set_quiet
from common.runtime import pick_device, quiet_transformers
from conditional_data import TASKS, encode_sources, get_task, load_pairs
from evaluation import text_metrics
from evaluation.seq2seq_scores import seq2seq_figures
from generation.autoregressive import DECODINGS, candidates_left_to_right
from generation.config import SamplingConfig, add_sampling_flags
from generation.memory import fitting_batch
from generation.seq2seq import generate_candidates
from models import checkpoint_inputs, is_autoregressive, load_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> Parser:
    p = Parser(description=__doc__)
    a = p.flag
    a("--checkpoint", required=True, help="a folder written by main.py --task")
    a("--task", default=None, choices=choices(TASKS), help="default: the checkpoint's task")
    a("--data_dir", default=None, help="the task's DiffuSeq folder (not needed for toy)")
    a("--split", default="test", help="train, valid or test")
    a("--max_examples", type=int, default=0, help="first N sources; 0 = all")
    a("--mbr_size", type=int, default=10, help="candidates per source")
    a("--cfg_weight", type=float, default=0.0, help="SMDM guidance w; 0 = off")
    a("--max_target_length", type=int, default=None, help="default: the checkpoint's")
    a("--batch_size", type=int, default=64, help="rows (source × candidate) per call")
    a(
        "--bleu_convention",
        default="diffuseq",
        choices=choices(text_metrics.BLEU_CONVENTIONS),
        help="diffuseq: DiffuSeq's argument order (its published numbers); standard: the usual",
    )
    a(
        "--decoding",
        default="sample",
        choices=list(DECODINGS),
        help="autoregressive checkpoints: sample (--mbr_size samples), greedy (one) or beam "
        "(the best --mbr_size of --num_beams)",
    )
    a("--num_beams", type=int, default=4, help="--decoding beam: beams per source")
    add_sampling_flags(p)
    a("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.boolean(
        "--bf16",
        help="bf16 autocast where the device computes bf16 natively (CUDA, CPUs with "
        "AVX512-BF16/AMX); the record's 'precision' says what ran",
    )
    a("--output_dir", default=None, help="default: <checkpoint>/../generation")
    p.quiet()
    return p


def check_args(args: argparse.Namespace) -> None:
    if args.mbr_size < 1:
        raise UsageError(f"--mbr_size must be ≥ 1 (candidates per source), got {args.mbr_size}")
    if args.batch_size < 1:
        raise UsageError(f"--batch_size must be ≥ 1, got {args.batch_size}")
    if args.max_examples < 0:
        raise UsageError(f"--max_examples must be ≥ 0 (0 = all), got {args.max_examples}")
    if not args.cfg_weight >= 0:
        raise UsageError(f"--cfg_weight must be ≥ 0 (0 = no guidance), got {args.cfg_weight}")
    if args.max_target_length is not None and args.max_target_length < 2:
        raise UsageError(f"--max_target_length must be ≥ 2, got {args.max_target_length}")
    if args.bleu_convention not in text_metrics.BLEU_CONVENTIONS:
        raise UsageError(f"--bleu_convention {args.bleu_convention!r}: choose diffuseq or standard")
    if args.task is not None:
        get_task(args.task)
    check_number("--mbr_size", args.mbr_size, 1, MAX_MBR, note="candidates per source")
    check_number("--batch_size", args.batch_size, 1, 2**16)
    check_number("--num_beams", args.num_beams, 1, 1024)
    check_number("--max_examples", args.max_examples, 0, 10**9, note="0 = all")
    check_number("--cfg_weight", args.cfg_weight, 0, 1e6, note="0 = no guidance")
    check_number("--max_target_length", args.max_target_length, 2, 2**20)
    if args.output_dir is not None:
        check_output_dir(args.output_dir, "--output_dir")


# Flags one kind of checkpoint ignores: refused, one line each.
DIFFUSION_ONLY = ("num_steps", "step_size", "sampler", "cfg_weight")
AR_ONLY = ("decoding", "num_beams")
# candidates per source: MBR compares every pair, so the cost grows with its square
MAX_MBR = 1024


def checkpoint_and_task(args: argparse.Namespace, argv: list[str] | None, device):
    """The checkpoint (refusing the flags its kind ignores) and the task to prompt with."""
    autoregressive = is_autoregressive(args.checkpoint)
    if autoregressive:
        build_parser().refuse_ignored(argv, DIFFUSION_ONLY, f"--checkpoint {args.checkpoint} "
                                      "(autoregressive: it decodes left to right)")  # fmt: skip
    else:
        build_parser().refuse_ignored(argv, AR_ONLY, "a diffusion checkpoint (autoregressive "
                                      "only)")  # fmt: skip
    ckpt = load_checkpoint(args.checkpoint, device)
    if ckpt.config.task is None:
        raise UsageError(
            f"--checkpoint {ckpt.path} was trained unconditionally (no --task); sample it with "
            "predict.py, or train a seq2seq model with run_condition.sh"
        )
    task = args.task or ckpt.config.task
    if task != ckpt.config.task:
        print(f"note: the checkpoint was trained on {ckpt.config.task}, prompting as {task}",
              file=sys.stderr)  # fmt: skip
    return ckpt, task


def decode(args, ckpt, sources: list[list[int]], sampling: SamplingConfig, width: int,
           batch: int):  # fmt: skip
    """Every source's candidates: the reverse diffusion, or left to right for the twin."""
    if ckpt.config.autoregressive:
        return candidates_left_to_right(ckpt, sources, args.mbr_size, batch, sampling, width,
                                        args.decoding, args.num_beams)  # fmt: skip
    return generate_candidates(ckpt, sources, args.mbr_size, batch, sampling, args.cfg_weight,
                               width)  # fmt: skip


def write_generation(out: Path, task: str, texts: list[str], references: list[str],
                     candidates: list[list[str]]) -> list[str]:  # fmt: skip
    """MBR's choice per source into <task>_mbr.txt, every candidate into
    <task>_candidates.jsonl; returns the chosen outputs."""
    chosen = [text_metrics.mbr_select([text_metrics.tokenize(c) for c in row])
              for row in candidates]  # fmt: skip
    outputs = [row[i] for row, i in zip(candidates, chosen, strict=True)]
    records = [
        {"source": src, "reference": trg, "candidates": row, "mbr_index": i}
        for src, trg, row, i in zip(texts, references, candidates, chosen, strict=True)
    ]
    write_text(out / f"{task}_mbr.txt", "".join(f"{text}\n" for text in outputs))
    write_text(out / f"{task}_candidates.jsonl", "".join(f"{json.dumps(r)}\n" for r in records))
    return outputs


@exit_on_usage_error(flags={"weight": "--cfg_weight"})
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    set_quiet(args.quiet)
    check_args(args)
    sampling = SamplingConfig.from_namespace(args)
    device = pick_device(args.device)
    ckpt, task = checkpoint_and_task(args, argv, device)
    precision = announced_precision(args.bf16, device)
    num_steps = None
    if not ckpt.config.autoregressive:
        num_steps = sampling.steps(ckpt.config.num_steps)
        sampling.check_model(ckpt.config.timestep)
    width = args.max_target_length or ckpt.config.max_target_length
    pairs = load_pairs(task, args.split, args.data_dir)
    if args.max_examples:
        pairs = pairs.select(range(min(args.max_examples, len(pairs))))
    if len(pairs) == 0:
        raise UsageError(f"--split {args.split} of {task} has no pairs")
    texts, references = list(pairs["src"]), list(pairs["trg"])
    sources = encode_sources(
        texts, ckpt.tokenizer, task, ckpt.config.max_length, width, fixed_length=True
    )
    out = Path(args.output_dir) if args.output_dir else ckpt.path.parent / "generation"
    check_output_dir(out, "--output_dir")
    check_outputs_apart(
        {f"--output_dir file {name}": out / f"{task}_{name}"
         for name in ("mbr.txt", "candidates.jsonl", "metrics.json")},
        {**checkpoint_inputs(args.checkpoint), "--data_dir": args.data_dir},
    )  # fmt: skip

    rows = min(args.batch_size, len(sources) * args.mbr_size)
    copies = 2 if args.cfg_weight > 0 else 1
    batch = fitting_batch(ckpt, rows, ckpt.config.max_length + 2, device, copies)
    started = time.perf_counter()
    with autocast(precision, device):
        generated = decode(args, ckpt, sources, sampling, width, batch)
    wall = time.perf_counter() - started
    candidates = [[ckpt.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in row]
                  for row in generated.ids]  # fmt: skip
    outputs = write_generation(out, task, texts, references, candidates)
    scores, per_source = seq2seq_figures(
        texts, outputs, references, candidates, args.bleu_convention, task == "wiki-keywords"
    )
    result = {
        **scores,
        "bleu_convention": args.bleu_convention,
        "num_sources": len(outputs),
        "network_calls": generated.calls,
        "sampler_used": generated.sampler,
        "row_forwards": generated.row_forwards,
        "row_forwards_per_sample": generated.row_forwards / (len(outputs) * args.mbr_size),
        "wall_time_s": wall,
        **{k: v for k, v in vars(args).items() if k != "output_dir"},
        "task": task,
        "num_steps": num_steps,
        "max_target_length": width,
        "batch_size_used": batch,
        "checkpoint": str(ckpt.path),
        "device": str(device),
        "precision": precision,
        "per_source": per_source,
    }
    write_json(out / f"{task}_metrics.json", result)
    shown = ("bleu", "bleu_single", "copy_source_bleu", "rouge_l", "coverage", "self_bleu",
             "dist_1", "div_4")  # fmt: skip
    for key in shown:
        if key in result:
            print(f"{key:16}  {result[key]:.4f}")
    print(f"{len(outputs)} sources × {args.mbr_size} candidates in {wall:.1f} s, "
          f"{generated.calls} network calls → {out}/{task}_mbr.txt, {task}_candidates.jsonl, "
          f"{task}_metrics.json")  # fmt: skip
    for src, text in list(zip(texts, outputs, strict=True))[:3]:
        print(f"  {src}  →  {text}")


if __name__ == "__main__":
    main()
