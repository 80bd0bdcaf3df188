"""Tasks that judge what pruning keeps: defect, clone, summarize, generate, perplexity.

    task = get_task("defect")
    splits = task.embedded(size=400, seed=0)          # stdlib-built, cached, split by source file
    splits = task.load("path/to/devign")              # official formats
    metrics = task.evaluate(model, tokenizer, splits.test)
    result = task.finetune(model, tokenizer, splits, TrainConfig(epochs=1))
"""

from __future__ import annotations

from greenprune.models.hub import register_task_head
from greenprune.tasks.base import (
    Example,
    FinetuneResult,
    Splits,
    Task,
    TaskDataError,
    TrainConfig,
    UnknownTaskError,
)
from greenprune.tasks.clone import CloneTask
from greenprune.tasks.defect import DefectTask
from greenprune.tasks.generate import GenerateTask
from greenprune.tasks.perplexity import PerplexityTask
from greenprune.tasks.summarize import SummarizeTask

TASKS: dict[str, Task] = {
    t.name: t for t in (DefectTask(), CloneTask(), SummarizeTask(), GenerateTask(), PerplexityTask())
}
for _task in TASKS.values():  # `load_model(task=name)` reads the head from here: each task declares it once
    register_task_head(_task.name, _task.head)
del _task


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name raises UnknownTaskError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}") from None


__all__ = [
    "TASKS", "CloneTask", "DefectTask", "Example", "FinetuneResult", "GenerateTask", "PerplexityTask", "Splits",
    "SummarizeTask", "Task", "TaskDataError", "TrainConfig", "UnknownTaskError", "get_task",
]
