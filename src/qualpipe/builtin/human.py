"""Built-in plugin: human coding import and agreement between coders.

Stage types ``import-codings`` (a ``.qdpx`` or ``.csv`` of human coding -> ``codings``
with status ``human`` plus a ``mapping_report``) and ``agreement`` (percent agreement,
Cohen's kappa and Krippendorff's alpha -> an ``agreement`` dataset), and the command
``qualpipe agree`` for codings already in a run store. See docs/agreement.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import structlog

from qualpipe import DatasetKind, Input, Output, Param, StageContext, StageType, hookimpl
from qualpipe.codebook import Codebook
from qualpipe.coding.agreement import AGREEMENT, Agreement, format_table
from qualpipe.coding.human import MAPPING_REPORT, ORIGINS, import_codings
from qualpipe.errors import DatasetError, PipelineError
from qualpipe.store import DatasetReader, open_dataset, read_manifest

log = structlog.get_logger("qualpipe")

CODING_COLUMNS = ("segment_id", "doc_id", "start", "end", "code_id", "coder", "status")


def _rows(reader: DatasetReader, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = reader.read_all().select(list(columns)).to_pylist()
    return rows


# -- import-codings ---------------------------------------------------------------------------


def run_import(ctx: StageContext) -> None:
    book_table = ctx.inputs["codebook"].read_all()
    book = Codebook.from_table(book_table)
    version = book_table.column("codebook_version")[0].as_py() if book_table.num_rows else None
    result = import_codings(
        Path(ctx.params["path"]),
        _rows(ctx.inputs["documents"], ("doc_id", "source_path", "text")),
        _rows(ctx.inputs["segments"], ("segment_id", "doc_id", "start", "end")),
        book,
        origin=ctx.params["origin"],
        mapping={str(k): str(v) for k, v in (ctx.params["mapping"] or {}).items()},
        codes={str(k): str(v) for k, v in (ctx.params["codes"] or {}).items()},
        default_coder=ctx.params["coder"],
        codebook_version=version,
    )
    ctx.write("codings", result.codings_table())
    ctx.write("mapping_report", result.report_table())
    for key, value in result.stats.items():
        ctx.note(key, value)
    ctx.note("codings", len(result.rows))
    if result.unmapped:
        log.warning(
            "human codings not imported; see the mapping_report dataset",
            stage=ctx.stage_id,
            unmapped=len(result.unmapped),
            problems=result.stats["problems"],
        )


IMPORT_CODINGS = StageType(
    name="import-codings",
    family="code",
    description="Import human coding from a REFI-QDA .qdpx (NVivo, QualCoder, ...) or a CSV.",
    mode="whole",
    consumes=[
        Input("documents", "documents"),
        Input("segments", "segments"),
        Input("codebook", "codebook"),
    ],
    produces=["codings", Output("mapping_report", "mapping_report")],
    params=[
        Param("path", "path", help="the .qdpx project or .csv file (doc,start,end,code[,coder])"),
        Param(
            "origin",
            "str",
            "auto",
            "how .qdpx offsets count: auto (from Project@origin, checked against word "
            "boundaries), nvivo (UTF-16 units), qualcoder (code points), codepoints "
            "(code points into our normalised text)",
            choices=ORIGINS,
        ),
        Param(
            "mapping",
            "dict",
            {},
            "source name, guid or file -> doc_id or source_path, for sources that match "
            "no document by text or name",
        ),
        Param("codes", "dict", {}, "code guid, name or path in the file -> our code id"),
        Param("coder", "str", "human", "coder name for codings that name no user"),
    ],
    run=run_import,
)


# -- agreement --------------------------------------------------------------------------------


def run_agreement(ctx: StageContext) -> None:
    rows = _rows(ctx.inputs["codings"], CODING_COLUMNS)
    other = ctx.inputs.get("other_codings")
    if other is not None and other.path != ctx.inputs["codings"].path:
        rows += _rows(other, CODING_COLUMNS)
    seg_reader = ctx.inputs.get("segments")
    segments = _rows(seg_reader, ("segment_id", "doc_id")) if seg_reader else None
    agreement = Agreement(rows, segments, ctx.params["coders"] or None)
    table = agreement.table(ctx.params["level"])
    ctx.write("agreement", table)
    ctx.artifact("agreement.txt").write_text(format_table(table), encoding="utf-8")
    ctx.note("coders", agreement.coders)
    ctx.note("codes", len(agreement.codes))
    ctx.note("segments", len(agreement.units))
    ctx.note("segments_given", agreement.segments_given)


AGREEMENT_STAGE = StageType(
    name="agreement",
    family="code",
    description="Agreement between coders (people or machines): percent, kappa, alpha.",
    mode="whole",
    consumes=[
        Input("codings", "codings"),
        Input("other_codings", "codings", optional=True),
        Input("segments", "segments", optional=True),
    ],
    produces=[Output("agreement", "agreement", sensitive=False)],
    params=[
        Param("coders", "list", [], "coders to compare (default: every coder present)"),
        Param(
            "level",
            "str",
            "both",
            "segment (code present per segment), character (per coded character) or both",
            choices=("segment", "character", "both"),
        ),
    ],
    run=run_agreement,
)


# -- qualpipe agree ---------------------------------------------------------------------------


def _outputs(stage_dir: Path, kind: str) -> Iterator[DatasetReader]:
    manifest = read_manifest(stage_dir)
    for name, out in (manifest or {}).get("outputs", {}).items():
        if out.get("kind") == kind:
            yield DatasetReader(stage_dir / name, out)


def _stage_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.iterdir() if p.is_dir() and read_manifest(p) is not None)


def _codings_readers(path: Path) -> tuple[list[DatasetReader], Path | None]:
    """Codings datasets at ``path`` and the run folder to look for segments in."""
    if path.is_dir() and read_manifest(path) is None and (path / "manifest.json").exists():
        raise DatasetError(f"{path}: stage output is incomplete (interrupted run?); re-run it")
    if path.is_dir() and read_manifest(path) is None and not list(path.glob("*.parquet")):
        stages = _stage_dirs(path)
        found = [r for s in stages for r in _outputs(s, "codings")]
        if not found:
            raise DatasetError(f"{path}: no codings dataset in this run folder; run the pipeline")
        return found, path
    if path.is_dir() and read_manifest(path) is not None:
        found = list(_outputs(path, "codings"))
        if not found:
            raise DatasetError(f"{path}: this stage has no codings output")
        return found, path.parent
    reader = open_dataset(path)
    if reader.kind not in ("codings", None):
        raise DatasetError(f"{path}: a {reader.kind!r} dataset, not codings")
    stage = path.parent if path.is_dir() else path.parent.parent
    return [reader], stage.parent if read_manifest(stage) is not None else None


def _pick_segments(
    candidates: list[DatasetReader], coded: set[str]
) -> tuple[DatasetReader | None, list[dict[str, Any]] | None]:
    best: tuple[int, DatasetReader | None, list[dict[str, Any]] | None] = (0, None, None)
    for reader in candidates:
        rows = _rows(reader, ("segment_id", "doc_id"))
        hits = len(coded & {r["segment_id"] for r in rows})
        if hits > best[0]:
            best = (hits, reader, rows)
    return best[1], best[2]


@click.command("agree")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--coders", help="Comma-separated coders to compare (default: all).")
@click.option(
    "--level",
    type=click.Choice(["segment", "character", "both"]),
    default="both",
    show_default=True,
)
@click.option(
    "--segments",
    "segments_path",
    type=click.Path(path_type=Path),
    help="Segments dataset (default: the one in the run folder).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON.")
def agree_cmd(
    paths: tuple[Path, ...],
    coders: str | None,
    level: str,
    segments_path: Path | None,
    as_json: bool,
) -> None:
    """Agreement between coders in run folders, stage folders or codings datasets.

    PATHS: a run folder (.qualpipe/NAME), a stage folder or a codings dataset; give
    several to compare human codings with machine codings from another run.
    Segments come from --segments or the run folder (the segments dataset that holds
    the coded segments); without them only segments someone coded are counted.
    """
    readers: list[DatasetReader] = []
    run_dirs: list[Path] = []
    for path in paths:
        found, run_dir = _codings_readers(path)
        readers += [r for r in found if r.path not in {x.path for x in readers}]
        if run_dir is not None:
            run_dirs.append(run_dir)
    rows = [row for r in readers for row in _rows(r, CODING_COLUMNS)]
    if segments_path is not None:
        seg_reader: DatasetReader | None = open_dataset(segments_path)
        assert seg_reader is not None
        segments: list[dict[str, Any]] | None = _rows(seg_reader, ("segment_id", "doc_id"))
    else:
        candidates = [x for d in run_dirs for s in _stage_dirs(d) for x in _outputs(s, "segments")]
        seg_reader, segments = _pick_segments(candidates, {r["segment_id"] for r in rows})
    wanted = [c.strip() for c in coders.split(",") if c.strip()] if coders else None
    try:
        agreement = Agreement(rows, segments, wanted)
    except PipelineError as exc:
        raise DatasetError(str(exc)) from None
    table = agreement.table(level)
    if as_json:
        click.echo(json.dumps(table.to_pylist(), indent=2))
        return
    click.echo(f"codings: {', '.join(str(r.path) for r in readers)}")
    click.echo(
        f"segments: {seg_reader.path} ({len(agreement.units)} units)"
        if seg_reader is not None
        else f"segments: none found; only the {len(agreement.units)} coded segments count"
    )
    click.echo(f"coders: {', '.join(agreement.coders)}")
    click.echo("")
    click.echo(format_table(table), nl=False)


# -- hooks --------------------------------------------------------------------------------------


@hookimpl
def qualpipe_register_dataset_kinds(register: Callable[[DatasetKind], None]) -> None:
    register(MAPPING_REPORT)
    register(AGREEMENT)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(IMPORT_CODINGS)
    register(AGREEMENT_STAGE)


@hookimpl
def qualpipe_register_commands(cli: click.Group) -> None:
    cli.add_command(agree_cmd)
