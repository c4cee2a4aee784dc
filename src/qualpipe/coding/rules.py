"""Rule coder (placeholder while being written)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from qualpipe.coding.coders import Coder, CoderContext, Suggestion


def code_rules(segments: Sequence[Mapping[str, Any]], ctx: CoderContext) -> Iterator[Suggestion]:
    return iter(())


RULES = Coder("rules", code_rules)
