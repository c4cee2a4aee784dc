"""Progress reporting: rich bars on a terminal, periodic log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

log = structlog.get_logger("qualpipe")


class Reporter:
    """Reports progress of each stage; the default logs a line every ``interval`` s."""

    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval

    @contextmanager
    def stage(self, stage_id: str, total: int | None) -> Iterator[Callable[[int], None]]:
        done = 0
        last = time.monotonic()

        def advance(n: int) -> None:
            nonlocal done, last
            done += n
            now = time.monotonic()
            if now - last >= self.interval:
                last = now
                log.info("stage progress", stage=stage_id, done=done, total=total)

        yield advance


class RichReporter(Reporter):
    """A rich progress bar per stage (only when stderr is a terminal)."""

    @contextmanager
    def stage(self, stage_id: str, total: int | None) -> Iterator[Callable[[int], None]]:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            f"[bold]{stage_id}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as bar:
            task = bar.add_task(stage_id, total=total)
            yield lambda n: bar.advance(task, n)


def make_reporter(progress: bool | None) -> Reporter:
    """``progress=None`` picks rich bars when stderr is a terminal."""
    if progress is None:
        progress = sys.stderr.isatty()
    return RichReporter() if progress else Reporter()
