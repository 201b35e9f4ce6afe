"""``python3 -m conditional_data TASK`` prints the task's DiffuSeq folder name (for
run_condition.sh), so the task → folder map lives only in ``tasks.py``; with ``--write DIR``
a task built in the code (toy, wiki-keywords, wiki-next) is written there as a DiffuSeq folder
(train.jsonl, valid.jsonl, test.jsonl; the same files on every run)."""

import json
from pathlib import Path

import common.stored_help  # noqa: F401 (first: a bare --help prints without loading torch)

# isort: split
from common.checks import check_output_dir
from common.cli import Parser
from common.errors import UsageError, exit_on_usage_error
from common.files import write_text
from conditional_data.loading import load_pairs
from conditional_data.tasks import BUILT, get_task


def build_parser() -> Parser:
    p = Parser(prog="python3 -m conditional_data", description=__doc__)
    p.add_argument("task", help="a task name (conditional_data.TASKS)")
    p.flag("--write", default=None, help="write a built task's folder here (default: print "
           "the folder name)")  # fmt: skip
    return p


def write_folder(task: str, folder: Path) -> dict[str, int]:
    """The three splits of a built task as DiffuSeq jsonl files; returns their sizes."""
    sizes = {}
    for split in ("train", "valid", "test"):
        rows = load_pairs(task, split)
        lines = (json.dumps({"src": s, "trg": t}, ensure_ascii=False)
                 for s, t in zip(rows["src"], rows["trg"], strict=True))  # fmt: skip
        write_text(folder / f"{split}.jsonl", "".join(f"{line}\n" for line in lines))
        sizes[split] = len(rows)
    return sizes


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    task = get_task(args.task, "task")
    if args.write is None:
        print(task.folder)
        return
    if task.name not in BUILT:
        raise UsageError(
            f"--write: task {task.name} is read from DiffuSeq's release, not built here; "
            f"choose one of {', '.join(BUILT)}"
        )
    check_output_dir(args.write, "--write")
    Path(args.write).mkdir(parents=True, exist_ok=True)
    sizes = write_folder(task.name, Path(args.write))
    print(f"wrote {args.write}: " + ", ".join(f"{k} {v:,} pairs" for k, v in sizes.items()))


if __name__ == "__main__":
    main()
