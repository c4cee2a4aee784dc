"""Plain-text transcripts (.txt, .md): encoding detected and reported, never guessed silently."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from qualpipe.readers import RawDocument, Reader
from qualpipe.transcripts import decode_bytes, normalise


def read_text(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    text, encoding, notes = decode_bytes(path.read_bytes())
    yield RawDocument(text=normalise(text), encoding=encoding, notes=notes)


TEXT = Reader(
    "text",
    (".txt", ".md", ".text", ".markdown"),
    read_text,
    "plain text: UTF-8 (with or without BOM), UTF-16/32 with BOM, UTF-16 without BOM; "
    "other bytes decoded as Windows-1252 and reported",
)
