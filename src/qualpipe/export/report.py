"""Export formats (placeholder while being written)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qualpipe.exporters import ExportBundle, Exporter


def _todo(bundle: ExportBundle) -> Sequence[Path]:
    raise NotImplementedError


HTML = Exporter("html", _todo)
DOCX = Exporter("docx", _todo)
