"""Built-in plugin: the default implementations of the run hooks.

Plugins wrap these with ``@hookimpl(wrapper=True)``; a plugin could also replace them
(``tryfirst=True`` returning a result), e.g. to dry-run or to dispatch elsewhere.
"""

from __future__ import annotations

from typing import Any

from qualpipe import hookimpl
from qualpipe.runner import RunContext, RunSummary, StageRun, execute_pipeline, execute_stage


@hookimpl(trylast=True)
def qualpipe_run_pipeline(run: RunContext) -> RunSummary:
    return execute_pipeline(run)


@hookimpl(trylast=True)
def qualpipe_run_stage(stage: StageRun) -> dict[str, Any]:
    return execute_stage(stage)
