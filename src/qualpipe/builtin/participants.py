"""The participants manifest: which file belongs to which participant, with attributes.

A CSV (UTF-8, comma or semicolon separated) or XLSX table with a ``file`` column (path
relative to the manifest), a ``participant`` column, and any other columns as
attributes (role, gender, age band, municipality, pair, interview date, language, ...).
Column names are matched case-insensitively; values are kept as strings.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from qualpipe.builtin.readers.survey import cell_text
from qualpipe.errors import PipelineError
from qualpipe.readers import MissingDependency, require


@dataclass
class Participants:
    """Manifest rows keyed by the resolved path of the file they describe."""

    path: Path
    rows: dict[str, dict[str, str]] = field(default_factory=dict)

    def lookup(self, file: Path) -> dict[str, str] | None:
        return self.rows.get(str(file.resolve()))

    def unmatched(self, seen: set[str]) -> list[str]:
        base = self.path.parent.resolve()
        return sorted(
            str(Path(k).relative_to(base)) if Path(k).is_relative_to(base) else k
            for k in self.rows
            if k not in seen
        )


def _read_table(path: Path) -> list[list[str]]:
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        try:
            openpyxl = require("openpyxl", "xlsx")
        except MissingDependency as exc:
            raise PipelineError(f"participants manifest {str(path)!r} {exc}") from None
        try:
            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:
            raise PipelineError(
                f"participants manifest {str(path)!r} is not a readable .xlsx workbook "
                f"({type(exc).__name__}); re-save it from Excel or as CSV"
            ) from None
        sheet = wb.worksheets[0]
        rows = [[cell_text(v).strip() for v in row] for row in sheet.iter_rows(values_only=True)]
        wb.close()
        return rows
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise PipelineError(
            f"participants manifest {str(path)!r} is not UTF-8; save it as 'CSV UTF-8'"
        ) from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    # a StringIO, not splitlines(): quoted values may span lines
    return [[c.strip() for c in row] for row in csv.reader(io.StringIO(text, newline=""), dialect)]


def read_participants(path: Path) -> Participants:
    """Read and check a manifest; raise PipelineError naming the file and the problem."""
    if not path.is_file():
        raise PipelineError(f"participants manifest {str(path)!r} not found; check manifest:")
    # (line number, cells) of the non-blank rows: errors name the row as the file has it
    rows = [(n, r) for n, r in enumerate(_read_table(path), start=1) if any(r)]
    if not rows:
        raise PipelineError(f"participants manifest {str(path)!r} is empty")
    # 'file' and 'participant' are matched case-insensitively; attributes keep their names
    header = [h.strip() for h in rows[0][1]]
    header = [h.lower() if h.lower() in ("file", "participant") else h for h in header]
    for required in ("file", "participant"):
        if required not in header:
            raise PipelineError(
                f"participants manifest {str(path)!r} needs a {required!r} column "
                f"(found: {', '.join(h for h in header if h) or 'none'})"
            )
    named = [h for h in header if h]  # blank header cells (Excel padding) are ignored
    if len(set(named)) != len(named):
        dup = sorted({h for h in named if named.count(h) > 1})
        raise PipelineError(f"participants manifest {str(path)!r}: duplicate column(s) {dup}")
    out = Participants(path)
    for lineno, row in rows[1:]:
        values = dict(zip(header, row + [""] * (len(header) - len(row)), strict=False))
        rel = values.pop("file")
        if not rel:
            raise PipelineError(f"{path}:{lineno}: empty 'file' value; every row names a file")
        key = str((path.parent / rel).resolve())
        if key in out.rows:
            raise PipelineError(f"{path}:{lineno}: file {rel!r} is listed twice")
        out.rows[key] = {k: v for k, v in values.items() if k}
    return out
