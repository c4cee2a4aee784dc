"""Word processor documents: .docx, .odt, .rtf (placeholder, being written)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from qualpipe.readers import RawDocument, Reader, UnreadableFile


def _todo(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    raise UnreadableFile("reader not written yet")


DOCX = Reader("docx", (".docx",), _todo)
ODT = Reader("odt", (".odt",), _todo)
RTF = Reader("rtf", (".rtf",), _todo)
