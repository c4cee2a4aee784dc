"""Built-in plugin: the ``segment`` stage type.

Strategies (``strategy``):

``turn``
    one segment per speaker turn (paragraphs when a document has no turns);
``paragraph``
    blank-line separated paragraphs of the whole text; the speaker is that of the turn
    the paragraph starts in;
``sentence``
    sentences (:mod:`qualpipe.sentences`), never crossing a turn;
``window``
    ``size`` words with ``overlap`` words shared by neighbours, within each turn or, with
    ``window_scope: document``, across consecutive kept turns;
``meaning_units``
    participant turns cut at sentence boundaries into units of at most ``max_words``
    words (Graneheim & Lundman's meaning units); a longer sentence is a unit of its own.

``participant_only: true`` keeps participant turns and puts the interviewer turn before
each one into ``context``; ``drop_speakers`` drops turns by label and ``min_chars``
short segments. A batch-wise stage: each batch of documents becomes a batch of
segments. Every segment's ``text`` equals ``document.text[start:end]`` and its id is
``{doc_id}:{letter}{start}-{end}``, the letter being the strategy's first.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import pyarrow as pa

from qualpipe import BatchContext, Param, StageType, hookimpl
from qualpipe.schemas import SEGMENTS
from qualpipe.sentences import split_sentences

STRATEGIES = ("turn", "paragraph", "sentence", "window", "meaning_units")
SCOPES = ("turn", "document")

_PARA = re.compile(r"\n[ \t]*\n")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class Options:
    """The stage's parameters, checked once per worker (``setup``)."""

    strategy: str = "turn"
    drop_speakers: frozenset[str] = frozenset()
    min_chars: int = 1
    participant_only: bool = False
    size: int = 100
    overlap: int = 20
    window_scope: str = "turn"
    max_words: int = 60

    @property
    def participants(self) -> bool:
        """Keep only participant turns (and give each segment its question as context)?"""
        return self.participant_only or self.strategy == "meaning_units"


def options(params: Mapping[str, Any]) -> Options:
    """Build and check :class:`Options` from stage parameters; ``ValueError`` if invalid."""
    d = Options()
    opts = Options(
        strategy=params.get("strategy", d.strategy),
        drop_speakers=frozenset(str(s).lower() for s in params.get("drop_speakers") or ()),
        min_chars=params.get("min_chars", d.min_chars),
        participant_only=bool(params.get("participant_only", d.participant_only)),
        size=params.get("size", d.size),
        overlap=params.get("overlap", d.overlap),
        window_scope=params.get("window_scope", d.window_scope),
        max_words=params.get("max_words", d.max_words),
    )
    if opts.strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {opts.strategy!r}")
    if opts.window_scope not in SCOPES:
        raise ValueError(f"window_scope must be turn or document; got {opts.window_scope!r}")
    if opts.size < 1:
        raise ValueError(f"size must be at least 1 word; got {opts.size}")
    if not 0 <= opts.overlap < opts.size:
        raise ValueError(
            f"overlap must be at least 0 and less than size ({opts.size}); got {opts.overlap}"
        )
    if opts.max_words < 1:
        raise ValueError(f"max_words must be at least 1; got {opts.max_words}")
    return opts


@dataclass(frozen=True)
class Turn:
    """A speaker turn with offsets clamped into the text."""

    speaker: str | None
    start: int
    end: int
    role: str | None


@dataclass(frozen=True)
class Span:
    """A segment before it becomes a row."""

    start: int
    end: int
    speaker: str | None
    context: str | None = None


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _paragraphs(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for m in _PARA.finditer(text):
        yield pos, m.start()
        pos = m.end()
    yield pos, len(text)


def _turns(doc: Mapping[str, Any]) -> list[Turn]:
    n = len(doc["text"])
    turns = []
    for t in doc.get("turns") or ():
        start = max(0, min(int(t["start"]), n))
        turns.append(
            Turn(t.get("speaker"), start, max(start, min(int(t["end"]), n)), t.get("role"))
        )
    return turns


class _Selection:
    """Which turns a document keeps, and the interviewer question before each."""

    def __init__(self, text: str, turns: Sequence[Turn], opts: Options) -> None:
        self.kept: list[bool] = []
        self.context: list[str | None] = []
        roles = any(t.role for t in turns)
        question: str | None = None
        for t in turns:
            keep = not (t.speaker and t.speaker.lower() in opts.drop_speakers)
            if opts.participants and roles:
                keep = keep and t.role == "participant"
            self.kept.append(keep)
            self.context.append(question if opts.participants else None)
            if t.role == "interviewer":
                a, b = _trim(text, t.start, t.end)
                question = text[a:b] or None


class _TurnIndex:
    """Find the turn containing an offset (binary search when turns are in order)."""

    def __init__(self, turns: Sequence[Turn]) -> None:
        self.turns = turns
        self.starts = [t.start for t in turns]
        self.ordered = all(a.end <= b.start for a, b in pairwise(turns))

    def at(self, pos: int) -> int | None:
        if self.ordered:
            i = bisect_right(self.starts, pos) - 1
            if i >= 0 and self.turns[i].start <= pos < self.turns[i].end:
                return i
            return None
        return next((i for i, t in enumerate(self.turns) if t.start <= pos < t.end), None)

    def first_of(self, a: int, b: int) -> int | None:
        """The first turn (in turn order) containing offset ``a`` or offset ``b``."""
        found = [i for i in (self.at(a), self.at(b)) if i is not None]
        return min(found) if found else None


def _window_bounds(n: int, size: int, overlap: int) -> Iterator[tuple[int, int]]:
    """Word index ranges of the windows over ``n`` words (the last may be shorter)."""
    step = size - overlap
    i = 0
    while i < n:
        yield i, min(i + size, n)
        if i + size >= n:
            return
        i += step


def _words(text: str, start: int, end: int) -> list[tuple[int, int]]:
    return [m.span() for m in _WORD.finditer(text, start, end)]


def _spans(doc: Mapping[str, Any], opts: Options) -> Iterator[Span]:
    text: str = doc["text"]
    turns = _turns(doc)
    strategy = opts.strategy
    if strategy == "paragraph" or (strategy == "turn" and not turns):
        index = _TurnIndex(turns)
        sel = _Selection(text, turns, opts)
        for s, e in _paragraphs(text):
            i = index.first_of(s, e - 1)
            if i is None:
                if opts.participants and turns:
                    continue  # outside every turn: not a participant's words
                yield Span(s, e, None)
            elif sel.kept[i]:
                yield Span(s, e, turns[i].speaker, sel.context[i])
        return
    if not turns:
        turns = [Turn(None, 0, len(text), None)]
    sel = _Selection(text, turns, opts)
    kept = [(t, sel.context[i]) for i, t in enumerate(turns) if sel.kept[i]]
    if strategy == "turn":
        for t, context in kept:
            yield Span(t.start, t.end, t.speaker, context)
    elif strategy == "sentence":
        language = doc.get("language")
        for t, context in kept:
            for s, e in split_sentences(text, t.start, t.end, language):
                yield Span(s, e, t.speaker, context)
    elif strategy == "meaning_units":
        yield from _meaning_units(text, kept, opts.max_words, doc.get("language"))
    elif opts.window_scope == "turn":
        for t, context in kept:
            words = _words(text, t.start, t.end)
            for a, b in _window_bounds(len(words), opts.size, opts.overlap):
                yield Span(words[a][0], words[b - 1][1], t.speaker, context)
    else:
        yield from _document_windows(text, turns, sel, opts)


def _meaning_units(
    text: str, kept: Sequence[tuple[Turn, str | None]], max_words: int, language: str | None
) -> Iterator[Span]:
    for t, context in kept:
        unit: tuple[int, int] | None = None
        count = 0
        for s, e in split_sentences(text, t.start, t.end, language):
            n = len(text[s:e].split())
            if unit is not None and count + n > max_words:
                yield Span(unit[0], unit[1], t.speaker, context)
                unit = None
            if unit is None:
                unit, count = (s, e), n
            else:
                unit, count = (unit[0], e), count + n
        if unit is not None:
            yield Span(unit[0], unit[1], t.speaker, context)


def _document_windows(
    text: str, turns: Sequence[Turn], sel: _Selection, opts: Options
) -> Iterator[Span]:
    """Windows across consecutive kept turns; a dropped turn ends a run of words."""
    runs: list[list[tuple[int, int, int]]] = []  # (word start, word end, turn index)
    run: list[tuple[int, int, int]] = []
    for i, t in enumerate(turns):
        if not sel.kept[i]:
            if run:
                runs.append(run)
            run = []
            continue
        run.extend((s, e, i) for s, e in _words(text, t.start, t.end))
    if run:
        runs.append(run)
    for words in runs:
        for a, b in _window_bounds(len(words), opts.size, opts.overlap):
            i = words[a][2]
            yield Span(words[a][0], words[b - 1][1], turns[i].speaker, sel.context[i])


def segment_rows(doc: Mapping[str, Any], opts: Options) -> list[dict[str, Any]]:
    """The segment rows of one document (a ``documents`` row as a mapping)."""
    text = doc["text"]
    letter = opts.strategy[0]
    rows = []
    # Ids number the spans in document order (before the min_chars filter), not by
    # offsets: an anonymisation decision that changes a replacement's length moves every
    # later offset but no position, so review decisions about later segments still apply.
    for n, span in enumerate(_spans(doc, opts)):
        start, end = _trim(text, span.start, span.end)
        if end - start < opts.min_chars:
            continue
        rows.append(
            {
                "segment_id": f"{doc['doc_id']}:{letter}{n}",
                "doc_id": doc["doc_id"],
                "start": start,
                "end": end,
                "text": text[start:end],
                "speaker": span.speaker,
                "participant_id": doc.get("participant_id"),
                "attributes": doc.get("attributes") or [],
                "context": span.context,
                "strategy": opts.strategy,
                "sensitive": doc["sensitive"],
            }
        )
    return rows


def process_batch(batch: pa.RecordBatch, ctx: BatchContext) -> dict[str, pa.Table]:
    opts = ctx.state if isinstance(ctx.state, Options) else options(ctx.params)
    rows = [row for doc in batch.to_pylist() for row in segment_rows(doc, opts)]
    return {"segments": pa.Table.from_pylist(rows, schema=SEGMENTS.schema)}


SEGMENT = StageType(
    name="segment",
    family="segment",
    description=(
        "Cut documents into segments: speaker turns, paragraphs, sentences, word windows "
        "or meaning units."
    ),
    mode="batch",
    consumes=["documents"],
    produces=["segments"],
    params=[
        Param(
            "strategy",
            "str",
            "turn",
            "turn, paragraph, sentence, window or meaning_units",
            choices=STRATEGIES,
        ),
        Param(
            "drop_speakers",
            "list",
            [],
            "speaker labels whose turns are dropped (e.g. [I, Interviewer])",
        ),
        Param("min_chars", "int", 1, "drop segments shorter than this"),
        Param(
            "participant_only",
            "bool",
            False,
            "keep participant turns only; the interviewer turn before each is the context",
        ),
        Param("size", "int", 100, "window: words per window"),
        Param("overlap", "int", 20, "window: words shared by neighbouring windows"),
        Param(
            "window_scope",
            "str",
            "turn",
            "window: within each turn, or across consecutive kept turns",
            choices=SCOPES,
        ),
        Param("max_words", "int", 60, "meaning_units: most words per unit"),
    ],
    process_batch=process_batch,
    setup=options,
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(SEGMENT)
