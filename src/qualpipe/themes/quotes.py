"""Illustrative quotes: representative, readable, spread over participants and roles.

For each theme the candidates are the segments assigned to it that an interviewer did not
say. Each gets a **score**: the cosine similarity of its TF-IDF vector
(:mod:`qualpipe.themes.text`) to the theme's centroid (the mean direction of all segments
assigned to the theme). Candidates of fewer than ``min_words`` words are used only when
the theme has no longer ones; longer than ``max_words`` words are shortened at a sentence
boundary and marked with ``…``. Quotes are then picked greedily: always from a participant
quoted least so far (no participant twice before every candidate participant once), among
those from a role quoted least so far, the best score first.

Labels are printed as papers print them: ``(Service user)`` (``role``), ``(P01)``
(``participant``), ``(7)`` (``number``) or ``(XIII)`` (``roman``). A participant's
number is the last number in its participant id (``U07`` -> 7); participants whose id has
none are numbered 1, 2, ... within their role, in id order, skipping numbers already used.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qualpipe.errors import PipelineError
from qualpipe.sentences import split_sentences
from qualpipe.themes.rollup import Segment
from qualpipe.themes.text import TfidfMatrix

INTERVIEWER_LABELS = ("Interviewer", "I", "Int", "Q", "Intervjuare")
LABEL_STYLES = ("role", "participant", "number", "roman")
ELLIPSIS = "…"
_ROMAN = (
    (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
    (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I"),
)  # fmt: skip
_LAST_NUMBER = re.compile(r"(\d+)\D*$")
_LABEL_SUFFIX = re.compile(r"[\s\d.:#-]+$")
_WORD = re.compile(r"\S+")


def roman(n: int) -> str:
    """``n`` in Roman numerals (1 -> I, 4 -> IV, 13 -> XIII, 40 -> XL); Arabic if n < 1."""
    if n < 1:
        return str(n)
    out = []
    for value, numeral in _ROMAN:
        count, n = divmod(n, value)
        out.append(numeral * count)
    return "".join(out)


def is_interviewer(speaker: str | None, labels: Iterable[str]) -> bool:
    """True if ``speaker`` is one of ``labels`` (case-insensitive; ``Interviewer 2``, ``I1``)."""
    if not speaker:
        return False
    wanted = {label.strip().casefold() for label in labels}
    name = speaker.strip().casefold()
    return name in wanted or _LABEL_SUFFIX.sub("", name) in wanted


def word_count(text: str) -> int:
    return len(text.split())


def shorten(text: str, max_words: int, language: str | None = None) -> str:
    """``text`` cut to at most ``max_words`` words, at a sentence end if possible, + ``…``.

    Whole sentences are kept while they fit; if even the first sentence is longer, the
    text is cut after ``max_words`` words. Text that fits is returned unchanged.
    """
    words = list(_WORD.finditer(text))
    if len(words) <= max_words:
        return text
    end = None
    used = 0
    for start, stop in split_sentences(text, language=language):
        n = word_count(text[start:stop])
        if used + n > max_words:
            break
        used += n
        end = stop
    if end is None:
        end = words[max_words - 1].end()
        return text[:end].rstrip(",;:–—- ") + " " + ELLIPSIS
    return text[:end].rstrip() + " " + ELLIPSIS


def participant_numbers(segments: Iterable[Segment], role_attribute: str) -> dict[str, int]:
    """participant -> number for the ``number`` and ``roman`` labels (see module doc)."""
    role_of: dict[str, str] = {}
    id_of: dict[str, str | None] = {}
    for seg in sorted(segments, key=lambda s: s.order):
        role_of.setdefault(seg.participant, seg.attributes.get(role_attribute, ""))
        id_of.setdefault(seg.participant, seg.participant_id)
    numbers: dict[str, int] = {}
    taken: dict[str, set[int]] = defaultdict(set)
    for p in sorted(role_of):
        pid = id_of[p]
        m = _LAST_NUMBER.search(pid) if pid else None
        if m:
            numbers[p] = int(m.group(1))
            taken[role_of[p]].add(numbers[p])
    counters: dict[str, int] = defaultdict(int)
    for p in sorted(role_of):
        if p in numbers:
            continue
        role = role_of[p]
        counters[role] += 1
        while counters[role] in taken[role]:
            counters[role] += 1
        numbers[p] = counters[role]
    return numbers


@dataclass
class QuoteOptions:
    """The quote parameters of the ``theme`` stage."""

    per_theme: int = 3
    min_words: int = 15
    max_words: int = 80
    interviewer_labels: Sequence[str] = INTERVIEWER_LABELS
    role_attribute: str = "role"
    label: str = "role"
    label_by_role: Mapping[str, str] = field(default_factory=dict)

    def check(self) -> None:
        if self.per_theme < 0:
            raise PipelineError(f"theme: quotes_per_theme must be 0 or more (got {self.per_theme})")
        if self.min_words < 0 or self.max_words < 1:
            raise PipelineError(
                f"theme: min_words must be 0 or more and max_words at least 1 "
                f"(got {self.min_words} and {self.max_words})"
            )
        for role, style in {"": self.label, **self.label_by_role}.items():
            if style not in LABEL_STYLES:
                where = f"label_by_role: {role}" if role else "label"
                raise PipelineError(
                    f"theme: {where}: unknown label style {style!r} "
                    f"(styles: {', '.join(LABEL_STYLES)})"
                )

    def style(self, role: str) -> str:
        return self.label_by_role.get(role, self.label)


def label_for(seg: Segment, style: str, role_attribute: str, numbers: Mapping[str, int]) -> str:
    """The attribution printed after a quote, with its parentheses."""
    if style == "role":
        text = seg.attributes.get(role_attribute) or "Participant"
    elif style == "participant":
        text = seg.participant_id or "Participant"
    elif style == "number":
        text = str(numbers[seg.participant])
    elif style == "roman":
        text = roman(numbers[seg.participant])
    else:
        raise PipelineError(f"theme: unknown label style {style!r}")
    return f"({text})"


@dataclass
class _Candidate:
    seg: Segment
    score: float
    words: int
    role: str


def _score(matrix: TfidfMatrix, row: int, centroid: np.ndarray) -> float:
    lo, hi = matrix.indptr[row], matrix.indptr[row + 1]
    return float(np.dot(matrix.data[lo:hi], centroid[matrix.indices[lo:hi]]))


def select_quotes(
    theme_id: str,
    seg_ids: Sequence[str],
    segments: Mapping[str, Segment],
    matrix: TfidfMatrix,
    row_of: Mapping[str, int],
    options: QuoteOptions,
    numbers: Mapping[str, int],
) -> list[dict[str, Any]]:
    """Rows of ``quotes`` for one theme whose assigned segments are ``seg_ids``."""
    if options.per_theme == 0 or not seg_ids:
        return []
    members = [segments[s] for s in dict.fromkeys(seg_ids) if s in segments]
    centroid = matrix.centroid([row_of[s.segment_id] for s in members])
    seen: dict[str, _Candidate] = {}
    for seg in sorted(members, key=lambda s: s.order):
        if is_interviewer(seg.speaker, options.interviewer_labels) or not seg.text.strip():
            continue
        cand = _Candidate(
            seg,
            round(_score(matrix, row_of[seg.segment_id], centroid), 6),
            word_count(seg.text),
            seg.attributes.get(options.role_attribute, ""),
        )
        key = " ".join(seg.text.casefold().split())
        if key not in seen or cand.score > seen[key].score:
            seen[key] = cand  # the same words twice (a repeated answer): quote it once
    candidates = list(seen.values())
    readable = [c for c in candidates if c.words >= options.min_words]
    pool = readable or candidates
    p_used: Counter[str] = Counter()
    r_used: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    while pool and len(rows) < options.per_theme:
        best = min(
            pool,
            key=lambda c: (p_used[c.seg.participant], r_used[c.role], -c.score, c.seg.order),
        )
        pool.remove(best)
        p_used[best.seg.participant] += 1
        r_used[best.role] += 1
        seg = best.seg
        rows.append(
            {
                "theme_id": theme_id,
                "rank": len(rows) + 1,
                "segment_id": seg.segment_id,
                "doc_id": seg.doc_id,
                "participant_id": seg.participant_id,
                "label": label_for(seg, options.style(best.role), options.role_attribute, numbers),
                "text": shorten(seg.text, options.max_words),
                "score": best.score,
                "attributes": sorted(seg.attributes.items()),
            }
        )
    return rows
