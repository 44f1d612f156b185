"""``observed_workflow``: ``DBOS.workflow`` whose runs are counted for ``/metrics``.

Each run of the body in this server counts as a start, and as an end with its outcome
and duration: ``completed`` (it returned; a workflow that records a task's failure on
its instance and returns counts as completed), ``cancelled`` (DBOS cancelled it),
``failed`` (it raised anything else). A workflow recovered after a restart counts again
in the new server, with the duration of its run there.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from dbos import DBOS
from dbos._error import DBOSWorkflowCancelledError  # not exported by the package

from coffer.workflows.runtime import current

__all__ = ["observed_workflow"]

P = ParamSpec("P")
R = TypeVar("R")


def observed_workflow(*, name: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """``DBOS.workflow(name=name)`` around a body that records its runs in
    ``Runtime.metrics``. For synchronous workflow functions only."""

    def decorate(body: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(body)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            metrics = current().metrics
            metrics.workflow_started(name)
            started = time.monotonic()
            outcome = "failed"
            try:
                result = body(*args, **kwargs)
                outcome = "completed"
                return result
            except DBOSWorkflowCancelledError:
                outcome = "cancelled"
                raise
            finally:
                metrics.workflow_finished(name, outcome, time.monotonic() - started)

        workflow: Callable[P, R] = DBOS.workflow(name=name)(run)
        return workflow

    return decorate
