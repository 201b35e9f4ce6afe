"""Pictures of a run, drawn from files that already exist (matplotlib, Agg backend).

python3 -m evaluation.plots outputs/demo                  # every picture whose source exists
python3 -m evaluation.plots outputs/demo --bench bench/results/sample_sweep.jsonl
python3 -m evaluation.plots RUN --elbo elbo.json --process samples.txt.process.json --out DIR

Pictures (into --out, default RUN_DIR/plots):
  training.png  loss, dev bound and learning rate from RUN_DIR/train_log.jsonl
  spindle.png   ᾱ_t of the most frequent, median and rarest training tokens against the plain
                schedule, from the checkpoint (RUN_DIR/best)
  elbo_terms.png  nats per token by t bucket, from compute_elbo.py --json
  sampling.png  the first sample at chosen steps, from predict.py --show_process
  bench_sampling.png  sampling speed against T', from python3 -m bench.sample's results
The drawing is in ``evaluation.figures``.
"""

from __future__ import annotations

from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.checks import check_outputs_apart
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from evaluation.figures import (
    plot_bench,
    plot_elbo_terms,
    plot_sampling,
    plot_spindle,
    plot_training,
)
from evaluation.plot_sources import NoTerms, loss_meaning


def build_parser() -> Parser:
    p = Parser(prog="python3 -m evaluation.plots", description=__doc__)
    p.add_argument("run_dir", type=Path, help="a main.py --output_dir (train_log.jsonl, best/)")
    a = p.flag
    a("--out", type=Path, default=None, help="where the PNGs go (default: RUN_DIR/plots)")
    a("--checkpoint", type=Path, default=None, help="for spindle.png (default: RUN_DIR/best)")
    a(
        "--elbo",
        type=Path,
        default=None,
        help="compute_elbo.py --json output (default: RUN_DIR/elbo_*.json, if any)",
    )
    a(
        "--process",
        type=Path,
        default=None,
        help="predict.py --show_process frames (default: RUN_DIR/*.process.json, if any)",
    )
    a(
        "--bench",
        type=Path,
        default=None,
        help="python3 -m bench.sample's results (default: none; e.g. "
        "bench/results/sample_sweep.jsonl)",
    )
    a("--rows", type=int, default=8, help="sampling.png: steps shown")
    return p


def _first(pattern: str, folder: Path) -> Path | None:
    found = sorted(folder.glob(pattern))
    return found[0] if found else None


@exit_on_usage_error
def main(argv: list[str] | None = None) -> dict[str, Path]:
    args = build_parser().parse_args(argv)
    run = args.run_dir
    if not run.is_dir():
        raise UsageError(f"{run}: no such folder; pass a main.py --output_dir")
    out = args.out or run / "plots"
    checkpoint = args.checkpoint or run / "best"
    name = run.resolve().name
    jobs = [
        ("training.png", lambda src, png: plot_training(src, png, name, loss_meaning(run)),
         run / "train_log.jsonl"),
        ("spindle.png", lambda src, png: plot_spindle(src, png, name), checkpoint),
        ("elbo_terms.png", lambda src, png: plot_elbo_terms(src, png, name),
         args.elbo or _first("elbo_*.json", run)),
        ("sampling.png", lambda src, png: plot_sampling(src, png, args.rows, name),
         args.process or _first("*.process.json", run)),
        ("bench_sampling.png", plot_bench, args.bench),
    ]  # fmt: skip
    from models.checkpoint import is_autoregressive
    from models.folder_files import checkpoint_inputs

    if checkpoint.is_dir() and is_autoregressive(checkpoint):
        print("skipped spindle.png: an autoregressive checkpoint has no noise schedule")
        jobs = [job for job in jobs if job[0] != "spindle.png"]

    sources = {f"input of {picture}": source for picture, _, source in jobs
               if source is not None and not Path(source).is_dir()}  # fmt: skip
    check_outputs_apart(
        {f"--out file {picture}": out / picture for picture, _, _ in jobs},
        {**sources, **checkpoint_inputs(checkpoint)},
    )
    written = {}
    for picture, plot, source in jobs:
        if source is None or not Path(source).exists():
            if source is not None:
                print(f"skipped {picture}: {source} does not exist")
            continue
        try:
            plot(source, out / picture)
        except NoTerms as error:
            print(f"skipped {picture}: {error}")
            continue
        written[picture] = out / picture
        print(f"wrote {out / picture} (from {source})")
    if not written:
        raise UsageError(f"{run}: nothing to draw (no train_log.jsonl, best/, ...)")
    return written


if __name__ == "__main__":
    main()
