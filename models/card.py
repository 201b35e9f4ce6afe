"""What makes a checkpoint folder shareable: ``training_args.json`` and a model card.

``save_checkpoint`` writes both inside the folder's atomic write (``models.checkpoint``).
The card says what the folder is (a DiffusionBERT denoiser, not a plain fill-mask BERT), its
diffusion settings, dev bound, training data and steps, and how to sample and evaluate it
with this project.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from models.config import DiffusionConfig

TRAINING_ARGS = "training_args.json"
CARD = "README.md"


def training_args(run: dict[str, Any]) -> str:
    """``training_args.json``: every flag as given (``args``) and resolved values
    (``resolved``: steps, global batch, ...), the step and dev bound of this folder."""
    return json.dumps(run, indent=2, sort_keys=False, default=str) + "\n"


def _value(value: Any) -> str:
    return "none" if value is None else f"`{value}`"


def model_card(config: DiffusionConfig, run: dict[str, Any], folder: str) -> str:
    """The README.md of a checkpoint folder (``run`` as for ``training_args``)."""
    args = run.get("args") or {}
    resolved = run.get("resolved") or {}
    best, step = run.get("best_dev_nats_per_token"), run.get("step")
    model = args.get("model_name_or_path", "unknown")
    dataset = args.get("task") or args.get("dataset", "unknown")
    tags = ["diffusionbert", "discrete-diffusion", "absorbing-diffusion", "masked-lm"]
    bound = "discrete" if config.schedule == "linear" else "continuous"
    settings = asdict(config)
    rows = "\n".join(f"| `{k}` | {_value(v)} |" for k, v in settings.items())
    dev = (
        f"{best:.4f} nats per token ({bound}-time bound, one draw per sequence, on "
        f"{_value(args.get('dev_size'))} held-out sequences)"
        if best is not None
        else "not evaluated yet"
    )
    kind = (
        f"sequence-to-sequence DiffusionBERT (task `{config.task}`: `[CLS] source target [SEP]`, "
        "only the target diffused)"
        if config.task
        else "unconditional DiffusionBERT"
    )
    article = "An" if kind.startswith("unconditional") else "A"
    if config.task:
        usage = (
            f"python predict_downstream_condition.py --checkpoint {folder} --task {config.task} "
            "--mbr_size 10 --output_dir generation"
        )
    else:
        usage = (
            f"python predict.py --checkpoint {folder} --num_samples 16 --output samples.txt\n"
            f"python compute_elbo.py --checkpoint {folder} --dataset {args.get('dataset', 'toy')} "
            "--split test --json elbo.json\n"
            "python compute_metric.py --generated samples.txt "
            f"--dataset {args.get('dataset', 'toy')} --split test"
        )
    front = "\n".join(
        ["---", "pipeline_tag: text-generation", "inference: false", "tags:"]
        + [f"- {tag}" for tag in tags]
        + ["---"]
    )
    return f"""{front}

# DiffusionBERT denoiser ({model}, {dataset})

{article} {kind}: absorbing-state discrete diffusion (He et al., 2022, "DiffusionBERT:
Improving Generative Masked Language Models with Diffusion Models") with a BERT denoiser,
trained from `{model}` on `{dataset}`.

> **Plain `transformers` sees only the masked LM.** `AutoModelForMaskedLM.from_pretrained`
> loads the BERT weights of this folder and nothing else: not the noise schedule
> (`diffusion_config.json`), the token counts of the spindle schedule
> (`corpus_statistics.safetensors`) or the time embedding (`time_embedding.safetensors`).
> A fill-mask pipeline on it is not DiffusionBERT: sample and evaluate it with the
> DiffusionBERT reference implementation, as below.

## Diffusion settings

| setting | value |
|---|---|
{rows}

## Training

- Data: `{dataset}` (`--dataset {args.get("dataset")}`{", --task " + str(config.task) if config.task else ""}), sequences of at most {config.max_length} tokens.
- Steps: {step if step is not None else "unknown"} of {resolved.get("max_steps", "unknown")} optimizer steps, {resolved.get("global_batch", "unknown")} sequences per step, lr {args.get("lr")} ({args.get("lr_schedule")}, {args.get("warmup_steps")} warm-up steps), seed {args.get("seed")}.
- Dev bound: {dev}.
- Every flag and the resolved values: `{TRAINING_ARGS}`.

## Use

With the DiffusionBERT reference implementation (`pip install -r requirements.txt`):

```bash
hf download OWNER/NAME --local-dir {folder}   # a folder uploaded with `hf upload`
{usage}
```

## Files

`config.json`, `model.safetensors` (the BERT masked LM), tokenizer files,
`diffusion_config.json` (the settings above), `corpus_statistics.safetensors` (token and
length counts of the training split), `time_embedding.safetensors` (time designs `token` and
`layerwise`), `{TRAINING_ARGS}`, and in `last/` `training_state.pt` (optimizer, schedule and
RNG states for `main.py --resume_from`).
"""  # noqa: E501
