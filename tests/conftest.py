"""Shared test set-up. The qualpipe.testing fixtures come from the pytest11 entry point."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests never see the developer's plugin allow/block lists."""
    monkeypatch.delenv("QUALPIPE_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("QUALPIPE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("QUALPIPE_DEBUG", raising=False)
    yield


def builtin_stage_types() -> str:
    """The installed built-in stage type names, as error messages list them."""
    from qualpipe.plugins import create_manager

    types = create_manager().registry.stage_types
    return ", ".join(sorted(n for n, (_, info) in types.items() if info.source == "builtin"))


#: A two-turn interview; format with n (participant number) and topic.
TRANSCRIPT = """\
Interviewer: How was the support this week?

P{n}: We went to the shop together and talked about {topic}. It helped a lot.

Interviewer: Anything else?

P{n}: She listened to me, I felt seen.
"""
