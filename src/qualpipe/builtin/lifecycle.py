"""Built-in plugin: logging and timing around runs and stages (a hook-wrapper example).

Log lines carry ids, counts and timings only: never transcript text.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import Any

import structlog

from qualpipe import hookimpl
from qualpipe.runner import RunContext, RunSummary, StageRun

log = structlog.get_logger("qualpipe")


@hookimpl(wrapper=True)
def qualpipe_run_pipeline(run: RunContext) -> Generator[None, RunSummary, RunSummary]:
    t0 = time.perf_counter()
    with structlog.contextvars.bound_contextvars(pipeline=run.pipeline.name):
        log.info("run started", workdir=str(run.workdir), stages=len(run.stages))
        try:
            summary = yield
        except BaseException as exc:
            log.error(
                "run failed", error=type(exc).__name__, seconds=round(time.perf_counter() - t0, 3)
            )
            raise
        log.info(
            "run finished",
            ran=len(summary.ran),
            skipped=len(summary.skipped),
            quarantined=summary.quarantined,
            seconds=round(time.perf_counter() - t0, 3),
        )
        return summary


@hookimpl(wrapper=True)
def qualpipe_run_stage(stage: StageRun) -> Generator[None, dict[str, Any], dict[str, Any]]:
    t0 = time.perf_counter()
    with structlog.contextvars.bound_contextvars(stage=stage.id):
        log.info("stage started", uses=stage.type.name, plugin=stage.plugin, reason=stage.reason)
        try:
            manifest = yield
        except BaseException as exc:
            log.error(
                "stage failed", error=type(exc).__name__, seconds=round(time.perf_counter() - t0, 3)
            )
            raise
        rows = {name: out["rows"] for name, out in manifest.get("outputs", {}).items()}
        log.info("stage finished", rows=rows, seconds=round(time.perf_counter() - t0, 3))
        return manifest
