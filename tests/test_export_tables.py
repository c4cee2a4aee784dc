"""The csv and parquet exporters stream: Arrow kernels write the CSV, byte for byte what
``csv.writer`` writes for the values of ``csv_value``, and memory stays bounded by a batch
or a row group whatever the size of the dataset."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qualpipe.export import tables
from qualpipe.export.tables import CSV, PARQUET, csv_rows, csv_value
from qualpipe.exporters import ExportBundle
from qualpipe.store import DatasetReader

NASTY = [
    "plain",
    "comma, inside",
    'a "quoted" word',
    "line\nbreak",
    "carriage\rreturn",
    "crlf\r\nend",
    "=1+2",  # written as it is: the csv files round-trip, no formula escaping
    "+cmd|' /C calc'!A0",
    "tab\there",
    "ctrl \x00\x01\x07\x1b\x1f end",
    "back\\slash \\n not a newline",
    "emoji 🙂 and åäö",
    "",
    " leading space",
    "]]> and </x> & <y>",
    None,
]

EVIDENCE = pa.list_(pa.struct([("term", pa.string()), ("start", pa.int64()), ("end", pa.int64())]))
TURN = pa.list_(
    pa.struct([("speaker", pa.string()), ("start", pa.int64()), ("start_time", pa.float64())])
)
SCHEMA = pa.schema(
    [
        ("text", pa.string()),
        ("big", pa.large_string()),
        ("n", pa.int64()),
        ("small", pa.int32()),
        ("score", pa.float64()),
        ("flag", pa.bool_()),
        ("ids", pa.list_(pa.string())),
        ("evidence", EVIDENCE),
        ("attributes", pa.map_(pa.string(), pa.string())),
        ("turns", TURN),
        ("when", pa.timestamp("us", tz="UTC")),
    ]
)
FLOATS = [0.5, 1.0, 1e-05, 1e16, -0.0, 1 / 3, math.nan, math.inf, -math.inf, 2.5e20, None]


def nasty_table(rows: int = 48, nan: bool = True) -> pa.Table:
    floats = FLOATS if nan else [f for f in FLOATS if f is None or f == f]
    out: list[dict[str, Any]] = []
    for i in range(rows):
        s = NASTY[i % len(NASTY)]
        t = NASTY[(i * 7 + 3) % len(NASTY)]
        out.append(
            {
                "text": s,
                "big": t,
                "n": None if i % 9 == 4 else (-1) ** i * i * 1_000_003,
                "small": None if i % 5 == 1 else i,
                "score": floats[i % len(floats)],
                "flag": None if i % 4 == 3 else i % 2 == 0,
                "ids": None if i % 6 == 5 else [x for x in (s, t, "c") if x is not None][: i % 4],
                "evidence": None
                if i % 7 == 6
                else [{"term": t, "start": i, "end": None if i % 3 else i + 2}][: i % 3],
                "attributes": None
                if i % 8 == 7
                else [(k, v) for k, v in (("role", s), ("site", t), ('åäö "k"', "v"))][: i % 4],
                "turns": [{"speaker": s, "start": i, "start_time": floats[(i + 1) % len(floats)]}],
                "when": None if i % 2 else datetime(2024, 1, 2, 3, 4, 5, i, tzinfo=UTC),
            }
        )
    return pa.Table.from_pylist(out, schema=SCHEMA)


def reference(table: pa.Table) -> bytes:
    """What the exporter wrote before it used Arrow: csv.writer over csv_value."""
    fh = io.StringIO(newline="")
    types = [f.type for f in table.schema]
    columns = [table.column(i).to_pylist() for i in range(table.num_columns)]
    w = csv.writer(fh)
    for row in zip(*columns, strict=True):
        w.writerow([csv_value(v, t) for v, t in zip(row, types, strict=True)])
    return fh.getvalue().encode("utf-8")


def test_csv_rows_are_what_csv_writer_writes() -> None:
    table = nasty_table()
    batch = table.combine_chunks().to_batches()[0]
    got = bytes(csv_rows(batch, [f.type for f in table.schema]))
    assert got == reference(table)
    # and on a slice (batches from Parquet are often views into a larger array)
    part = batch.slice(5, 20)
    assert bytes(csv_rows(part, [f.type for f in table.schema])) == reference(
        pa.Table.from_batches([part])
    )


def test_csv_reads_back_to_the_same_values() -> None:
    table = nasty_table()
    batch = table.combine_chunks().to_batches()[0]
    text = bytes(csv_rows(batch, [f.type for f in table.schema])).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == table.num_rows
    expected = table.to_pylist()
    for row, want in zip(rows, expected, strict=True):
        assert row[0] == (want["text"] or "")
        assert row[1] == (want["big"] or "")
        assert row[2] == ("" if want["n"] is None else str(want["n"]))
        score = want["score"]
        if score is None or score != score:
            assert row[4] == ""
        else:
            assert float(row[4]) == score
        assert row[6] == "" if want["ids"] is None else json.loads(row[6]) == want["ids"]
        if want["evidence"] is not None:
            assert json.loads(row[7]) == want["evidence"]
        if want["attributes"] is not None:
            assert json.loads(row[8]) == dict(want["attributes"])
        else:
            assert row[8] == ""


def test_duplicate_map_keys_and_single_columns_go_the_python_way() -> None:
    # dict() keeps the last value of a key given twice
    maps = pa.array([[("a", "1"), ("a", "2")], [("b", None)]], pa.map_(pa.string(), pa.string()))
    table = pa.table({"m": maps, "s": ["x", "y"]})
    batch = table.to_batches()[0]
    assert bytes(csv_rows(batch, [f.type for f in table.schema])) == reference(table)
    assert bytes(csv_rows(batch, [f.type for f in table.schema])).startswith(b'"{""a"": ""2""}"')
    # a lone empty field is quoted, so that an empty value is not a blank line
    lone = pa.table({"s": ["", None, "a"]})
    out = bytes(csv_rows(lone.to_batches()[0], [pa.string()]))
    assert out == reference(lone) == b'""\r\n""\r\na\r\n'


def _dataset(folder: Path, table: pa.Table, parts: int) -> DatasetReader:
    folder.mkdir(parents=True)
    step = -(-table.num_rows // parts)
    for i in range(parts):
        pq.write_table(table.slice(i * step, step), folder / f"part-{i:06d}.parquet")
    return DatasetReader(folder)


def _batch_sizes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The row count of every batch the csv writer is given, as the export runs."""
    seen: list[int] = []
    real = tables.csv_rows

    def spy(batch: pa.RecordBatch, types: list[pa.DataType]) -> pa.Buffer:
        seen.append(batch.num_rows)
        return real(batch, types)

    monkeypatch.setattr(tables, "csv_rows", spy)
    return seen


def test_csv_streams_over_many_tiny_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = nasty_table(120)
    reader = _dataset(tmp_path / "data" / "codings", table, parts=3)
    monkeypatch.setattr(tables, "BATCH_BYTES", 1)  # one row a batch
    seen = _batch_sizes(monkeypatch)
    bundle = ExportBundle(datasets={"codings": reader}, out_dir=tmp_path / "out")
    [path] = CSV.export(bundle)
    assert len(seen) == 120 and set(seen) == {1}
    header = ",".join(SCHEMA.names).encode() + b"\r\n"
    assert path.read_bytes() == b"\xef\xbb\xbf" + header + reference(table)


def test_parquet_streams_in_bounded_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = nasty_table(300, nan=False).replace_schema_metadata({"qualpipe.kind": "codings"})
    reader = _dataset(tmp_path / "data" / "codings", table, parts=7)
    limit = table.nbytes // 10
    monkeypatch.setattr(tables, "ROW_GROUP_BYTES", limit)
    monkeypatch.setattr(tables, "BATCH_BYTES", limit // 4)
    bundle = ExportBundle(datasets={"codings": reader}, out_dir=tmp_path / "out")
    [path] = PARQUET.export(bundle)
    out = pq.ParquetFile(path)
    assert out.metadata.num_row_groups >= 8  # not the whole dataset in one piece
    assert out.read().equals(reader.read_all())
    assert out.schema_arrow.metadata[b"qualpipe.kind"] == b"codings"
    for i in range(out.metadata.num_row_groups):
        group = out.read_row_group(i)
        assert group.num_rows == 1 or group.nbytes <= 2 * limit


def test_empty_datasets_still_get_a_header_and_a_schema(tmp_path: Path) -> None:
    reader = _dataset(tmp_path / "data" / "quotes", nasty_table(0), parts=1)
    bundle = ExportBundle(datasets={"quotes": reader}, out_dir=tmp_path / "out")
    [csv_path] = CSV.export(bundle)
    assert csv_path.read_bytes() == b"\xef\xbb\xbf" + ",".join(SCHEMA.names).encode() + b"\r\n"
    [pq_path] = PARQUET.export(bundle)
    assert pq.read_table(pq_path).schema.equals(reader.schema)


def test_csv_puts_the_small_batches_of_many_parts_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = nasty_table(70)
    reader = _dataset(tmp_path / "data" / "codings", table, parts=7)
    seen = _batch_sizes(monkeypatch)
    [path] = CSV.export(ExportBundle(datasets={"codings": reader}, out_dir=tmp_path / "out"))
    assert seen == [70]  # one call for seven part files
    header = ",".join(SCHEMA.names).encode() + b"\r\n"
    assert path.read_bytes() == b"\xef\xbb\xbf" + header + reference(table)
