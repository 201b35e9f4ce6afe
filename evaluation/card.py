"""Add test bounds to a checkpoint's model card: each compute_elbo.py --json record of the
folder becomes a row of the card's "Test bounds" table (and of ``training_args.json``'s
``test``), so that a shared folder says how it scores, not only its dev bound.

python3 -m evaluation.card CHECKPOINT --records elbo_test.json [more.json ...]

A record of another folder is refused; a record of the same data, split, bound, number of
sentences and noise seed as a row already there replaces it (another seed or sentence count is
another row). Both files are rewritten atomically from the folder's settings.
"""

from __future__ import annotations

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from pathlib import Path

from common.checks import check_outputs_apart
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import read_json, write_json, write_text
from evaluation.records import is_exact, read_record
from models.ar_card import ar_model_card
from models.card import CARD, TRAINING_ARGS, model_card
from models.checkpoint import SETTINGS, resolve_checkpoint_dir
from models.config import DiffusionConfig


def summary(record: dict) -> dict:
    """The card's row of a compute_elbo.py record: data, bound, noise seed (None for an exact
    NLL), sentences, nats per token given the length and of the full sequence (each with its
    s.e.), per-word PPL."""
    if is_exact(record):
        bound = "exact NLL"
    elif record["bound"] == "continuous":
        estimator = (record.get("noise") or {}).get("estimator") or "conditioned"
        bound = f"continuous, {estimator}, {record['mc_samples']} draws"
    else:
        bound = f"discrete, every {record['eval_step_size']}-th step"
    if not is_exact(record) and not record.get("valid_bound", True):
        bound += " (official protocol: not a bound)"
    given, full = record.get("given_length"), record["full_sequence"]
    return {
        "data": f"{record['dataset']}/{record['split']}",
        "bound": bound,
        "noise_seed": None if is_exact(record) else record.get("seed"),
        "sentences": full["num_sequences"],
        "given_length": [given["nats_per_token"], given["nats_per_token_se"]] if given else None,
        "full_sequence": [full["nats_per_token"], full["nats_per_token_se"]],
        "ppl_per_word": (given or full).get("ppl_per_word"),
    }


def same_measurement(a: dict, b: dict) -> bool:
    """Whether two rows are the same measurement (the later replaces the earlier): data,
    bound, sentences and noise seed agree (a row written before rows had a seed matches any
    seed). Another seed or another number of sentences is another row."""
    if (a["data"], a["bound"], a["sentences"]) != (b["data"], b["bound"], b["sentences"]):
        return False
    seeds = a.get("noise_seed"), b.get("noise_seed")
    return None in seeds or seeds[0] == seeds[1]


def check_same_folder(path: Path, named: Path, folder: Path) -> None:
    """One ``UsageError`` unless the record ``path`` bounds ``folder``: its ``checkpoint``
    (``named``; its ``.old`` copy while a save was interrupted) resolved. A relative one
    (records older than absolute paths) is relative to where compute_elbo.py ran."""
    try:
        named_dir = resolve_checkpoint_dir(named, f"--records {path}: its checkpoint")
    except UsageError:
        named_dir = named.expanduser()
    if named_dir.resolve() == folder.resolve():
        return
    if named.is_absolute():
        raise UsageError(f"--records {path} bounds {named}, not {folder}; pass the records of "
                         "this checkpoint")  # fmt: skip
    raise UsageError(
        f"--records {path} names its checkpoint relative to the folder compute_elbo.py ran in "
        f"({named}), which is not {folder} from here; run this command from that folder, or "
        "bound the checkpoint again (records now name it by its absolute path)"
    )


def add_test_bounds(folder: Path, records: list[Path]) -> dict:
    """Rewrite ``folder``'s ``training_args.json`` and model card with the rows of
    ``records`` (see the module docstring); returns the run record written."""
    run = read_json(folder / TRAINING_ARGS, "the checkpoint's training_args.json")
    if not isinstance(run, dict):
        raise UsageError(f"{folder / TRAINING_ARGS}: not a training record; was it written "
                         "by main.py?")  # fmt: skip
    rows = list(run.get("test") or [])
    for path in records:
        record = read_record(path, "--records")
        check_same_folder(path, Path(record["checkpoint"]), folder)
        row = summary(record)
        rows = [r for r in rows if not same_measurement(r, row)]
        rows.append(row)
    run["test"] = rows
    config = DiffusionConfig.load(folder / SETTINGS)
    card = ar_model_card if config.autoregressive else model_card
    write_json(folder / TRAINING_ARGS, run)
    write_text(folder / CARD, card(config, run, folder.name))
    return run


def build_parser() -> Parser:
    p = Parser(prog="python3 -m evaluation.card", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a checkpoint folder written by main.py")
    p.add_argument("--records", nargs="+", required=True,
                   help="compute_elbo.py --json records of that folder")  # fmt: skip
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    folder = resolve_checkpoint_dir(args.checkpoint)
    records = [Path(r) for r in args.records]
    check_outputs_apart({"the card": folder / CARD, "training_args.json": folder / TRAINING_ARGS},
                        {f"--records {r}": r for r in records})  # fmt: skip
    run = add_test_bounds(folder, records)
    print(f"wrote {folder / CARD} and {folder / TRAINING_ARGS}: {len(run['test'])} test rows")
    return run


if __name__ == "__main__":
    main()
