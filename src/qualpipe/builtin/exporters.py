"""Built-in plugin: export formats (REFI-QDA .qdpx/.qdc, HTML/DOCX reports, tables)."""

from __future__ import annotations

from collections.abc import Callable

from qualpipe import hookimpl
from qualpipe.export.refi import QDC, QDPX
from qualpipe.export.report import DOCX, HTML
from qualpipe.export.tables import CSV, PARQUET, XLSX
from qualpipe.exporters import Exporter


@hookimpl
def qualpipe_register_exporters(register: Callable[[Exporter], None]) -> None:
    for exporter in (QDPX, QDC, HTML, DOCX, XLSX, CSV, PARQUET):
        register(exporter)
