"""Left-to-right decoding of the autoregressive twin with transformers' ``generate`` and its
key/value cache, under the same ``--temperature/--topk/--topp`` as the diffusion samplers:
unconditional samples, and seq2seq candidates (sampled, greedy or beam) for MBR."""

from __future__ import annotations

import itertools

import torch

from common.errors import UsageError
from common.progress import progress
from generation.config import SamplingConfig
from generation.seq2seq import Candidates, cut_target
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


DECODINGS = ("sample", "greedy", "beam")


@torch.no_grad()
def candidates_left_to_right(
    ckpt: Checkpoint,
    sources: list[list[int]],
    mbr_size: int,
    batch_size: int,
    sampling: SamplingConfig,
    max_target_length: int,
    decoding: str = "sample",
    num_beams: int = 4,
) -> Candidates:
    """``mbr_size`` targets for every source (prompted ids, no special tokens), each read after
    ``[CLS] source`` and cut at the twin's first [SEP] (at most ``max_target_length`` - 1
    tokens, the seq2seq target region's room): sampled (``sampling``'s filters), greedy
    (``mbr_size`` 1) or the best ``mbr_size`` of ``num_beams`` beams. Rows are batched by
    prompt length, so no prompt is padded (BERT's positions stay those of training)."""
    if decoding == "greedy" and mbr_size != 1:
        raise UsageError("--decoding greedy gives one candidate per source: pass --mbr_size 1")
    if decoding == "beam" and mbr_size > num_beams:
        raise UsageError(f"--mbr_size {mbr_size} exceeds --num_beams {num_beams}: a beam search "
                         "returns at most its beams")  # fmt: skip
    lm, tok = ckpt.model.mlm, ckpt.tokenizer
    device = next(lm.parameters()).device
    torch.manual_seed(sampling.seed)
    out = Candidates(ids=[[] for _ in sources], sampler=f"left-to-right ({decoding})")
    copies = mbr_size if decoding == "sample" else 1
    order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), i))
    groups = [list(g) for _, g in itertools.groupby(order, key=lambda i: len(sources[i]))]
    per_call = max(1, batch_size // copies)
    batches = [g[s : s + per_call] for g in groups for s in range(0, len(g), per_call)]
    options = {
        "sample": {"do_sample": True, "temperature": sampling.temperature,
                   "top_k": sampling.topk or None, "top_p": sampling.topp,
                   "num_return_sequences": copies},
        "greedy": {"do_sample": False},
        "beam": {"do_sample": False, "num_beams": num_beams, "num_return_sequences": mbr_size},
    }[decoding]  # fmt: skip
    bar = progress(len(batches), "decoding", "batch")
    with bar:
        for chunk in batches:
            prompt = torch.tensor([[tok.cls_token_id, *sources[i]] for i in chunk], device=device)
            rows = lm.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt),
                max_new_tokens=max_target_length, eos_token_id=tok.sep_token_id,
                pad_token_id=tok.pad_token_id, **options,
            )[:, prompt.shape[1] :]  # fmt: skip
            out.calls += rows.shape[1]
            beams = num_beams if decoding == "beam" else copies
            out.row_forwards += len(chunk) * beams * rows.shape[1]
            per_source = rows.shape[0] // len(chunk)
            for row, ids in enumerate(rows.cpu().tolist()):
                target = cut_target(ids, {tok.sep_token_id, tok.pad_token_id})
                out.ids[chunk[row // per_source]].append(target[: max_target_length - 1])
            bar.update(1)
    return out
