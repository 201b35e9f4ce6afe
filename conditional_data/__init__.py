"""Seq2seq data: DiffuSeq-format task folders, their prompts, and the embedded toy task."""

from conditional_data.loading import encode_pairs, encode_sources, load_pairs
from conditional_data.tasks import TASKS, Task, get_task

__all__ = ["TASKS", "Task", "encode_pairs", "encode_sources", "get_task", "load_pairs"]
