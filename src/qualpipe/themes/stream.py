"""The theme stage's engine for corpora of any size: streaming passes, bounded memory.

It computes what :mod:`qualpipe.themes.rollup`, :mod:`~qualpipe.themes.cooccurrence`,
:mod:`~qualpipe.themes.quotes` and :mod:`~qualpipe.themes.proposals` compute from Python
objects (the reference the tests compare against), but keeps per segment only a few
integers in numpy arrays, never the text:

1. **Segments** (one pass): per segment a context id (document, participant, attribute
   set) and a flag byte (interviewer, blank, readable, has words) stay in memory, with the
   hashes of the ids in sorted runs for the look-up of the codings (freed after them);
   TF-IDF document frequencies. The ids, a hash of the normalised text and the words of
   each segment (term ids and counts) are spilled to a temporary folder per chunk, so the
   later passes do not tokenise again and memory does not grow with the corpus.
2. **Codings** (one pass, vectorised per batch): the roll-up into (segment, theme)
   assignments with code and coder bit sets and the best score; codes per segment.
   ``themes``, ``theme_assignments``, ``cooccurrence`` and the code-group proposals are
   computed from these arrays.
3. **Centroids** (spilled words): each theme's TF-IDF centroid.
4. **Quote pools** (spilled words): every candidate is scored, and only a bounded pool is
   kept per theme: per role, the ``per_theme`` best participants (by their best
   candidate) and per participant its ``per_theme`` best candidates. The greedy pick of
   :func:`qualpipe.themes.quotes.select_quotes` can only choose from this pool, so the
   quotes are the same as with every candidate. The texts of the chosen quotes are read
   in a last pass.

Inductive proposals cluster at most :data:`PROPOSAL_CAP` participant segments: when more
are eligible, a seeded sample (the segments with the smallest keyed hash of their id) is
clustered instead. Below the cap the proposals are those of :func:`propose` on every
segment.

Assignments take their ``doc_id`` from the segment (a coding's ``doc_id`` is the same in
every dataset qualpipe writes).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qualpipe.codebook import Codebook
from qualpipe.errors import PipelineError
from qualpipe.store import STAGING
from qualpipe.themes.cooccurrence import rows_from_counts
from qualpipe.themes.proposals import Proposal, code_group_row, proposal_description, propose
from qualpipe.themes.quotes import (
    QuoteOptions,
    is_interviewer,
    label_for,
    participant_numbers,
    shorten,
)
from qualpipe.themes.rollup import TOTAL, Segment, attributes_dict, theme_nodes, theme_targets
from qualpipe.themes.text import DROPPED, TfidfMatrix, split_counts, word_occurrences

#: Most participant segments clustered for inductive proposals (a seeded sample above).
PROPOSAL_CAP = 50_000
#: The proposal sample is cut back to PROPOSAL_CAP when it has this many times more.
SAMPLE_SLACK = 1.25
#: Rows read per batch.
READ_BATCH = 16_384
#: Roll-up rows held in memory before they are spilled.
SPILL_ROWS = 500_000
#: Most entries in one run of the segment-id look-up (and text keys sorted at once).
RUN_MAX = 1 << 20
#: Segment-term entries handled at once when scoring and adding up centroids.
BLOCK_ENTRIES = 262_144
#: Assignment rows per write.
WRITE_CHUNK = 65_536

Batches = Callable[[tuple[str, ...]], Iterator[pa.RecordBatch]]


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    if name in batch.schema.names:
        return batch.column(name)
    return pa.nulls(batch.num_rows, pa.string())


def _lookup(
    array: pa.Array, mapping: Callable[[str], int], null: Callable[[], int] = lambda: -1
) -> np.ndarray:
    """Map each string of ``array`` through ``mapping`` (nulls -> ``null()``), once per
    distinct value."""
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    lut = np.array([mapping(v) for v in encoded.dictionary.to_pylist()] + [null()], dtype=np.int64)
    idx = encoded.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)
    out: np.ndarray = lut[idx.astype(np.int64)]
    return out


def _rebatch(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """The same rows in the same order, in batches of about ``rows`` (small batches, as
    from many small part files, joined; a change of schema starts a new batch)."""
    held: list[pa.RecordBatch] = []
    count = 0

    def joined() -> pa.RecordBatch:
        if len(held) == 1:
            return held[0]
        table = pa.Table.from_batches(held).combine_chunks()
        out = table.to_batches()
        return out[0] if out else pa.RecordBatch.from_pylist([], schema=table.schema)

    for batch in batches:
        if held and (count + batch.num_rows > rows or batch.schema != held[0].schema):
            yield joined()
            held, count = [], 0
        held.append(batch)
        count += batch.num_rows
    if held:
        yield joined()


def _bits(n_items: int) -> int:
    return max(1, (n_items + 63) // 64)


def _set_bits(positions: np.ndarray, words: int) -> np.ndarray:
    """One bit-set row (``words`` uint64) per position."""
    out = np.zeros((len(positions), words), dtype=np.uint64)
    if len(positions):
        out[np.arange(len(positions)), positions // 64] = np.left_shift(
            np.uint64(1), (positions % 64).astype(np.uint64)
        )
    return out


def _decode(mask: np.ndarray) -> list[int]:
    out = []
    for w, word in enumerate(mask.tolist()):
        while word:
            low = word & -word
            out.append(w * 64 + low.bit_length() - 1)
            word ^= low
    return out


class _Terms(dict[str, int]):
    """word -> term id, given on first sight; -1 for a word that never counts (one letter,
    a stop word)."""

    def __init__(self) -> None:
        super().__init__()
        self.words: list[str] = []

    def __missing__(self, word: str) -> int:
        if len(word) < 2 or word in DROPPED:
            t = -1
        else:
            t = len(self.words)
            self.words.append(word)
        self[word] = t
        return t


class _Reducer:
    """Rows keyed by an int64; equal keys merge: max score, OR of bit sets."""

    def __init__(self, widths: Sequence[int]) -> None:
        self.widths = list(widths)
        self.keys = np.zeros(0, dtype=np.int64)
        self.scores = np.zeros(0, dtype=np.float64)
        self.masks = [np.zeros((0, w), dtype=np.uint64) for w in self.widths]
        self._pending: list[tuple[np.ndarray, np.ndarray, list[np.ndarray]]] = []
        self._pending_rows = 0

    def add(self, keys: np.ndarray, scores: np.ndarray, masks: list[np.ndarray]) -> None:
        if not len(keys):
            return
        self._pending.append((keys, scores, masks))
        self._pending_rows += len(keys)
        if self._pending_rows > max(1_000_000, len(self.keys)):
            self.reduce()

    def reduce(self) -> None:
        if not self._pending:
            return
        keys = np.concatenate([self.keys, *(p[0] for p in self._pending)])
        scores = np.concatenate([self.scores, *(p[1] for p in self._pending)])
        masks = [
            np.concatenate([m, *(p[2][i] for p in self._pending)]) for i, m in enumerate(self.masks)
        ]
        self._pending = []
        self._pending_rows = 0
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        self.keys = keys[starts]
        if len(keys):
            self.scores = np.fmax.reduceat(scores[order], starts)
            self.masks = [np.bitwise_or.reduceat(m[order], starts, axis=0) for m in masks]
        else:
            self.scores = scores
            self.masks = masks


#: Bits of :attr:`SegmentIndex.flags`.
INTERVIEWER, BLANK, READABLE, HAS_TERMS = 1, 2, 4, 8


@dataclass
class SegmentIndex:
    """Per-segment facts as arrays (position = the segment's order in the dataset).

    Memory per segment is a few bytes: a context (the distinct (document, participant,
    attribute set) it belongs to), a byte of flags, and, until the codings are read, the
    64-bit string hash of its id with its position (sorted by hash, for the look-up).
    The ids themselves and the text keys are spilled to ``folder``, one file per chunk.
    """

    #: the id look-up: runs of (sorted id hashes, their positions), see :func:`_add_run`
    id_runs: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    chunk_starts: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    docs: list[str] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    participant_ids: list[str | None] = field(default_factory=list)
    #: participant -> its first segment (for participant numbers)
    first_segment: list[Segment] = field(default_factory=list)
    attrsets: list[dict[str, str]] = field(default_factory=list)
    #: (participant, attribute set) pairs
    pairs: list[tuple[int, int]] = field(default_factory=list)
    #: per segment: its context; per context: document, participant, attribute set, pair
    ctx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ctx_doc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ctx_part: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ctx_attrset: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    ctx_pair: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    #: per segment: INTERVIEWER, BLANK, READABLE (at least min_words words), HAS_TERMS
    flags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))
    #: text keys that more than one quote candidate has
    repeated: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    folder: Path | None = None
    _cached: tuple[int, pa.Array] | None = None

    def __len__(self) -> int:
        return len(self.ctx)

    @property
    def n_chunks(self) -> int:
        return len(self.chunk_starts) - 1

    def doc(self, segs: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.ctx_doc[self.ctx[segs]]
        return out

    def part(self, segs: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.ctx_part[self.ctx[segs]]
        return out

    def attrset(self, segs: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.ctx_attrset[self.ctx[segs]]
        return out

    def pair(self, segs: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.ctx_pair[self.ctx[segs]]
        return out

    def has(self, bit: int, segs: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Whether each of ``segs`` has the flag ``bit``."""
        out: np.ndarray = (self.flags[segs] & bit) != 0
        return out

    def lookup(self, ids: Sequence[str | None]) -> np.ndarray:
        """Positions of ``ids`` (-1 where unknown)."""
        out = np.full(len(ids), -1, dtype=np.int64)
        h = np.array([hash(i) for i in ids], dtype=np.int64)
        known = np.array([i is not None for i in ids], dtype=bool)
        for hashes, positions in self.id_runs:
            at = np.searchsorted(hashes, h)
            at[at >= len(hashes)] = 0
            found = (hashes[at] == h) & known
            out[found] = positions[at[found]]
        return out

    def drop_lookup(self) -> None:
        """Free the id look-up (once the codings are read)."""
        self.id_runs = []

    def chunk_of(self, segs: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.searchsorted(self.chunk_starts, segs, side="right") - 1
        return out

    def chunk_ids(self, n: int) -> pa.Array:
        """The segment ids of chunk ``n`` (read back from the spill folder)."""
        if self._cached is None or self._cached[0] != n:
            assert self.folder is not None
            with pa.OSFile(str(self.folder / f"ids-{n}.arrow")) as f:
                ids = pa.ipc.open_file(f).get_batch(0).column(0)
            self._cached = (n, ids)
        return self._cached[1]

    def textkeys(self, n: int) -> np.ndarray:
        """The text keys of chunk ``n`` (0 for interviewer turns and blank segments)."""
        assert self.folder is not None
        out: np.ndarray = np.load(self.folder / f"key-{n}.npy")
        return out

    def ids(self, segs: Sequence[int] | np.ndarray) -> list[str]:
        """The segment ids at positions ``segs``."""
        segs = np.asarray(segs, dtype=np.int64)
        if not len(segs):
            return []
        chunks = self.chunk_of(segs)
        out: list[str] = [""] * len(segs)
        for n in np.unique(chunks).tolist():
            at = np.flatnonzero(chunks == n)
            local = segs[at] - self.chunk_starts[n]
            for i, v in zip(at.tolist(), self.chunk_ids(n).take(local).to_pylist(), strict=True):
                out[i] = v
        return out

    def segment(self, i: int, text: str = "", speaker: str | None = None) -> Segment:
        at = np.array([i])
        return Segment(
            segment_id=self.ids([i])[0],
            doc_id=self.docs[int(self.doc(at)[0])],
            text=text,
            speaker=speaker,
            participant_id=self.participant_ids[int(self.part(at)[0])],
            attributes=self.attrsets[int(self.attrset(at)[0])],
            order=i,
        )


def _codes(array: pa.Array) -> np.ndarray:
    """Equal values, equal codes (int64; nulls: -1)."""
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    out: np.ndarray = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)
    return out.astype(np.int64)


def _equal_to_earlier(values: pa.Array, shift: int, blank: bool = False) -> np.ndarray:
    """Per value from ``shift`` on: whether it equals the one ``shift`` places before (two
    nulls are equal; ``blank``: an empty string counts as null)."""
    n = len(values)
    if n <= shift:
        return np.zeros(0, dtype=bool)
    later, earlier = values.slice(shift), values.slice(0, n - shift)
    out: np.ndarray = pc.equal(later, earlier).fill_null(False).to_numpy(zero_copy_only=False)
    if values.null_count or blank:
        none = values.is_null()
        if blank:
            none = pc.or_(none, pc.equal(values, "").fill_null(False))
        missing = none.to_numpy(zero_copy_only=False)
        out = out | (missing[shift:] & missing[: n - shift])
    return out


def _same_attributes(attrs: pa.Array) -> np.ndarray:
    """Per row: whether its attributes are those of the row before (null = empty)."""
    k = len(attrs)
    same = np.zeros(k, dtype=bool)
    if k < 2:
        return same
    if not isinstance(attrs, pa.MapArray):
        keys = [tuple(a) if a else () for a in attrs.to_pylist()]
        same[1:] = [a == b for a, b in pairwise(keys)]
        return same
    offsets = attrs.offsets.to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.diff(offsets)
    if attrs.null_count:
        lengths[~attrs.is_valid().to_numpy(zero_copy_only=False)] = 0
    same[1:] = lengths[1:] == lengths[:-1]
    width = int(lengths[0])
    if width and same[1:].all():  # every row as many attributes: compare shifted arrays
        lo, hi = int(offsets[0]), int(offsets[-1])
        equal = _equal_to_earlier(attrs.keys.slice(lo, hi - lo), width) & _equal_to_earlier(
            attrs.items.slice(lo, hi - lo), width
        )
        same[1:] = equal.reshape(k - 1, width).all(axis=1)
        return same
    check = np.flatnonzero(same & (lengths > 0))
    if len(check):
        key_codes, value_codes = _codes(attrs.keys), _codes(attrs.items)
        reps = lengths[check]
        owner = np.repeat(check, reps)
        j = np.arange(len(owner)) - np.repeat(np.cumsum(reps) - reps, reps)
        here, before = offsets[owner] + j, offsets[owner - 1] + j
        differ = (key_codes[here] != key_codes[before]) | (value_codes[here] != value_codes[before])
        same[np.unique(owner[differ])] = False
    return same


class _Contexts:
    """The context (document, participant, attribute set) of each segment, and the
    documents, participants, attribute sets and pairs of the index, found in the order
    of the segments. Consecutive segments with the same context are looked up once."""

    def __init__(self, index: SegmentIndex) -> None:
        self.index = index
        self.doc_of: dict[str, int] = {}
        self.part_of: dict[str, int] = {}
        self.attr_of: dict[Any, int] = {}
        self.pair_of: dict[tuple[int, int], int] = {}
        self.ctx_of: dict[tuple[Any, ...], int] = {}
        #: per context: document, participant, attribute set, pair
        self.columns: list[list[int]] = [[], [], [], []]

    def add(self, batch: pa.RecordBatch, first: int) -> np.ndarray:
        """The contexts of the rows of ``batch`` (its first row at position ``first``)."""
        ix = self.index
        k = batch.num_rows
        doc_col, pid_col = _column(batch, "doc_id"), _column(batch, "participant_id")
        attr_col = _column(batch, "attributes")
        new = np.ones(k, dtype=bool)
        # an empty participant id is none
        new[1:] = ~(_equal_to_earlier(doc_col, 1) & _equal_to_earlier(pid_col, 1, blank=True))
        new |= ~_same_attributes(attr_col)
        at = np.flatnonzero(new)
        picked = pa.array(at)
        found: list[int] = []
        for s, seg_id, doc_id, pid_, attr in zip(
            at.tolist(),
            _column(batch, "segment_id").take(picked).to_pylist(),
            doc_col.take(picked).to_pylist(),
            pid_col.take(picked).to_pylist(),
            attr_col.take(picked).to_pylist(),
            strict=True,
        ):
            akey = tuple(attr) if attr else ()
            pid_ = pid_ or None
            c = self.ctx_of.get((doc_id, pid_, akey))
            if c is None:
                i = first + s
                d = self.doc_of.get(doc_id)
                if d is None:
                    d = self.doc_of[doc_id] = len(ix.docs)
                    ix.docs.append(doc_id)
                a = self.attr_of.get(akey)
                if a is None:
                    a = self.attr_of[akey] = len(ix.attrsets)
                    ix.attrsets.append(attributes_dict(attr))
                who = pid_ or f"doc:{doc_id}"
                p = self.part_of.get(who)
                if p is None:
                    p = self.part_of[who] = len(ix.participants)
                    ix.participants.append(who)
                    ix.participant_ids.append(pid_)
                    ix.first_segment.append(
                        Segment(seg_id, doc_id, "", None, pid_, ix.attrsets[a], order=i)
                    )
                pair = self.pair_of.get((p, a))
                if pair is None:
                    pair = self.pair_of[(p, a)] = len(ix.pairs)
                    ix.pairs.append((p, a))
                c = self.ctx_of[(doc_id, pid_, akey)] = len(self.columns[0])
                for col, v in zip(self.columns, (d, p, a, pair), strict=True):
                    col.append(v)
            found.append(c)
        out: np.ndarray = np.repeat(np.array(found, dtype=np.int32), np.diff(np.r_[at, k]))
        return out


class Stats:
    """Segments, documents, participants and prevalence per group, added up chunk by chunk.

    The same figures as :func:`qualpipe.themes.rollup.counts` and
    :meth:`qualpipe.themes.rollup.Prevalence.json`, kept as bit maps over documents,
    participants and (participant, attribute set) pairs.
    """

    def __init__(self, index: SegmentIndex, n_groups: int) -> None:
        self.index = index
        self.segments = np.zeros(n_groups, dtype=np.int64)
        self.docs = np.zeros((n_groups, len(index.docs)), dtype=bool)
        self.parts = np.zeros((n_groups, len(index.participants)), dtype=bool)
        self.pairs = np.zeros((n_groups, len(index.pairs)), dtype=bool)
        self.totals = self._count(range(len(index.pairs)))

    def _count(self, pair_ids: Iterable[int]) -> dict[str, dict[str, set[int]]]:
        out: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for pair in pair_ids:
            p, a = self.index.pairs[pair]
            for attr, value in self.index.attrsets[a].items():
                out[attr][value].add(p)
        return out

    def add(self, groups: np.ndarray, segs: np.ndarray) -> None:
        """Count ``segs[i]`` in ``groups[i]`` (each (group, segment) once over all calls)."""
        ix = self.index
        np.add.at(self.segments, groups, 1)
        ctx = ix.ctx[segs]
        self.docs[groups, ix.ctx_doc[ctx]] = True
        self.parts[groups, ix.ctx_part[ctx]] = True
        self.pairs[groups, ix.ctx_pair[ctx]] = True

    def row(self, g: int) -> dict[str, Any]:
        found = self._count(np.flatnonzero(self.pairs[g]).tolist())
        prevalence: dict[str, dict[str, Any]] = {}
        for attr in sorted(self.totals):
            values = sorted(self.totals[attr])
            entry: dict[str, Any] = {v: len(found.get(attr, {}).get(v, ())) for v in values}
            entry[TOTAL] = {v: len(self.totals[attr][v]) for v in values}
            prevalence[attr] = entry
        return {
            "segments": int(self.segments[g]),
            "documents": int(np.count_nonzero(self.docs[g])),
            "participants": int(np.count_nonzero(self.parts[g])),
            "prevalence": json.dumps(prevalence, ensure_ascii=False),
        }


def _repeated(hashes: np.ndarray, runs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Per hash: seen in one of the sorted ``runs``, or earlier in ``hashes`` itself."""
    out = np.ones(len(hashes), dtype=bool)
    out[np.unique(hashes, return_index=True)[1]] = False
    for run, _ in runs:
        if len(run):
            at = np.searchsorted(run, hashes)
            at[at >= len(run)] = 0
            out |= run[at] == hashes
    return out


def _add_run(
    runs: list[tuple[np.ndarray, np.ndarray]], hashes: np.ndarray, positions: np.ndarray
) -> None:
    """Add (hash, position) pairs to the sorted ``runs``, merging the last runs while the
    one before is no bigger and the merged run stays within :data:`RUN_MAX` (so the runs
    are few, and no merge needs more than a bounded amount of memory)."""
    order = np.argsort(hashes, kind="stable")
    runs.append((hashes[order], positions[order].astype(np.int32)))
    while len(runs) > 1 and len(runs[-2][0]) <= len(runs[-1][0]):
        (h1, p1), (h2, p2) = runs[-2], runs[-1]
        if len(h1) + len(h2) > RUN_MAX:
            break
        h, p = np.concatenate([h1, h2]), np.concatenate([p1, p2])
        order = np.argsort(h, kind="stable")
        runs[-2:] = [(h[order], p[order])]


def _distinct(masks: np.ndarray, counts: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(distinct bit-set rows, the inverse or the counts): ``np.unique`` over rows, on the
    single column when the bit sets have one word (much faster)."""
    one = masks.shape[1] == 1
    rows = masks[:, 0] if one else masks
    axis = None if one else 0
    if counts:
        distinct, other = np.unique(rows, axis=axis, return_counts=True)
    else:
        distinct, other = np.unique(rows, axis=axis, return_inverse=True)
    return (distinct.reshape(-1, 1) if one else distinct), other.reshape(-1)


class _MaskCounts:
    """How many rows have each distinct bit set, added up over calls; the
    :func:`qualpipe.themes.cooccurrence.pair_counts` of all of them at the end."""

    def __init__(self) -> None:
        self.counts: Counter[bytes] = Counter()
        self.words = 1

    def add(self, masks: np.ndarray) -> None:
        if not len(masks):
            return
        self.words = masks.shape[1]
        distinct, n = _distinct(masks, counts=True)
        for mask, times in zip(distinct, n.tolist(), strict=True):
            self.counts[mask.tobytes()] += times

    def pairs(self, names: Sequence[str]) -> Counter[tuple[str, str]]:
        counts: Counter[tuple[str, str]] = Counter()
        for key, times in self.counts.items():
            mask = np.frombuffer(key, dtype=np.uint64)
            ordered = sorted(names[i] for i in _decode(mask))
            for i, a in enumerate(ordered):
                for b in ordered[i:]:
                    counts[(a, b)] += times
        return counts


def _pair_counts(masks: np.ndarray, names: Sequence[str]) -> Counter[tuple[str, str]]:
    """:func:`qualpipe.themes.cooccurrence.pair_counts` over bit-set rows."""
    found = _MaskCounts()
    found.add(masks)
    return found.pairs(names)


def _or_by(groups: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct groups, OR of the masks of each) for rows already sorted by group."""
    if not len(groups):
        return groups, masks
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    out: np.ndarray = np.bitwise_or.reduceat(masks, starts, axis=0)
    return groups[starts], out


def _expand(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(entry positions, owner i) of the CSR rows ``rows[i]``, in order."""
    starts, ends = indptr[rows], indptr[rows + 1]
    reps = ends - starts
    pos = np.repeat(starts - np.r_[0, np.cumsum(reps)[:-1]], reps) + np.arange(reps.sum())
    return pos, np.repeat(np.arange(len(rows)), reps)


def _blocks(indptr: np.ndarray, rows: np.ndarray) -> Iterator[tuple[int, int]]:
    """Consecutive ranges of ``rows`` of about :data:`BLOCK_ENTRIES` CSR entries each."""
    if not len(rows):
        return
    before = np.cumsum(indptr[rows + 1] - indptr[rows]) - (indptr[rows + 1] - indptr[rows])
    block = before // BLOCK_ENTRIES
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]]).tolist()
    yield from zip(starts, [*starts[1:], len(rows)], strict=True)


def round6(values: np.ndarray) -> np.ndarray:
    """``round(x, 6)`` of every value, as Python rounds (the decimal rounding of the
    exact binary value, half to even, then the nearest float).

    ``rint(x * 1e6) / 1e6`` is that whenever ``x * 1e6`` is not within 1e-6 of a half:
    for ``|x| < 1000`` the product is off the exact one by at most 1.2e-7, so it rounds
    to the same integer ``k``, and ``k / 1e6`` is correctly rounded like Python's
    conversion of the decimal ``k``e-6. Values near a half, large or not finite are
    rounded by Python itself.
    """
    x = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        scaled = x * 1e6
        out: np.ndarray = np.rint(scaled) / 1e6
        doubtful = ~(np.abs(x) < 1000) | (np.abs(np.abs(scaled - np.trunc(scaled)) - 0.5) < 1e-6)
    for i in np.flatnonzero(doubtful).tolist():
        out[i] = round(float(x[i]), 6)
    return out


def _row_squares(weights: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """``np.dot(w, w)`` of every CSR row ``w``, with the rounding of ``np.dot`` itself
    (the rounding of :meth:`TfidfMatrix.fit`): rows of equal length are stacked and put
    through ``np.vecdot``, which runs the same BLAS dot per row (numpy 2; row by row on
    older numpy)."""
    lengths = np.diff(indptr)
    out = np.zeros(len(lengths), dtype=np.float64)
    vecdot = getattr(np, "vecdot", None)
    if vecdot is None:  # numpy < 2
        for i, (lo, hi) in enumerate(pairwise(indptr.tolist())):
            out[i] = float(np.dot(weights[lo:hi], weights[lo:hi]))
        return out
    order = np.argsort(lengths, kind="stable")
    sizes = lengths[order]
    cuts = np.flatnonzero(np.r_[True, sizes[1:] != sizes[:-1]]).tolist()
    for lo, hi in zip(cuts, [*cuts[1:], len(order)], strict=True):
        size = int(sizes[lo])
        if not size:
            continue
        rows = order[lo:hi]
        block = weights[indptr[rows][:, None] + np.arange(size)]
        out[rows] = vecdot(block, block)
    return out


@dataclass
class _Chunk:
    """The roll-up of one chunk of segments, reduced."""

    a_key: np.ndarray
    a_score: np.ndarray
    a_codes: np.ndarray
    a_coders: np.ndarray
    s_seg: np.ndarray
    s_codes: np.ndarray


class _Sample:
    """The segments sampled for proposals, in segment order, with their keys (keyed
    hashes of their ids; 0 when every eligible segment is taken) and unit TF-IDF rows."""

    def __init__(self) -> None:
        self.segs = np.zeros(0, dtype=np.int64)
        self.keys = np.zeros(0, dtype=np.uint64)
        self.lengths = np.zeros(0, dtype=np.int64)
        self.indices = np.zeros(0, dtype=np.int64)
        self.data = np.zeros(0, dtype=np.float64)
        self._parts: list[tuple[np.ndarray, ...]] = []
        self._added = 0
        #: once cut back to the cap: the largest key kept (keys above it never get in)
        self.limit: int | None = None

    def __len__(self) -> int:
        return len(self.segs) + self._added

    def __iter__(self) -> Iterator[int]:
        self._merge()
        return iter(self.segs.tolist())

    def add(
        self,
        segs: np.ndarray,
        keys: np.ndarray,
        lengths: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
    ) -> None:
        """Segments after those already in, their keys and CSR rows (lengths, entries)."""
        self._parts.append((segs, keys, lengths, indices, data))
        self._added += len(segs)

    def _merge(self) -> None:
        if not self._parts:
            return
        columns = ("segs", "keys", "lengths", "indices", "data")
        for i, name in enumerate(columns):
            merged = np.concatenate([getattr(self, name), *(p[i] for p in self._parts)])
            setattr(self, name, merged)
        self._parts = []
        self._added = 0

    def prune(self, cap: int) -> None:
        """Keep the ``cap`` segments with the smallest (key, segment)."""
        self._merge()
        order = np.lexsort((self.segs, self.keys))[:cap]
        if len(order) == cap:
            self.limit = int(self.keys[order[-1]])
        keep = np.sort(order)
        pos, _ = _expand(np.r_[0, np.cumsum(self.lengths)].astype(np.int64), keep)
        self.segs, self.keys, self.lengths = self.segs[keep], self.keys[keep], self.lengths[keep]
        self.indices, self.data = self.indices[pos], self.data[pos]


class ThemeEngine:
    """Run the theme computations over streamed ``segments`` and ``codings``.

    Call :meth:`read_segments`, :meth:`read_codings`, consume :meth:`assignments` (it
    also adds up the themes, co-occurrence and centroids), then :meth:`second_pass`
    (quote pools, proposal sample, code groups); then read the results.
    """

    def __init__(
        self,
        book: Codebook,
        statuses: frozenset[str],
        version: str | None,
        options: QuoteOptions,
        spill: Path,
    ) -> None:
        self.book = book
        self.statuses = statuses
        self.version = version
        self.options = options
        self.spill = spill
        self.nodes = theme_nodes(book)
        self.node_ids = [n.id for n in self.nodes]
        self.n_nodes = len(self.nodes)
        self.codes = [c.id for c in book.codes]
        self.code_index = {c: i for i, c in enumerate(self.codes)}
        node_pos = {n: i for i, n in enumerate(self.node_ids)}
        targets = theme_targets(book)
        per_code = [[node_pos[t] for t in targets[c]] for c in self.codes]
        self.n_targets = np.array([len(t) for t in per_code] + [0], dtype=np.int64)
        self.target_start = np.r_[0, np.cumsum(self.n_targets)].astype(np.int64)
        self.target_flat = np.array([t for ts in per_code for t in ts], dtype=np.int64)
        self.code_words = _bits(len(self.codes))
        self.node_words = _bits(self.n_nodes)
        self.coders: dict[str, int] = {}
        self.index = SegmentIndex()
        self.other_version = 0
        self.skipped: Counter[str] = Counter()
        self.used = 0
        self.n_assignments = 0
        self.sample_total = 0
        self.sample = _Sample()
        self._pending: dict[tuple[str, int], list[dict[str, np.ndarray]]] = defaultdict(list)
        self._pending_rows = 0
        self._files: dict[tuple[str, int], int] = Counter()

    # -- pass 1: segments ----------------------------------------------------------------
    def read_segments(self, batches: Iterable[pa.RecordBatch]) -> None:
        ix = self.index
        ix.folder = self.spill
        labels = self.options.interviewer_labels
        min_words = self.options.min_words
        speaker_flag: dict[str | None, bool] = {}
        contexts = _Contexts(ix)
        ctx_parts: list[np.ndarray] = []
        flag_parts: list[np.ndarray] = []
        runs = ix.id_runs  # sorted hashes of the ids of earlier batches, with positions
        terms_of = _Terms()
        df = np.zeros(0, dtype=np.int64)
        total = 0
        starts = [0]
        for batch in batches:
            seg_ids = _column(batch, "segment_id")
            batch_hashes = np.array([hash(i) for i in seg_ids.to_pylist()], dtype=np.int64)
            repeated = _repeated(batch_hashes, runs)  # a repeated segment id: the first counts
            keep = np.flatnonzero(~repeated)
            if not len(keep):
                continue
            sub = batch if len(keep) == batch.num_rows else batch.take(pa.array(keep))
            k = len(keep)
            ctxs = contexts.add(sub, total)
            interviewer = _lookup(
                _column(sub, "speaker"),
                lambda v: speaker_flag.setdefault(v, is_interviewer(v, labels)),
                null=lambda: speaker_flag.setdefault(None, is_interviewer(None, labels)),
            ).astype(bool)
            texts = _column(sub, "text")
            strings = [t or "" for t in texts.to_pylist()]
            n_words, odd = split_counts(texts)
            bits = np.where(interviewer, INTERVIEWER, 0) | np.where(
                n_words >= min_words, READABLE, 0
            )
            bits |= np.where(n_words == 0, BLANK, 0)
            textkeys = np.zeros(k, dtype=np.int64)
            # hash(" ".join(text.casefold().split())): case folding keeps white space, and
            # a text without odd spacing is its own " ".join(text.split())
            for i in np.flatnonzero((bits & (INTERVIEWER | BLANK)) == 0).tolist():
                text = " ".join(strings[i].split()) if odd[i] else strings[i]
                textkeys[i] = hash(text.casefold())
            # every word of every segment, counted per segment (-1: a word that never counts)
            rows, word, words = word_occurrences(texts, strings)
            del strings
            lut = np.array([terms_of[w] for w in words] + [-1], dtype=np.int64)
            term = lut[word]
            counted = term >= 0
            width = len(terms_of.words) + 1
            pairs, tf = np.unique(rows[counted] * width + term[counted], return_counts=True)
            owner = pairs // width
            term_arr = (pairs % width).astype(np.int32)
            per_row = np.bincount(owner, minlength=k).astype(np.int32)
            n = len(starts) - 1
            if len(df) < len(terms_of.words):
                df = np.r_[df, np.zeros(len(terms_of.words) - len(df), dtype=np.int64)]
            df += np.bincount(term_arr, minlength=len(df))  # distinct words of each segment
            flag_arr = bits.astype(np.uint8) | np.where(per_row > 0, HAS_TERMS, 0)
            np.save(self.spill / f"len-{n}.npy", per_row)
            np.save(self.spill / f"term-{n}.npy", term_arr)
            np.save(self.spill / f"tf-{n}.npy", tf.astype(np.int32))
            np.save(self.spill / f"key-{n}.npy", textkeys)
            table = pa.table({"segment_id": _column(sub, "segment_id")})
            with pa.ipc.new_file(str(self.spill / f"ids-{n}.arrow"), table.schema) as out:
                out.write_table(table)
            total += k
            starts.append(total)
            _add_run(runs, batch_hashes[keep], np.arange(total - k, total))
            ctx_parts.append(ctxs)
            flag_parts.append(flag_arr.astype(np.uint8))
        ix.chunk_starts = np.array(starts, dtype=np.int64)
        ix.ctx = np.concatenate(ctx_parts) if ctx_parts else np.zeros(0, np.int32)
        ix.flags = np.concatenate(flag_parts) if flag_parts else np.zeros(0, np.uint8)
        del ctx_parts, flag_parts
        ix.ctx_doc, ix.ctx_part, ix.ctx_attrset, ix.ctx_pair = (
            np.array(col, dtype=np.int32) for col in contexts.columns
        )
        ix.repeated = self._repeated_keys()
        # TF-IDF over the vocabulary in sorted order, as TfidfMatrix.fit builds it.
        words = terms_of.words
        self.vocab_sorted = sorted(words)
        position = {w: i for i, w in enumerate(self.vocab_sorted)}
        self.remap = np.array([position[w] for w in words], dtype=np.int64)
        n = len(ix)
        df_of = dict(zip(words, df.tolist(), strict=True))
        self.idf = np.array(
            [np.log((1 + n) / (1 + df_of[w])) + 1 for w in self.vocab_sorted],
            dtype=np.float64,
        )

    def _repeated_keys(self) -> np.ndarray:
        """The text keys that more than one quote candidate has (sorted)."""
        ix = self.index
        buckets = len(ix) // RUN_MAX + 1  # keys by remainder: a bounded share at once
        found = [np.zeros(0, np.int64)]
        for b in range(buckets):
            parts = [np.zeros(0, np.int64)]
            for n in range(ix.n_chunks):
                lo, hi = int(ix.chunk_starts[n]), int(ix.chunk_starts[n + 1])
                keys = ix.textkeys(n)[~ix.has(INTERVIEWER | BLANK, slice(lo, hi))]
                parts.append(keys[keys % buckets == b] if buckets > 1 else keys)
            keys = np.concatenate(parts)
            del parts
            keys.sort()
            found.append(np.unique(keys[1:][keys[1:] == keys[:-1]]))
        out: np.ndarray = np.sort(np.concatenate(found))
        return out

    def _rows(self, n: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """(first segment, indptr, indices, data) of chunk ``n``: unit TF-IDF rows
        (computed from the spilled words once, then read back)."""
        first = int(self.index.chunk_starts[n])
        lengths = np.load(self.spill / f"len-{n}.npy").astype(np.int64)
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        done = self.spill / f"data-{n}.npy"
        if done.exists():
            terms = np.load(self.spill / f"terms-{n}.npy").astype(np.int64)
            return first, indptr, terms, np.load(done)
        term_ids = self.remap[np.load(self.spill / f"term-{n}.npy")]
        tf = np.load(self.spill / f"tf-{n}.npy").astype(np.float64)
        # sorted by (row, term), as TfidfMatrix.fit orders each row
        row = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        order = np.argsort(row * max(1, len(self.vocab_sorted)) + term_ids, kind="stable")
        terms, tf = term_ids[order], tf[order]
        weights = (1 + np.log(tf)) * self.idf[terms]
        norms = np.repeat(np.sqrt(_row_squares(weights, indptr)), lengths)
        data = np.where(norms != 0, weights / np.where(norms != 0, norms, 1.0), weights)
        np.save(self.spill / f"terms-{n}.npy", terms.astype(np.int32))
        np.save(done, data)
        for name in (f"term-{n}.npy", f"tf-{n}.npy"):
            (self.spill / name).unlink()
        return first, indptr, terms, data

    # -- pass 2: codings -----------------------------------------------------------------
    def read_codings(self, batches: Iterable[pa.RecordBatch]) -> None:
        counted = pa.array(sorted(self.statuses), pa.string())
        n_nodes = max(1, self.n_nodes)
        for batch in _rebatch(batches, READ_BATCH):
            if not batch.num_rows:
                continue
            made_with = _column(batch, "codebook_version")
            if self.version:
                other = pc.and_(pc.invert(pc.equal(made_with, self.version)),
                                pc.not_equal(made_with, ""))  # fmt: skip
                self.other_version += int(pc.sum(other.fill_null(False)).as_py() or 0)
            ok = pc.is_in(_column(batch, "status"), value_set=counted)
            ok_np = ok.fill_null(False).to_numpy(zero_copy_only=False)
            code = _lookup(_column(batch, "code_id"), lambda c: self.code_index.get(c, -1))
            seg = _lookup_many(_column(batch, "segment_id"), self.index.lookup)
            self.skipped["status"] += int(np.count_nonzero(~ok_np))
            self.skipped["unknown_code"] += int(np.count_nonzero(ok_np & (code < 0)))
            bad_seg = ok_np & (code >= 0) & (seg < 0)
            self.skipped["unknown_segment"] += int(np.count_nonzero(bad_seg))
            use = ok_np & (code >= 0) & (seg >= 0)
            self.used += int(np.count_nonzero(use))
            if not use.any():
                continue
            coder = _lookup(_column(batch, "coder"), self._coder_bit)[use]
            if len(self.coders) > 64:
                raise PipelineError("theme: more than 64 different coders in the codings")
            scores = (
                pc.cast(_column(batch, "score"), pa.float64())
                .fill_null(np.nan)
                .to_numpy(zero_copy_only=False)[use]
            )
            code, seg = code[use], seg[use]
            code_mask = _set_bits(code, self.code_words)
            self._add("s", seg, {"seg": seg, "codes": code_mask})
            coder_mask = _set_bits(np.maximum(coder, 0), 1)
            coder_mask[coder < 0] = 0
            reps = self.n_targets[code]
            if not reps.sum():
                continue
            which = np.repeat(np.arange(len(code)), reps)
            within = np.arange(len(which)) - np.repeat(np.cumsum(reps) - reps, reps)
            node = self.target_flat[self.target_start[code[which]] + within]
            self._add(
                "a",
                seg[which],
                {
                    "key": seg[which].astype(np.int64) * n_nodes + node,
                    "score": scores[which],
                    "codes": code_mask[which],
                    "coders": coder_mask[which],
                },
            )
        self._flush()
        self.index.drop_lookup()
        self.skipped = Counter({k: v for k, v in self.skipped.items() if v})

    def _add(self, kind: str, segs: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Hold rows for the chunks their segments are in; spill them when many."""
        chunks = self.index.chunk_of(segs)
        order = np.argsort(chunks, kind="stable")
        chunks = chunks[order]
        starts = np.flatnonzero(np.r_[True, chunks[1:] != chunks[:-1]])
        ends = np.r_[starts[1:], len(chunks)]
        for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
            part = order[lo:hi]
            self._pending[(kind, int(chunks[lo]))].append({k: v[part] for k, v in columns.items()})
        self._pending_rows += len(segs)
        if self._pending_rows > SPILL_ROWS:
            self._flush()

    def _flush(self) -> None:
        for (kind, n), parts in self._pending.items():
            merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            np.savez(self.spill / f"{kind}-{n}-{self._files[(kind, n)]}.npz", **merged)  # type: ignore[arg-type]
            self._files[(kind, n)] += 1
        self._pending.clear()
        self._pending_rows = 0

    def _load(self, kind: str, n: int) -> dict[str, np.ndarray]:
        parts = []
        for k in range(self._files.get((kind, n), 0)):
            with np.load(self.spill / f"{kind}-{n}-{k}.npz") as f:
                parts.append({name: f[name] for name in f.files})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}

    def _chunk(self, n: int) -> _Chunk:
        """The reduced roll-up of chunk ``n`` (computed once, then read back)."""
        path = self.spill / f"reduced-{n}.npz"
        if path.exists():
            with np.load(path) as f:
                return _Chunk(**{name: f[name] for name in f.files})
        a = self._load("a", n)
        s = self._load("s", n)
        assign = _Reducer([self.code_words, 1])
        if a:
            assign.add(a["key"], a["score"], [a["codes"], a["coders"]])
        assign.reduce()
        per_segment = _Reducer([self.code_words])
        if s:
            per_segment.add(s["seg"], np.full(len(s["seg"]), np.nan), [s["codes"]])
        per_segment.reduce()
        chunk = _Chunk(
            assign.keys, assign.scores, assign.masks[0], assign.masks[1],
            per_segment.keys, per_segment.masks[0],
        )  # fmt: skip
        np.savez(path, **chunk.__dict__)
        for kind in ("a", "s"):
            for k in range(self._files.get((kind, n), 0)):
                (self.spill / f"{kind}-{n}-{k}.npz").unlink()
        return chunk

    def _coder_bit(self, name: str) -> int:
        if not name:
            return -1
        if name not in self.coders:
            self.coders[name] = len(self.coders)
        return self.coders[name]

    # -- pass 3: assignments, theme figures, co-occurrence, centroids --------------------
    def assignments(self, centroids: bool = True) -> Iterator[pa.Table]:
        """The rows of ``theme_assignments``, chunk by chunk; adds up everything else."""
        ix = self.index
        n_nodes = max(1, self.n_nodes)
        coder_names = sorted(self.coders, key=self.coders.__getitem__)
        doc_names = pa.array(ix.docs, pa.string())
        node_names = pa.array(self.node_ids, pa.string())

        self.theme_stats = Stats(ix, self.n_nodes)
        self.pairs: dict[tuple[str, str], Counter[tuple[str, str]]] = {
            (kind, "segment"): Counter() for kind in ("code", "theme")
        }
        code_masks, theme_masks_n = _MaskCounts(), _MaskCounts()
        code_lists: dict[bytes, list[str]] = {}  # bit set -> its sorted names
        coder_lists: dict[bytes, list[str]] = {}
        part_codes = np.zeros((len(ix.participants), self.code_words), dtype=np.uint64)
        part_themes = np.zeros((len(ix.participants), self.node_words), dtype=np.uint64)
        self.centre = np.zeros((self.n_nodes if centroids else 0, len(self.vocab_sorted)))
        width = len(self.vocab_sorted)
        centre_flat = self.centre.reshape(-1)  # a view
        for n in range(ix.n_chunks):
            c = self._chunk(n)
            segs = c.a_key // n_nodes
            node = c.a_key % n_nodes
            self.n_assignments += len(segs)
            self.theme_stats.add(node, segs)
            code_masks.add(c.s_codes)
            np.bitwise_or.at(part_codes, ix.part(c.s_seg), c.s_codes)
            theme_segs, theme_masks = _or_by(segs, _set_bits(node, self.node_words))
            theme_masks_n.add(theme_masks)
            np.bitwise_or.at(part_themes, ix.part(theme_segs), theme_masks)
            if centroids and len(segs):
                first, indptr, indices, data = self._rows(n)
                for lo, hi in _blocks(indptr, segs - first):
                    pos, owner = _expand(indptr, segs[lo:hi] - first)
                    # one flat index: the same additions, in the same order
                    flat = node[lo:hi][owner] * width + indices[pos]
                    np.add.at(centre_flat, flat, data[pos])
            for lo in range(0, len(segs), WRITE_CHUNK):
                hi = lo + WRITE_CHUNK
                part = segs[lo:hi]
                scores = c.a_score[lo:hi]
                yield pa.table(
                    {
                        "segment_id": ix.chunk_ids(n).take(part - ix.chunk_starts[n]),
                        "doc_id": doc_names.take(ix.doc(part)),
                        "theme_id": node_names.take(node[lo:hi]),
                        "score": pa.array(scores, pa.float64(), mask=np.isnan(scores)),
                        "code_ids": _name_lists(c.a_codes[lo:hi], self.codes, code_lists),
                        "coders": _name_lists(c.a_coders[lo:hi], coder_names, coder_lists),
                    }
                )
        self.pairs[("code", "segment")] = code_masks.pairs(self.codes)
        self.pairs[("theme", "segment")] = theme_masks_n.pairs(self.node_ids)
        for kind, masks, names_ in (("code", part_codes, self.codes),
                                    ("theme", part_themes, self.node_ids)):  # fmt: skip
            used = masks[np.any(masks != 0, axis=1)]
            self.pairs[(kind, "participant")] = _pair_counts(used, names_)
        for j in range(len(self.centre)):  # row by row: the rounding of TfidfMatrix.centroid
            norm = float(np.linalg.norm(self.centre[j]))
            if norm:
                self.centre[j] = self.centre[j] / norm

    def theme_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "theme_id": node.id,
                "name": node.name,
                "level": node.level,
                "parent_id": node.parent_id,
                "description": node.description,
                **self.theme_stats.row(j),
                "proposal": False,
            }
            for j, node in enumerate(self.nodes)
        ]

    def cooccurrence(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for kind in ("code", "theme"):
            for level in ("segment", "participant"):
                rows += rows_from_counts(kind, level, self.pairs[(kind, level)])
        return rows

    # -- pass 4: quote pools, proposal sample, code groups -------------------------------
    def second_pass(self, want_sample: bool, seed: int, code_jaccard: float | None) -> None:
        """Score the quote candidates into bounded pools; sample segments for proposals;
        add up the segments of each code group (``code_jaccard``: None for none)."""
        ix = self.index
        per = self.options.per_theme if self.n_nodes else 0
        n_nodes = max(1, self.n_nodes)
        role_of_set = [a.get(self.options.role_attribute, "") for a in ix.attrsets]
        self.roles = sorted(set(role_of_set))
        role_idx = {r: i for i, r in enumerate(self.roles)}
        set_role = np.array([role_idx[r] for r in role_of_set] or [0], dtype=np.int64)
        self._pool = {k: np.zeros(0, dtype=np.int64 if k != "score" else np.float64)
                      for k in ("node", "cls", "role", "part", "score", "seg")}  # fmt: skip
        eligible = (ix.flags & (INTERVIEWER | HAS_TERMS)) == HAS_TERMS
        self.sample_total = int(np.count_nonzero(eligible)) if want_sample else 0
        sampling = self.sample_total > PROPOSAL_CAP
        self.sample = _Sample()
        self.groups = self._code_groups(code_jaccard) if code_jaccard is not None else []
        self.group_stats = Stats(ix, len(self.groups))
        group_masks = [
            np.bitwise_or.reduce(
                _set_bits(np.array([self.code_index[c] for c in g]), self.code_words), axis=0
            )
            for g in self.groups
        ]
        seen: dict[int, set[int]] = defaultdict(set)  # node -> repeated text keys quoted
        for n in range(ix.n_chunks):
            c = self._chunk(n)
            for g, mask in enumerate(group_masks):
                hit = c.s_seg[np.any(c.s_codes & mask, axis=1)]
                self.group_stats.add(np.full(len(hit), g), hit)
            lo_seg, hi_seg = int(ix.chunk_starts[n]), int(ix.chunk_starts[n + 1])
            picked = np.zeros(0, dtype=np.int64)
            keys = np.zeros(0, dtype=np.uint64)
            if want_sample:
                picked = np.flatnonzero(eligible[lo_seg:hi_seg])
                keys = np.zeros(len(picked), dtype=np.uint64)
                if sampling:
                    ids = ix.chunk_ids(n).take(pa.array(picked)).to_pylist()
                    keys = _sample_keys(ids, seed)
                    if self.sample.limit is not None:
                        # only keys up to the PROPOSAL_CAP-th smallest so far can still be in
                        below = keys <= np.uint64(self.sample.limit)
                        picked, keys = picked[below], keys[below]
            if not len(picked) and not (per and len(c.a_key)):
                continue
            start, indptr, indices, data = self._rows(n)
            if len(picked):
                pos, _ = _expand(indptr, picked)
                lengths = indptr[picked + 1] - indptr[picked]
                self.sample.add(start + picked, keys, lengths, indices[pos], data[pos])
            if sampling and len(self.sample) > SAMPLE_SLACK * PROPOSAL_CAP:
                self.sample.prune(PROPOSAL_CAP)
            if not per or not len(c.a_key):
                continue
            segs_all = c.a_key // n_nodes
            node_all = c.a_key % n_nodes
            cand = np.flatnonzero(~ix.has(INTERVIEWER | BLANK, segs_all))
            if not len(cand):
                continue
            # The same words twice in a theme (a repeated answer): only the first counts.
            textkey = ix.textkeys(n)[segs_all - lo_seg]
            keys = textkey[cand]
            order = cand[np.lexsort((segs_all[cand], keys, node_all[cand]))]
            pairs = np.stack([node_all[order], textkey[order]], axis=1)
            new = np.r_[True, np.any(pairs[1:] != pairs[:-1], axis=1)]
            sel = np.sort(order[new])
            again = np.isin(textkey[sel], ix.repeated)
            if again.any():
                drop = np.zeros(len(sel), dtype=bool)
                for i in np.flatnonzero(again).tolist():
                    j = int(node_all[sel[i]])
                    key = int(textkey[sel[i]])
                    if key in seen[j]:
                        drop[i] = True
                    seen[j].add(key)
                sel = sel[~drop]
            segs = segs_all[sel]
            node_sel = node_all[sel]
            raw = np.zeros(len(sel), dtype=np.float64)
            for lo, hi in _blocks(indptr, segs - start):
                pos, owner = _expand(indptr, segs[lo:hi] - start)
                prod = data[pos] * self.centre[node_sel[lo:hi][owner], indices[pos]]
                raw[lo:hi] = np.bincount(owner, weights=prod, minlength=hi - lo)
            scores = round6(raw)
            readable = ix.has(READABLE, segs)
            base = {
                "node": node_all[sel],
                "role": set_role[ix.attrset(segs)],
                "part": ix.part(segs).astype(np.int64),
                "score": scores,
                "seg": segs,
            }
            for cls, keep in ((0, readable), (1, np.ones(len(sel), dtype=bool))):
                for k, v in base.items():
                    self._pool[k] = np.concatenate([self._pool[k], v[keep]])
                self._pool["cls"] = np.concatenate(
                    [self._pool["cls"], np.full(int(keep.sum()), cls, dtype=np.int64)]
                )
            self._prune_pool(per)
        if sampling:
            self.sample.prune(PROPOSAL_CAP)

    def _code_groups(self, threshold: float) -> list[list[str]]:
        """:func:`qualpipe.themes.proposals.code_group_rows`' groups, biggest first."""
        pairs = self.pairs[("code", "segment")]
        present = sorted({a for a, b in pairs if a == b})
        parent = {c: c for c in present}

        def find(code: str) -> str:
            while parent[code] != code:
                parent[code] = parent[parent[code]]
                code = parent[code]
            return code

        for i, a in enumerate(present):
            for b in present[i + 1 :]:
                both = pairs.get((a, b), 0)
                if both and both / (pairs[(a, a)] + pairs[(b, b)] - both) >= threshold:
                    parent[find(a)] = find(b)
        groups: dict[str, list[str]] = {}
        for code in present:
            groups.setdefault(find(code), []).append(code)
        self.code_jaccard = threshold
        return [g for g in groups.values() if len(g) > 1]

    def _prune_pool_by_columns(self, per: int) -> None:
        """:meth:`_prune_pool` sorting by the columns themselves (when their numbers
        could not be combined into one)."""
        p = self._pool
        order = np.lexsort((p["seg"], -p["score"], p["part"], p["role"], p["cls"], p["node"]))
        p = {k: v[order] for k, v in p.items()}
        group = np.stack([p["node"], p["cls"], p["role"], p["part"]], axis=1)
        new = np.r_[True, np.any(group[1:] != group[:-1], axis=1)]
        keep = _rank_in_runs(new) < per
        p = {k: v[keep] for k, v in p.items()}
        new = new[keep]
        best = np.flatnonzero(new)
        order = np.lexsort(
            (p["seg"][best], -p["score"][best], p["role"][best], p["cls"][best], p["node"][best])
        )
        b = best[order]
        g = np.stack([p["node"][b], p["cls"][b], p["role"][b]], axis=1)
        gnew = np.r_[True, np.any(g[1:] != g[:-1], axis=1)]
        self._pool = _best_participants(p, new, b, gnew, per)

    def _prune_pool(self, per: int) -> None:
        p = self._pool
        if not len(p["seg"]):
            return
        # (theme, class, role) and (.., participant) as one number each: the same order
        # as sorting by the columns one after the other, with fewer sort keys
        n_roles = max(1, len(self.roles))
        n_parts = max(1, len(self.index.participants))
        if (max(1, self.n_nodes) * 2 * n_roles * n_parts) >= 2**62:
            self._prune_pool_by_columns(per)
            return
        theme = (p["node"] * 2 + p["cls"]) * n_roles + p["role"]
        order = np.lexsort((p["seg"], -p["score"], theme * n_parts + p["part"]))
        p = {k: v[order] for k, v in p.items()}
        theme = theme[order]
        group = theme * n_parts + p["part"]
        new = np.r_[True, group[1:] != group[:-1]]
        keep = _rank_in_runs(new) < per
        p = {k: v[keep] for k, v in p.items()}
        new = new[keep]
        # Participants of one (theme, class, role), ranked by their best candidate.
        best = np.flatnonzero(new)
        theme = theme[keep]
        order = np.lexsort((p["seg"][best], -p["score"][best], theme[best]))
        b = best[order]
        g = theme[b]
        gnew = np.r_[True, g[1:] != g[:-1]]
        self._pool = _best_participants(p, new, b, gnew, per)

    def quotes(
        self, texts: Callable[[set[int]], dict[int, tuple[str, str | None]]]
    ) -> list[dict[str, Any]]:
        """Pick the quotes from the pools (as select_quotes does); ``texts`` reads texts."""
        options = self.options
        if not options.per_theme or not self.n_nodes:
            return []
        ix = self.index
        numbers = participant_numbers(ix.first_segment, options.role_attribute)
        p = self._pool
        picks: list[tuple[int, list[tuple[int, float, str]]]] = []
        for j in range(self.n_nodes):
            at = p["node"] == j
            cls = 0 if np.any(at & (p["cls"] == 0)) else 1
            at &= p["cls"] == cls
            pool = [
                (s, sc, self.roles[r], ix.participants[q])
                for s, sc, r, q in zip(
                    p["seg"][at].tolist(),
                    p["score"][at].tolist(),
                    p["role"][at].tolist(),
                    p["part"][at].tolist(),
                    strict=True,
                )
            ]
            p_used: Counter[str] = Counter()
            r_used: Counter[str] = Counter()
            chosen: list[tuple[int, float, str]] = []
            while pool and len(chosen) < options.per_theme:
                best = min(pool, key=lambda c: (p_used[c[3]], r_used[c[2]], -c[1], c[0]))
                pool.remove(best)
                p_used[best[3]] += 1
                r_used[best[2]] += 1
                chosen.append((best[0], best[1], best[2]))
            picks.append((j, chosen))
        wanted = {s for _, chosen in picks for s, _, _ in chosen}
        text_of = texts(wanted)
        rows: list[dict[str, Any]] = []
        for j, chosen in picks:
            for rank, (s, score, role) in enumerate(chosen, 1):
                text, speaker = text_of[s]
                seg = ix.segment(s, text, speaker)
                rows.append(
                    {
                        "theme_id": self.node_ids[j],
                        "rank": rank,
                        "segment_id": seg.segment_id,
                        "doc_id": seg.doc_id,
                        "participant_id": seg.participant_id,
                        "label": label_for(
                            seg, options.style(role), options.role_attribute, numbers
                        ),
                        "text": shorten(seg.text, options.max_words),
                        "score": score,
                        "attributes": sorted(seg.attributes.items()),
                    }
                )
        return rows

    def proposals(self, n_proposals: int, seed: int) -> list[Proposal]:
        sample = self.sample
        segs = list(sample)
        ix = self.index
        indptr = np.r_[0, np.cumsum(sample.lengths)].astype(np.int64)
        matrix = TfidfMatrix(self.vocab_sorted, self.idf, indptr, sample.indices, sample.data)
        ids = ix.ids(segs)
        self._sample_ids = dict(zip(ids, segs, strict=True))
        row_of = {seg_id: r for r, seg_id in enumerate(ids)}
        members = [Segment(seg_id, "", "", None, None, {}, order=s)
                   for seg_id, s in zip(ids, segs, strict=True)]  # fmt: skip
        return propose(members, n_proposals, seed, matrix, row_of)

    def proposal_rows(self, found: Sequence[Proposal], seed: int) -> list[dict[str, Any]]:
        total = sum(len(p.segment_ids) for p in found)
        sampled = self.sample_total if self.sample_total > PROPOSAL_CAP else None
        stats = Stats(self.index, len(found))
        for i, p in enumerate(found):
            segs = np.array([self._sample_ids[s] for s in p.segment_ids], dtype=np.int64)
            stats.add(np.full(len(segs), i), segs)
        return [
            {
                **proposal_description(p, i, total, len(found), seed, sampled),
                **stats.row(i - 1),
                "proposal": True,
            }
            for i, p in enumerate(found, 1)
        ]

    def code_group_rows(self) -> list[dict[str, Any]]:
        """:func:`qualpipe.themes.proposals.code_group_rows` from :meth:`second_pass`."""
        names = {c.id: c.name for c in self.book.codes}
        order = sorted(
            range(len(self.groups)),
            key=lambda g: (-int(self.group_stats.segments[g]), self.groups[g]),
        )
        return [
            code_group_row(i, self.groups[g], names, self.code_jaccard, self.group_stats.row(g))
            for i, g in enumerate(order, 1)
        ]


def _name_lists(
    masks: np.ndarray, names: Sequence[str], known: dict[bytes, list[str]] | None = None
) -> pa.Array:
    """A list<string> array: the sorted names of each bit-set row (``known``: the lists
    of bit sets seen before, kept for the next call)."""
    if not len(masks):
        return pa.array([], pa.list_(pa.string()))
    known = {} if known is None else known
    distinct, inverse = _distinct(masks)
    lists = []
    for m in distinct:
        key = m.tobytes()
        found = known.get(key)
        if found is None:
            found = known[key] = sorted(names[i] for i in _decode(m))
        lists.append(found)
    return pa.array(lists, pa.list_(pa.string())).take(inverse)


def _lookup_many(
    array: pa.Array, lookup: Callable[[Sequence[str | None]], np.ndarray]
) -> np.ndarray:
    """Like :func:`_lookup`, with a vectorised lookup of the distinct values."""
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    lut = np.r_[lookup(encoded.dictionary.to_pylist()), -1].astype(np.int64)
    idx = encoded.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)
    out: np.ndarray = lut[idx.astype(np.int64)]
    return out


def _sample_keys(segment_ids: Sequence[str], seed: int) -> np.ndarray:
    """:func:`_sample_key` of every id (the keyed hash state copied, not made anew)."""
    base = hashlib.blake2b(digest_size=8, key=str(seed).encode("ascii"))
    digests = bytearray()
    for segment_id in segment_ids:
        h = base.copy()
        h.update(segment_id.encode("utf-8"))
        digests += h.digest()
    out: np.ndarray = np.frombuffer(bytes(digests), dtype=">u8").astype(np.uint64)
    return out


def _sample_key(segment_id: str, seed: int) -> int:
    digest = hashlib.blake2b(
        segment_id.encode("utf-8"), digest_size=8, key=str(seed).encode("ascii")
    ).digest()
    return int.from_bytes(digest, "big")


def spill_folder(workdir: Path | None) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for the spilled data: in the run store's staging folder when
    there is one (a run killed with -9 leaves it there, and the next run clears it)."""
    if workdir is not None and (workdir / STAGING).is_dir():
        return tempfile.TemporaryDirectory(prefix="theme-spill-", dir=workdir / STAGING)
    return tempfile.TemporaryDirectory(prefix="qualpipe-theme-")


def segment_texts(
    batches: Iterable[pa.RecordBatch], index: SegmentIndex, wanted: set[int]
) -> dict[int, tuple[str, str | None]]:
    """segment position -> (text, speaker) for the ``wanted`` positions."""
    if not wanted:
        return {}
    ordered = sorted(wanted)
    ids = dict(zip(index.ids(ordered), ordered, strict=True))
    out: dict[int, tuple[str, str | None]] = {}
    for batch in batches:
        seg_ids = _column(batch, "segment_id")
        hit = pc.is_in(seg_ids, value_set=pa.array(list(ids), pa.string()))
        if not pc.any(hit).as_py():
            continue
        sub = batch.filter(hit)
        for seg_id, text, speaker in zip(
            _column(sub, "segment_id").to_pylist(),
            _column(sub, "text").to_pylist(),
            _column(sub, "speaker").to_pylist(),
            strict=True,
        ):
            s = ids[seg_id]
            if s not in out:
                out[s] = (text or "", speaker)
        if len(out) == len(ids):
            break
    return out


__all__ = ["PROPOSAL_CAP", "SegmentIndex", "Stats", "ThemeEngine", "segment_texts"]


def _rank_in_runs(new: np.ndarray) -> np.ndarray:
    """Each row's position within its run of rows (a run starts where ``new`` is True)."""
    starts = np.flatnonzero(new)
    return np.arange(len(new)) - np.repeat(starts, np.diff(np.r_[starts, len(new)]))


def _best_participants(
    pool: dict[str, np.ndarray], new: np.ndarray, best: np.ndarray, gnew: np.ndarray, per: int
) -> dict[str, np.ndarray]:
    """Keep the candidates of the ``per`` best participants of each theme.

    ``new`` starts each participant's run in ``pool``; ``best`` holds those starts (each
    participant's best candidate) in theme order, ranked within each theme, and ``gnew``
    starts each theme's run in ``best``.
    """
    kept_best = np.zeros(len(new), dtype=bool)
    kept_best[best[_rank_in_runs(gnew) < per]] = True
    keep = kept_best[np.flatnonzero(new)][np.cumsum(new) - 1]
    return {k: v[keep] for k, v in pool.items()}
