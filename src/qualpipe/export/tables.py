"""Table exporters: Excel workbook, CSV files and Parquet files of the run's datasets.

``xlsx`` writes ``<pipeline>.xlsx`` (openpyxl, streamed): one sheet per available
dataset - themes (prevalence spread into one column per attribute value), quotes,
theme_assignments, codings, segments (anonymised text included), documents (without
the full text: its length instead), cooccurrence, codebook, findings (a summary: counts
per entity type and recogniser, never a value) - and an ``about`` sheet with the run's
provenance. Header rows are bold and frozen; maps and lists are flattened to text;
names are added next to theme and code ids.

``csv`` writes ``csv/<dataset>.csv`` for every available dataset: UTF-8 with a byte
order mark (so Excel shows å, ä, ö), lists, maps and structs as JSON, booleans as
``true``/``false``, nulls as empty fields. Text is written as it is (no formula
escaping), so pandas, R and DuckDB read back exactly the data. Arrow kernels write a
batch at a time (:func:`csv_rows`), byte for byte what ``csv.writer`` writes for the
values of :func:`csv_value`; a column of a type they cannot write exactly (a map with a
key twice, a timestamp) goes through :func:`csv_column`.

``parquet`` writes ``parquet/<dataset>.parquet``: the dataset as it is, one file, with
its schema and the ``qualpipe.kind`` metadata, in row groups of ``ROW_GROUP_BYTES`` at
most (part files merged, large ones cut).

Both stream: memory is bounded by a batch (:data:`BATCH_BYTES`) or a row group, not by
the size of the dataset.
"""

from __future__ import annotations

import csv
import importlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from qualpipe.errors import QualpipeError
from qualpipe.exporters import ExportBundle, Exporter
from qualpipe.store import ROW_GROUP_BYTES, DatasetReader, parquet_file

#: Datasets in the order their sheets and files appear; others follow by name.
ORDER = (
    "themes", "proposals", "quotes", "theme_assignments", "codings", "segments", "documents",
    "cooccurrence", "codebook", "findings",
)  # fmt: skip
XLSX_HINT = "pip install 'qualpipe[xlsx]'"
MAX_ROWS = 1_048_575  # Excel's limit, less the header row
MAX_CELL = 32_767  # Excel's limit of characters in a cell
WIDE_COLUMNS = frozenset({"text", "description", "context", "inclusion", "exclusion"})


def available(bundle: ExportBundle) -> list[str]:
    """Names of the datasets the bundle has, in :data:`ORDER` then alphabetically."""
    names = list(bundle.datasets)
    return [n for n in ORDER if n in names] + sorted(n for n in names if n not in ORDER)


#: Bytes of Arrow data per batch read (long documents come a few at a time).
BATCH_BYTES = 4 * 1024 * 1024


def _batches(reader: DatasetReader) -> Iterator[pa.RecordBatch]:
    for f in reader.files:
        pf = parquet_file(f)
        meta = pf.metadata
        size = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
        per_row = size / meta.num_rows if meta.num_rows else 1
        yield from pf.iter_batches(batch_size=max(1, min(16384, int(BATCH_BYTES / per_row))))


def _full_batches(reader: DatasetReader, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """:func:`_batches` with the small batches of small part files put together up to
    :data:`BATCH_BYTES` (Arrow kernels cost per call: a batch per part file of a few
    hundred rows is slow), every batch of ``schema``."""
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in _batches(reader):
        if not batch.num_rows:
            continue
        if not batch.schema.equals(schema, check_metadata=False):
            batch = pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]
        if pending and size + batch.nbytes > BATCH_BYTES:
            yield _one_batch(pending, schema)
            pending, size = [], 0
        pending.append(batch)
        size += batch.nbytes
    if pending:
        yield _one_batch(pending, schema)


def _one_batch(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    return pa.Table.from_batches(batches, schema).combine_chunks().to_batches()[0]


def _column_batches(reader: DatasetReader, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """Batches of only ``columns`` of every part file (memory bounded by a batch)."""
    for f in reader.files:
        yield from parquet_file(f).iter_batches(batch_size=65536, columns=columns)


def _schema(reader: DatasetReader, name: str) -> pa.Schema | None:
    if reader.files:
        return reader.schema
    from qualpipe.schemas import CORE_KINDS

    for kind in CORE_KINDS:
        if kind.name in (reader.kind, name):
            return kind.arrow_schema
    return None


# -- flattening ----------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A Python value from ``to_pylist`` with maps (lists of pairs) turned into dicts."""
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): _plain(v) for k, v in value}
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _json(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


def csv_value(value: Any, field_type: pa.DataType) -> str:
    """One CSV field: JSON for nested types, ``true``/``false``, empty for null."""
    if value is None:
        return ""
    if pa.types.is_map(field_type):
        return _json(dict(value))
    if pa.types.is_nested(field_type):
        return _json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:  # NaN
        return ""
    return str(value)


def text_value(value: Any) -> Any:
    """A cell value for people: maps as ``k=v; k=v``, lists joined with ``; ``,
    evidence as ``term (start–end)``; scalars unchanged."""
    if value is None:
        return None
    if isinstance(value, list):
        plain = _plain(value)
        if isinstance(plain, dict):
            return "; ".join(f"{k}={v}" for k, v in plain.items())
        return "; ".join(_item_text(v) for v in plain)
    if isinstance(value, dict):
        return "; ".join(f"{k}={v}" for k, v in value.items())
    return value


def _item_text(item: Any) -> str:
    if isinstance(item, dict):
        if "term" in item:
            return f"{item.get('term')} ({item.get('start')}–{item.get('end')})"
        return json.dumps(item, ensure_ascii=False, default=str)
    return str(item)


# -- CSV and Parquet -----------------------------------------------------------------------------


def export_csv(bundle: ExportBundle) -> Sequence[Path]:
    folder = bundle.out_dir / "csv"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name in available(bundle):
        reader = bundle.datasets[name]
        schema = _schema(reader, name)
        if schema is None:
            continue
        path = folder / f"{name}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as fh:
            csv.writer(fh).writerow(schema.names)
            fh.flush()
            out = fh.buffer  # the rows as bytes, after the BOM and the header
            types = [f.type for f in schema]
            for batch in _full_batches(reader, schema):
                out.write(csv_rows(batch, types))
        paths.append(path)
    return paths


def csv_rows(batch: pa.RecordBatch, types: Sequence[pa.DataType]) -> pa.Buffer:
    """The CSV lines of ``batch`` as UTF-8, byte for byte what ``csv.writer`` writes for
    the rows of :func:`csv_value` (minimal quoting, CRLF line ends), made by Arrow kernels
    for a whole column at a time; a column of a type they cannot write exactly goes
    through :func:`csv_column`."""
    cells: list[pa.Array] = []
    for i, field_type in enumerate(types):
        column = batch.column(i)
        try:
            text = _csv_cells(column, field_type)
        except _NotVectorised:
            values = csv_column(column.to_pylist(), field_type)
            text = _quoted(pa.array(values, pa.large_string()))
        if len(types) == 1:  # csv.writer quotes a lone empty field: a row, not a blank line
            text = pc.if_else(pc.equal(text, ""), pa.scalar('""', pa.large_string()), text)
        cells.append(text)
    joined = cells[0] if len(cells) == 1 else _cat(*cells, ",")
    return _data_bytes(_cat(joined, "\r\n", ""))


def _data_bytes(array: pa.Array) -> pa.Buffer:
    """The characters of a large string array without nulls, all of them joined."""
    first, last = array.offset, array.offset + len(array)
    offsets = array.buffers()[1]
    start, end = (int.from_bytes(offsets[8 * i : 8 * i + 8], "little") for i in (first, last))
    return array.buffers()[2].slice(start, end - start)


def _cat(*parts: pa.Array | str) -> pa.Array:
    """Large strings joined element-wise; the last part is the separator."""
    return pc.binary_join_element_wise(
        *(pa.scalar(p, pa.large_string()) if isinstance(p, str) else p for p in parts)
    )


class _NotVectorised(Exception):
    """A column :func:`_csv_cells` cannot write exactly as ``csv_value`` does."""


_NEEDS_QUOTES = '[,"\r\n]'


def _csv_cells(column: pa.Array, field_type: pa.DataType) -> pa.Array:
    """:func:`csv_value` of every value of ``column``, quoted as ``csv.writer`` quotes."""
    if pa.types.is_string(field_type) or pa.types.is_large_string(field_type):
        text = column.cast(pa.large_string())
    elif pa.types.is_integer(field_type):
        return column.cast(pa.large_string()).fill_null("")  # digits and '-' need no quotes
    elif pa.types.is_boolean(field_type):
        return pc.if_else(column, "true", "false").cast(pa.large_string()).fill_null("")
    elif pa.types.is_floating(field_type):
        values = [None if v is None or v != v else repr(v) for v in column.to_pylist()]
        text = pa.array(values, pa.large_string())  # Python's shortest repr, as str()
    elif pa.types.is_map(field_type) or pa.types.is_nested(field_type):
        text = _json_text(column, field_type, top=True)
    else:
        raise _NotVectorised
    return _quoted(text.fill_null(""))


def _quoted(text: pa.Array) -> pa.Array:
    """Fields quoted where ``csv.writer`` (minimal quoting) quotes them."""
    needs = pc.match_substring_regex(text, _NEEDS_QUOTES)
    if not pc.any(needs).as_py():
        return text
    return pc.if_else(needs, _cat('"', pc.replace_substring(text, '"', '""'), '"', ""), text)


#: What ``json.dumps(ensure_ascii=False)`` writes for the characters it escapes.
_JSON_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\f": "\\f", "\n": "\\n",
                 "\r": "\\r", "\t": "\\t"}  # fmt: skip
for _code in range(0x20):
    _JSON_ESCAPES.setdefault(chr(_code), f"\\u{_code:04x}")


def _json_string(column: pa.Array) -> pa.Array:
    """JSON string literals of a string array (nulls stay null)."""
    text = column.cast(pa.large_string())
    if pc.any(pc.match_substring_regex(text, '[\\x00-\\x1f"\\\\]')).as_py():
        for char, escaped in _JSON_ESCAPES.items():  # the backslash first
            if pc.any(pc.match_substring(text, char)).as_py():
                text = pc.replace_substring(text, char, escaped)
    return _cat('"', text, '"', "")


def _json_text(column: pa.Array, field_type: pa.DataType, top: bool = False) -> pa.Array:
    """``json.dumps(value, ensure_ascii=False)`` of every value of a column, as Python's
    encoder writes the ``to_pylist`` values (``csv_value``), null where the value is null.

    Strings, integers, booleans, floats (through Python), lists, structs and, at the top
    only, maps of string keys; anything else raises :class:`_NotVectorised`."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(field_type) or pa.types.is_large_string(field_type):
        return _json_string(column)
    if pa.types.is_integer(field_type):
        return column.cast(pa.large_string())
    if pa.types.is_boolean(field_type):
        return pc.if_else(column, "true", "false").cast(pa.large_string())
    if pa.types.is_floating(field_type):
        return pa.array([None if v is None else _JSON(v) for v in column.to_pylist()],
                        pa.large_string())  # fmt: skip
    if pa.types.is_null(field_type):
        return pa.nulls(len(column), pa.large_string())
    if pa.types.is_map(field_type):
        if not top:  # csv_value makes dicts of the top map only: lists of pairs below
            raise _NotVectorised
        return _json_map(column, field_type)
    if pa.types.is_list(field_type) or pa.types.is_large_list(field_type):
        items = _json_text(pc.list_flatten(column), field_type.value_type).fill_null("null")
        return _json_join(column, items, "[", "]")
    if pa.types.is_struct(field_type):
        names = [field_type.field(i).name for i in range(field_type.num_fields)]
        if len(set(names)) != len(names) or not names:
            raise _NotVectorised  # a dict keeps one of two equal names
        parts = []
        for i, name in enumerate(names):
            value = _json_text(pc.struct_field(column, [i]), field_type.field(i).type)
            parts.append(_cat(_JSON(name) + ": ", value.fill_null("null"), ""))
        body = _cat("{", _cat(*parts, ", "), "}", "")
        return pc.if_else(pc.is_null(column), pa.scalar(None, pa.large_string()), body)
    raise _NotVectorised


def _json_join(
    column: pa.Array, items: pa.Array, opening: str, closing: str, lists: pa.Array | None = None
) -> pa.Array:
    """``opening`` + the items of each list joined with ``, `` + ``closing``; null lists null.

    ``lists``: ``column`` as a list array where it is not one (a map)."""
    lengths = pc.list_value_length(column if lists is None else lists).fill_null(0)
    offsets = pa.concat_arrays(
        [pa.array([0], pa.int64()), pc.cumulative_sum(lengths.cast(pa.int64()))]
    )
    separator = pa.scalar(", ", pa.large_string())
    joined = pc.binary_join(pa.LargeListArray.from_arrays(offsets, items), separator)
    body = _cat(opening, joined, closing, "")
    return pc.if_else(pc.is_null(column), pa.scalar(None, pa.large_string()), body)


def _json_map(column: pa.Array, field_type: pa.MapType) -> pa.Array:
    """A map as ``json.dumps(dict(pairs))``: string keys, no key twice in a map."""
    key_type, item_type = field_type.key_type, field_type.item_type
    if not (pa.types.is_string(key_type) or pa.types.is_large_string(key_type)):
        raise _NotVectorised
    if pa.types.is_map(item_type) or _has_map(item_type):
        raise _NotVectorised  # _plain turns the pairs of inner maps into dicts too
    lists = pa.ListArray.from_arrays(column.offsets, column.values)  # nulls: empty
    entries = pc.list_flatten(lists)
    keys = pc.struct_field(entries, [0]).cast(pa.large_string())
    if len(keys):
        parents = pc.list_parent_indices(lists).cast(pa.large_string())
        if pc.count_distinct(_cat(parents, keys, "\x00")).as_py() != len(keys):
            raise _NotVectorised  # a key twice in one map: dict() keeps the last value
    values = _json_text(pc.struct_field(entries, [1]), item_type).fill_null("null")
    pairs = _cat(_json_string(keys), values, ": ")
    return _json_join(column, pairs, "{", "}", lists)


def csv_column(values: list[Any], field_type: pa.DataType) -> list[str]:
    """:func:`csv_value` for a whole column (the type is looked at once, not per cell)."""
    if pa.types.is_string(field_type) or pa.types.is_large_string(field_type):
        return ["" if v is None else v for v in values]
    if pa.types.is_integer(field_type):
        return ["" if v is None else str(v) for v in values]
    if pa.types.is_nested(field_type) and not _has_map(field_type):
        return ["" if v is None else _JSON(v) for v in values]  # nothing for _plain to do
    return [csv_value(v, field_type) for v in values]


_JSON = json.JSONEncoder(ensure_ascii=False, default=str).encode


def _has_map(field_type: pa.DataType) -> bool:
    if pa.types.is_map(field_type):
        return True
    return any(_has_map(field_type.field(i).type) for i in range(field_type.num_fields))


def _row_groups(reader: DatasetReader, schema: pa.Schema) -> Iterator[pa.Table]:
    """The dataset in tables of :data:`ROW_GROUP_BYTES` at most (one empty table for an
    empty dataset): memory bounded by a row group, whatever the size of the data."""
    pending: list[pa.RecordBatch] = []
    size = 0
    wrote = False
    for batch in _batches(reader):
        if not batch.num_rows:
            continue
        if not batch.schema.equals(schema, check_metadata=False):
            batch = pa.Table.from_batches([batch]).cast(schema).combine_chunks().to_batches()[0]
        if pending and size + batch.nbytes > ROW_GROUP_BYTES:
            yield pa.Table.from_batches(pending, schema)
            pending, size, wrote = [], 0, True
        pending.append(batch)
        size += batch.nbytes
    if pending or not wrote:
        yield pa.Table.from_batches(pending, schema)


def export_parquet(bundle: ExportBundle) -> Sequence[Path]:
    folder = bundle.out_dir / "parquet"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for name in available(bundle):
        reader = bundle.datasets[name]
        schema = _schema(reader, name)
        if schema is None:
            continue
        path = folder / f"{name}.parquet"
        with pq.ParquetWriter(path, schema, compression="zstd") as writer:
            for table in _row_groups(reader, schema):
                writer.write_table(table, row_group_size=max(1, table.num_rows))
        paths.append(path)
    return paths


# -- XLSX ----------------------------------------------------------------------------------------


class _Sheet:
    """A streamed (write-only) sheet: bold frozen header, widths from the first rows."""

    def __init__(self, xl: _Excel, title: str, header: Sequence[str], rows: int) -> None:
        self.xl = xl
        self.ws = xl.wb.create_sheet(title=title[:31])
        self.header = list(header)
        self.sample: list[list[Any]] = []
        self.buffer: list[list[Any]] = []
        self.rows = 0
        self.truncated = 0
        self.started = False

    def add(self, row: Sequence[Any]) -> None:
        if self.rows >= MAX_ROWS:
            self.truncated += 1
            return
        self.rows += 1
        if not self.started and len(self.buffer) < 200:
            self.buffer.append(list(row))
            return
        self._start()
        self.ws.append([self.xl.cell(self.ws, v) for v in row])

    def _start(self) -> None:
        if self.started:
            return
        self.started = True
        utils = self.xl.utils
        for i, name in enumerate(self.header):
            lengths = [len(str(name))]
            for row in self.buffer:
                v = row[i] if i < len(row) else None
                if v is not None:
                    lengths.append(max(len(line) for line in str(v).splitlines() or [""]))
            cap = 80 if name in WIDE_COLUMNS else 48
            width = min(cap, max(8, max(lengths) + 2))
            self.ws.column_dimensions[utils.get_column_letter(i + 1)].width = width
        self.ws.freeze_panes = "A2"
        header = []
        for name in self.header:
            c = self.xl.WriteOnlyCell(self.ws, value=name)
            c.font = self.xl.Font(bold=True)
            header.append(c)
        self.ws.append(header)
        for row in self.buffer:
            self.ws.append([self.xl.cell(self.ws, v) for v in row])
        self.buffer = []

    def close(self) -> None:
        self._start()


class _Excel:
    def __init__(self) -> None:
        try:
            openpyxl = importlib.import_module("openpyxl")
            cell_mod = importlib.import_module("openpyxl.cell")
            cell_cell = importlib.import_module("openpyxl.cell.cell")
            styles = importlib.import_module("openpyxl.styles")
            self.utils = importlib.import_module("openpyxl.utils")
        except ImportError:
            raise QualpipeError(
                f"the xlsx export needs openpyxl, which is not installed: {XLSX_HINT}"
            ) from None
        self.wb = openpyxl.Workbook(write_only=True)
        self.WriteOnlyCell = cell_mod.WriteOnlyCell
        self.Font = styles.Font
        self.illegal = cell_cell.ILLEGAL_CHARACTERS_RE
        self.sheets: list[_Sheet] = []

    def sheet(self, title: str, header: Sequence[str], rows: int = 0) -> _Sheet:
        s = _Sheet(self, title, header, rows)
        self.sheets.append(s)
        return s

    def cell(self, ws: Any, value: Any) -> Any:
        """A value Excel shows as written: text cleaned of control characters, cut at
        Excel's cell limit, and never taken for a formula."""
        if isinstance(value, str):
            value = self.illegal.sub("", value)
            if len(value) > MAX_CELL:
                value = value[: MAX_CELL - 1] + "…"
            if value.startswith("="):
                c = self.WriteOnlyCell(ws, value=value)
                c.data_type = "s"
                return c
        elif isinstance(value, float) and value != value:
            return None
        return value


def _names(bundle: ExportBundle, name: str, id_col: str) -> dict[str, str]:
    reader = bundle.datasets.get(name)
    if reader is None:
        return {}
    out: dict[str, str] = {}
    for table in _column_batches(reader, [id_col, "name"]):
        for i, n in zip(
            table.column(id_col).to_pylist(), table.column("name").to_pylist(), strict=True
        ):
            out[str(i)] = str(n)
    return out


def _insert_after(columns: list[str], after: str, new: str) -> list[str]:
    if after not in columns:
        return [*columns, new]
    i = columns.index(after) + 1
    return [*columns[:i], new, *columns[i:]]


Row = dict[str, Any]


def _write_dataset(
    xl: _Excel,
    bundle: ExportBundle,
    name: str,
    columns: list[str],
    derived: Mapping[str, Callable[[Row], Any]],
    drop: Sequence[str] = (),
) -> _Sheet:
    reader = bundle.datasets[name]
    sheet = xl.sheet(name, columns, reader.rows)
    for f in reader.files:
        schema_names = pq.read_schema(f).names
        read_cols = [c for c in schema_names if c not in drop]
        for batch in parquet_file(f).iter_batches(batch_size=4096, columns=read_cols):
            for row in batch.to_pylist():
                for col, fn in derived.items():
                    row[col] = fn(row)
                sheet.add([text_value(row.get(c)) for c in columns])
    sheet.close()
    return sheet


def _themes_sheet(xl: _Excel, bundle: ExportBundle, name: str, columns: list[str]) -> None:
    """Themes (or proposals) with one column per attribute value: participants with the
    theme, the group size in the header."""
    from qualpipe.export.report import parse_prevalence

    names = _names(bundle, "themes", "theme_id")
    rows = bundle.rows(name)
    pairs: set[tuple[str, str]] = set()
    totals: dict[tuple[str, str], int] = {}
    parsed = []
    for r in rows:
        counts, theme_totals = parse_prevalence(r.get("prevalence"))
        parsed.append(counts)
        pairs.update((a, v) for a, per_value in counts.items() for v in per_value)
        for a, per_value in theme_totals.items():
            for v, n in per_value.items():
                pairs.add((a, v))
                totals[(a, v)] = max(n, totals.get((a, v), 0))
    spread = [
        (f"{a}: {v}" + (f" (n = {totals[(a, v)]})" if (a, v) in totals else ""), a, v)
        for a, v in sorted(pairs)
    ]
    header = [c for c in _insert_after(columns, "parent_id", "parent") if c != "prevalence"]
    header += [c for c, _, _ in spread] + ["prevalence"]
    sheet = xl.sheet(name, header, len(rows))
    for r, counts in zip(rows, parsed, strict=True):
        r["parent"] = names.get(str(r.get("parent_id")))
        for col, a, v in spread:
            r[col] = counts.get(a, {}).get(v, 0) if r.get("prevalence") else None
        sheet.add([text_value(r.get(c)) for c in header])
    sheet.close()


def _findings_sheet(xl: _Excel, reader: DatasetReader) -> None:
    """Counts per entity type and recogniser: never a value or an offset."""
    per: Counter[tuple[str, str]] = Counter()
    docs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for table in _column_batches(reader, ["entity_type", "recogniser", "doc_id"]):
        for etype, rec, doc in zip(
            table.column("entity_type").to_pylist(),
            table.column("recogniser").to_pylist(),
            table.column("doc_id").to_pylist(),
            strict=True,
        ):
            key = (str(etype), str(rec or ""))
            per[key] += 1
            docs[key].add(str(doc))
    sheet = xl.sheet("findings", ["entity_type", "recogniser", "replacements", "documents"])
    for (etype, rec), n in sorted(per.items(), key=lambda x: (x[0][0], -x[1], x[0][1])):
        sheet.add([etype, rec, n, len(docs[(etype, rec)])])
    sheet.close()


def _derived_columns(
    bundle: ExportBundle, name: str, columns: list[str]
) -> tuple[list[str], dict[str, Callable[[Row], Any]], list[str]]:
    """Columns of a generic sheet with names beside ids; (columns, derived, dropped)."""
    theme_names = {
        **_names(bundle, "proposals", "theme_id"),
        **_names(bundle, "themes", "theme_id"),
    }
    code_names = _names(bundle, "codebook", "code_id")
    derived: dict[str, Callable[[Row], Any]] = {}
    drop: list[str] = []
    if "theme_id" in columns:
        columns = _insert_after(columns, "theme_id", "theme")
        derived["theme"] = lambda r: theme_names.get(str(r.get("theme_id")))
    if "code_id" in columns and name != "codebook":
        columns = _insert_after(columns, "code_id", "code")
        derived["code"] = lambda r: code_names.get(str(r.get("code_id")))
    if name == "codebook":
        columns = _insert_after(columns, "parent_id", "parent")
        derived["parent"] = lambda r: code_names.get(str(r.get("parent_id")))
    if name == "cooccurrence":
        lookup = {"theme": theme_names, "code": code_names}
        columns = _insert_after(_insert_after(columns, "a", "a_name"), "b", "b_name")
        derived["a_name"] = lambda r: lookup.get(str(r.get("kind")), {}).get(str(r["a"]))
        derived["b_name"] = lambda r: lookup.get(str(r.get("kind")), {}).get(str(r["b"]))
    if name == "documents":
        drop = ["text", "turns"]
        columns = [c for c in columns if c not in drop]
        columns = _insert_after(columns, "participant_id", "characters")
        chars = _document_lengths(bundle.datasets[name])
        derived["characters"] = lambda r: chars.get(str(r.get("doc_id")))
    return columns, derived, drop


def export_xlsx(bundle: ExportBundle) -> Sequence[Path]:
    from qualpipe.export.report import redact

    xl = _Excel()
    notes: list[tuple[str, str]] = []
    for name in available(bundle):
        reader = bundle.datasets[name]
        schema = _schema(reader, name)
        if schema is None:
            continue
        if name in ("themes", "proposals"):
            _themes_sheet(xl, bundle, name, list(schema.names))
            continue
        if name == "findings":
            _findings_sheet(xl, reader)
            notes.append(("findings", "summary: counts per entity type and recogniser only"))
            continue
        columns, derived, drop = _derived_columns(bundle, name, list(schema.names))
        if drop:
            notes.append((name, f"left out: {', '.join(drop)} (see csv/ and parquet/)"))
        sheet = _write_dataset(xl, bundle, name, columns, derived, drop)
        if sheet.truncated:
            notes.append((name, f"{sheet.truncated} row(s) beyond Excel's limit left out"))

    # about: what this workbook is
    about = xl.sheet("about", ["item", "value"])
    from qualpipe import __version__

    about.add(["pipeline", bundle.pipeline_name])
    about.add(["written by", f"qualpipe {__version__}"])
    for s in xl.sheets:
        if s is not about:
            about.add([f"sheet {s.ws.title}", f"{s.rows} row(s)"])
    for sheet_name, note in notes:
        about.add([f"note {sheet_name}", note])
    shas: list[str] = []
    for stage in bundle.provenance():
        plugin = stage.get("plugin") or {}
        about.add(
            [
                f"stage {stage.get('stage')}",
                f"{stage.get('uses')} ({plugin.get('name', '?')} {plugin.get('version', '')}); "
                f"rows {json.dumps(stage.get('rows') or {})}; params "
                + json.dumps(redact(stage.get("params") or {}), ensure_ascii=False, default=str),
            ]
        )
        if stage.get("git_sha") and stage["git_sha"] not in shas:
            shas.append(str(stage["git_sha"]))
    for sha in shas:
        about.add(["git commit", sha])
    about.close()
    path = bundle.out_dir / f"{bundle.pipeline_name or 'qualpipe'}.xlsx"
    xl.wb.save(path)
    return [path]


def _document_lengths(reader: DatasetReader) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in _column_batches(reader, ["doc_id", "text"]):
        lengths = pc.utf8_length(table.column("text"))
        for d, n in zip(table.column("doc_id").to_pylist(), lengths.to_pylist(), strict=True):
            out[str(d)] = int(n) if n is not None else 0
    return out


XLSX = Exporter(
    "xlsx",
    export_xlsx,
    version="1",
    description="<pipeline>.xlsx: one sheet per dataset, bold frozen headers, readable text",
)
CSV = Exporter(
    "csv",
    export_csv,
    version="1",
    description="csv/<dataset>.csv for every dataset (UTF-8 with BOM, nested values as JSON)",
)
PARQUET = Exporter(
    "parquet",
    export_parquet,
    version="1",
    description="parquet/<dataset>.parquet for every dataset, as stored",
)
