"""Built-in plugin: the ``theme`` stage type (docs/themes.md).

A whole-dataset stage: segments, codings and the codebook in; out come the codebook's
themes with counts and prevalence by participant attribute (``themes``), which segment
carries which theme and through which codes (``theme_assignments``), illustrative quotes
(``quotes``), co-occurrence of codes and of themes (``cooccurrence``) and, kept apart so
they are never mistaken for agreed themes, inductive machine proposals (``proposals``).
The logic lives in :mod:`qualpipe.themes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog

from qualpipe import Input, Output, Param, PipelineError, StageContext, StageType, hookimpl
from qualpipe.codebook import Codebook
from qualpipe.schemas import CODEBOOK, COOCCURRENCE, QUOTES, THEME_ASSIGNMENTS, THEMES
from qualpipe.store import DatasetReader, parquet_file
from qualpipe.themes.decisions import review_themes
from qualpipe.themes.quotes import (
    INTERVIEWER_LABELS,
    LABEL_STYLES,
    QuoteOptions,
)
from qualpipe.themes.rollup import (
    DEFAULT_STATUSES,
    Segment,
    check_statuses,
    theme_nodes,
)
from qualpipe.themes.stream import (
    PROPOSAL_CAP,
    READ_BATCH,
    ThemeEngine,
    segment_texts,
    spill_folder,
)

log = structlog.get_logger("qualpipe")

SEGMENT_COLUMNS = ("segment_id", "doc_id", "text", "speaker", "participant_id", "attributes")
#: a coding's doc_id is not read: assignments take the segment's
CODING_COLUMNS = ("segment_id", "code_id", "coder", "score", "status", "codebook_version")


def _rows(ctx: StageContext, name: str, columns: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for batch in ctx.batches(name):
        present = [c for c in columns if c in batch.schema.names]
        yield from batch.select(present).to_pylist()


def _segments(ctx: StageContext) -> dict[str, Segment]:
    out: dict[str, Segment] = {}
    for row in _rows(ctx, "segments", SEGMENT_COLUMNS):
        if row["segment_id"] not in out:
            out[row["segment_id"]] = Segment.from_row(row, len(out))
    return out


def _codebook(ctx: StageContext) -> tuple[Codebook, str | None]:
    batches = list(ctx.batches("codebook"))
    table = pa.Table.from_batches(batches) if batches else CODEBOOK.schema.empty_table()
    version = table.column("codebook_version")[0].as_py() if table.num_rows else None
    return Codebook.from_table(table), version


def _version_check(
    rows: Iterator[dict[str, Any]], version: str | None, other: list[int]
) -> Iterator[dict[str, Any]]:
    """Pass codings through, counting those made with another codebook version."""
    for row in rows:
        made_with = row.get("codebook_version")
        if version and made_with and made_with != version:
            other[0] += 1
        yield row


def _options(params: dict[str, Any]) -> QuoteOptions:
    raw = params["label_by_role"] or {}
    options = QuoteOptions(
        per_theme=params["quotes_per_theme"],
        min_words=params["min_words"],
        max_words=params["max_words"],
        interviewer_labels=[str(v) for v in params["interviewer_labels"]],
        role_attribute=params["role_attribute"],
        label=params["label"],
        label_by_role={str(k): str(v) for k, v in raw.items()},
    )
    options.check()
    return options


def run(ctx: StageContext) -> None:
    params = dict(ctx.params)
    options = _options(params)
    statuses = check_statuses(params["statuses"])
    if params["n_proposals"] < 1 and params["proposals"]:
        raise PipelineError(
            f"theme: n_proposals must be at least 1 (got {params['n_proposals']}); "
            "set proposals: false for none"
        )
    book, version = _codebook(ctx)
    # researchers' theme and quote decisions (docs/review.md): renames, merges and
    # rejections change the tree; rejected quotes are replaced, accepted ones pinned
    review = review_themes(book, ctx.decisions)
    book = review.book
    nodes = theme_nodes(book)
    if not nodes:
        log.warning(
            "codebook has no overarching, theme or subtheme nodes: themes will be empty",
            stage=ctx.stage_id,
        )

    def batches(name: str, columns: tuple[str, ...]) -> Iterator[pa.RecordBatch]:
        reader = ctx.inputs[name]
        if not isinstance(reader, DatasetReader):
            for batch in ctx.batches(name, READ_BATCH):
                yield batch.select([c for c in columns if c in batch.schema.names])
            return
        # only the columns used are read (segments: not `context`), on this thread (the
        # parts are small: a thread pool per column chunk costs more CPU than it saves)
        for f in reader.files:
            part = parquet_file(f)
            names = set(part.schema_arrow.names)
            present = [c for c in columns if c in names]
            yield from part.iter_batches(batch_size=READ_BATCH, columns=present, use_threads=False)

    with spill_folder(ctx.workdir) as spill:
        engine = ThemeEngine(book, statuses, version, review.widen(options), Path(spill))
        engine.read_segments(batches("segments", SEGMENT_COLUMNS))
        engine.read_codings(review.remap_codings(batches("codings", CODING_COLUMNS)))
        if engine.other_version:
            ctx.note("codings_other_codebook_version", engine.other_version)
            log.warning(
                "codings were made with another version of the codebook; codes that kept "
                "their id are rolled up into the current tree",
                codings=engine.other_version,
                codebook_version=version,
                stage=ctx.stage_id,
            )
        for reason, n in sorted(engine.skipped.items()):
            ctx.note(f"codings_skipped:{reason}", n)
            if reason != "status":
                log.warning(
                    "codings left out of the themes",
                    reason=reason,
                    codings=n,
                    stage=ctx.stage_id,
                )

        themes_written = 0
        for table in engine.assignments(centroids=bool(options.per_theme)):
            ctx.write("theme_assignments", table)
            themes_written += table.num_rows
        if not themes_written:
            ctx.write("theme_assignments", THEME_ASSIGNMENTS.schema.empty_table())
        themes = engine.theme_rows()
        ctx.write("themes", pa.Table.from_pylist(themes, schema=THEMES.schema))
        co = engine.cooccurrence()
        ctx.write("cooccurrence", pa.Table.from_pylist(co, schema=COOCCURRENCE.schema))
        proposals_on = bool(params["proposals"])
        engine.second_pass(
            proposals_on, params["seed"], params["code_jaccard"] if proposals_on else None
        )
        # the segment ids are read back from the spill folder: quotes and proposals in it
        quotes = engine.quotes(
            lambda wanted: segment_texts(batches("segments", SEGMENT_COLUMNS), engine.index, wanted)
        )
        quotes = review.apply_quotes(quotes, options, lambda: ctx.batches("segments", READ_BATCH))
        ctx.advance(len(nodes))
        ctx.write("quotes", pa.Table.from_pylist(quotes, schema=QUOTES.schema))

        proposals: list[dict[str, Any]] = []
        if proposals_on:
            found = engine.proposals(params["n_proposals"], params["seed"])
            proposals = engine.proposal_rows(found, params["seed"])
            proposals += engine.code_group_rows()
        ctx.write("proposals", pa.Table.from_pylist(proposals, schema=THEMES.schema))

    with_segments = sum(1 for t in themes if t["segments"])
    ctx.note("themes", len(themes))
    ctx.note("themes_with_segments", with_segments)
    ctx.note("assignments", engine.n_assignments)
    ctx.note("codings_used", engine.used)
    ctx.note("proposals", len(proposals))
    ctx.note("quotes", len(quotes))
    if ctx.decisions:
        for name, n in review.stats().items():
            ctx.note(name, n)
    if engine.sample_total > PROPOSAL_CAP:
        ctx.note("proposals_sampled_from", engine.sample_total)
    log.info(
        "themes",
        themes=len(themes),
        with_segments=with_segments,
        quotes=len(quotes),
        proposals=len(proposals),
    )


THEME = StageType(
    name="theme",
    family="theme",
    description=(
        "Roll codings up the codebook into themes with counts and prevalence, pick "
        "illustrative quotes, count co-occurrence, and propose candidate themes (kept apart)."
    ),
    mode="whole",
    consumes=[
        Input("segments", "segments"),
        Input("codings", "codings"),
        Input("codebook", "codebook"),
    ],
    produces=[
        Output("themes", "themes"),
        Output("theme_assignments", "theme_assignments"),
        Output("quotes", "quotes"),
        Output("cooccurrence", "cooccurrence"),
        Output("proposals", "themes"),
    ],
    params=[
        Param(
            "statuses",
            "list",
            list(DEFAULT_STATUSES),
            "coding statuses that count (rejected never does)",
        ),
        Param("quotes_per_theme", "int", 3, "illustrative quotes per theme (0: none)"),
        Param("min_words", "int", 15, "shorter segments are quoted only if a theme has no other"),
        Param("max_words", "int", 80, "longer segments are shortened at a sentence end, with …"),
        Param(
            "interviewer_labels",
            "list",
            list(INTERVIEWER_LABELS),
            "speaker labels never quoted nor clustered (case-insensitive)",
        ),
        Param("role_attribute", "str", "role", "participant attribute holding the role"),
        Param(
            "label",
            "str",
            "role",
            "quote labels: role (Service user), participant (P01), number (7), roman (XIII)",
            choices=LABEL_STYLES,
        ),
        Param(
            "label_by_role",
            "dict",
            {},
            "label style per role, e.g. {Service user: number, Professional: roman}",
        ),
        Param("proposals", "bool", True, "propose candidate themes by clustering segments"),
        Param("n_proposals", "int", 5, "most candidate themes proposed"),
        Param(
            "code_jaccard",
            "float",
            0.3,
            "also propose groups of codes that co-occur in segments at least this often "
            "(Jaccard share)",
        ),
        Param("seed", "int", 0, "random seed of the clustering (fixed: same input, same output)"),
    ],
    run=run,
    version="1",
    decisions=("theme", "quote"),
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(THEME)
