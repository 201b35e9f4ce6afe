"""Sample text from a checkpoint folder.

python predict.py --checkpoint outputs/demo/best --num_samples 16 --output samples.txt
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common.interrupt
import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.checks import check_number, check_output_file, check_outputs_apart
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import write_json, write_text
from common.precision import announced_precision, autocast
from common.progress import set_quiet
from common.runtime import pick_device, quiet_transformers
from generation.autoregressive import generate_left_to_right
from generation.config import SamplingConfig, add_sampling_flags
from generation.memory import fitting_batch
from generation.unconditional import check_length, generate
from models import checkpoint_inputs, is_autoregressive, load_checkpoint


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_parser() -> Parser:
    p = Parser(description=__doc__)
    a = p.flag
    a("--checkpoint", required=True, help="a folder written by main.py (best/ or last/)")
    a("--num_samples", type=int, default=16, help="samples to write")
    a(
        "--length",
        type=int,
        default=0,
        help="tokens per sample; 0 = drawn from the training length histogram",
    )
    a("--batch_size", type=int, default=16, help="samples per network call")
    a(
        "--semi_ar_windows",
        type=int,
        default=1,
        help="semi-autoregressive: generate in N left-to-right windows",
    )
    add_sampling_flags(p)
    a("--device", default="auto", help="auto (CUDA when visible), cpu, cuda or cuda:N")
    p.boolean(
        "--bf16",
        help="bf16 autocast where the device computes bf16 natively (CUDA, CPUs with "
        "AVX512-BF16/AMX); the record's 'precision' says what ran",
    )
    a(
        "--output",
        default="samples.txt",
        help="one sample per line; settings and speed go to <output>.json",
    )
    p.boolean(
        "--show_process",
        help="print the first sample step by step and save the frames to "
        "<output>.process.json (drawn by python3 -m evaluation.plots)",
    )
    p.quiet()
    return p


def process_path(output: Path) -> Path:
    """Where --show_process saves its frames."""
    return output.with_name(output.name + ".process.json")


# Flags that only the reverse diffusion reads: refused for an autoregressive checkpoint.
DIFFUSION_ONLY = ("num_steps", "step_size", "sampler", "semi_ar_windows", "show_process")


def write_process(output: Path, ckpt, result, args: argparse.Namespace, num_steps) -> None:
    """--show_process: print the first sample step by step and save its frames (the argmax x0
    prediction at each step) to ``process_path(output)``."""
    shown, frames = None, []
    for step, ids, masked in result.process:
        text = ckpt.tokenizer.decode(ids)
        frames.append({"step": step, "tokens": ckpt.tokenizer.convert_ids_to_tokens(ids),
                       "masked": masked, "text": text})  # fmt: skip
        if text != shown:
            print(f"t={step:5d}  {text}")
            shown = text
    write_json(process_path(output), {
        "checkpoint": str(ckpt.path), "num_steps": num_steps, "step_size": args.step_size,
        "sampler": args.sampler, "sampler_used": result.sampler, "seed": args.seed,
        "note": "the first sample before each step s → s − step_size: tokens = x_t with "
                "the argmax x0 prediction at the masked positions; masked = which "
                "positions are [MASK] in x_t (null where the sampler made no call)",
        "frames": frames,
    })  # fmt: skip


MAX_SAMPLES = 10**7
MAX_BATCH = 2**16


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    quiet_transformers()
    set_quiet(args.quiet)
    sampling = SamplingConfig.from_namespace(args)
    for name in ("num_samples", "batch_size", "semi_ar_windows"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be ≥ 1, got {getattr(args, name)}")
    check_number("--num_samples", args.num_samples, 1, MAX_SAMPLES)
    check_number("--batch_size", args.batch_size, 1, MAX_BATCH)
    check_number("--semi_ar_windows", args.semi_ar_windows, 1, 4096)
    if args.length < 0:
        raise UsageError(f"--length must be ≥ 0 (0 = drawn from the histogram), got {args.length}")
    check_number("--length", args.length, 0, 2**20, note="0 = drawn from the histogram")
    check_output_file(args.output, "--output")
    check_outputs_apart(
        {"--output": args.output, "--show_process": process_path(Path(args.output))
         if args.show_process else None},
        checkpoint_inputs(args.checkpoint),
    )  # fmt: skip
    autoregressive = is_autoregressive(args.checkpoint)
    if autoregressive:
        build_parser().refuse_ignored(argv, DIFFUSION_ONLY, f"--checkpoint {args.checkpoint} "
                                      "(autoregressive: it samples left to right)")  # fmt: skip
    device = pick_device(args.device)
    ckpt = load_checkpoint(args.checkpoint, device)
    precision = announced_precision(args.bf16, device)
    if ckpt.config.task is not None:
        raise UsageError(
            f"--checkpoint {ckpt.path} is a seq2seq model (task {ckpt.config.task}): "
            "generate with predict_downstream_condition.py"
        )
    num_steps = None if autoregressive else sampling.steps(ckpt.config.num_steps)
    output = Path(args.output)
    check_length(ckpt, args.length, args.semi_ar_windows)
    width = args.length or ckpt.config.max_length
    batch = fitting_batch(ckpt, min(args.batch_size, args.num_samples), width, device)
    started = time.perf_counter()
    with autocast(precision, device):
        if autoregressive:
            result = generate_left_to_right(ckpt, args.num_samples, args.length, batch, sampling)
        else:
            result = generate(
                ckpt, args.num_samples, args.length, batch, sampling, args.semi_ar_windows,
                args.show_process,
            )  # fmt: skip
    wall = time.perf_counter() - started
    texts = [ckpt.tokenizer.decode(ids, skip_special_tokens=True) for ids in result.ids]
    write_text(output, "".join(f"{t}\n" for t in texts))
    tokens = sum(len(ids) for ids in result.ids)
    settings = {k: v for k, v in vars(args).items() if k not in ("output", "show_process")}
    write_json(
        output.with_name(output.name + ".json"),
        {
            **settings,
            "num_steps": num_steps,
            "checkpoint": str(ckpt.path),
            "batch_size_used": batch,
            "network_calls": result.calls,
            "calls_per_sample": result.calls / len(result.calls_per_batch),
            "sampler_used": result.sampler,
            "row_forwards": result.row_forwards,
            "row_forwards_per_sample": result.row_forwards / args.num_samples,
            "tokens": tokens,
            "tokens_per_second": tokens / wall,
            "wall_time_s": wall,
            "device": str(device),
            "precision": precision,
        },
    )
    if args.show_process:
        write_process(output, ckpt, result, args, num_steps)
    frames = f", frames in {process_path(output)}" if args.show_process else ""
    print(f"{args.num_samples} samples ({tokens} tokens) in {wall:.1f} s, {result.calls} network "
          f"calls, {tokens / wall:.1f} tokens/s → {output} (settings in "
          f"{output}.json{frames})")  # fmt: skip
    for text in texts[:3]:
        print(f"  {text}")


if __name__ == "__main__":
    main()
