"""Built-in plugin: the ``rules`` and ``semantic`` coders for the ``code`` stage."""

from __future__ import annotations

from collections.abc import Callable

from qualpipe import hookimpl
from qualpipe.coding.coders import Coder
from qualpipe.coding.rules import RULES
from qualpipe.coding.semantic import SEMANTIC


@hookimpl
def qualpipe_register_coders(register: Callable[[Coder], None]) -> None:
    register(RULES)
    register(SEMANTIC)
