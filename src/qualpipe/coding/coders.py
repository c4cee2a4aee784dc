"""The coder API: how the ``code`` stage suggests codes for segments.

A plugin contributes coders through ``qualpipe_register_coders``::

    from qualpipe import hookimpl
    from qualpipe.coding.coders import Coder, Suggestion

    def code_batch(segments, ctx):
        for seg in segments:
            if "swim" in seg["text"]:
                yield Suggestion(seg["segment_id"], "here-there", 0.9, [("swim", 10, 14)])

    @hookimpl
    def qualpipe_register_coders(register):
        register(Coder("swimming", code_batch, description="finds swimming"))

``code(segments, ctx)`` receives a list of segment rows (dicts with ``segment_id``,
``doc_id``, ``start``, ``end``, ``text``, ``speaker``, ``participant_id``,
``attributes``, ``context``) and yields :class:`Suggestion` objects. ``setup(codebook,
options)`` runs once per process and codebook version (build indexes, load models);
its result is ``ctx.state``. Evidence offsets point into the **document** text (a
segment starts at ``seg["start"]``), so every suggestion can be traced to its words.
Machine codings are suggestions (status ``suggested``); people decide.

A coder may also give ``columns(texts, starts, ctx)``: the same suggestions for a batch
as a :class:`Columns` (lists of segment indexes, code indexes, scores and flat evidence)
rather than one object per suggestion. The code stage uses it where it can (no review
decisions to apply in the batch, distinct segment ids) and builds its table from the
lists; ``code`` must still give the same suggestions (the built-in coders' ``code``
turns their columns into suggestions).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualpipe.codebook import Codebook


@dataclass(frozen=True)
class Suggestion:
    """A code suggested for a segment (or a span of it) with the evidence for it."""

    segment_id: str
    code_id: str
    score: float = 1.0
    evidence: Sequence[tuple[str, int, int]] = ()
    start: int | None = None  # span in the document text; default: the whole segment
    end: int | None = None


@dataclass
class Columns:
    """A batch's suggestions as columns: what a coder's optional ``columns`` function
    returns (the built-in coders have one; the code stage then builds its table without
    a :class:`Suggestion` per row). Row ``r`` suggests ``codes[code[r]]`` for segment
    ``segment[r]`` (an index into the batch, rows grouped by segment in batch order)
    with ``score[r]`` and the evidence ``evidence[r]:evidence[r + 1]`` of ``term``,
    ``start`` and ``end`` (offsets into the document text); a row spans its segment.
    """

    codes: Sequence[str]
    segment: list[int]
    code: list[int]
    score: list[float]
    evidence: list[int]  # len(rows) + 1 offsets into term, start and end
    term: list[str]
    start: list[int]
    end: list[int]

    def suggestions(self, segment_ids: Sequence[str]) -> Iterator[Suggestion]:
        """The rows as :class:`Suggestion` objects (``segment_ids`` of the batch)."""
        codes, ev = self.codes, self.evidence
        for r, (j, c, score) in enumerate(zip(self.segment, self.code, self.score, strict=True)):
            a, b = ev[r], ev[r + 1]
            evidence = list(zip(self.term[a:b], self.start[a:b], self.end[a:b], strict=True))
            yield Suggestion(segment_ids[j], codes[c], score, evidence)


@dataclass
class CoderContext:
    codebook: Codebook
    options: Mapping[str, Any] = field(default_factory=dict)
    state: Any = None


CodeFunction = Callable[[Sequence[Mapping[str, Any]], CoderContext], Iterable[Suggestion]]
ColumnsFunction = Callable[[list[str], list[int], CoderContext], Columns]


@dataclass(frozen=True)
class Coder:
    """A named source of code suggestions. ``version`` is part of the stage fingerprint."""

    name: str
    code: CodeFunction
    setup: Callable[[Codebook, Mapping[str, Any]], Any] | None = None
    version: str = "1"
    description: str = ""
    #: optional: the same suggestions as ``code`` gives, as :class:`Columns`, from the
    #: batch's segment texts and their start offsets into their documents
    columns: ColumnsFunction | None = None
