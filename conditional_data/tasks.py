"""The seq2seq tasks and the prompt each wraps its source in (as the reference code does)."""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import UsageError

SOURCE = "<src>"


@dataclass(frozen=True)
class Task:
    """``prompt`` holds ``<src>`` once; ``folder`` is the DiffuSeq release's folder name (or
    the folder ``python3 -m conditional_data NAME --write DIR`` writes, for a built task)."""

    name: str
    prompt: str
    folder: str

    @property
    def prefix(self) -> str:
        return self.prompt.split(SOURCE)[0]

    @property
    def suffix(self) -> str:
        return self.prompt.split(SOURCE)[1]

    def format(self, source: str) -> str:
        return self.prefix + source + self.suffix


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("toy", '"<src>" in the passive voice is "', ""),
        Task("qqp", '"<src>" is equal to "', "QQP"),
        Task("QT", " Answer: <src> Question: ", "Quasar-T"),
        Task("wiki_alignment", '"<src>" can be summarized as: ', "wiki_alignment"),
        Task("CC", "<src> - ", "CommonsenseConversation"),
        Task("wiki-keywords", "Keywords: <src>. Sentence: ", "wiki-keywords"),
        Task("wiki-next", "<src> Next sentence: ", "wiki-next"),
    )
}


# Tasks built in the code, needing no --data_dir: the toy grammar's, and wiki-summaries'.
BUILT = ("toy", "wiki-keywords", "wiki-next")


def get_task(name: str, argument: str = "--task") -> Task:
    if name not in TASKS:
        raise UsageError(f"{argument} {name!r} is unknown: choose one of {', '.join(TASKS)}")
    return TASKS[name]
