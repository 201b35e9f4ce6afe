"""Are two demo runs the same numbers? For a refactor that must not change behaviour: run
``OUT=A bash run.sh demo`` on the old code and ``OUT=B bash run.sh demo`` on the new, then

python3 -m tools.same_numbers A B [--ignore FIELD ...]

compares the training log, the bound, the metrics and the sampling frames field by field
(timings and the run folder's own path left out, and any --ignore field: one a change added
on purpose), and the samples and the weights byte for byte. Exit status 0 when all agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import read_json

TIMINGS = ("elapsed_s", "tokens_per_s", "wall_time_s", "tokens_per_second")
FIELDS = ("elbo_validation.json", "metrics.json", "samples.txt.process.json")
BYTES = ("samples.txt", "best/model.safetensors", "last/model.safetensors")


def cleaned(value: object, drop: set[str], folders: tuple[str, str]) -> object:
    """``value`` without the ``drop`` fields, with either run folder's path written ``OUT``."""
    if isinstance(value, dict):
        return {k: cleaned(v, drop, folders) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [cleaned(v, drop, folders) for v in value]
    if isinstance(value, str):
        for folder in folders:
            value = value.replace(folder, "OUT")
    return value


def compare(a: Path, b: Path, ignore: tuple[str, ...] = ()) -> dict[str, bool]:
    """{file: whether the two runs agree on it}."""
    drop, folders = {*TIMINGS, *ignore}, (str(a), str(b))

    def log(run: Path) -> list:
        lines = (run / "train_log.jsonl").read_text(encoding="utf-8").splitlines()
        return [cleaned(json.loads(line), drop, folders) for line in lines]

    out = {"train_log.jsonl": log(a) == log(b)}
    for name in FIELDS:
        out[name] = cleaned(read_json(a / name), drop, folders) == cleaned(
            read_json(b / name), drop, folders
        )
    for name in BYTES:
        out[f"{name} (bytes)"] = (a / name).read_bytes() == (b / name).read_bytes()
    return out


def build_parser() -> Parser:
    p = Parser(prog="python3 -m tools.same_numbers", description=__doc__.splitlines()[0])
    p.add_argument("a", type=Path, help="the first demo's OUT folder")
    p.add_argument("b", type=Path, help="the second demo's OUT folder")
    p.flag("--ignore", nargs="*", default=[], help="fields a change added on purpose")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> dict[str, bool]:
    args = build_parser().parse_args(argv)
    for folder in (args.a, args.b):
        if not (folder / "train_log.jsonl").is_file():
            raise UsageError(f"{folder}: no train_log.jsonl; pass the OUT of bash run.sh demo")
    result = compare(args.a, args.b, tuple(args.ignore))
    for name, same in result.items():
        print(f"{name:32} {'identical' if same else 'DIFFERENT'}")
    if not all(result.values()):
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
