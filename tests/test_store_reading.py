"""Reading a dataset batch by batch holds about one row group, whatever the file's size."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from qualpipe.executors.local import iter_indexed_batches
from qualpipe.store import DatasetReader


def _many_row_groups(path: Path, groups: int = 120) -> None:
    text = pa.array(["x" * 20_000 + str(i) for i in range(50)], pa.large_string())
    with pq.ParquetWriter(path, pa.schema([("text", pa.large_string())]), compression="none") as w:
        for _ in range(groups):
            w.write_table(pa.table({"text": text}))  # one ~1 MB row group each


def test_batches_of_a_large_file_do_not_accumulate(tmp_path: Path) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    _many_row_groups(folder / "part-000000.parquet")
    reader = DatasetReader(folder)
    for batches in (
        reader.iter_batches(64),
        (b for _, _, b in iter_indexed_batches(reader, 64)),
    ):
        base = pa.total_allocated_bytes()
        peak = rows = 0
        for batch in batches:
            rows += batch.num_rows
            peak = max(peak, pa.total_allocated_bytes() - base)
            del batch
        assert rows == 120 * 50
        # pyarrow's pre_buffer kept every row group read so far: ~120 MB by the end
        assert peak < 16 * 2**20, peak
