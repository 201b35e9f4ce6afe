"""The pictures of a run, one function each, drawn with matplotlib (Agg backend) from files
that already exist; ``python3 -m evaluation.plots`` picks their sources. Each plot_* function
returns the arrays it drew (tests compare them with the source files)."""

from __future__ import annotations

import math
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

from common.errors import UsageError
from common.files import read_jsonl, write_error
from evaluation.plot_sources import (
    NoTerms,
    is_number,
    process_frames,
    read_json,
    sampler_used,
    spindle_curves,
    training_records,
)

DPI = 150
# sizes that read on a slide and at full width in the README
STYLE = {"font.size": 13, "axes.titlesize": 14, "axes.labelsize": 13, "legend.fontsize": 11,
         "xtick.labelsize": 11, "ytick.labelsize": 11, "figure.titlesize": 15}  # fmt: skip
matplotlib.rcParams.update(STYLE)
# what ``--sampler auto`` picks for a time-agnostic checkpoint (generation.config)
DEFAULT_SAMPLER = "rowcache"


def _save(fig, out: Path) -> None:
    """``fig`` as a PNG at ``out``; a folder that cannot be written is one line."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Glyph .* missing from font")
            fig.tight_layout()
            fig.savefig(out, dpi=DPI)
    except OSError as error:
        raise write_error(Path(error.filename or out), error, kept=False, hint="--out") from None
    finally:
        plt.close(fig)


def plot_training(log: Path, out: Path, name: str = "", meaning: str = "") -> dict:
    """Two panels against the step. Left, in one unit (nats per token): the training figure
    ``train_nats_per_token`` (one draw per sequence, so noisy) and the dev bound with its 95%
    interval over the dev sentences and draws (± 1.96 logged s.e.). Right: the training
    throughput, the learning rate on a second axis, the skipped (non-finite) steps in the
    title. A log from before ``train_nats_per_token`` shows its loss per masked token, said so.
    ``name`` titles the figure, ``meaning`` says what the training figure is."""
    records = training_records(log)
    train = [r for r in records if "loss" in r]
    dev = [r for r in records if "dev_nats_per_token" in r]
    older = not any("train_nats_per_token" in r for r in train)
    key = "loss_per_token" if older else "train_nats_per_token"
    drawn = {
        "step": [r["step"] for r in train],
        "loss": [r["loss"] for r in train],
        "train_nats_per_token": [r.get(key, r["loss"]) for r in train],
        "lr": [r.get("lr") for r in train],
        "tokens_per_s": [r.get("tokens_per_s") for r in train],
        "skipped_steps": [r.get("skipped_steps", 0) for r in train],
        "dev_step": [r["step"] for r in dev],
        "dev_nats_per_token": [r["dev_nats_per_token"] for r in dev],
        "dev_half_width": [1.96 * r.get("dev_nats_per_token_se", math.nan) for r in dev],
    }
    fig, (main, side) = plt.subplots(1, 2, figsize=(14, 5.5), width_ratios=[3, 2])
    label = ("training loss per masked token (an older log: not the bound's scale)" if older
             else "training: train_nats_per_token (one draw per sequence)")  # fmt: skip
    main.plot(drawn["step"], drawn["train_nats_per_token"], marker=".",
              color="C0", label=label)  # fmt: skip
    if dev:
        kind = dev[-1].get("dev_bound", "")
        widths = [w if is_number(w) else 0.0 for w in drawn["dev_half_width"]]
        text = f"dev: {kind} bound, 95% interval (dev sentences and draws)"
        main.errorbar(drawn["dev_step"], drawn["dev_nats_per_token"], yerr=widths, marker="o",
                      color="C1", capsize=3, label=text)  # fmt: skip
    what = textwrap.fill(meaning or "the training objective", 70)
    main.set(title=f"training and dev, nats per token\n{what}", xlabel="optimizer step",
             ylabel="nats per token")  # fmt: skip
    main.legend(loc="upper right")
    if any(is_number(v) for v in drawn["tokens_per_s"]):
        side.plot(drawn["step"], drawn["tokens_per_s"], color="C4", marker=".")
    skipped = drawn["skipped_steps"][-1] if drawn["skipped_steps"] else 0
    lrs = [v for v in drawn["lr"] if is_number(v)]
    constant = bool(lrs) and max(lrs) == min(lrs)
    rate_text = f"learning rate {lrs[0]:.1e} throughout" if constant else "learning rate (dashed)"
    side.set(title=f"throughput; {rate_text}\nskipped (non-finite) steps: {skipped}",
             xlabel="optimizer step", ylabel="tokens / s (training only)")  # fmt: skip
    if lrs and not constant:
        rate = side.twinx()
        rate.plot(drawn["step"], drawn["lr"], color="C2", linestyle="--")
        if min(lrs) > 0 and max(lrs) / min(lrs) > 20:
            rate.set_yscale("log")
        rate.set_ylabel("learning rate (dashed)", color="C2")
    for ax in (main, side):
        ax.grid(alpha=0.3)
    drawn["title"] = f"{name}: training" if name else "training"
    drawn["panels"] = [main.get_title(), side.get_title()]
    fig.suptitle(drawn["title"])
    _save(fig, out)
    return drawn


def plot_spindle(checkpoint: Path, out: Path, name: str = "") -> dict:
    drawn = spindle_curves(checkpoint)
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.plot(drawn["u"], drawn["plain"], color="black", lw=2, label=f"plain {drawn['schedule']}")
    for (label, curve), style in zip(drawn["tokens"].items(), ("--", "-.", ":"), strict=False):
        ax.plot(drawn["u"], curve["alpha_bar"], style, lw=1.8,
                label=f"{label}: {curve['token']!a} ({curve['count']:,}×)")  # fmt: skip
    prefix = f"{name}: " if name else ""
    ax.set(xlabel="diffusion time t / T", ylabel="ᾱ_t (probability a token is kept)",
           title=f"{prefix}spindle schedule, λ = {drawn['word_freq_lambda']}")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    _save(fig, out)
    return drawn


def plot_elbo_terms(elbo_json: Path, out: Path, name: str = "") -> dict:
    """The bound split by time: nats per token in each t bucket (compute_elbo.py --json)."""
    record = read_json(elbo_json, "compute_elbo.py --json")
    terms = record.get("terms")
    keys = ("t_low", "t_high", "nats_per_token", "reconstruction_nats_per_token")
    if not isinstance(terms, dict) or any(k not in terms for k in keys):
        raise NoTerms(
            f"{elbo_json} has no per-term figures (compute_elbo.py --estimator plain --json "
            "writes them)"
        )
    if not is_number((record.get("given_length") or {}).get("nats_per_token")):
        raise UsageError(f"{elbo_json}: no given_length.nats_per_token; rerun compute_elbo.py "
                         "--json")  # fmt: skip
    drawn = {
        "t_low": terms["t_low"],
        "t_high": terms["t_high"],
        "nats_per_token": terms["nats_per_token"],
        "reconstruction_nats_per_token": terms["reconstruction_nats_per_token"],
        "total": record["given_length"]["nats_per_token"],
    }
    width = [hi - lo for lo, hi in zip(drawn["t_low"], drawn["t_high"], strict=True)]
    fig, ax = plt.subplots(figsize=(10, 5.5))
    ax.bar(drawn["t_low"], drawn["nats_per_token"], width=width, align="edge",
           edgecolor="white", label="KL terms")  # fmt: skip
    ax.bar([-0.04], [drawn["reconstruction_nats_per_token"]], width=0.03, color="C3",
           label="reconstruction (t → 0)")  # fmt: skip
    prefix = f"{name}: " if name else ""
    ax.set(xlabel="diffusion time t / T (bucket)", ylabel="nats per token (share of the bound)",
           title=f"{prefix}{record.get('bound', '')} bound, {drawn['total']:.3f} nats/token "
                 "in all")  # fmt: skip
    ax.grid(alpha=0.3, axis="y")
    ax.legend()
    _save(fig, out)
    return drawn


def plot_sampling(process_json: Path, out: Path, rows: int = 8, name: str = "") -> dict:
    """The first sample's x0 prediction at ``rows`` steps evenly spread over the run
    (predict.py --show_process): x_t, its masked positions in grey italics showing the
    network's current guess of x0."""
    record = read_json(process_json, "predict.py --show_process")
    frames = process_frames(process_json, record)
    picks = sorted({round(i * (len(frames) - 1) / max(rows - 1, 1)) for i in range(rows)})
    chosen = [frames[i] for i in picks]
    drawn = {
        "sampler": sampler_used(process_json, record),
        "steps": [f["step"] for f in chosen],
        "tokens": [f["tokens"] for f in chosen],
        "masked": [f.get("masked") or [False] * len(f["tokens"]) for f in chosen],
    }
    width = max(len(t) for t in drawn["tokens"])
    fig, ax = plt.subplots(figsize=(min(1.5 + 1.0 * width, 18), 1.2 + 0.55 * len(chosen)))
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(len(chosen) - 0.5, -0.5)
    for row, (tokens, masks) in enumerate(zip(drawn["tokens"], drawn["masked"], strict=True)):
        for col, (token, masked) in enumerate(zip(tokens, masks, strict=True)):
            ax.text(col, row, token, ha="center", va="center", fontsize=11,
                    color="0.55" if masked else "black", style="italic" if masked else "normal",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "0.94" if masked else "#dbe9f6",
                          "ec": "none"})  # fmt: skip
    ax.set_yticks(range(len(chosen)), [f"step {s}" for s in drawn["steps"]])
    ax.set_xticks([])
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    prefix = f"{name}: " if name else ""
    ax.set_title(f"{prefix}the first sample during sampling, T' = {record.get('num_steps')} "
                 f"({drawn['sampler']} sampler)\ngrey italics: still [MASK] (the network's "
                 "current guess shown)")  # fmt: skip
    _save(fig, out)
    return drawn


def plot_bench(sweep_jsonl: Path, out: Path, default: str = DEFAULT_SAMPLER) -> dict:
    """Samples/s and network calls per sample against T', by sampler: the newest run of
    python3 -m bench.sample in the file; the ``default`` sampler drawn bold, or said to be
    missing."""
    records = read_jsonl(sweep_jsonl)
    if not records:
        raise UsageError(f"{sweep_jsonl} is empty; run python3 -m bench.sample")
    for number, r in enumerate(records, start=1):
        if (
            not isinstance(r.get("date"), str)
            or not isinstance(r.get("sampler"), str)
            or not all(
                is_number(r.get(k)) for k in ("num_steps", "samples_per_s", "calls_per_sample")
            )
        ):
            raise UsageError(
                f"{sweep_jsonl}: record {number} lacks date, sampler, num_steps, samples_per_s "
                "or calls_per_sample; rerun python3 -m bench.sample"
            )
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
    drawn["default"] = default if default in drawn["samplers"] else None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
    for name, entry in drawn["samplers"].items():
        label = f"{name} (default)" if name == default else name
        width = 3 if name == default else 1.6
        for ax, key in zip(axes, ("samples_per_s", "calls_per_sample"), strict=True):
            ax.plot(entry["num_steps"], entry[key], marker="o", label=label, lw=width)
    missing = "" if drawn["default"] else f"; the default sampler, {default}, is not in this sweep"
    axes[0].set(xscale="log", yscale="log", xlabel="sampling steps T'", ylabel="samples / s",
                title="sampling speed")  # fmt: skip
    axes[1].set(xscale="log", yscale="log", xlabel="sampling steps T'",
                ylabel="network calls / sample", title="network calls")  # fmt: skip
    fig.suptitle(f"python3 -m bench.sample, {drawn['machine']}, {newest[:10]}{missing}")
    measured = sorted({r["num_steps"] for r in rows})
    for ax in axes:
        ax.set_xticks(measured, [str(n) for n in measured])
        ax.minorticks_off()
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    _save(fig, out)
    return drawn
