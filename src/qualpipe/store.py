"""The run store: one folder per stage, Parquet part files and a manifest.

Layout of a workdir::

    <workdir>/
      .lock                   held while a run is under way
      .staging/<stage>-<id>/  a stage being written (never trusted)
      <stage id>/
        manifest.json         written last; the stage is trusted only if it is complete
        <output name>/part-000000.parquet ...

A stage is written into ``.staging`` and moved into place only after its manifest is
written, so a run killed at any point leaves either the previous complete stage or no
stage folder at all, never a half dataset that a later run trusts.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qualpipe.datasets import DatasetKind, kind_of
from qualpipe.errors import DatasetError, QualpipeError
from qualpipe.fingerprint import sha256_file, sha256_text

MANIFEST = "manifest.json"
RECORD_FORMAT = "qualpipe.manifest/1"
STAGING = ".staging"
TRASH = ".trash"


def part_name(*index: int) -> str:
    """Part file name; batch stages use (input file index, batch index within it)."""
    return "part-" + "-".join(f"{i:06d}" for i in index) + ".parquet"


def write_part(
    directory: Path, kind: DatasetKind, data: pa.Table | pa.RecordBatch, name: str, who: str
) -> int:
    """Conform ``data`` to ``kind`` and write it as part file ``name``; return its rows."""
    table = kind.conform(data, who)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (name + ".tmp")
    pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_rows(table))
    tmp.rename(directory / name)
    return int(table.num_rows)


#: Largest row group written, in bytes of Arrow data (readers hold one row group at a time).
ROW_GROUP_BYTES = 64 * 1024 * 1024


def row_group_rows(table: pa.Table) -> int:
    """Rows per row group so that one holds about :data:`ROW_GROUP_BYTES` at most."""
    if not table.num_rows or table.nbytes <= ROW_GROUP_BYTES:
        return max(1, int(table.num_rows))
    return max(1, int(table.num_rows * ROW_GROUP_BYTES / table.nbytes))


def dataset_fingerprint(directory: Path, files: list[str]) -> str:
    parts = [f"{name}:{sha256_file(directory / name)}" for name in sorted(files)]
    return sha256_text("\n".join(parts))


class DatasetReader:
    """Reads one dataset (a folder of Parquet parts, or one Parquet file) in batches."""

    def __init__(self, path: Path, info: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.info = dict(info or {})
        if path.is_file():
            self.files = [path]
        else:
            names = self.info.get("files")
            self.files = (
                [path / n for n in names] if names is not None else sorted(path.glob("*.parquet"))
            )
        if not self.files and not self.info:
            raise DatasetError(f"{path}: no Parquet files here; point at a dataset folder")

    @property
    def kind(self) -> str | None:
        if "kind" in self.info:
            return str(self.info["kind"])
        found = kind_of(self.schema) if self.files else None
        return found[0] if found else None

    @property
    def sensitive(self) -> bool:
        return bool(self.info.get("sensitive", True))

    @property
    def fingerprint(self) -> str:
        fp = self.info.get("fingerprint")
        if fp:
            return str(fp)
        return sha256_text("\n".join(sha256_file(f) for f in self.files))

    @property
    def rows(self) -> int:
        if "rows" in self.info:
            return int(self.info["rows"])
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    @property
    def schema(self) -> pa.Schema:
        if not self.files:
            raise DatasetError(f"{self.path}: dataset has no part files")
        return pq.read_schema(self.files[0])

    def iter_batches(self, batch_size: int | None = None) -> Iterator[pa.RecordBatch]:
        for f in self.files:
            pf = parquet_file(f)
            yield from pf.iter_batches(batch_size=batch_size or 1024)

    def read_all(self) -> pa.Table:
        if not self.files:
            raise DatasetError(f"{self.path}: dataset has no part files")
        return pa.concat_tables([pq.read_table(f) for f in self.files])


def parquet_file(path: Path | str) -> pq.ParquetFile:
    """A Parquet file to read batch by batch, in memory that does not grow with the file.

    ``pre_buffer`` (pyarrow's default) keeps every row group's column chunks it has read
    until the reader is gone: reading a 1 GB corpus's single documents file batch by batch
    held 53 MiB after the first row groups and 169 MiB at the end (388 row groups), and
    every stage reading it grew with the corpus. Without it the reader holds ~22 MiB
    throughout and needs less CPU (local disks; object stores would want it back).
    """
    return pq.ParquetFile(path, pre_buffer=False)


def read_manifest(stage_dir: Path) -> dict[str, Any] | None:
    """The manifest of a complete stage folder, or ``None`` if it is not trustworthy."""
    path = stage_dir / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("record_format") != RECORD_FORMAT or manifest.get("status") != "complete":
        return None
    for name, out in manifest.get("outputs", {}).items():
        for fname, size in zip(out.get("files", []), out.get("sizes", []), strict=False):
            f = stage_dir / name / fname
            if not f.is_file() or f.stat().st_size != size:
                return None
    return dict(manifest)


def open_dataset(path: Path, output: str | None = None) -> DatasetReader:
    """Open a dataset given a stage folder, a dataset folder or a Parquet file.

    A stage folder with several outputs needs ``output`` (or a path ending in the output
    folder, e.g. ``run/anonymise/documents``).
    """
    if not path.exists():
        raise DatasetError(f"{path}: no such dataset; check the path (run the pipeline first?)")
    if path.is_file():
        # a part file of a stage output: keep what its manifest says (kind, sensitivity)
        stage = read_manifest(path.parent.parent)
        out = (stage or {}).get("outputs", {}).get(path.parent.name)
        if out is not None and path.name in out.get("files", []):
            info = {k: v for k, v in out.items() if k not in ("files", "rows", "fingerprint")}
            return DatasetReader(path, info)
        return DatasetReader(path)
    manifest = read_manifest(path)
    if manifest is not None:
        outputs = manifest["outputs"]
        if output is None:
            if len(outputs) != 1:
                raise DatasetError(
                    f"{path}: stage has several outputs ({', '.join(outputs)}); "
                    f"name one, e.g. {path / next(iter(outputs))}"
                )
            output = next(iter(outputs))
        if output not in outputs:
            raise DatasetError(f"{path}: no output {output!r} (has {', '.join(outputs)})")
        return DatasetReader(path / output, outputs[output])
    parent = read_manifest(path.parent)
    if parent is not None and path.name in parent["outputs"]:
        return DatasetReader(path, parent["outputs"][path.name])
    if (path / MANIFEST).exists():
        raise DatasetError(f"{path}: stage output is incomplete (interrupted run?); re-run it")
    return DatasetReader(path)


class StageWriter:
    """Collects one stage's outputs in a staging folder, then commits them atomically."""

    def __init__(
        self,
        store: RunStore,
        stage_id: str,
        outputs: Mapping[str, DatasetKind],
        who: str,
    ) -> None:
        self.store = store
        self.stage_id = stage_id
        self.outputs = dict(outputs)
        self.who = who
        self.dir = store.root / STAGING / f"{stage_id}-{uuid.uuid4().hex[:12]}"
        self.dir.mkdir(parents=True)
        self._writers: dict[str, pq.ParquetWriter] = {}
        self.parts: dict[str, dict[str, int]] = {name: {} for name in outputs}

    def output_dir(self, name: str) -> Path:
        return self.dir / name

    def write(self, name: str, data: pa.Table | pa.RecordBatch) -> None:
        """Append rows to output ``name`` (whole-dataset stages)."""
        if name not in self.outputs:
            raise DatasetError(
                f"{self.who} wrote to output {name!r}, which stage {self.stage_id!r} does not "
                f"declare (declared: {', '.join(self.outputs) or 'none'})"
            )
        table = self.outputs[name].conform(data, self.who)
        writer = self._writers.get(name)
        if writer is None:
            self.output_dir(name).mkdir(parents=True, exist_ok=True)
            fname = part_name(0)
            writer = pq.ParquetWriter(
                self.output_dir(name) / fname, table.schema, compression="zstd"
            )
            self._writers[name] = writer
            self.parts[name][fname] = 0
        elif not writer.schema.equals(table.schema, check_metadata=False):
            raise DatasetError(
                f"{self.who} wrote batches with different columns to output {name!r}; "
                "every batch of one output needs the same columns"
            )
        writer.write_table(table, row_group_size=row_group_rows(table))
        self.parts[name][part_name(0)] += table.num_rows

    def add_parts(self, name: str, parts: Mapping[str, int]) -> None:
        """Record part files written directly into :meth:`output_dir` (batch stages)."""
        self.parts[name].update(parts)

    def close_writers(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()

    def commit(self, manifest: dict[str, Any], sensitivity: Mapping[str, bool]) -> dict[str, Any]:
        """Write the manifest and move the stage into place; return the manifest."""
        self.close_writers()
        outputs: dict[str, Any] = {}
        for name, kind in self.outputs.items():
            directory = self.output_dir(name)
            if not self.parts[name]:
                # An empty dataset still has a schema: write one empty part.
                fname = part_name(0)
                write_part(directory, kind, kind.arrow_schema.empty_table(), fname, self.who)
                self.parts[name][fname] = 0
            files = sorted(self.parts[name])
            outputs[name] = {
                "kind": kind.name,
                "kind_version": kind.version,
                "rows": sum(self.parts[name].values()),
                "files": files,
                "sizes": [(directory / f).stat().st_size for f in files],
                "fingerprint": dataset_fingerprint(directory, files),
                "sensitive": bool(sensitivity.get(name, True)),
                "schema": [f"{f.name}: {f.type}" for f in pq.read_schema(directory / files[0])],
            }
        manifest = {**manifest, "record_format": RECORD_FORMAT, "status": "complete"}
        manifest["outputs"] = outputs
        manifest["artifacts"] = {
            f.name: {"size": f.stat().st_size, "sha256": sha256_file(f)}
            for f in sorted(self.dir.iterdir())
            if f.is_file() and not f.name.startswith((MANIFEST, "."))
        }
        tmp = self.dir / (MANIFEST + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.rename(self.dir / MANIFEST)
        self.store.swap_in(self.stage_id, self.dir)
        return manifest

    def abort(self) -> None:
        self.close_writers()
        shutil.rmtree(self.dir, ignore_errors=True)


class RunStore:
    """A workdir holding the datasets of one pipeline's runs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_fh: Any = None

    def stage_dir(self, stage_id: str) -> Path:
        return self.root / stage_id

    def manifest(self, stage_id: str) -> dict[str, Any] | None:
        return read_manifest(self.stage_dir(stage_id))

    def reader(self, stage_id: str, output: str) -> DatasetReader:
        manifest = self.manifest(stage_id)
        if manifest is None or output not in manifest["outputs"]:
            raise DatasetError(f"{self.stage_dir(stage_id)}: no complete output {output!r}")
        return DatasetReader(self.stage_dir(stage_id) / output, manifest["outputs"][output])

    def has_leftovers(self, stage_id: str) -> bool:
        staging = self.root / STAGING
        return staging.is_dir() and any(staging.glob(f"{stage_id}-*"))

    def open(self) -> None:
        """Create the workdir, take the run lock and clear leftovers of killed runs."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_fh = (self.root / ".lock").open("w")
        except OSError as exc:
            raise QualpipeError(
                f"cannot use workdir {str(self.root)!r}: {exc.strerror}; "
                "choose another with --workdir"
            ) from None
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise QualpipeError(
                f"workdir {str(self.root)!r} is in use by another qualpipe run; "
                "wait for it or use another --workdir"
            ) from None
        for leftover in (STAGING, TRASH):
            shutil.rmtree(self.root / leftover, ignore_errors=True)

    def close(self) -> None:
        if self._lock_fh is not None:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()
            self._lock_fh = None

    def swap_in(self, stage_id: str, staged: Path) -> None:
        final = self.stage_dir(stage_id)
        trash = None
        if final.exists():
            trash = self.root / TRASH / f"{stage_id}-{uuid.uuid4().hex[:12]}"
            trash.parent.mkdir(exist_ok=True)
            final.rename(trash)
        try:
            staged.rename(final)
        except BaseException:
            if trash is not None:
                trash.rename(final)  # put the previous complete stage back
            raise
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
