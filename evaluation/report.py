"""Readable tables of the figures the evaluation scripts compute."""

from __future__ import annotations

NOT_A_BOUND = "NOT a valid bound: the reference code's reverse model sees the true tokens"


def likelihood_table(record: dict) -> str:
    """The likelihood figures of compute_elbo.py as a plain-text table."""
    given, full = record["given_length"], record.get("full_sequence")
    if record["bound"] == "exact":
        return _exact_table(record)
    if record["bound"] == "discrete":
        how = f"discrete, T={record['num_steps']}, step {record['eval_step_size']}"
    else:
        how = f"continuous, {record['mc_samples']} draws per sequence"
    validity = "a valid upper bound on the NLL" if record["valid_bound"] else NOT_A_BOUND
    lines = [
        (
            f"checkpoint {record['checkpoint']}  data {record['dataset']}/{record['split']}: "
            f"{given['num_sequences']} sequences, {given['num_tokens']} tokens, "
            f"{given.get('num_words', 'n/a')} words"
        ),
        f"bound: {how}; protocol {record['protocol']} ({validity})",
        f"{'':28}{'given length':>18}{'full sequence':>18}",
    ]
    rows = [
        ("NLL nats/token (± s.e.)", "nats_per_token", "{:.4f}"),
        ("bits/token", "bits_per_token", "{:.4f}"),
        ("perplexity per token", "ppl_per_token", "{:.3f}"),
        ("perplexity per word", "ppl_per_word", "{:.3f}"),
        ("NLL nats/sequence", "nats_per_sequence", "{:.3f}"),
    ]
    mark = "" if record["valid_bound"] else " †"
    for label, key, fmt in rows:
        cells = []
        for figures in (given, full):
            if figures is None or key not in figures:
                cells.append("n/a")
            elif key == "nats_per_token":
                cells.append(f"{figures[key]:.4f} ± {figures['nats_per_token_se']:.4f}")
            else:
                cells.append(fmt.format(figures[key]))
        lines.append(f"{label + mark:28}{cells[0]:>18}{cells[1]:>18}")
    lines.append(
        "given length: conditional on the number of tokens (the network never chooses it); "
        "full sequence: + −log p(length) from the training split's length histogram; words: "
        "the whitespace-separated words of the dataset's text, punctuation included (the "
        "DiffusionBERT paper's unit)"
    )
    if mark:
        lines.append(f"†{NOT_A_BOUND}")
    if "toy_oracle" in record:
        oracle = record["toy_oracle"]
        lines.append(
            f"toy oracle: true NLL of these sentences {oracle['true_nats_per_sequence']:.3f} "
            f"nats/sequence ({oracle['true_nats_per_token']:.4f} nats/token); grammar entropy "
            f"{oracle['grammar_entropy_per_sentence']:.3f} nats/sentence"
        )
    return "\n".join(lines)


def _exact_table(record: dict) -> str:
    """The autoregressive twin's exact NLL (``evaluation.exact``) as a plain-text table."""
    full = record["full_sequence"]
    return "\n".join([
        f"checkpoint {record['checkpoint']}  data {record['dataset']}/{record['split']}: "
        f"{full['num_sequences']} sequences, {full['num_tokens']} tokens, "
        f"{full.get('num_words', 'n/a')} words",
        "exact NLL of the autoregressive twin (no bound): " + record["predicts"],
        f"  NLL nats/token     {full['nats_per_token']:.4f} ± {full['nats_per_token_se']:.4f}",
        f"  bits/token         {full['bits_per_token']:.4f}",
        f"  perplexity/token   {full['ppl_per_token']:.3f}",
        f"  perplexity/word    {full.get('ppl_per_word', float('nan')):.3f}",
        f"  NLL nats/sequence  {full['nats_per_sequence']:.3f}",
        "it pairs with a diffusion record's full-sequence bound: python3 -m evaluation.compare",
    ])  # fmt: skip
