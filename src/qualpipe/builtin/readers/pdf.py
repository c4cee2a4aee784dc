"""PDF text layer (placeholder, being written)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from qualpipe.readers import RawDocument, Reader, UnreadableFile


def _todo(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    raise UnreadableFile("reader not written yet")


PDF = Reader("pdf", (".pdf",), _todo)
