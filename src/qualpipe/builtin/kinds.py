"""Built-in plugin: the core dataset kinds (documents, segments, codings, ...)."""

from __future__ import annotations

from collections.abc import Callable

from qualpipe import DatasetKind, hookimpl
from qualpipe.schemas import CORE_KINDS


@hookimpl
def qualpipe_register_dataset_kinds(register: Callable[[DatasetKind], None]) -> None:
    for kind in CORE_KINDS:
        register(kind)
