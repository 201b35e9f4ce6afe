"""``python3 -m conditional_data TASK`` prints the task's DiffuSeq folder name (for
run_condition.sh), so the task → folder map lives only in ``tasks.py``."""

from common.cli import Parser
from common.errors import exit_on_usage_error
from conditional_data.tasks import get_task


def build_parser() -> Parser:
    p = Parser(prog="python3 -m conditional_data", description=__doc__)
    p.add_argument("task", help="a task name (conditional_data.TASKS)")
    return p


@exit_on_usage_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    print(get_task(args.task, "task").folder)


if __name__ == "__main__":
    main()
