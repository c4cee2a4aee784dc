"""Deductive roll-up: from codings to themes through the codebook tree.

A coding of code ``c`` assigns its segment to every *theme-like* node (level
``overarching``, ``theme`` or ``subtheme``) among ``c`` and its ancestors: a coding of
*Listening* (a code under the sub-theme *Being heard* under the theme *Talking* under the
overarching theme *Spontaneous planned complexity*) puts its segment in all three. Codings
whose status is not counted (``rejected`` never is) are left out.

Participants are counted by ``participant_id``; a segment without one counts as a
participant of its own document (``doc:<doc_id>``), so transcripts without a manifest are
still counted as cases. Prevalence uses the attributes carried on the *segments* (those of
the interview the segment comes from), so a support worker interviewed in pair P1 and in
pair P2 counts under P2 for a theme only if they expressed it in the P2 interview.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualpipe.codebook import Code, Codebook
from qualpipe.errors import PipelineError

#: Codebook levels that are themes (everything but ``code``).
THEME_LEVELS = ("overarching", "theme", "subtheme")
#: Every coding status (docs/datasets.md, ``codings``).
STATUSES = ("suggested", "accepted", "rejected", "human")
#: Statuses counted by default: everything but ``rejected``.
DEFAULT_STATUSES = ("suggested", "accepted", "human")
#: Key of the per-attribute totals in the prevalence JSON.
TOTAL = "_total"


@dataclass
class Segment:
    """What the theme stage keeps of a segment row."""

    segment_id: str
    doc_id: str
    text: str
    speaker: str | None
    participant_id: str | None
    attributes: dict[str, str]
    order: int = 0

    @property
    def participant(self) -> str:
        """The case the segment belongs to: its participant, else its document."""
        return self.participant_id or f"doc:{self.doc_id}"

    @classmethod
    def from_row(cls, row: Mapping[str, Any], order: int = 0) -> Segment:
        return cls(
            segment_id=row["segment_id"],
            doc_id=row["doc_id"],
            text=row.get("text") or "",
            speaker=row.get("speaker"),
            participant_id=row.get("participant_id") or None,
            attributes=attributes_dict(row.get("attributes")),
            order=order,
        )


def attributes_dict(value: Any) -> dict[str, str]:
    """A map column as Arrow gives it (a list of pairs) or a dict -> ``{key: value}``."""
    if not value:
        return {}
    items = value.items() if isinstance(value, Mapping) else value
    return {str(k): str(v) for k, v in items if k is not None and v is not None}


@dataclass
class Assignment:
    """A segment carries a theme, through these codes and coders."""

    segment_id: str
    doc_id: str
    theme_id: str
    score: float | None = None
    code_ids: set[str] = field(default_factory=set)
    coders: set[str] = field(default_factory=set)

    def row(self) -> dict[str, Any]:
        return {
            "segment_id": self.segment_id,
            "doc_id": self.doc_id,
            "theme_id": self.theme_id,
            "score": self.score,
            "code_ids": sorted(self.code_ids),
            "coders": sorted(self.coders),
        }


@dataclass
class Rollup:
    """The result of :func:`roll_up`."""

    #: (segment_id, theme_id) -> assignment
    assignments: dict[tuple[str, str], Assignment] = field(default_factory=dict)
    #: segment_id -> codes applied to it by counted codings
    codes: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    #: codings counted
    used: int = 0
    #: codings left out, by reason: ``status``, ``unknown_code``, ``unknown_segment``
    skipped: Counter[str] = field(default_factory=Counter)

    def by_theme(self) -> dict[str, list[str]]:
        """theme_id -> its segment ids (in the order the assignments were made)."""
        out: dict[str, list[str]] = defaultdict(list)
        for seg_id, theme_id in self.assignments:
            out[theme_id].append(seg_id)
        return out


def theme_nodes(book: Codebook) -> list[Code]:
    """The codebook's theme-like nodes, in codebook order."""
    return [c for c in book.codes if c.level in THEME_LEVELS]


def check_statuses(statuses: Iterable[Any]) -> frozenset[str]:
    """Validate the ``statuses`` parameter; ``rejected`` may never count."""
    wanted = [str(s) for s in statuses]
    unknown = sorted(set(wanted) - set(STATUSES))
    if unknown:
        raise PipelineError(
            f"theme: statuses: unknown status(es) {', '.join(unknown)} "
            f"(known: {', '.join(STATUSES)})"
        )
    if "rejected" in wanted:
        raise PipelineError(
            "theme: statuses: 'rejected' codings never count towards themes; remove it"
        )
    if not wanted:
        raise PipelineError(f"theme: statuses: name at least one of {', '.join(DEFAULT_STATUSES)}")
    return frozenset(wanted)


def theme_targets(book: Codebook) -> dict[str, list[str]]:
    """code_id -> the theme-like nodes a coding of it counts towards (itself first)."""
    out: dict[str, list[str]] = {}
    for c in book.codes:
        nodes = [c, *book.ancestors(c.id)]
        out[c.id] = [n.id for n in nodes if n.level in THEME_LEVELS]
    return out


def roll_up(
    codings: Iterable[Mapping[str, Any]],
    book: Codebook,
    statuses: Iterable[str] = DEFAULT_STATUSES,
    segments: Mapping[str, Segment] | None = None,
) -> Rollup:
    """Assign segments to themes from ``codings`` (rows of the ``codings`` dataset).

    ``segments`` (segment_id -> :class:`Segment`), when given, limits the roll-up to
    codings of those segments; others are counted in ``skipped["unknown_segment"]``.
    Codes not in ``book`` are counted in ``skipped["unknown_code"]``.
    """
    counted = check_statuses(statuses)
    targets = theme_targets(book)
    result = Rollup()
    for c in codings:
        if c.get("status") not in counted:
            result.skipped["status"] += 1
            continue
        code_id = c["code_id"]
        if code_id not in targets:
            result.skipped["unknown_code"] += 1
            continue
        seg_id = c["segment_id"]
        if segments is not None and seg_id not in segments:
            result.skipped["unknown_segment"] += 1
            continue
        result.used += 1
        result.codes[seg_id].add(code_id)
        score = c.get("score")
        for theme_id in targets[code_id]:
            key = (seg_id, theme_id)
            a = result.assignments.get(key)
            if a is None:
                a = result.assignments[key] = Assignment(seg_id, c["doc_id"], theme_id)
            a.code_ids.add(code_id)
            if c.get("coder"):
                a.coders.add(str(c["coder"]))
            if score is not None and (a.score is None or score > a.score):
                a.score = float(score)
    return result


def assignment_rows(
    rollup: Rollup, book: Codebook, segments: Mapping[str, Segment] | None = None
) -> list[dict[str, Any]]:
    """Rows of ``theme_assignments``: by segment (dataset order), then codebook order."""
    position = {c.id: i for i, c in enumerate(book.codes)}

    def key(a: Assignment) -> tuple[int, str, int]:
        seg = segments.get(a.segment_id) if segments is not None else None
        return (seg.order if seg else 0, a.segment_id, position[a.theme_id])

    return [a.row() for a in sorted(rollup.assignments.values(), key=key)]


class Prevalence:
    """Participants per attribute value, over the whole corpus and per theme."""

    def __init__(self, segments: Mapping[str, Segment]) -> None:
        self.segments = segments
        self.totals = self._count(segments.keys())

    def _count(self, seg_ids: Iterable[str]) -> dict[str, dict[str, set[str]]]:
        out: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for seg_id in seg_ids:
            seg = self.segments.get(seg_id)
            if seg is None:
                continue
            for attr, value in seg.attributes.items():
                out[attr][value].add(seg.participant)
        return out

    def json(self, seg_ids: Iterable[str]) -> str:
        """``{attribute: {value: participants with the theme, ..., "_total": {value: n}}}``.

        Every attribute and value present on any segment is listed (0 where no
        participant with that value has the theme); ``_total`` gives the participants
        with each value in the whole corpus, so readers can compute shares.
        """
        found = self._count(seg_ids)
        out: dict[str, dict[str, Any]] = {}
        for attr in sorted(self.totals):
            values = sorted(self.totals[attr])
            entry: dict[str, Any] = {v: len(found.get(attr, {}).get(v, ())) for v in values}
            entry[TOTAL] = {v: len(self.totals[attr][v]) for v in values}
            out[attr] = entry
        return json.dumps(out, ensure_ascii=False)


def counts(seg_ids: Sequence[str], segments: Mapping[str, Segment]) -> dict[str, int]:
    """``segments``, ``documents`` and ``participants`` among ``seg_ids``."""
    segs = [segments[s] for s in seg_ids if s in segments]
    return {
        "segments": len(set(seg_ids)),
        "documents": len({s.doc_id for s in segs}),
        "participants": len({s.participant for s in segs}),
    }


def theme_rows(
    book: Codebook, rollup: Rollup, segments: Mapping[str, Segment]
) -> list[dict[str, Any]]:
    """Rows of ``themes``: every theme-like node, with counts even when zero."""
    prevalence = Prevalence(segments)
    members = rollup.by_theme()
    rows = []
    for node in theme_nodes(book):
        seg_ids = members.get(node.id, [])
        rows.append(
            {
                "theme_id": node.id,
                "name": node.name,
                "level": node.level,
                "parent_id": node.parent_id,
                "description": node.description,
                **counts(seg_ids, segments),
                "prevalence": prevalence.json(seg_ids),
                "proposal": False,
            }
        )
    return rows
