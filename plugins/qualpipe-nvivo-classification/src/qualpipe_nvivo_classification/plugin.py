"""The ``nvivo-classification`` export format: an NVivo case classification sheet.

NVivo's *Import Classification Sheet* reads a table whose first row holds the attribute
names and whose first column holds the case names. This exporter writes one for the
participants of a run:

- one row per participant: the case name is the participant id (a document without a
  participant is its own case, named by its ``doc_id``), rows sorted by case name;
- one column per participant attribute from the participants manifest (role, gender,
  age band, municipality, pair, ...); a participant
  without a value for an attribute gets an empty cell (NVivo: *Unassigned*);
- one column per theme (``Theme: <name>``) when the pipeline has the ``themes`` and
  ``theme_assignments`` datasets: 1 if at least one of the participant's segments is
  assigned the theme, else 0. Proposals awaiting review are not themes yet and are left
  out. Two themes of the same name are told apart by their parent's name
  (``Theme: Talking / Other``), then by their id.

The file is ``classification.xlsx`` (sheet ``Classification``) when openpyxl is
installed, otherwise ``classification.csv`` in UTF-8 with a byte order mark, so that
NVivo and Excel read å, ä and ö correctly. Options (``options: {nvivo-classification:
{...}}``): ``format`` (``auto``, ``xlsx`` or ``csv``), ``case_header`` (the first
header cell, default ``Case``), ``theme_prefix`` (default ``"Theme: "``) and
``levels`` (theme levels to include, default all).
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualpipe import QualpipeError, hookimpl
from qualpipe.exporters import ExportBundle, Exporter

__all__ = [
    "EXPORTER",
    "NAME",
    "Sheet",
    "build_sheet",
    "export",
    "qualpipe_register_exporters",
]

NAME = "nvivo-classification"
FORMATS = ("auto", "xlsx", "csv")
SHEET_TITLE = "Classification"
DEFAULT_CASE_HEADER = "Case"
DEFAULT_THEME_PREFIX = "Theme: "


@dataclass
class Sheet:
    """The classification sheet: a header row and one row per case."""

    header: list[str]
    rows: list[list[str | int]]


def _attributes(value: Any) -> list[tuple[str, str]]:
    """A map column as ``(key, value)`` pairs, whatever form Arrow gives it in."""
    if not value:
        return []
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else value
    return [(str(k), "" if v is None else str(v)) for k, v in items]


def _theme_headers(themes: list[dict[str, Any]], prefix: str) -> list[str]:
    names = {str(t["theme_id"]): str(t["name"]) for t in themes}
    plain = [prefix + str(t["name"]) for t in themes]
    headers = []
    for theme, header in zip(themes, plain, strict=True):
        if plain.count(header) > 1 and theme.get("parent_id") in names:
            header = f"{prefix}{names[str(theme['parent_id'])]} / {theme['name']}"
        headers.append(header)
    return [
        f"{h} [{t['theme_id']}]" if headers.count(h) > 1 else h
        for h, t in zip(headers, themes, strict=True)
    ]


def build_sheet(bundle: ExportBundle) -> Sheet:
    """The classification sheet for the datasets of ``bundle``."""
    options = bundle.options
    prefix = str(options.get("theme_prefix", DEFAULT_THEME_PREFIX))
    levels = options.get("levels")

    attribute_names: list[str] = []
    cases: dict[str, dict[str, str]] = {}
    case_of_doc: dict[str, str] = {}
    for doc in bundle.rows("documents"):
        case = str(doc.get("participant_id") or doc["doc_id"])
        case_of_doc[str(doc["doc_id"])] = case
        values = cases.setdefault(case, {})
        for key, value in _attributes(doc.get("attributes")):
            if key not in attribute_names:
                attribute_names.append(key)
            if value and not values.get(key):
                values[key] = value  # first non-empty value among the case's documents

    themes: list[dict[str, Any]] = []
    has_theme: dict[str, set[str]] = {}
    if bundle.table("themes") is not None and bundle.table("theme_assignments") is not None:
        themes = [
            t
            for t in bundle.rows("themes")
            if not t.get("proposal") and (levels is None or t.get("level") in levels)
        ]
        case_of_segment = {
            str(s["segment_id"]): str(s["participant_id"])
            for s in bundle.rows("segments")
            if s.get("participant_id")
        }
        for a in bundle.rows("theme_assignments"):
            owner = case_of_segment.get(str(a["segment_id"])) or case_of_doc.get(str(a["doc_id"]))
            if owner is not None:
                has_theme.setdefault(owner, set()).add(str(a["theme_id"]))

    theme_headers = _theme_headers(themes, prefix)
    case_header = str(options.get("case_header", DEFAULT_CASE_HEADER))
    header = [case_header, *attribute_names, *theme_headers]
    clashes = sorted({h for h in header if header.count(h) > 1})
    if clashes:
        raise QualpipeError(
            f"{NAME}: column name(s) {', '.join(map(repr, clashes))} occur twice; NVivo needs "
            "unique attribute names (set options: {nvivo-classification: {theme_prefix: ...}})"
        )
    rows: list[list[str | int]] = []
    for case in sorted(cases):
        values = cases[case]
        found = has_theme.get(case, set())
        rows.append(
            [
                case,
                *(values.get(name, "") for name in attribute_names),
                *(1 if str(t["theme_id"]) in found else 0 for t in themes),
            ]
        )
    return Sheet(header, rows)


def _write_csv(sheet: Sheet, path: Path) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(sheet.header)
        writer.writerows(sheet.rows)


def _write_xlsx(sheet: Sheet, path: Path, openpyxl: Any) -> None:
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet(SHEET_TITLE)
    ws.freeze_panes = "B2"
    bold = Font(bold=True)

    def cell(value: str | int, header: bool = False) -> Any:
        c = WriteOnlyCell(ws, value=value)
        if isinstance(value, str) and value.startswith("="):
            c.data_type = "s"  # text, never a formula
        if header:
            c.font = bold
        return c

    ws.append([cell(h, header=True) for h in sheet.header])
    for row in sheet.rows:
        ws.append([cell(v) for v in row])
    wb.save(path)


def _openpyxl() -> Any | None:
    try:
        return importlib.import_module("openpyxl")
    except ImportError:
        return None


def export(bundle: ExportBundle) -> Sequence[Path]:
    """Write ``classification.xlsx`` (or ``.csv``) into ``bundle.out_dir``."""
    fmt = str(bundle.options.get("format", "auto"))
    if fmt not in FORMATS:
        raise QualpipeError(f"{NAME}: format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    sheet = build_sheet(bundle)
    openpyxl = _openpyxl() if fmt != "csv" else None
    if fmt == "xlsx" and openpyxl is None:
        raise QualpipeError(
            f"{NAME}: format xlsx needs openpyxl: pip install 'qualpipe-nvivo-classification[xlsx]'"
        )
    if openpyxl is not None:
        path = bundle.out_dir / "classification.xlsx"
        _write_xlsx(sheet, path, openpyxl)
    else:
        path = bundle.out_dir / "classification.csv"
        _write_csv(sheet, path)
    return [path]


EXPORTER = Exporter(
    NAME,
    export,
    needs=("documents",),
    version="1",
    description="classification.xlsx (or .csv): NVivo case classification sheet, one row "
    "per participant with attributes and theme prevalence (1/0)",
)


@hookimpl
def qualpipe_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(EXPORTER)
