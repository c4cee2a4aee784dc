"""Dataset kinds: named, versioned Arrow schemas shared between stages.

A :class:`DatasetKind` is the contract between the stage that writes a dataset and the
stages that read it. Its schema carries ``qualpipe.kind`` and ``qualpipe.version`` in
the schema metadata, so any Parquet file of the run store says what it holds. Every
batch a stage writes is conformed to the kind's schema (columns reordered, compatible
types cast); a batch missing a required column, or with a type that cannot be cast, is
rejected before anything is written, naming the plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from qualpipe.errors import DatasetError

KIND_KEY = b"qualpipe.kind"
VERSION_KEY = b"qualpipe.version"


@dataclass(frozen=True)
class DatasetKind:
    """A named, versioned dataset schema.

    ``fields`` maps column name to a one-line description (documentation only); the
    schema's own field nullability decides what is required. Extra columns a plugin
    adds are kept, after the declared ones.
    """

    name: str
    version: int
    schema: pa.Schema
    description: str
    fields: Mapping[str, str] = field(default_factory=dict)

    @property
    def arrow_schema(self) -> pa.Schema:
        """The schema with ``qualpipe.kind``/``qualpipe.version`` metadata attached."""
        meta = dict(self.schema.metadata or {})
        meta[KIND_KEY] = self.name.encode()
        meta[VERSION_KEY] = str(self.version).encode()
        return self.schema.with_metadata(meta)

    def conform(self, data: pa.Table | pa.RecordBatch, who: str = "stage") -> pa.Table:
        """Return ``data`` as a table of this kind's schema, or raise :class:`DatasetError`.

        ``who`` names the producer in error messages (e.g. the plugin name).
        """
        table = pa.Table.from_batches([data]) if isinstance(data, pa.RecordBatch) else data
        columns = []
        names = set(table.column_names)
        for f in self.schema:
            if f.name not in names:
                if not f.nullable:
                    raise DatasetError(
                        f"{who} wrote a {self.name!r} dataset without required column "
                        f"{f.name!r}; add it (type {f.type}) to the batches it returns"
                    )
                columns.append(pa.nulls(table.num_rows, type=f.type))
                continue
            col = table.column(f.name)
            if not col.type.equals(f.type):
                try:
                    col = col.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise DatasetError(
                        f"{who} wrote column {f.name!r} of {self.name!r} as {col.type}, "
                        f"expected {f.type}: {exc}"
                    ) from None
            if not f.nullable and col.null_count:
                raise DatasetError(
                    f"{who} wrote {col.null_count} null value(s) in required column "
                    f"{f.name!r} of {self.name!r}; every row needs a value"
                )
            columns.append(col)
        extra = [n for n in table.column_names if self.schema.get_field_index(n) < 0]
        schema = self.arrow_schema
        for name in extra:
            schema = schema.append(table.schema.field(name))
            columns.append(table.column(name))
        return pa.Table.from_arrays(columns, schema=schema)


def kind_of(schema: pa.Schema) -> tuple[str, int] | None:
    """Read ``(kind, version)`` from a schema's metadata, if it has them."""
    meta = schema.metadata or {}
    if KIND_KEY not in meta:
        return None
    try:
        return meta[KIND_KEY].decode(), int(meta.get(VERSION_KEY, b"0"))
    except ValueError:
        return None
