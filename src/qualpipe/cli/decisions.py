"""``qualpipe decisions``: list, undo and import researchers' review decisions.

``qualpipe decisions PIPELINE`` lists the decisions file (docs/review.md) as a table or
JSON, filtered by target, person or action; ``--undo ID`` appends an undo;
``qualpipe decisions add PIPELINE TARGET ACTION KEY=VALUE...`` records one (scripts).
``qualpipe decisions import PIPELINE PROJECT.qdpx`` compares a REFI-QDA project exported
by qualpipe and reviewed in QualCoder, NVivo, MAXQDA or ATLAS.ti with the run's codings
and records the differences as decisions (source ``qdpx``): a suggestion the researcher
removed is rejected, a coding they added is added.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from qualpipe.decisions import (
    ACTIONS,
    TARGETS,
    UNDO,
    Decision,
    DecisionError,
    DecisionStore,
    effective_of,
)
from qualpipe.errors import QualpipeError
from qualpipe.plugins import Manager

_pipeline = click.argument("pipeline", type=click.Path(path_type=Path, dir_okay=False))
_workdir = click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Run store folder (default: .qualpipe/<pipeline name> beside the pipeline file).",
)


class _DefaultList(click.Group):
    """``qualpipe decisions PIPELINE ...`` means ``qualpipe decisions list PIPELINE ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["list", *args]
        return super().parse_args(ctx, args)


@click.group("decisions", cls=_DefaultList)
def decisions_cmd() -> None:
    """Review decisions: `decisions PIPELINE` lists them; `decisions import` reads a
    reviewed .qdpx project."""


def _store(pipeline: Path) -> tuple[DecisionStore, str]:
    from qualpipe.pipeline.model import load_pipeline

    pipe = load_pipeline(pipeline)
    return pipe.decision_store(), pipe.name


def _short(value: Mapping[str, Any], show_text: bool) -> str:
    parts = []
    for k, v in value.items():
        if k == "text" and not show_text:
            v = f"<{len(str(v))} characters>"
        parts.append(f"{k}={v}")
    return " ".join(parts)


def _ids(reader: Any, column: str) -> set[str]:
    import pyarrow.parquet as pq

    out: set[str] = set()
    for f in reader.files:
        if column in pq.read_schema(f).names:
            out.update(
                str(v) for v in pq.read_table(f, columns=[column]).column(column).to_pylist()
            )
    return out


def unmatched(
    pipeline: Path, decisions: Sequence[Decision], workdir: Path | None = None
) -> set[str]:
    """Ids of decisions whose document or segment is not in the last run (a document
    removed, or the transcript edited or re-segmented);
    empty when the pipeline has not run. Reads id columns only."""
    from qualpipe.runner import RunOptions, prepare

    try:
        ctx = prepare(pipeline, (), RunOptions(workdir=workdir))
    except QualpipeError:
        return set()
    segments: set[str] | None = None
    documents: set[str] | None = None
    for stage in ctx.stages:
        manifest = ctx.store.manifest(stage.id)
        if manifest is None:
            continue
        for out in stage.type.outputs:
            if out.name not in manifest.get("outputs", {}):
                continue
            reader = ctx.store.reader(stage.id, out.name)
            if out.kind == "segments":
                segments = (segments or set()) | _ids(reader, "segment_id")
            elif out.kind == "documents":
                documents = (documents or set()) | _ids(reader, "doc_id")
    found: set[str] = set()
    for d in decisions:
        seg, doc = d.ref.get("segment_id"), d.ref.get("document_id")
        if (seg is not None and segments is not None and seg not in segments) or (
            doc is not None and documents is not None and doc not in documents
        ):
            found.add(d.id)
    return found


@decisions_cmd.command("list")
@_pipeline
@click.option("--target", type=click.Choice(TARGETS), multiple=True, help="Only these targets.")
@click.option("--who", multiple=True, help="Only decisions by these people.")
@click.option(
    "--action", type=click.Choice([*ACTIONS, UNDO]), multiple=True, help="Only these actions."
)
@click.option("--effective", is_flag=True, help="Only the decisions in force (latest per item).")
@click.option("--undo", "undo_id", metavar="ID", help="Undo the decision with this id (or prefix).")
@click.option("--by", "undo_who", default="", help="Who undoes (default: the OS user).")
@click.option("--show-text", is_flag=True, help="Show the text of missed identifiers.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per decision).")
@_workdir
def list_cmd(
    pipeline: Path,
    target: tuple[str, ...],
    who: tuple[str, ...],
    action: tuple[str, ...],
    effective: bool,
    undo_id: str | None,
    undo_who: str,
    show_text: bool,
    as_json: bool,
    workdir: Path | None,
) -> None:
    """List the decisions about PIPELINE's suggestions (in the order they were taken)."""
    store, _ = _store(pipeline)
    if undo_id:
        every = store.all()
        matches = [d for d in every if d.id.startswith(undo_id)]
        if len(matches) != 1:
            raise DecisionError(
                f"{store.path}: {'no' if not matches else 'more than one'} decision with id "
                f"{undo_id!r}; `qualpipe decisions {pipeline}` lists them"
            )
        done = store.undo(matches[0].id, who=undo_who)
        click.echo(f"undid {matches[0].id} ({matches[0].target} {matches[0].action}): {done.id}")
        return
    all_decisions = store.all()
    in_force = {d.id for d in effective_of(all_decisions)}
    shown = [
        d
        for d in all_decisions
        if (not target or d.target in target)
        and (not who or d.who in who)
        and (not action or d.action in action)
        and (not effective or d.id in in_force)
    ]
    stale = unmatched(pipeline, [d for d in shown if d.id in in_force], workdir)
    if as_json:
        rows = []
        for d in shown:
            row = d.to_json()
            if not show_text and "text" in row["value"]:
                row["value"] = {**row["value"], "text": None}
            rows.append({**row, "effective": d.id in in_force, "unmatched": d.id in stale})
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not all_decisions:
        click.echo(f"no decisions yet ({store.path})")
        return
    click.echo(f"{store.path}: {len(shown)} of {len(all_decisions)} decisions")
    for d in shown:
        # ~: superseded by a later decision; ?: names a segment or document the run lacks
        mark = "?" if d.id in stale else " " if d.id in in_force else "~"
        what = _short(d.ref, show_text)
        value = _short(d.value, show_text)
        click.echo(
            f"{mark} {d.id[:8]}  {d.at[:19]}  {d.who:<10} {d.source:<6} {d.target:<7} "
            f"{d.action:<6} {what}{'  -> ' + value if value else ''}"
            f"{'  # ' + d.memo if d.memo else ''}"
        )
    if stale:
        click.echo(
            f"{len(stale)} decision(s) marked ? name a segment or document the last run does "
            "not have (removed, or the transcript edited or re-segmented); "
            "they no longer apply",
            err=True,
        )


def _pairs(items: Sequence[str], what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise DecisionError(f"{what} {item!r}: write KEY=VALUE, e.g. segment_id=d1:t3")
        out[key] = int(value) if key in ("start", "end") and value.isdigit() else value
    return out


@decisions_cmd.command("add")
@_pipeline
@click.argument("target", type=click.Choice(TARGETS))
@click.argument("action", type=click.Choice(ACTIONS))
@click.argument("ref", nargs=-1, metavar="KEY=VALUE...")
@click.option("--value", "values", multiple=True, metavar="KEY=VALUE", help="New data (repeat).")
@click.option("--who", default="", help="Who decides (default: the OS user).")
@click.option("--memo", default="", help="A note kept with the decision.")
def add_cmd(
    pipeline: Path,
    target: str,
    action: str,
    ref: tuple[str, ...],
    values: tuple[str, ...],
    who: str,
    memo: str,
) -> None:
    """Record one decision from a script, e.g. `decisions add PIPELINE coding reject
    segment_id=d1:t3 code=support/practical`."""
    store, _ = _store(pipeline)
    decision = Decision(
        target,
        action,
        _pairs(ref, "reference"),
        _pairs(values, "--value"),
        who=who,
        memo=memo,
        source="cli",
    )
    done = store.append(decision)
    click.echo(f"{done.id} {target} {action} {_short(done.ref, False)} ({store.path})")


# -- qdpx import --------------------------------------------------------------------------------


@dataclass
class QdpxDiff:
    """What an import found: decisions to record and what could not be used."""

    decisions: list[Decision] = field(default_factory=list)
    unchanged: int = 0
    already: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    documents: int = 0


_MARKER = re.compile(r"qualpipe coding: (\S+)")


def exported_coding_ids(qde: bytes) -> set[str]:
    """The ``qualpipe coding: ID`` markers our exporter writes in selection descriptions."""
    return set(_MARKER.findall(qde.decode("utf-8", errors="replace")))


def qdpx_decisions(
    project: Any,
    codings: Sequence[Mapping[str, Any]],
    documents: Sequence[Mapping[str, Any]],
    segments: Sequence[Mapping[str, Any]],
    codebook: Any,
    existing: Iterable[Decision],
    *,
    who: str,
    memo: str,
    origin: str = "auto",
) -> QdpxDiff:
    """Compare a reviewed project's codings with the run's; return the decisions.

    Per (segment, code) of the documents the project holds: a run coding (suggested or
    accepted, or human from an earlier decision) the project no longer has -> reject; one
    whose selection now covers other words (not just other white space) -> edit with the
    new span; a project coding the run does not have -> add (with the selection's span
    when it is narrower than the segment). Decisions already in force are not repeated.
    """
    from qualpipe.coding.human import DocumentIndex, _match_source, import_qdpx

    result = import_qdpx(project, documents, segments, codebook, origin=origin)
    docs = DocumentIndex(documents)
    covered = set()
    for src in project.sources:
        if src.problem is None:
            doc_id, _ = _match_source(src, docs, {})
            if doc_id is not None:
                covered.add(doc_id)
    seg_span = {s["segment_id"]: (int(s["start"]), int(s["end"])) for s in segments}
    in_project: dict[tuple[str, str], tuple[int, int]] = {}
    for row in result.rows:
        key = (row["segment_id"], row["code_id"])
        lo, hi = in_project.get(key, (row["start"], row["end"]))
        in_project[key] = (min(lo, row["start"]), max(hi, row["end"]))
    in_run = {
        (c["segment_id"], c["code_id"]): c
        for c in codings
        if c["doc_id"] in covered and c["status"] in ("suggested", "accepted", "human")
    }
    in_force = {d.key(): d for d in effective_of(existing) if d.target == "coding"}
    diff = QdpxDiff(documents=len(covered))
    diff.problems = {str(k): int(v) for k, v in result.stats.get("problems", {}).items()}
    text_of = {d["doc_id"]: str(d["text"]) for d in documents}

    def record(action: str, seg: str, code: str, value: dict[str, Any], done: bool) -> None:
        """Add a coding decision, or count it as already in force (``done``)."""
        if done:
            diff.already += 1
            return
        ref = {"segment_id": seg, "code": code}
        diff.decisions.append(
            Decision("coding", action, ref, value, who=who, memo=memo, source="qdpx")
        )

    for (seg, code), ours in sorted(in_run.items()):
        previous = in_force.get(("coding", seg, code))
        if (seg, code) in in_project:
            start, end = in_project[(seg, code)]
            text = text_of.get(ours["doc_id"], "")
            if text[start:end].strip() == text[ours["start"] : ours["end"]].strip():
                diff.unchanged += 1
                continue
            # the researcher resized the selection: it becomes their coding of that span
            span = {"start": start, "end": end}
            record("edit", seg, code, span, previous is not None and previous.value == span)
            continue
        record("reject", seg, code, {}, previous is not None and previous.action == "reject")
    for (seg, code), (start, end) in sorted(in_project.items()):
        if (seg, code) in in_run:
            continue
        previous = in_force.get(("coding", seg, code))
        value: dict[str, Any] = {}
        if (start, end) != seg_span.get(seg):
            value = {"start": start, "end": end}
        added = previous is not None and previous.action == "add" and previous.value == value
        record("add", seg, code, value, added)
    return diff


def _export_time(qde: bytes) -> datetime | None:
    m = re.search(rb'<Project\b[^>]*\bcreationDateTime="([^"]+)"', qde)
    if not m:
        return None
    try:
        return datetime.fromisoformat(m.group(1).decode().replace("Z", "+00:00"))
    except ValueError:
        return None


def _run_inputs(
    pipeline: Path, workdir: Path | None, manager: Manager, stage_id: str | None
) -> Any:
    """The coding stage of the run (it writes codings and reads coding decisions) and the
    datasets an import compares against."""
    from qualpipe.codebook import Codebook
    from qualpipe.runner import RunOptions, prepare

    ctx = prepare(pipeline, (), RunOptions(workdir=workdir), manager)
    coding_stages = [
        s
        for s in ctx.stages
        if "coding" in s.type.decisions and any(o.kind == "codings" for o in s.type.outputs)
    ]
    candidates = [s for s in coding_stages if stage_id is None or s.id == stage_id]
    if len(candidates) != 1:
        names = ", ".join(s.id for s in coding_stages) or "none"
        raise QualpipeError(
            f"{pipeline}: choose the coding stage with --stage (stages reading coding "
            f"decisions: {names})"
        )
    stage = candidates[0]
    manifest = ctx.store.manifest(stage.id)
    if manifest is None:
        raise QualpipeError(
            f"stage {stage.id!r} of {pipeline} has not run in {ctx.workdir}; run the pipeline "
            "(and export the .qdpx) first"
        )
    codings = ctx.store.reader(stage.id, "codings").read_all().to_pylist()
    segments = ctx.input_reader(stage, "segments").read_all().to_pylist()
    book = Codebook.from_table(ctx.input_reader(stage, "codebook").read_all())
    seg_binding = stage.bindings["segments"]
    if seg_binding.stage is None:
        raise QualpipeError(f"stage {stage.id!r} reads segments from a path; import needs a run")
    producer = ctx.stage(seg_binding.stage)
    doc_inputs = [n for n, b in producer.bindings.items() if b.kind == "documents"]
    if not doc_inputs:
        raise QualpipeError(f"stage {producer.id!r} reads no documents; cannot place selections")
    documents = ctx.input_reader(producer, doc_inputs[0]).read_all().to_pylist()
    return ctx, stage, manifest, codings, segments, book, documents


@decisions_cmd.command("import")
@_pipeline
@click.argument("project_file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--who", default="", help="Who reviewed the project (default: the OS user).")
@click.option("--stage", "stage_id", metavar="ID", help="The coding stage (if several).")
@click.option(
    "--origin",
    type=click.Choice(["auto", "nvivo", "qualcoder", "codepoints"]),
    default="auto",
    help="How the program counted offsets (default: from the project, checked).",
)
@click.option("--dry-run", is_flag=True, help="Show what would be recorded; record nothing.")
@click.option("--force", is_flag=True, help="Import even if the run changed after the export.")
@_workdir
@click.pass_obj
def import_cmd(
    manager: Manager,
    pipeline: Path,
    project_file: Path,
    who: str,
    stage_id: str | None,
    origin: str,
    dry_run: bool,
    force: bool,
    workdir: Path | None,
) -> None:
    """Record the differences between a reviewed PROJECT_FILE (.qdpx) and the run's
    codings as decisions: removed suggestions are rejected, new codings added."""
    from qualpipe.coding.human import read_qdpx

    ctx, stage, manifest, codings, segments, book, documents = _run_inputs(
        pipeline, workdir, manager, stage_id
    )
    try:
        with zipfile.ZipFile(project_file) as zf:
            qde = zf.read("project.qde")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise QualpipeError(
            f"{project_file}: not a REFI-QDA project ({type(exc).__name__}); export it as .qdpx"
        ) from None
    exported = _export_time(qde)
    finished = manifest.get("finished_at")
    if exported and finished and not force:
        ran = datetime.fromisoformat(str(finished).replace("Z", "+00:00"))
        if ran.replace(microsecond=0) > exported:
            raise QualpipeError(
                f"{project_file}: stage {stage.id!r} ran again after this project was exported "
                f"({finished} > {exported.isoformat()}), so its suggestions may differ; "
                "export the current run, or pass --force"
            )
    suggested = [c for c in codings if c["status"] in ("suggested", "accepted")]
    if suggested and not exported_coding_ids(qde):
        raise QualpipeError(
            f"{project_file}: the project holds none of the run's codings (was it exported "
            "by this pipeline, with its suggestions?); nothing imported"
        )
    store = ctx.pipeline.decision_store()
    diff = qdpx_decisions(
        read_qdpx(project_file),
        codings,
        documents,
        segments,
        book,
        store.all(),
        who=who,
        memo=f"imported from {project_file.name}",
        origin=origin,
    )
    added = sum(1 for d in diff.decisions if d.action == "add")
    edited = sum(1 for d in diff.decisions if d.action == "edit")
    rejected = len(diff.decisions) - added - edited
    recorded = diff.decisions if dry_run else store.extend(diff.decisions)
    verb = "would record" if dry_run else "recorded"
    click.echo(
        f"{project_file.name}: {diff.documents} document(s); {verb} {rejected} rejection(s), "
        f"{added} addition(s) and {edited} edit(s); {diff.unchanged} coding(s) unchanged, "
        f"{diff.already} already decided"
    )
    for d in recorded:
        click.echo(
            f"  {d.action:<6} {d.ref['segment_id']}  {d.ref['code']}  {_short(d.value, False)}"
        )
    if diff.problems:
        problems = ", ".join(f"{k}: {v}" for k, v in sorted(diff.problems.items()))
        click.echo(f"selections not placed: {problems} (see docs/interop.md)", err=True)
    if not dry_run and recorded:
        click.echo(f"decisions in {store.path}; `qualpipe run {pipeline}` applies them")
