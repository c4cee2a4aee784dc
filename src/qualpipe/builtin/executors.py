"""Built-in plugin: the ``local`` executor."""

from __future__ import annotations

from collections.abc import Callable

from qualpipe import hookimpl
from qualpipe.executors.base import ExecutorFactory
from qualpipe.executors.local import LocalExecutor


@hookimpl
def qualpipe_register_executors(register: Callable[[str, ExecutorFactory], None]) -> None:
    register("local", LocalExecutor)
