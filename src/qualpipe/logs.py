"""structlog set-up: human console lines by default, JSON lines with ``--log-json``.

Logs carry ids, counts and timings, never transcript text. As a second line of defence,
a processor replaces the values of keys that typically hold text (``text``, ``quote``,
``value``, ...) with ``"<redacted>"`` whoever logs them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

#: Event keys whose values are never written to a log.
REDACTED_KEYS = frozenset(
    {"text", "span_text", "quote", "value", "original", "content", "replacement_of", "segment_text"}
)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in REDACTED_KEYS & event.keys():
        event[key] = "<redacted>"
    return event


def configure(json: bool = False, level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog for the CLI (call once per process)."""
    renderer: Any
    if json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=(stream or sys.stderr).isatty())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )
