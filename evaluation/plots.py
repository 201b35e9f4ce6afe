"""Pictures of a run, drawn from files that already exist (matplotlib, Agg backend).

python -m evaluation.plots outputs/demo                  # every picture whose source exists
python -m evaluation.plots outputs/demo --bench bench/results/sample_sweep.jsonl
python -m evaluation.plots RUN --elbo elbo.json --process samples.txt.process.json --out DIR

Pictures (into --out, default RUN_DIR/plots):
  training.png  loss, dev bound and learning rate from RUN_DIR/train_log.jsonl
  spindle.png   ᾱ_t of the most frequent, median and rarest training tokens against the plain
                schedule, from the checkpoint (RUN_DIR/best)
  elbo_terms.png  nats per token by t bucket, from compute_elbo.py --json
  sampling.png  the first sample at chosen steps, from predict.py --show_process
  bench_sampling.png  sampling speed against T', from bench/sample.py's results
Each plot_* function returns the arrays it drew (tests compare them with the source files).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch

from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import read_jsonl

DPI = 110


def _save(fig, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.tight_layout()
        fig.savefig(out, dpi=DPI)
    plt.close(fig)


def plot_training(log: Path, out: Path) -> dict:
    """Loss per sequence, dev bound (nats/token) and learning rate against the step."""
    records = read_jsonl(log)
    train = [r for r in records if "loss" in r]
    dev = [r for r in records if "dev_nats_per_token" in r]
    drawn = {
        "step": [r["step"] for r in train],
        "loss": [r["loss"] for r in train],
        "lr": [r.get("lr") for r in train],
        "dev_step": [r["step"] for r in dev],
        "dev_nats_per_token": [r["dev_nats_per_token"] for r in dev],
    }
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    axes[0].plot(drawn["step"], drawn["loss"], marker=".")
    axes[0].set(title="training loss", xlabel="step", ylabel="nats per sequence")
    axes[1].plot(drawn["dev_step"], drawn["dev_nats_per_token"], marker="o", color="C1")
    axes[1].set(title="dev bound", xlabel="step", ylabel="nats per token")
    axes[2].plot(drawn["step"], drawn["lr"], color="C2")
    axes[2].set(title="learning rate", xlabel="step")
    axes[2].ticklabel_format(axis="y", style="sci", scilimits=(0, 0))
    for ax in axes:
        ax.grid(alpha=0.3)
    _save(fig, out)
    return drawn


def spindle_curves(checkpoint: Path, points: int = 201) -> dict:
    """ᾱ(u) of the plain schedule and, with the spindle, of three tokens of the training
    counts: the most frequent, the median (among tokens seen) and the rarest seen, each with
    w = h(v) − h̄, h̄ the count-weighted mean information (a typical sequence's mean)."""
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from diffusion import token_information
    from models.checkpoint import SETTINGS, STATISTICS, resolve_checkpoint_dir
    from models.config import DiffusionConfig

    folder = resolve_checkpoint_dir(checkpoint)
    config = DiffusionConfig.load(folder / SETTINGS)
    schedule = config.noise_schedule()
    u = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
    drawn = {
        "u": u.tolist(),
        "plain": schedule.base_alpha_bar(u).tolist(),
        "word_freq_lambda": config.word_freq_lambda,
        "schedule": config.schedule,
        "tokens": {},
    }
    statistics = load_file(folder / STATISTICS) if (folder / STATISTICS).is_file() else {}
    counts = statistics.get("token_counts")
    if counts is None or not schedule.spindle:
        return drawn
    tokenizer = AutoTokenizer.from_pretrained(folder)
    h = token_information(counts, tokenizer.pad_token_id).to(torch.float64)
    weights = counts.to(torch.float64)
    mean = float((weights * h).sum() / weights.sum())
    seen = (counts > 0).nonzero(as_tuple=True)[0]
    order = seen[torch.argsort(counts[seen], descending=True, stable=True)]
    picks = {"most frequent": order[0], "median": order[len(order) // 2], "rarest": order[-1]}
    for label, token in picks.items():
        w = torch.full((points, 1), float(h[token]) - mean, dtype=torch.float64)
        alpha = schedule.alpha_bar(u, w).squeeze(-1)
        drawn["tokens"][label] = {
            "id": int(token),
            "token": tokenizer.convert_ids_to_tokens(int(token)),
            "count": int(counts[token]),
            "w": float(h[token]) - mean,
            "alpha_bar": alpha.tolist(),
        }
    return drawn


def plot_spindle(checkpoint: Path, out: Path) -> dict:
    drawn = spindle_curves(checkpoint)
    fig, ax = plt.subplots(figsize=(5.6, 3.8))
    ax.plot(drawn["u"], drawn["plain"], color="black", lw=2, label=f"plain {drawn['schedule']}")
    for (label, curve), style in zip(drawn["tokens"].items(), ("--", "-.", ":"), strict=False):
        ax.plot(drawn["u"], curve["alpha_bar"], style, lw=1.8,
                label=f"{label}: {curve['token']!a} ({curve['count']:,}×)")  # fmt: skip
    ax.set(xlabel="t / T", ylabel="ᾱ_t (keep probability)",
           title=f"spindle schedule, λ = {drawn['word_freq_lambda']}")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, out)
    return drawn


def plot_elbo_terms(elbo_json: Path, out: Path) -> dict:
    """The bound split by time: nats per token in each t bucket (compute_elbo.py --json)."""
    record = json.loads(Path(elbo_json).read_text())
    if "terms" not in record:
        raise UsageError(f"{elbo_json} has no per-term figures; rerun compute_elbo.py --json")
    terms = record["terms"]
    drawn = {
        "t_low": terms["t_low"],
        "t_high": terms["t_high"],
        "nats_per_token": terms["nats_per_token"],
        "reconstruction_nats_per_token": terms["reconstruction_nats_per_token"],
        "total": record["given_length"]["nats_per_token"],
    }
    width = [hi - lo for lo, hi in zip(drawn["t_low"], drawn["t_high"], strict=True)]
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.bar(drawn["t_low"], drawn["nats_per_token"], width=width, align="edge",
           edgecolor="white", label="KL terms")  # fmt: skip
    ax.bar([-0.04], [drawn["reconstruction_nats_per_token"]], width=0.03, color="C3",
           label="reconstruction (t → 0)")  # fmt: skip
    ax.set(xlabel="t / T", ylabel="nats per token",
           title=f"{record['bound']} bound: {drawn['total']:.3f} nats/token in all")  # fmt: skip
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    _save(fig, out)
    return drawn


def plot_sampling(process_json: Path, out: Path, rows: int = 8) -> dict:
    """The first sample's x0 prediction at ``rows`` steps evenly spread over the run
    (predict.py --show_process): x_t, its masked positions in grey italics showing the
    network's current guess of x0."""
    record = json.loads(Path(process_json).read_text())
    frames = record["frames"]
    if not frames:
        raise UsageError(f"{process_json} has no frames")
    picks = sorted({round(i * (len(frames) - 1) / max(rows - 1, 1)) for i in range(rows)})
    chosen = [frames[i] for i in picks]
    drawn = {
        "steps": [f["step"] for f in chosen],
        "tokens": [f["tokens"] for f in chosen],
        "masked": [f.get("masked") or [False] * len(f["tokens"]) for f in chosen],
    }
    width = max(len(t) for t in drawn["tokens"])
    fig, ax = plt.subplots(figsize=(min(1.0 + 0.85 * width, 16), 0.5 + 0.42 * len(chosen)))
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(len(chosen) - 0.5, -0.5)
    for row, (tokens, masks) in enumerate(zip(drawn["tokens"], drawn["masked"], strict=True)):
        for col, (token, masked) in enumerate(zip(tokens, masks, strict=True)):
            ax.text(col, row, token, ha="center", va="center", fontsize=8,
                    color="0.55" if masked else "black", style="italic" if masked else "normal",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "0.94" if masked else "#dbe9f6",
                          "ec": "none"})  # fmt: skip
    ax.set_yticks(range(len(chosen)), [f"step {s}" for s in drawn["steps"]])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(f"the first sample during sampling, T' = {record.get('num_steps')} "
                 f"({record.get('sampler')}); grey: still [MASK], showing the network's guess",
                 fontsize=9)  # fmt: skip
    _save(fig, out)
    return drawn


def plot_bench(sweep_jsonl: Path, out: Path) -> dict:
    """Samples/s and network calls per sample against T', by sampler: the newest run of
    bench/sample.py in the file."""
    records = read_jsonl(sweep_jsonl)
    if not records:
        raise UsageError(f"{sweep_jsonl} is empty")
    newest = max(r["date"] for r in records)
    rows = [r for r in records if r["date"] == newest]
    drawn = {"date": newest, "machine": rows[0].get("machine"), "samplers": {}}
    for r in sorted(rows, key=lambda r: r["num_steps"]):
        entry = drawn["samplers"].setdefault(
            r["sampler"], {"num_steps": [], "samples_per_s": [], "calls_per_sample": []}
        )
        entry["num_steps"].append(r["num_steps"])
        entry["samples_per_s"].append(r["samples_per_s"])
        entry["calls_per_sample"].append(r["calls_per_sample"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, entry in drawn["samplers"].items():
        axes[0].plot(entry["num_steps"], entry["samples_per_s"], marker="o", label=name)
        axes[1].plot(entry["num_steps"], entry["calls_per_sample"], marker="o", label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="sampling steps T'", ylabel="samples / s",
                title=f"sampling speed ({drawn['machine']})")  # fmt: skip
    axes[1].set(xscale="log", yscale="log", xlabel="sampling steps T'",
                ylabel="network calls / sample", title="network calls")  # fmt: skip
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    _save(fig, out)
    return drawn


def build_parser() -> Parser:
    p = Parser(prog="python -m evaluation.plots", description=__doc__)
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
        help="bench/sample.py results (default: none; e.g. bench/results/sample_sweep.jsonl)",
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
    jobs = [
        ("training.png", plot_training, run / "train_log.jsonl"),
        ("spindle.png", plot_spindle, checkpoint),
        ("elbo_terms.png", plot_elbo_terms, args.elbo or _first("elbo_*.json", run)),
        ("sampling.png", None, args.process or _first("*.process.json", run)),
        ("bench_sampling.png", plot_bench, args.bench),
    ]
    written = {}
    for name, plot, source in jobs:
        if source is None or not Path(source).exists():
            if source is not None:
                print(f"skipped {name}: {source} does not exist")
            continue
        if plot is None:
            plot_sampling(source, out / name, args.rows)
        else:
            plot(source, out / name)
        written[name] = out / name
        print(f"wrote {out / name} (from {source})")
    if not written:
        raise UsageError(f"{run}: nothing to draw (no train_log.jsonl, best/, ...)")
    return written


if __name__ == "__main__":
    main()
