"""The registry: names, heads that match the model hub, clear errors for unknown names."""

from __future__ import annotations

import pytest

from greenprune.errors import GreenpruneError
from greenprune.models import TASK_HEADS
from greenprune.tasks import TASKS, get_task


def test_every_task_has_matching_head_and_metrics():
    assert set(TASKS) == {"defect", "clone", "summarize", "generate", "perplexity"}
    for name, task in TASKS.items():
        assert task.head == TASK_HEADS[name]
        assert task.metrics and task.description


def test_unknown_task_lists_known_ones():
    with pytest.raises(GreenpruneError, match="unknown task 'bugs'; known tasks: defect, clone"):
        get_task("bugs")
