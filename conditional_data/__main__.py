"""``python3 -m conditional_data TASK`` prints the task's DiffuSeq folder name (for
run_condition.sh), so the task → folder map lives only in ``tasks.py``."""

import sys

from common.errors import UsageError
from conditional_data.tasks import get_task

if __name__ == "__main__":
    try:
        print(get_task(sys.argv[1] if len(sys.argv) > 1 else "", "task").folder)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
