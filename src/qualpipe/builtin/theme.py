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
from typing import Any

import pyarrow as pa
import structlog

from qualpipe import Input, Output, Param, PipelineError, StageContext, StageType, hookimpl
from qualpipe.codebook import Codebook
from qualpipe.schemas import CODEBOOK, COOCCURRENCE, QUOTES, THEME_ASSIGNMENTS, THEMES
from qualpipe.themes.cooccurrence import by_participant, cooccurrence_rows
from qualpipe.themes.proposals import code_group_rows, proposal_rows, propose
from qualpipe.themes.quotes import (
    INTERVIEWER_LABELS,
    LABEL_STYLES,
    QuoteOptions,
    is_interviewer,
    participant_numbers,
    select_quotes,
)
from qualpipe.themes.rollup import (
    DEFAULT_STATUSES,
    Segment,
    assignment_rows,
    check_statuses,
    roll_up,
    theme_nodes,
    theme_rows,
)
from qualpipe.themes.text import TfidfMatrix

log = structlog.get_logger("qualpipe")

SEGMENT_COLUMNS = ("segment_id", "doc_id", "text", "speaker", "participant_id", "attributes")
CODING_COLUMNS = (
    "segment_id", "doc_id", "code_id", "coder", "score", "status", "codebook_version",
)  # fmt: skip


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
    segments = _segments(ctx)
    book, version = _codebook(ctx)
    nodes = theme_nodes(book)
    if not nodes:
        log.warning(
            "codebook has no overarching, theme or subtheme nodes: themes will be empty",
            stage=ctx.stage_id,
        )
    other_version = [0]
    codings = _version_check(_rows(ctx, "codings", CODING_COLUMNS), version, other_version)
    rollup = roll_up(codings, book, statuses, segments)
    if other_version[0]:
        ctx.note("codings_other_codebook_version", other_version[0])
        log.warning(
            "codings were made with another version of the codebook; codes that kept their "
            "id are rolled up into the current tree",
            codings=other_version[0],
            codebook_version=version,
            stage=ctx.stage_id,
        )
    for reason, n in sorted(rollup.skipped.items()):
        ctx.note(f"codings_skipped:{reason}", n)
        if reason != "status":
            log.warning(
                "codings left out of the themes",
                reason=reason,
                codings=n,
                stage=ctx.stage_id,
            )

    themes = theme_rows(book, rollup, segments)
    ctx.write("themes", pa.Table.from_pylist(themes, schema=THEMES.schema))
    assignments = assignment_rows(rollup, book, segments)
    ctx.write(
        "theme_assignments", pa.Table.from_pylist(assignments, schema=THEME_ASSIGNMENTS.schema)
    )

    # -- co-occurrence -------------------------------------------------------------------
    participant_of = {s.segment_id: s.participant for s in segments.values()}
    themes_of: dict[str, set[str]] = {}
    for seg_id, theme_id in rollup.assignments:
        themes_of.setdefault(seg_id, set()).add(theme_id)
    co: list[dict[str, Any]] = []
    for kind, per_segment in (("code", rollup.codes), ("theme", themes_of)):
        co += cooccurrence_rows(kind, "segment", per_segment)
        co += cooccurrence_rows(kind, "participant", by_participant(per_segment, participant_of))
    ctx.write("cooccurrence", pa.Table.from_pylist(co, schema=COOCCURRENCE.schema))

    # -- quotes and proposals ------------------------------------------------------------
    ordered = list(segments.values())
    matrix = TfidfMatrix.fit([s.text for s in ordered])
    row_of = {s.segment_id: i for i, s in enumerate(ordered)}
    quotes: list[dict[str, Any]] = []
    if options.per_theme:
        numbers = participant_numbers(ordered, options.role_attribute)
        members = rollup.by_theme()
        for node in nodes:
            quotes += select_quotes(
                node.id, members.get(node.id, []), segments, matrix, row_of, options, numbers
            )
            ctx.advance()
    ctx.write("quotes", pa.Table.from_pylist(quotes, schema=QUOTES.schema))

    proposals: list[dict[str, Any]] = []
    if params["proposals"]:
        spoken = [s for s in ordered if not is_interviewer(s.speaker, options.interviewer_labels)]
        found = propose(spoken, params["n_proposals"], params["seed"], matrix, row_of)
        proposals = proposal_rows(found, segments, params["seed"])
        names = {c.id: c.name for c in book.codes}
        proposals += code_group_rows(rollup.codes, segments, names, params["code_jaccard"])
    ctx.write("proposals", pa.Table.from_pylist(proposals, schema=THEMES.schema))

    with_segments = sum(1 for t in themes if t["segments"])
    ctx.note("themes", len(themes))
    ctx.note("themes_with_segments", with_segments)
    ctx.note("assignments", len(assignments))
    ctx.note("codings_used", rollup.used)
    ctx.note("proposals", len(proposals))
    ctx.note("quotes", len(quotes))
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
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(THEME)
