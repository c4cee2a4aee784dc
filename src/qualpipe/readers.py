"""The file-reader API: how ``ingest`` turns one file into one or more documents.

A plugin contributes readers through ``qualpipe_register_readers``::

    from qualpipe import hookimpl
    from qualpipe.readers import RawDocument, Reader, UnreadableFile

    def read_foo(path, options):
        data = path.read_bytes()
        if not data.startswith(b"FOO"):
            raise UnreadableFile("not a FOO file (bad header)")
        yield RawDocument(text=data[3:].decode("utf-8"))

    @hookimpl
    def qualpipe_register_readers(register):
        register(Reader("foo", (".foo",), read_foo, "FOO transcripts"))

A reader yields :class:`RawDocument` objects (a survey export yields one per response).
It raises :class:`UnreadableFile` with a one-line reason for a corrupt, empty, encrypted
or otherwise unreadable file: the file goes to the ``quarantine`` dataset and the batch
goes on. Any other exception is quarantined too, naming the reader. A reader whose
library is not installed raises :class:`MissingDependency` (use :func:`require`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any


class UnreadableFile(Exception):
    """The file cannot be read; ``str(exc)`` is the one-line quarantine reason."""


class MissingDependency(UnreadableFile):
    """The reader's library is not installed."""


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` naming the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"needs {package or module}: pip install 'qualpipe[{extra}]'"
        ) from None


@dataclass
class Turn:
    """A speaker turn: offsets into the document text (code points, end exclusive)."""

    speaker: str | None
    start: int
    end: int
    start_time: float | None = None
    end_time: float | None = None
    role: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "speaker": self.speaker,
            "start": self.start,
            "end": self.end,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "role": self.role,
        }


@dataclass
class RawDocument:
    """What a reader returns for one document.

    ``turns=None`` lets ``ingest`` find speaker turns in the text with the pipeline's
    speaker conventions; a reader that knows the turns (subtitles with voice tags) sets
    them. ``key`` tells documents of one file apart (a survey response id).
    """

    text: str
    turns: list[Turn] | None = None
    encoding: str | None = None
    key: str | None = None
    participant_id: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    language: str | None = None
    notes: list[str] = field(default_factory=list)


ReadFunction = Callable[[Path, Mapping[str, Any]], Iterable[RawDocument]]


@dataclass(frozen=True)
class Reader:
    """A file format ``ingest`` can read.

    ``suffixes`` are matched case-insensitively (``(".docx",)``); ``read(path, options)``
    gets the ingest stage's parameters as ``options``. ``version`` is part of the ingest
    stage's fingerprint: bump it when the reader's output changes.
    """

    name: str
    suffixes: tuple[str, ...]
    read: ReadFunction
    description: str = ""
    version: str = "1"
