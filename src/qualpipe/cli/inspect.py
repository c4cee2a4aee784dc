"""``qualpipe inspect PATH``: schema, row count and first rows of any dataset."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pyarrow as pa

from qualpipe.errors import DatasetError
from qualpipe.store import open_dataset

_MAX_CELL = 60


def _cell(value: object) -> str:
    text = (
        json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else value
    )
    text = text.replace("\n", " ")
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


@click.command("inspect")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--output", help="Which output of a stage folder with several.")
@click.option(
    "-n", "--rows", type=click.IntRange(min=0), default=5, show_default=True, help="Rows to show."
)
@click.option("--columns", help="Comma-separated columns to show.")
def inspect_cmd(path: Path, output: str | None, rows: int, columns: str | None) -> None:
    """Show the schema, row count and first rows of a dataset folder or Parquet file.

    Sensitive (not anonymised) datasets show their schema and counts only, unless
    --rows is given explicitly.
    """
    reader = open_dataset(path, output)
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    unknown = [c for c in cols or [] if c not in reader.schema.names]
    if unknown:
        raise DatasetError(
            f"{reader.path}: no column {', '.join(map(repr, unknown))} "
            f"(columns: {', '.join(reader.schema.names)})"
        )
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("rows") == click.core.ParameterSource.COMMANDLINE
    click.echo(f"dataset: {reader.path}")
    click.echo(
        f"kind: {reader.kind or 'unknown'}   rows: {reader.rows}   sensitive: {reader.sensitive}"
    )
    click.echo("schema:")
    for f in reader.schema:
        click.echo(f"  {f.name}: {f.type}")
    if reader.sensitive and not explicit:
        click.echo("(sensitive dataset: rows hidden; pass --rows N to show them)")
        return
    shown = 0
    for batch in reader.iter_batches(max(rows, 1)):
        table = pa.Table.from_batches([batch])
        if cols:
            table = table.select(cols)
        for row in table.slice(0, rows - shown).to_pylist():
            click.echo("  " + "  |  ".join(f"{k}={_cell(v)}" for k, v in row.items()))
            shown += 1
        if shown >= rows:
            break
