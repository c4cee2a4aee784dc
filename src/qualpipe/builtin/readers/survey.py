"""Survey exports (.csv, .xlsx): one document per response, one turn per open answer.

Free-text answers exported from REDCap, Qualtrics, Google Forms, Netigate and the like
are read row by row. The ingest parameter ``survey`` says which columns matter::

    survey:
      text_columns: [Q5, Q6]          # required: the open-answer columns (the questions)
      id_column: ResponseId           # default: the row number ("row7")
      participant_column: Record ID   # optional: becomes participant_id
      attribute_columns: [Age, Region]  # optional: become document attributes (strings)
      sheet: Responses                # xlsx only; default: the first sheet
      skip_rows: 0                    # rows above the header (titles)
      skip_after_header: 2            # rows below the header (Qualtrics: 2)

A document's text is its non-empty answers separated by a blank line; each answer is a
turn whose speaker is the column name (the question), role ``participant``. Responses
without any answer are skipped and counted (a note on the file's last document). Column
names are matched case-insensitively. A file without ``text_columns``, or naming columns
the file does not have, is quarantined with the columns it does have, so a stray CSV in
a transcript folder says what to do.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from qualpipe.readers import RawDocument, Reader, Turn, UnreadableFile, require
from qualpipe.transcripts import decode_bytes, normalise

DELIMITERS = (",", ";", "\t")
_SEP_LINE = re.compile(r"sep=(.)\n")
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SHOW_COLUMNS = 40

Row = tuple[int, list[str]]  # (1-based row number in the file, cell texts)


@dataclass(frozen=True)
class SurveyOptions:
    """The ``survey`` ingest parameter, checked."""

    text_columns: tuple[str, ...] = ()
    id_column: str | None = None
    participant_column: str | None = None
    attribute_columns: tuple[str, ...] = ()
    sheet: str | None = None
    skip_rows: int = 0
    skip_after_header: int = 0

    @classmethod
    def parse(cls, params: Mapping[str, Any]) -> SurveyOptions:
        raw = params.get("survey") or {}
        if not isinstance(raw, Mapping):
            raise UnreadableFile(f"survey export: survey: must be a mapping, not {raw!r}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(str(k) for k in raw if k not in known)
        if unknown:
            raise UnreadableFile(
                f"survey export: unknown survey option(s) {', '.join(unknown)} "
                f"(options: {', '.join(sorted(known))})"
            )
        return cls(
            text_columns=_names(raw, "text_columns"),
            id_column=_name(raw, "id_column"),
            participant_column=_name(raw, "participant_column"),
            attribute_columns=_names(raw, "attribute_columns"),
            sheet=_name(raw, "sheet"),
            skip_rows=_count(raw, "skip_rows"),
            skip_after_header=_count(raw, "skip_after_header"),
        )


def _name(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnreadableFile(f"survey export: survey.{key} must be a column name, not {value!r}")
    return str(value)


def _names(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key)
    if value is None:
        return ()
    if isinstance(value, str | int) and not isinstance(value, bool):
        return (str(value),)
    if isinstance(value, Sequence) and all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in value
    ):
        return tuple(str(v) for v in value)
    raise UnreadableFile(f"survey export: survey.{key} must be a list of column names")


def _count(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UnreadableFile(f"survey export: survey.{key} must be a whole number >= 0")
    return value


def _clean_name(name: str) -> str:
    return " ".join(normalise(name).split())


def _key(name: str) -> str:
    return _clean_name(name).casefold()


def _is_blank(cells: Sequence[str]) -> bool:
    return not any(c.strip() for c in cells)


def _found(header: Sequence[str]) -> str:
    names = [h for h in header if h]
    shown = ", ".join(names[:_SHOW_COLUMNS])
    if len(names) > _SHOW_COLUMNS:
        shown += f", ... ({len(names) - _SHOW_COLUMNS} more)"
    return f"found columns: {shown or 'none'}"


@dataclass(frozen=True)
class _Columns:
    """Positions of the columns named in the options."""

    text: list[tuple[int, str]]
    id: int | None
    participant: int | None
    attributes: list[tuple[int, str]]


def _resolve(header: list[str], opts: SurveyOptions) -> _Columns:
    if not opts.text_columns:
        raise UnreadableFile(
            f"survey export: set survey.text_columns to the open-answer columns ({_found(header)})"
        )
    exact: dict[str, list[int]] = {}
    folded: dict[str, list[int]] = {}
    for i, h in enumerate(header):
        if h:
            exact.setdefault(h, []).append(i)
            folded.setdefault(h.casefold(), []).append(i)
    missing: dict[str, list[str]] = {}

    def find(name: str, option: str) -> int | None:
        clean = _clean_name(name)
        hits = exact.get(clean) or folded.get(clean.casefold())
        if not hits:
            missing.setdefault(option, []).append(name)
            return None
        if len(hits) > 1:
            raise UnreadableFile(
                f"survey export: survey.{option}: column {name!r} appears {len(hits)} times "
                "in the header; rename the columns so each name is unique"
            )
        return hits[0]

    text: list[tuple[int, str]] = []
    for name in opts.text_columns:
        at = find(name, "text_columns")
        if at is not None and all(at != j for j, _ in text):
            text.append((at, header[at]))
    ident = find(opts.id_column, "id_column") if opts.id_column else None
    person = (
        find(opts.participant_column, "participant_column") if opts.participant_column else None
    )
    attrs: list[tuple[int, str]] = []
    for name in opts.attribute_columns:
        at = find(name, "attribute_columns")
        if at is not None:
            attrs.append((at, header[at]))
    if missing:
        which = "; ".join(
            f"survey.{option} {', '.join(repr(n) for n in names)}"
            for option, names in missing.items()
        )
        raise UnreadableFile(f"survey export: no such column(s): {which} ({_found(header)})")
    return _Columns(text, ident, person, attrs)


def _cell(cells: list[str], i: int | None) -> str:
    if i is None or i >= len(cells):
        return ""
    return normalise(cells[i]).strip()


def documents(
    rows: Iterable[Row],
    opts: SurveyOptions,
    encoding: str | None = None,
    notes: Sequence[str] = (),
) -> Iterator[RawDocument]:
    """Turn rows of a survey table into documents, one at a time."""
    it = iter(rows)
    for _ in islice(it, opts.skip_rows):
        pass
    header_row = next((r for r in it if not _is_blank(r[1])), None)
    if header_row is None:
        raise UnreadableFile(
            "survey export: no header row"
            + (f" after skipping {opts.skip_rows} row(s)" if opts.skip_rows else "")
        )
    header = [_clean_name(h) for h in header_row[1]]
    cols = _resolve(header, opts)
    for _ in islice(it, opts.skip_after_header):
        pass
    seen: dict[str, int] = {}
    skipped = 0
    pending: RawDocument | None = None
    first_notes = list(notes)
    for number, cells in it:
        if _is_blank(cells):
            continue
        pieces: list[str] = []
        turns: list[Turn] = []
        pos = 0
        for i, question in cols.text:
            answer = _cell(cells, i)
            if not answer:
                continue
            if pieces:
                pos += 2  # the "\n\n" between answers
            pieces.append(answer)
            turns.append(Turn(question, pos, pos + len(answer), role="participant"))
            pos += len(answer)
        if not pieces:
            skipped += 1
            continue
        if cols.id is not None:
            key = _cell(cells, cols.id)
            if not key:
                raise UnreadableFile(
                    f"survey export: row {number} has no response id in column "
                    f"{header[cols.id]!r} (survey.id_column)"
                )
        else:
            key = f"row{number}"
        if key in seen:
            raise UnreadableFile(
                f"survey export: response id {key!r} of column {header[cols.id or 0]!r} is on "
                f"rows {seen[key]} and {number}; survey.id_column must name a unique id"
            )
        seen[key] = number
        doc = RawDocument(
            text="\n\n".join(pieces),
            turns=turns,
            encoding=encoding,
            key=key,
            participant_id=_cell(cells, cols.participant) or None,
            attributes={name: _cell(cells, i) for i, name in cols.attributes},
            notes=first_notes,
        )
        first_notes = []
        if pending is not None:
            yield pending
        pending = doc
    if pending is None:
        names = ", ".join(repr(q) for _, q in cols.text)
        raise UnreadableFile(
            f"survey export: no non-empty answers in columns {names} "
            f"({skipped} response row(s) read)"
        )
    if skipped:
        pending.notes = [
            *pending.notes,
            f"survey export: {skipped} of {len(seen) + skipped} response(s) had no answer "
            "in the text columns and were skipped",
        ]
    yield pending


# -- CSV --------------------------------------------------------------------------------


def _score(text: str, delimiter: str, skip_rows: int) -> tuple[bool, float, int]:
    """How well ``delimiter`` splits the header and the first rows into equal columns."""
    try:
        records = list(
            islice(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), skip_rows + 51)
        )
    except csv.Error:
        return (False, 0.0, 0)
    body = [r for r in records[skip_rows:] if not _is_blank(r)]
    if not body:
        return (False, 0.0, 0)
    width = len(body[0])
    rest = body[1:]
    same = sum(len(r) == width for r in rest) / len(rest) if rest else 1.0
    return (width > 1, same, width)


def sniff_delimiter(text: str, skip_rows: int = 0) -> str:
    """The delimiter among comma, semicolon and tab that gives consistent columns."""
    return max(DELIMITERS, key=lambda d: _score(text, d, skip_rows))


def _csv_rows(text: str, delimiter: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise UnreadableFile(f"malformed CSV after row {number}: {exc}") from None
        number += 1
        yield number, cells


def read_csv(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    opts = SurveyOptions.parse(options)
    raw, encoding, notes = decode_bytes(path.read_bytes())
    text = normalise(raw)
    m = _SEP_LINE.match(text)  # Excel's "sep=;" first line
    if m and m.group(1) in DELIMITERS:
        delimiter, text = m.group(1), text[m.end() :]
    else:
        delimiter = sniff_delimiter(text, opts.skip_rows)
    yield from documents(_csv_rows(text, delimiter), opts, encoding, notes)


# -- XLSX -------------------------------------------------------------------------------


def cell_text(value: Any) -> str:
    """A spreadsheet value as text: integers without ``.0``, dates in ISO format."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else f"{value:.15g}"
    if isinstance(value, dt.datetime):
        if value.time() == dt.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return str(value)


_BAD_XLSX = "not a valid .xlsx workbook (corrupt or not Excel)"


def _xlsx_rows(sheet: Any) -> Iterator[Row]:
    rows = sheet.iter_rows(values_only=True)
    number = 0
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # a damaged sheet fails while it is being parsed
            raise UnreadableFile(f"{_BAD_XLSX}: {type(exc).__name__} in row {number + 1}") from None
        number += 1
        yield number, [cell_text(v) for v in values]


def read_xlsx(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    opts = SurveyOptions.parse(options)
    with path.open("rb") as f:
        magic = f.read(8)
    if not magic:
        raise UnreadableFile("empty file")
    if magic == _OLE2:
        raise UnreadableFile(
            "password-protected (encrypted) or legacy .xls workbook; "
            "remove the password or save as .xlsx"
        )
    if not magic.startswith(b"PK"):
        raise UnreadableFile(_BAD_XLSX)
    openpyxl = require("openpyxl", "xlsx")
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception:
        raise UnreadableFile(_BAD_XLSX) from None
    try:
        sheets = list(wb.worksheets)
        if not sheets:
            raise UnreadableFile("workbook has no worksheets")
        if opts.sheet is None:
            sheet = sheets[0]
        else:
            wanted = opts.sheet.strip().casefold()
            sheet = next((s for s in sheets if str(s.title).strip().casefold() == wanted), None)
            if sheet is None:
                raise UnreadableFile(
                    f"survey export: no sheet {opts.sheet!r} (sheets: "
                    f"{', '.join(str(s.title) for s in sheets)})"
                )
        # Some writers record a wrong sheet size; read the rows that are really there.
        sheet.reset_dimensions()
        yield from documents(_xlsx_rows(sheet), opts)
    finally:
        wb.close()


CSV = Reader(
    "survey-csv",
    (".csv",),
    read_csv,
    "survey export as CSV: one document per response, one turn per open answer "
    "(set survey.text_columns); comma, semicolon or tab separated, any encoding",
)
XLSX = Reader(
    "survey-xlsx",
    (".xlsx", ".xlsm"),
    read_xlsx,
    "survey export as Excel workbook: one document per response, one turn per open "
    "answer (set survey.text_columns, optionally survey.sheet)",
)
