"""Every setting of main.py, declared once: its flag, default, help, choices and range, whether
a resumed run may change it, and when the dashboard shows it. main.py's parser and range
checks, the resume lock (``training.config.RESUME_LOCKED``) and the dashboard's table
(``training.dashboard.dashboard_settings``) read these declarations (Hugging Face's dataclass
arguments are the model: the declaration carries the help).

A new setting is one ``Setting`` here, plus its use in the code that reads it and a test.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from conditional_data.tasks import TASKS
from diffusion import BASE_SCHEDULES
from models.config import MODEL_OBJECTIVES
from models.time_embedding import TIMESTEPS
from training.optim import LR_SCHEDULES

# Upper bounds that catch a typo before it allocates or runs for ages.
MAX_COUNT = 10**9
MAX_BATCH = 2**20
MAX_DIFFUSION_STEPS = 10**6

# When the dashboard's table shows a setting: always, only for d3pm, only for seq2seq, only
# while --max_steps does not set the length of the run; never ("").
ALWAYS, D3PM, SEQ2SEQ, NO_MAX_STEPS = "always", "d3pm", "seq2seq", "no_max_steps"


@dataclass(frozen=True)
class Setting:
    """One flag of main.py. ``kind`` is int, float, str or bool (a ``--flag``/``--no-flag``
    boolean); ``choices`` a registry read when the parser is built; ``low``/``high`` the range
    checked before the run starts (``low_open``/``high_open``: that end refused; ``note``
    explains a special value); ``locked``: a resumed run must keep the value; ``shown``: when the
    dashboard's table shows it (module constants)."""

    name: str
    default: Any
    help: str
    kind: type = str
    choices: Iterable[str] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    note: str | None = None
    locked: bool = False
    shown: str = ""

    @property
    def flag(self) -> str:
        return f"--{self.name}"


def _s(name: str, default: Any, help: str, kind: type = str, **more: Any) -> Setting:
    return Setting(name, default, help, kind, **more)


SETTINGS: tuple[Setting, ...] = (
    _s("model_name_or_path", "minilm-l6", "the BERT to start from: minilm-l6 (embedded), a "
       "local folder or a hub name", locked=True, shown=ALWAYS),
    _s("dataset", "toy", "toy, wiki-summaries, lm1b, a .txt/.jsonl file or a folder",
       locked=True, shown=ALWAYS),
    _s("task", None, "seq2seq task (default: none, unconditional training)", choices=TASKS,
       locked=True, shown=SEQ2SEQ),
    _s("data_dir", None, "seq2seq: the task's DiffuSeq folder", locked=True, shown=SEQ2SEQ),
    _s("max_target_length", 64, "seq2seq: target positions", int, locked=True, shown=SEQ2SEQ),
    _s("lr", 5e-5, "peak learning rate (AdamW)", float, low=0, high=1, low_open=True,
       locked=True, shown=ALWAYS),
    _s("epochs", 3, "passes over the training split (see --max_steps)", int, low=1,
       high=MAX_COUNT, shown=NO_MAX_STEPS),
    _s("max_steps", -1, "optimizer steps; overrides --epochs if > 0", int, shown=ALWAYS),
    _s("batch_size", 64, "sequences per process per micro-batch", int, low=1, high=MAX_BATCH,
       locked=True),
    _s("accumulation_steps", 1, "micro-batches per optimizer step (gradient accumulation)",
       int, low=1, high=MAX_BATCH, locked=True),
    _s("word_freq_lambda", 0.3, "spindle λ; 0 = no spindle", float, low=0, high=1,
       note="0 = no spindle", locked=True, shown=ALWAYS),
    _s("allow_nonmonotone_lambda", False, "accept a λ for which ᾱ_t would increase in t", bool,
       locked=True),
    _s("word_freq_file", None, "token counts from word_freq.py (default: "
       "word_freq/<model>_<dataset>.pt)", shown=ALWAYS),
    _s("num_steps", 2048, "diffusion steps T", int, low=1, high=MAX_DIFFUSION_STEPS,
       note="diffusion steps T", locked=True, shown=ALWAYS),
    _s("schedule", "mutual", "base noise schedule", choices=BASE_SCHEDULES, locked=True,
       shown=ALWAYS),
    _s("timestep", "none", "how the denoiser sees t: ignored, a time token, or per layer",
       choices=TIMESTEPS, locked=True, shown=ALWAYS),
    _s("objective", "d3pm", "training loss: a diffusion loss, or ar (the autoregressive twin: "
       "the same backbone as a causal LM, next-token loss; docs/baselines.md)",
       choices=MODEL_OBJECTIVES, locked=True, shown=ALWAYS),
    _s("hybrid_lambda", 1e-2, "d3pm: weight of the auxiliary cross-entropy", float, low=0,
       high=1e6, locked=True, shown=D3PM),
    _s("per_sequence_t", False, "d3pm: one t per sequence instead of per batch", bool,
       locked=True, shown=D3PM),
    _s("group_by_length", False, "batch sequences of similar length together: no padding "
       "computed, a faster step, but less varied batches (see docs/training.md before using "
       "it)", bool, locked=True),
    _s("from_scratch", False, "random weights with the model's config", bool, locked=True,
       shown=ALWAYS),
    _s("max_length", 128, "tokens per sequence, without [CLS]/[SEP]", int, locked=True,
       shown=ALWAYS),
    _s("dev_size", 1000, "held-out sequences (a fraction if < 1)", float, low=0,
       high=MAX_COUNT, low_open=True, locked=True),
    _s("eval_steps", 2000, "dev bound every N optimizer steps", int, low=1, high=MAX_COUNT),
    _s("eval_step_size", 4, "discrete dev bound (linear schedule): every N-th t", int, low=1,
       high=MAX_COUNT, locked=True),
    _s("eval_batch_size", 64, "sequences per dev batch", int, low=1, high=MAX_BATCH),
    _s("eval_samples", 4, "samples drawn at each dev evaluation (unconditional runs): in "
       "train_log.jsonl, the dashboard and the checkpoint's model card", int, low=0, high=1024,
       note="0 = none"),
    _s("eval_sample_steps", 64, "sampling steps T' of those samples (the default sampler; "
       "the autoregressive twin samples left to right)", int, low=1,
       high=MAX_DIFFUSION_STEPS),
    _s("eval_gen_ppl_model", None, "a causal LM (folder or hub name, e.g. an --objective ar "
       "checkpoint) whose perplexity of those samples is logged at each evaluation (default: "
       "none)"),
    _s("logging_steps", 100, "a log record every N steps", int, low=1, high=MAX_COUNT),
    _s("save_steps", None, "save last/ every N steps (default: --eval_steps)", int, low=1,
       high=MAX_COUNT, note="omit it for --eval_steps"),
    _s("keep_last", 0, "also keep N step-numbered checkpoints", int, low=0, high=MAX_COUNT,
       note="0 = no step copies"),
    _s("lr_schedule", "invsqrt", "learning-rate schedule after warm-up", choices=LR_SCHEDULES,
       locked=True, shown=ALWAYS),
    _s("warmup_steps", 10000, "linear warm-up steps", int, low=0, high=MAX_COUNT, locked=True,
       shown=ALWAYS),
    _s("weight_decay", 0.0, "AdamW weight decay", float, low=0, high=1e6, locked=True),
    _s("max_grad_norm", 0.0, "0 = no clipping (reference)", float, low=0, high=1e12,
       note="0 = no clipping", locked=True),
    _s("ema", 0.0, "decay of an exponential moving average of the weights (MDLM: 0.9999); "
       "0 = off. The dev bound and the saved weights are the average's; the raw weights are "
       "kept in last/training_state.pt for resume", float, low=0, high=1, high_open=True,
       note="0 = off", locked=True),
    _s("bf16", True, "bf16 autocast where the device computes bf16 natively (CUDA, CPUs with "
       "AVX512-BF16/AMX); fp32 elsewhere", bool, locked=True),
    _s("compile", False, "torch.compile the encoder: a faster step once compiled (the first "
       "steps and dev evaluations wait for the compiler; docs/performance.md); needs a C++ "
       "compiler", bool),
    _s("seed", 42, "seeds the weights, data order and noise", int, locked=True, shown=ALWAYS),
    _s("data_seed", 42, "draws the held-out dev set and the dev bound's noise, apart from "
       "--seed: runs with other training seeds are scored on the same sentences", int,
       locked=True, shown=ALWAYS),
    _s("output_dir", "outputs/run", "where best/, last/ and train_log.jsonl go"),
    _s("cache_dir", None, "token-id cache (default: $DIFFUSIONBERT_CACHE or "
       "~/.cache/diffusionbert)"),
    _s("resume_from", None, "<output_dir>/last of an earlier run, or auto: the latest intact "
       "checkpoint of --output_dir (a fresh start when it has none)"),
    _s("overwrite", False, "replace the run already in --output_dir", bool),
    _s("fitlog_dir", "logs", "fitlog folder; '' disables fitlog"),
    _s("device", "auto", "auto (CUDA when visible), cpu, cuda or cuda:N", shown=ALWAYS),
)  # fmt: skip
BY_NAME = {setting.name: setting for setting in SETTINGS}


def add_settings(parser, choices: Callable[[Iterable[str]], list[str]]) -> None:
    """Every declared setting as a flag of ``parser`` (a ``common.cli.Parser``), in order."""
    for s in SETTINGS:
        if s.kind is bool:
            parser.boolean(s.flag, default=s.default, help=s.help)
        elif s.choices is not None:
            parser.flag(s.flag, default=s.default, choices=choices(s.choices), help=s.help)
        elif s.kind is str:
            parser.flag(s.flag, default=s.default, help=s.help)
        else:
            parser.flag(s.flag, type=s.kind, default=s.default, help=s.help)


def default(name: str) -> Any:
    """The declared default of the setting ``name`` (KeyError for an undeclared one)."""
    return BY_NAME[name].default


def ranged() -> list[Setting]:
    """The settings with a declared range, in order."""
    return [s for s in SETTINGS if s.low is not None]


def locked() -> tuple[str, ...]:
    """The settings a resumed run must share with the run it continues."""
    return tuple(s.name for s in SETTINGS if s.locked)


def shown(objective: str | None, task: str | None, max_steps: int) -> list[str]:
    """The settings the dashboard's table shows for a run with this objective, task and
    ``--max_steps`` flag, in declaration order."""
    show = {ALWAYS}
    if objective == "d3pm":
        show.add(D3PM)
    if task:
        show.add(SEQ2SEQ)
    if max_steps <= 0:
        show.add(NO_MAX_STEPS)
    return [s.name for s in SETTINGS if s.shown in show]


def command_line(values: dict[str, Any]) -> str:
    """``python3 main.py`` with every declared flag whose value in ``values`` (a run's flags)
    is not its default, shell-quoted: the command a model card shows."""
    parts = ["python3", "main.py"]
    for s in SETTINGS:
        value = values.get(s.name, s.default)
        if value == s.default:
            continue
        if s.kind is bool:
            parts.append(s.flag if value else f"--no-{s.name}")
        else:
            parts += [s.flag, str(value)]
    return shlex.join(parts)
