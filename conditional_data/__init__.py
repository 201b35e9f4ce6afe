"""Seq2seq data: DiffuSeq-format task folders, their prompts, and the embedded toy task."""

import common.stored_help  # noqa: F401 (first: python3 -m conditional_data --help without datasets)

# isort: split
from conditional_data.loading import encode_pairs, encode_sources, load_pairs
from conditional_data.tasks import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "encode_pairs", "encode_sources", "get_task", "load_pairs"]
