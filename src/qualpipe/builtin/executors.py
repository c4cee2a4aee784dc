"""Built-in plugin: the ``local`` executor, and ``ray`` (needs the ``ray`` extra)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qualpipe import hookimpl
from qualpipe.executors.base import Executor, ExecutorFactory
from qualpipe.executors.local import LocalExecutor


def ray_executor(**options: Any) -> Executor:
    """The ``ray`` executor; imported only when chosen, so ray stays optional."""
    from qualpipe.executors.ray import RayExecutor

    return RayExecutor(**options)


@hookimpl
def qualpipe_register_executors(register: Callable[[str, ExecutorFactory], None]) -> None:
    register("local", LocalExecutor)
    register("ray", ray_executor)
