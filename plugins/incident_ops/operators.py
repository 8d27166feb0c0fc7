"""The operators of the `incident_response` DAG: each step calls one task callable with the context.

PythonOperator would do the same, but its module (shared with the virtualenv operators) costs every
task process, and every parse of the DAG file, 35 ms of imports (`packaging`, the package index
hook) before any of our code runs. These build on Airflow's own BaseOperator and BaseBranchOperator,
which the task runner has loaded anyway, and show each step's docstring as its task documentation.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator, BaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def _checked(step: Callable[..., Any]) -> Callable[..., Any]:
    if not callable(step):
        raise TypeError(f"step must be callable, got {type(step).__name__}")
    return step


def _documented(step: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    if "doc_md" not in kwargs and step.__doc__:
        kwargs["doc_md"] = inspect.cleandoc(step.__doc__)
    return kwargs


class IncidentStep(BaseOperator):
    """Run one step of the incident workflow: ``step(**context)``; its return value is the task's XCom.

    :param step: A task callable from ``incident_ops.tasks`` (keyword arguments from the context).
    """

    ui_color = "#e8f1fb"

    def __init__(self, *, step: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(**_documented(_checked(step), kwargs))
        self.step = step

    def execute(self, context: Context) -> Any:
        """Call the step with the task's context."""
        return self.step(**context)


class IncidentBranch(BaseBranchOperator):
    """Choose the next tasks of the workflow: ``step(**context)`` returns the task id(s) to follow.

    :param step: A branch callable from ``incident_ops.tasks``.
    """

    ui_color = "#fdf3d8"

    def __init__(self, *, step: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(**_documented(_checked(step), kwargs))
        self.step = step

    def choose_branch(self, context: Context) -> str | list[str]:
        """Call the step with the task's context; Airflow skips the tasks it did not name."""
        branches: str | list[str] = self.step(**context)
        return branches
