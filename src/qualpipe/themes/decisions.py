"""Researchers' decisions about themes and quotes, applied by the ``theme`` stage.

Theme decisions (docs/review.md) change the tree the codings are rolled up into, so
counts, prevalence, co-occurrence and quotes all follow without special cases:

``rename``  the theme's name becomes ``value.name``.
``merge``   the theme disappears into ``value.into``: its children move there and
            codings made directly on it count for the target (chains are followed).
``reject``  the theme is left out: its children move up to its parent, codings made
            directly on it count for the parent (or, at the top, for no theme).
``accept``  changes nothing (counted).

Quote decisions: ``reject`` -> that segment is never a quote of that theme (the stage
asks the engine for as many extra candidates as were rejected, so the theme keeps its
number of quotes); ``accept`` -> pinned: quoted first, even if not picked.

A decision naming a theme the codebook does not have (any more) is reported as a
warning with the decision's id and otherwise ignored.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import structlog

from qualpipe.codebook import Code, Codebook
from qualpipe.decisions import Decision
from qualpipe.themes.quotes import QuoteOptions, label_for, participant_numbers, shorten
from qualpipe.themes.rollup import THEME_LEVELS, Segment

log = structlog.get_logger("qualpipe")


@dataclass
class ThemeReview:
    """The theme and quote decisions, resolved against one codebook."""

    book: Codebook
    #: codings on a merged or rejected node -> the node they now count for (None: none)
    code_map: dict[str, str | None] = field(default_factory=dict)
    #: a theme id of the original codebook -> the theme it ended up in (None: rejected)
    theme_map: dict[str, str | None] = field(default_factory=dict)
    rejected_quotes: set[tuple[str, str]] = field(default_factory=set)
    pinned_quotes: list[tuple[str, str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    unresolved: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, int]:
        """Counts for the stage manifest."""
        out = {f"decisions:{k}": v for k, v in sorted(self.counts.items())}
        out["decisions:unresolved"] = len(self.unresolved)
        return out

    def widen(self, options: QuoteOptions) -> QuoteOptions:
        """Quote options asking for enough extra candidates to replace rejected quotes."""
        if not self.rejected_quotes or not options.per_theme:
            return options
        per_theme = Counter(t for t, _ in self.rejected_quotes)
        return dataclasses.replace(options, per_theme=options.per_theme + max(per_theme.values()))

    def remap_codings(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Codings on merged or rejected theme nodes, moved to where they now count."""
        if not self.code_map:
            yield from batches
            return
        for batch in batches:
            codes = batch.column(batch.schema.get_field_index("code_id")).to_pylist()
            if not any(c in self.code_map for c in codes):
                yield batch
                continue
            keep = [c not in self.code_map or self.code_map[c] is not None for c in codes]
            new = [self.code_map.get(c, c) or c for c in codes]
            i = batch.schema.get_field_index("code_id")
            batch = batch.set_column(i, batch.schema.field(i), pa.array(new, pa.string()))
            yield batch.filter(pa.array(keep)) if not all(keep) else batch

    def apply_quotes(
        self,
        quotes: list[dict[str, Any]],
        options: QuoteOptions,
        segments: Callable[[], Iterable[pa.RecordBatch]],
    ) -> list[dict[str, Any]]:
        """Drop rejected quotes, add pinned ones first, keep ``per_theme`` per theme."""
        if not self.rejected_quotes and not self.pinned_quotes:
            return quotes
        by_theme: dict[str, list[dict[str, Any]]] = {}
        for q in quotes:
            if (q["theme_id"], q["segment_id"]) not in self.rejected_quotes:
                by_theme.setdefault(q["theme_id"], []).append(q)
        present = {(q["theme_id"], q["segment_id"]): q for q in quotes}
        missing = {s for t, s in self.pinned_quotes if (t, s) not in present}
        made = _pinned_rows(missing, options, segments) if missing else {}
        pins: dict[str, list[dict[str, Any]]] = {}
        for theme, seg in self.pinned_quotes:
            if (theme, seg) in self.rejected_quotes:
                continue
            row = present.get((theme, seg)) or (
                {**made[seg], "theme_id": theme} if seg in made else None
            )
            if row is None:
                continue  # the segment is gone (re-segmented): nothing to pin
            pins.setdefault(theme, []).append(row)
        out: list[dict[str, Any]] = []
        for theme in list(by_theme) + [t for t in pins if t not in by_theme]:
            pinned = pins.get(theme, [])
            pinned_ids = {p["segment_id"] for p in pinned}
            rest = [q for q in by_theme.get(theme, []) if q["segment_id"] not in pinned_ids]
            rest = rest[: max(0, options.per_theme - len(pinned))]
            for rank, q in enumerate(pinned + rest, 1):
                out.append({**q, "rank": rank})
        return out


def review_themes(book: Codebook, decisions: Sequence[Decision]) -> ThemeReview:
    """Resolve the effective ``theme`` and ``quote`` decisions against ``book``."""
    nodes = {c.id: c for c in book.codes}
    themes = {c.id for c in book.codes if c.level in THEME_LEVELS}
    renamed: dict[str, str] = {}
    merged: dict[str, str] = {}
    rejected: set[str] = set()
    review = ThemeReview(book=book)

    def unresolved(d: Decision, why: str) -> None:
        review.unresolved.append(d.id)
        log.warning(f"theme decision not applied: {why}", decision=d.id)

    for d in decisions:
        if d.target != "theme":
            continue
        tid = str(d.ref["theme_id"])
        if tid not in themes:
            unresolved(d, "the codebook has no such theme")
            continue
        if d.action == "rename":
            renamed[tid] = str(d.value["name"])
        elif d.action == "merge":
            into = str(d.value["into"])
            if into not in themes or into == tid:
                unresolved(d, "it merges into a theme the codebook does not have")
                continue
            merged[tid] = into
        elif d.action == "reject":
            rejected.add(tid)
        review.counts[f"theme_{d.action}"] += 1

    # where each removed node's children and codings go: merges followed, rejects to parent
    def final(node: str | None, seen: frozenset[str] = frozenset()) -> str | None:
        while node is not None and node not in seen and (node in merged or node in rejected):
            seen |= {node}
            node = merged[node] if node in merged else nodes[node].parent_id
        return None if node in seen else node

    removed = set(merged) | rejected
    for tid in removed:
        target = final(tid)
        review.code_map[tid] = target
        review.theme_map[tid] = target if tid in merged else None
    codes: list[Code] = []
    for c in book.codes:
        if c.id in removed:
            continue
        parent = final(c.parent_id) if c.parent_id in removed else c.parent_id
        if parent != c.parent_id or c.id in renamed:
            c = dataclasses.replace(c, parent_id=parent, name=renamed.get(c.id, c.name))
        codes.append(c)
    review.book = Codebook(book.name, _parents_first(codes), book.description)

    for d in decisions:
        if d.target != "quote":
            continue
        named = str(d.ref["theme_id"])
        theme = review.theme_map.get(named, named)
        if theme is None or theme not in themes:
            unresolved(d, "its theme is not in the codebook (or was rejected)")
            continue
        key = (theme, str(d.ref["segment_id"]))
        if d.action == "reject":
            review.rejected_quotes.add(key)
        elif d.action == "accept" and key not in review.pinned_quotes:
            review.pinned_quotes.append(key)
        review.counts[f"quote_{d.action}"] += 1
    return review


def _parents_first(codes: list[Code]) -> list[Code]:
    """The codes in tree order (parents before children, siblings as before)."""
    children: dict[str | None, list[Code]] = {}
    ids = {c.id for c in codes}
    for c in codes:
        children.setdefault(c.parent_id if c.parent_id in ids else None, []).append(c)
    out: list[Code] = []
    stack = list(reversed(children.get(None, [])))
    while stack:
        c = stack.pop()
        out.append(c)
        stack.extend(reversed(children.get(c.id, [])))
    return out


def _pinned_rows(
    wanted: set[str],
    options: QuoteOptions,
    segments: Callable[[], Iterable[pa.RecordBatch]],
) -> dict[str, dict[str, Any]]:
    """Quote rows (without theme) for pinned segments that the engine did not pick."""
    rows: dict[str, Segment] = {}
    for batch in segments():
        mask = pc.is_in(batch.column("segment_id"), pa.array(sorted(wanted), pa.string()))
        for row in batch.filter(mask).to_pylist():
            rows.setdefault(row["segment_id"], Segment.from_row(row))
    numbers: dict[str, int] = {}
    if any(
        options.style(seg.attributes.get(options.role_attribute, "")) in ("number", "roman")
        for seg in rows.values()
    ):  # participant numbers count every participant: one more pass, ids only
        slim = ("segment_id", "doc_id", "participant_id", "attributes", "speaker")
        every: list[Segment] = []
        for batch in segments():
            names = [c for c in slim if c in batch.schema.names]
            for row in batch.select(names).to_pylist():
                every.append(Segment.from_row(row, len(every)))
        numbers = participant_numbers(every, options.role_attribute)
    out: dict[str, dict[str, Any]] = {}
    for sid, seg in rows.items():
        role = seg.attributes.get(options.role_attribute, "")
        out[sid] = {
            "segment_id": sid,
            "doc_id": seg.doc_id,
            "participant_id": seg.participant_id,
            "label": label_for(seg, options.style(role), options.role_attribute, numbers),
            "text": shorten(seg.text, options.max_words),
            "score": None,
            "attributes": sorted(seg.attributes.items()),
        }
    return out
