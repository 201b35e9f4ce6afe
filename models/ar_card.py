"""The model card of the autoregressive twin's checkpoint folder (``--objective ar``): what it
is (a causal LM that plain ``transformers`` runs), how it was trained, and how to use it."""

from __future__ import annotations

from typing import Any

from models.card import (
    BASES,
    PROJECT,
    TRAINING_ARGS,
    _data,
    _held_out,
    _number,
    provenance,
)
from models.config import DiffusionConfig


def _front(args: dict[str, Any]) -> tuple[str, str]:
    """The YAML metadata and a sentence on the license and base model."""
    model = args.get("model_name_or_path", "unknown")
    base, license_ = BASES.get(model, (None, None))
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation"]
    if license_:
        lines.append(f"license: {license_}")
    if base and not args.get("from_scratch"):
        lines.append(f"base_model: {base}")
    lines += ["tags:", "- diffusionbert-baseline", "- causal-lm", "---"]
    if base is None:
        origin = f"License and base model: not recorded for `{model}`."
    else:
        origin = f"License: {license_}, that of `{base}`."
    return "\n".join(lines), origin


def ar_model_card(config: DiffusionConfig, run: dict[str, Any], folder: str) -> str:
    """The README.md of an autoregressive checkpoint folder (``run`` as for
    ``models.card.training_args``)."""
    args, resolved = run.get("args") or {}, run.get("resolved") or {}
    best, step = run.get("best_dev_nats_per_token"), run.get("step")
    model = args.get("model_name_or_path", "unknown")
    dataset = args.get("task") or args.get("dataset", "unknown")
    front, origin = _front(args)
    dev = (
        f"{best:.4f} nats per token (exact NLL, end token included, on "
        f"{_held_out(args.get('dev_size'), config.task)})"
        if best is not None
        else "not evaluated yet"
    )
    layout = (
        f"`[CLS] source target [SEP]` of task `{config.task}`, the loss on the target and the "
        "end token only"
        if config.task
        else "`[CLS] text [SEP]`, every token and the end token predicted"
    )
    init = "from scratch with the architecture of" if args.get("from_scratch") else "from"
    use = (
        f"python3 predict_downstream_condition.py --checkpoint {folder} --task {config.task} "
        "--decoding beam --mbr_size 1 --output_dir generation"
        if config.task
        else f"python3 predict.py --checkpoint {folder} --num_samples 16 --output samples.txt\n"
        f"python3 compute_elbo.py --checkpoint {folder} --dataset {args.get('dataset', 'toy')} "
        "--split test --json nll.json"
    )
    return f"""{front}

# Autoregressive twin ({model}, {dataset})

The baseline of the {PROJECT}: the same backbone as its DiffusionBERT denoisers, trained
{init} `{model}` left to right (a causal attention mask, `is_decoder=True`) with the
next-token loss on {layout}, on the same data, steps and batch. {origin}

`AutoModelForCausalLM.from_pretrained(folder)` loads it as a plain causal LM (it works as
`--gen_ppl_model` too). Its likelihood is exact, so `compute_elbo.py` writes its NLL in the
records of the diffusion bounds, and `python3 -m evaluation.compare` pairs the two.

## Training

- Data: {_data(config, args)}; sequences of at most {config.max_length} tokens.
- Steps: {step if step is not None else "unknown"} of {_number(resolved.get("max_steps", "unknown"))} optimizer steps, {_number(resolved.get("global_batch", "unknown"))} sequences per step, lr {args.get("lr")}, seed {args.get("seed")}.
- Dev NLL: {dev}.
- Every flag and the resolved values: `{TRAINING_ARGS}`.

## Use

```bash
{use}
```

{provenance(run)}
"""  # noqa: E501
