"""Left-to-right sampling from the autoregressive twin, with transformers' ``generate`` and its
key/value cache, under the same ``--temperature/--topk/--topp`` as the diffusion samplers."""

from __future__ import annotations

import torch

from common.progress import progress
from generation.config import SamplingConfig
from generation.unconditional import Generation, check_length
from models.checkpoint import Checkpoint


@torch.no_grad()
def generate_left_to_right(
    ckpt: Checkpoint,
    num_samples: int,
    length: int,
    batch_size: int,
    sampling: SamplingConfig,
    use_cache: bool = True,
) -> Generation:
    """Sample ``num_samples`` sequences from ``[CLS]``, each ending at the model's own [SEP]
    (cut at the checkpoint's max_length tokens when it writes none by then); with ``length``
    > 0, exactly ``length`` tokens ([SEP] suppressed until then, the sample cut there).

    Seeded by ``sampling.seed`` (the global torch generator, which ``generate`` draws from).
    ``use_cache=False`` recomputes every prefix (the benchmark's uncached loop)."""
    check_length(ckpt, length)
    lm, tok = ckpt.model.mlm, ckpt.tokenizer
    device = next(lm.parameters()).device
    new_tokens = length or ckpt.config.max_length + 1  # the tokens and the end token
    torch.manual_seed(sampling.seed)
    out = Generation(sampler="left-to-right")
    batches = range(0, num_samples, batch_size)
    bar = progress(len(batches), "sampling", "batch")
    with bar:
        for start in batches:
            n = min(batch_size, num_samples - start)
            prompt = torch.full((n, 1), tok.cls_token_id, dtype=torch.long, device=device)
            rows = lm.generate(
                input_ids=prompt,
                attention_mask=torch.ones_like(prompt),
                do_sample=True,
                temperature=sampling.temperature,
                top_k=sampling.topk or None,
                top_p=sampling.topp,
                max_new_tokens=new_tokens,
                min_new_tokens=length or None,
                eos_token_id=tok.sep_token_id,
                pad_token_id=tok.pad_token_id,
                use_cache=use_cache,
            )[:, 1:]
            calls = rows.shape[1]
            out.calls += calls
            out.calls_per_batch.append(calls)
            out.row_forwards += n * calls
            for row in rows.cpu().tolist():
                end = row.index(tok.sep_token_id) if tok.sep_token_id in row else len(row)
                out.ids.append(row[: min(end, length or ckpt.config.max_length)])
            bar.update(1)
    return out
