"""Built-in plugin: file readers for ``ingest``, one module per family of formats.

Heavy libraries are imported inside the read functions, so a missing optional
dependency only affects files of that format (they are quarantined with an
"install qualpipe[extra]" reason).
"""

from __future__ import annotations

from collections.abc import Callable

from qualpipe import hookimpl
from qualpipe.builtin.readers.office import DOCX, ODT, RTF
from qualpipe.builtin.readers.pdf import PDF
from qualpipe.builtin.readers.subtitles import SRT, VTT
from qualpipe.builtin.readers.survey import CSV, XLSX
from qualpipe.builtin.readers.text import TEXT
from qualpipe.readers import Reader

READERS: tuple[Reader, ...] = (TEXT, VTT, SRT, DOCX, ODT, RTF, PDF, CSV, XLSX)


@hookimpl
def qualpipe_register_readers(register: Callable[[Reader], None]) -> None:
    for reader in READERS:
        register(reader)
