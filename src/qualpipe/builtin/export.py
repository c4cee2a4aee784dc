"""Built-in plugin: the ``export`` stage type.

Runs the chosen exporters (``formats:``) on the pipeline's datasets and moves the files
they wrote into the export folder only when all of them succeeded, so a failed export
never leaves a half-written project next to a good one. The ``exports`` dataset lists
every file with its size and sha256. Sensitive (not anonymised) inputs are refused
unless the pipeline sets ``allow_sensitive: true``.
"""

from __future__ import annotations

import pickle
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from qualpipe import Input, Output, Param, PipelineError, StageContext, StageType, hookimpl
from qualpipe.errors import QualpipeError
from qualpipe.executors.base import picklable, process_pool
from qualpipe.exporters import ExportBundle, Exporter
from qualpipe.fingerprint import sha256_file
from qualpipe.schemas import EXPORTS

INPUTS = (
    "documents", "segments", "codings", "codebook", "themes", "theme_assignments",
    "quotes", "cooccurrence", "findings",
)  # fmt: skip
DEFAULT_FORMATS = ["qdpx", "qdc", "html", "docx", "xlsx", "csv"]


def _export_one(exporter: Exporter, bundle: ExportBundle) -> tuple[list[str], Exception | None]:
    """Run one exporter; its error comes back as a value (re-raised by the caller)."""
    try:
        return [str(p) for p in exporter.export(bundle)], None
    except Exception as exc:
        try:  # an exception that survives the trip back keeps its type
            pickle.loads(pickle.dumps(exc))
            return [], exc
        except Exception:
            return [], QualpipeError(f"{type(exc).__name__}: {exc}")


def _export_all(jobs: list[tuple[Exporter, ExportBundle]], workers: int) -> list[list[str]]:
    """The files of each exporter, in the order of ``jobs``.

    With ``--workers`` above one the formats are written at the same time in spawned
    processes (they write different files); exporters that cannot be sent to a process
    (not picklable) run here, one after another, as with one worker.
    """
    parallel = min(workers, len(jobs))
    if parallel > 1 and not picklable(jobs):
        parallel = 1
    if parallel <= 1:
        return [[str(p) for p in exporter.export(bundle)] for exporter, bundle in jobs]
    with process_pool(parallel) as pool:
        futures = [pool.submit(_export_one, exporter, bundle) for exporter, bundle in jobs]
        results = [f.result() for f in futures]
    for _, error in results:
        if error is not None:
            raise error
    return [paths for paths, _ in results]


def run(ctx: StageContext) -> None:
    exporters: Mapping[str, Exporter] = ctx.components.get("exporter", {})
    formats = [str(f) for f in ctx.params["formats"]]
    unknown = [f for f in formats if f not in exporters]
    if unknown:
        raise PipelineError(
            f"export: unknown format(s) {', '.join(unknown)} "
            f"(installed: {', '.join(sorted(exporters)) or 'none'})"
        )
    for name in formats:
        missing = [n for n in exporters[name].needs if n not in ctx.inputs]
        if missing:
            raise PipelineError(
                f"export: format {name!r} needs the {', '.join(missing)} dataset(s), which no "
                "earlier stage produces; add the stage(s) or remove the format"
            )
    out = Path(ctx.params["out"] or (ctx.pipeline_dir / "exports" / ctx.pipeline_name))
    staging = out.parent / f".{out.name}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    rows: list[dict[str, Any]] = []
    try:
        options: Mapping[str, Any] = ctx.params["options"]
        jobs = [
            (
                exporters[name],
                ExportBundle(
                    datasets=ctx.inputs,
                    out_dir=staging,
                    options=dict(options.get(name) or {}),
                    pipeline_name=ctx.pipeline_name,
                    workdir=ctx.workdir,
                ),
            )
            for name in formats
        ]
        for name, paths in zip(formats, _export_all(jobs, ctx.workers), strict=True):
            for written in paths:
                rel = Path(written).relative_to(staging)
                rows.append({"format": name, "path": str(out / rel)})
        out.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.rglob("*")):
            if item.is_file():
                target = out / item.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                item.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for row in rows:
        path = Path(row["path"])
        row["bytes"] = path.stat().st_size
        row["sha256"] = sha256_file(path)
    ctx.write("exports", pa.Table.from_pylist(rows, schema=EXPORTS.schema))
    ctx.note("files", len(rows))
    ctx.note("folder", str(out))


EXPORT = StageType(
    name="export",
    family="export",
    description=(
        "Write results for people and QDA programs: REFI-QDA .qdpx/.qdc, HTML and DOCX "
        "reports, Excel, CSV/Parquet."
    ),
    mode="whole",
    consumes=[
        *(Input(name, name, optional=True) for name in INPUTS),
        Input("proposals", "themes", optional=True),
    ],
    produces=[Output("exports", "exports")],
    components=("exporter",),
    export=True,
    # reports count the researchers' decisions (from the manifests): any decision, even
    # one that changes no data (an accepted finding), makes the export current again
    decisions=("finding", "coding", "theme", "quote"),
    params=[
        Param("formats", "list", DEFAULT_FORMATS, "formats to write (see 'qualpipe plugins')"),
        Param("out", "output_path", None, "folder for the files (default exports/<pipeline>)"),
        Param("options", "dict", {}, "options per format, e.g. {html: {title: ...}}"),
    ],
    run=run,
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(EXPORT)
