"""The theme stage's engine for corpora of any size: streaming passes, bounded memory.

It computes what :mod:`qualpipe.themes.rollup`, :mod:`~qualpipe.themes.cooccurrence`,
:mod:`~qualpipe.themes.quotes` and :mod:`~qualpipe.themes.proposals` compute from Python
objects (the reference the tests compare against), but keeps per segment only a few
integers in numpy arrays, never the text:

1. **Segments** (one pass): ids, document, participant, attribute set, interviewer flag,
   word count and a hash of the normalised text; TF-IDF document frequencies. The words
   of each segment (term ids and counts) are spilled to a temporary folder, so the later
   passes do not tokenise again and memory does not hold them.
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
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qualpipe.codebook import Codebook
from qualpipe.themes.cooccurrence import rows_from_counts
from qualpipe.themes.proposals import Proposal, proposal_description, propose
from qualpipe.themes.quotes import (
    QuoteOptions,
    is_interviewer,
    label_for,
    participant_numbers,
    shorten,
)
from qualpipe.themes.rollup import TOTAL, Segment, attributes_dict, theme_nodes, theme_targets
from qualpipe.themes.text import TfidfMatrix, token_counts

#: Most participant segments clustered for inductive proposals (a seeded sample above).
PROPOSAL_CAP = 50_000
#: Rows read per batch.
READ_BATCH = 16_384
#: Assignment rows per write.
WRITE_CHUNK = 65_536

Batches = Callable[[tuple[str, ...]], Iterator[pa.RecordBatch]]


def _column(batch: pa.RecordBatch, name: str) -> pa.Array:
    if name in batch.schema.names:
        return batch.column(name)
    return pa.nulls(batch.num_rows, pa.string())


def _lookup(array: pa.Array, mapping: Callable[[str], int]) -> np.ndarray:
    """Map each string of ``array`` through ``mapping`` (nulls -> -1), once per distinct."""
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    lut = np.array([mapping(v) for v in encoded.dictionary.to_pylist()] + [-1], dtype=np.int64)
    idx = encoded.indices.fill_null(len(lut) - 1).to_numpy(zero_copy_only=False)
    out: np.ndarray = lut[idx.astype(np.int64)]
    return out


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


@dataclass
class SegmentIndex:
    """Per-segment facts as arrays (position = the segment's order in the dataset)."""

    ids: dict[str, int] = field(default_factory=dict)
    id_list: list[str] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    participants: list[str] = field(default_factory=list)
    participant_ids: list[str | None] = field(default_factory=list)
    #: participant -> its first segment (for participant numbers)
    first_segment: list[Segment] = field(default_factory=list)
    attrsets: list[dict[str, str]] = field(default_factory=list)
    doc: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    part: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    attrset: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    interviewer: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    blank: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    words: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    textkey: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    n_terms: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    #: (participant, attribute set) pairs over the whole corpus
    pairs: set[tuple[int, int]] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.id_list)

    def segment(self, i: int, text: str = "", speaker: str | None = None) -> Segment:
        return Segment(
            segment_id=self.id_list[i],
            doc_id=self.docs[int(self.doc[i])],
            text=text,
            speaker=speaker,
            participant_id=self.participant_ids[int(self.part[i])],
            attributes=self.attrsets[int(self.attrset[i])],
            order=i,
        )


class Prevalence:
    """:class:`qualpipe.themes.rollup.Prevalence` over a :class:`SegmentIndex`."""

    def __init__(self, index: SegmentIndex) -> None:
        self.index = index
        self.totals = self._count(index.pairs)

    def _count(self, pairs: Iterable[tuple[int, int]]) -> dict[str, dict[str, set[int]]]:
        out: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
        for p, a in pairs:
            for attr, value in self.index.attrsets[a].items():
                out[attr][value].add(p)
        return out

    def stats(self, segs: np.ndarray) -> dict[str, Any]:
        """``segments``, ``documents``, ``participants`` and ``prevalence`` of ``segs``."""
        segs = np.unique(segs)
        ix = self.index
        parts = ix.part[segs].astype(np.int64)
        pairs = np.unique(parts * max(1, len(ix.attrsets)) + ix.attrset[segs])
        n_sets = max(1, len(ix.attrsets))
        found = self._count(zip((pairs // n_sets).tolist(), (pairs % n_sets).tolist(), strict=True))
        prevalence: dict[str, dict[str, Any]] = {}
        for attr in sorted(self.totals):
            values = sorted(self.totals[attr])
            entry: dict[str, Any] = {v: len(found.get(attr, {}).get(v, ())) for v in values}
            entry[TOTAL] = {v: len(self.totals[attr][v]) for v in values}
            prevalence[attr] = entry
        return {
            "segments": len(segs),
            "documents": len(np.unique(ix.doc[segs])),
            "participants": len(np.unique(parts)),
            "prevalence": json.dumps(prevalence, ensure_ascii=False),
        }


def _pair_counts(masks: np.ndarray, names: Sequence[str]) -> Counter[tuple[str, str]]:
    """:func:`qualpipe.themes.cooccurrence.pair_counts` over bit-set rows."""
    counts: Counter[tuple[str, str]] = Counter()
    if not len(masks):
        return counts
    distinct, n = np.unique(masks, axis=0, return_counts=True)
    for mask, times in zip(distinct, n.tolist(), strict=True):
        ordered = sorted(names[i] for i in _decode(mask))
        for i, a in enumerate(ordered):
            for b in ordered[i:]:
                counts[(a, b)] += times
    return counts


def _or_by(groups: np.ndarray, masks: np.ndarray) -> np.ndarray:
    if not len(groups):
        return masks
    order = np.argsort(groups, kind="stable")
    g = groups[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    out: np.ndarray = np.bitwise_or.reduceat(masks[order], starts, axis=0)
    return out


class ThemeEngine:
    """Run the theme computations over streamed ``segments`` and ``codings``."""

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
        self.coders: dict[str, int] = {}
        self.index = SegmentIndex()
        self.vocab: dict[str, int] = {}
        self.df: list[int] = []
        self.chunks: list[tuple[int, int]] = []
        self.other_version = 0
        self.skipped: Counter[str] = Counter()
        self.used = 0

    # -- pass 1: segments ----------------------------------------------------------------
    def read_segments(self, batches: Iterable[pa.RecordBatch]) -> None:
        ix = self.index
        labels = self.options.interviewer_labels
        speaker_flag: dict[str | None, bool] = {}
        doc_of: dict[str, int] = {}
        part_of: dict[str, int] = {}
        attr_of: dict[Any, int] = {}
        doc, part, attrset, inter, blank, words, textkey, n_terms = ([] for _ in range(8))
        vocab, df = self.vocab, self.df
        for batch in batches:
            cols = {
                name: _column(batch, name).to_pylist()
                for name in ("segment_id", "doc_id", "text", "speaker", "participant_id")
            }
            attrs = _column(batch, "attributes").to_pylist()
            lengths: list[int] = []
            terms: list[int] = []
            tfs: list[int] = []
            first = len(ix.id_list)
            for seg_id, doc_id, text, speaker, pid, attr in zip(
                cols["segment_id"], cols["doc_id"], cols["text"], cols["speaker"],
                cols["participant_id"], attrs, strict=True,
            ):  # fmt: skip
                if seg_id in ix.ids:
                    continue
                i = len(ix.id_list)
                ix.ids[seg_id] = i
                ix.id_list.append(seg_id)
                text = text or ""
                d = doc_of.get(doc_id)
                if d is None:
                    d = doc_of[doc_id] = len(ix.docs)
                    ix.docs.append(doc_id)
                akey = tuple(attr) if attr else ()
                a = attr_of.get(akey)
                if a is None:
                    a = attr_of[akey] = len(ix.attrsets)
                    ix.attrsets.append(attributes_dict(attr))
                pid = pid or None
                who = pid or f"doc:{doc_id}"
                p = part_of.get(who)
                if p is None:
                    p = part_of[who] = len(ix.participants)
                    ix.participants.append(who)
                    ix.participant_ids.append(pid)
                    ix.first_segment.append(
                        Segment(seg_id, doc_id, "", None, pid, ix.attrsets[a], order=i)
                    )
                flag = speaker_flag.get(speaker)
                if flag is None:
                    flag = speaker_flag[speaker] = is_interviewer(speaker, labels)
                ix.pairs.add((p, a))
                doc.append(d)
                part.append(p)
                attrset.append(a)
                inter.append(flag)
                blank.append(not text.strip())
                split = text.split()
                words.append(len(split))
                textkey.append(hash(" ".join(text.casefold().split())))
                counts = token_counts(text)
                lengths.append(len(counts))
                for word, n in counts.items():
                    t = vocab.get(word)
                    if t is None:
                        t = vocab[word] = len(df)
                        df.append(0)
                    df[t] += 1
                    terms.append(t)
                    tfs.append(n)
            last = len(ix.id_list)
            if last > first:
                n = len(self.chunks)
                np.save(self.spill / f"len-{n}.npy", np.array(lengths, dtype=np.int32))
                np.save(self.spill / f"term-{n}.npy", np.array(terms, dtype=np.int32))
                np.save(self.spill / f"tf-{n}.npy", np.array(tfs, dtype=np.int32))
                self.chunks.append((first, last))
                n_terms.append(np.array(lengths, dtype=np.int32))
        ix.doc = np.array(doc, dtype=np.int32)
        ix.part = np.array(part, dtype=np.int32)
        ix.attrset = np.array(attrset, dtype=np.int32)
        ix.interviewer = np.array(inter, dtype=bool)
        ix.blank = np.array(blank, dtype=bool)
        ix.words = np.array(words, dtype=np.int32)
        ix.textkey = np.array(textkey, dtype=np.int64)
        ix.n_terms = np.concatenate(n_terms) if n_terms else np.zeros(0, np.int32)
        # TF-IDF over the vocabulary in sorted order, as TfidfMatrix.fit builds it.
        self.vocab_sorted = sorted(vocab)
        position = {w: i for i, w in enumerate(self.vocab_sorted)}
        self.remap = np.array([position[w] for w in vocab], dtype=np.int64)
        n = len(ix)
        self.idf = np.array(
            [np.log((1 + n) / (1 + df[vocab[w]])) + 1 for w in self.vocab_sorted],
            dtype=np.float64,
        )
        self.vocab.clear()
        self.df = []

    def _rows(self) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
        """(first segment, indptr, indices, data) per spilled chunk: unit TF-IDF rows."""
        for n, (first, _last) in enumerate(self.chunks):
            lengths = np.load(self.spill / f"len-{n}.npy").astype(np.int64)
            terms = self.remap[np.load(self.spill / f"term-{n}.npy")]
            tf = np.load(self.spill / f"tf-{n}.npy").astype(np.float64)
            row = np.repeat(np.arange(len(lengths)), lengths)
            order = np.lexsort((terms, row))
            terms, tf = terms[order], tf[order]
            weights = (1 + np.log(tf)) * self.idf[terms]
            indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
            data = np.empty_like(weights)
            for r in range(len(lengths)):
                lo, hi = indptr[r], indptr[r + 1]
                w = weights[lo:hi]
                norm = float(np.sqrt(np.dot(w, w)))
                data[lo:hi] = w / norm if norm else w
            yield first, indptr, terms, data

    # -- pass 2: codings -----------------------------------------------------------------
    def read_codings(self, batches: Iterable[pa.RecordBatch]) -> None:
        coder_words = 1
        assign = _Reducer([self.code_words, coder_words])
        per_segment = _Reducer([self.code_words])
        counted = pa.array(sorted(self.statuses), pa.string())
        n_nodes = max(1, self.n_nodes)
        for batch in batches:
            n = batch.num_rows
            if not n:
                continue
            made_with = _column(batch, "codebook_version")
            if self.version:
                other = pc.and_(pc.invert(pc.equal(made_with, self.version)),
                                pc.not_equal(made_with, ""))  # fmt: skip
                self.other_version += int(pc.sum(other.fill_null(False)).as_py() or 0)
            ok = pc.is_in(_column(batch, "status"), value_set=counted)
            ok_np = ok.fill_null(False).to_numpy(zero_copy_only=False)
            code = _lookup(_column(batch, "code_id"), lambda c: self.code_index.get(c, -1))
            seg = _lookup(_column(batch, "segment_id"), lambda s: self.index.ids.get(s, -1))
            self.skipped["status"] += int(np.count_nonzero(~ok_np))
            bad_code = ok_np & (code < 0)
            self.skipped["unknown_code"] += int(np.count_nonzero(bad_code))
            bad_seg = ok_np & (code >= 0) & (seg < 0)
            self.skipped["unknown_segment"] += int(np.count_nonzero(bad_seg))
            use = ok_np & (code >= 0) & (seg >= 0)
            self.used += int(np.count_nonzero(use))
            if not use.any():
                continue
            coder = _lookup(_column(batch, "coder"), self._coder_bit)[use]
            if len(self.coders) > 64 * coder_words:
                raise ValueError("theme: more than 64 coders")
            scores = (
                pc.cast(_column(batch, "score"), pa.float64())
                .fill_null(np.nan)
                .to_numpy(zero_copy_only=False)[use]
            )
            code, seg = code[use], seg[use]
            code_mask = _set_bits(code, self.code_words)
            per_segment.add(seg, np.full(len(seg), np.nan), [code_mask])
            coder_mask = _set_bits(np.maximum(coder, 0), coder_words)
            coder_mask[coder < 0] = 0
            reps = self.n_targets[code]
            if not reps.sum():
                continue
            which = np.repeat(np.arange(len(code)), reps)
            within = np.arange(len(which)) - np.repeat(np.cumsum(reps) - reps, reps)
            node = self.target_flat[self.target_start[code[which]] + within]
            assign.add(
                seg[which].astype(np.int64) * n_nodes + node,
                scores[which],
                [code_mask[which], coder_mask[which]],
            )
        assign.reduce()
        per_segment.reduce()
        self.a_key = assign.keys
        self.a_seg = assign.keys // n_nodes
        self.a_node = assign.keys % n_nodes
        self.a_score = assign.scores
        self.a_codes, self.a_coders = assign.masks
        self.s_seg = per_segment.keys
        self.s_codes = per_segment.masks[0]
        self.skipped = Counter({k: v for k, v in self.skipped.items() if v})

    def _coder_bit(self, name: str) -> int:
        if not name:
            return -1
        if name not in self.coders:
            self.coders[name] = len(self.coders)
        return self.coders[name]

    # -- outputs from the roll-up ----------------------------------------------------------
    def assignment_batches(self) -> Iterator[pa.Table]:
        coder_names = sorted(self.coders, key=self.coders.__getitem__)
        code_cache: dict[bytes, list[str]] = {}
        coder_cache: dict[bytes, list[str]] = {}

        def names(mask: np.ndarray, cache: dict[bytes, list[str]], of: list[str]) -> list[str]:
            key = mask.tobytes()
            got = cache.get(key)
            if got is None:
                got = cache[key] = sorted(of[i] for i in _decode(mask))
            return got

        ix = self.index
        for lo in range(0, len(self.a_key), WRITE_CHUNK):
            hi = lo + WRITE_CHUNK
            segs = self.a_seg[lo:hi].tolist()
            scores = self.a_score[lo:hi]
            yield pa.table(
                {
                    "segment_id": [ix.id_list[s] for s in segs],
                    "doc_id": [ix.docs[d] for d in ix.doc[segs].tolist()],
                    "theme_id": [self.node_ids[n] for n in self.a_node[lo:hi].tolist()],
                    "score": pa.array(scores, pa.float64(), mask=np.isnan(scores)),
                    "code_ids": [names(m, code_cache, self.codes) for m in self.a_codes[lo:hi]],
                    "coders": [names(m, coder_cache, coder_names) for m in self.a_coders[lo:hi]],
                }
            )

    def theme_rows(self, prevalence: Prevalence) -> list[dict[str, Any]]:
        rows = []
        for j, node in enumerate(self.nodes):
            rows.append(
                {
                    "theme_id": node.id,
                    "name": node.name,
                    "level": node.level,
                    "parent_id": node.parent_id,
                    "description": node.description,
                    **prevalence.stats(self.a_seg[self.a_node == j]),
                    "proposal": False,
                }
            )
        return rows

    def cooccurrence(self) -> list[dict[str, Any]]:
        node_words = _bits(self.n_nodes)
        theme_masks = _or_by(self.a_seg, _set_bits(self.a_node, node_words))
        theme_segs = np.unique(self.a_seg)
        part = self.index.part
        rows: list[dict[str, Any]] = []
        for kind, segs, masks, names in (
            ("code", self.s_seg, self.s_codes, self.codes),
            ("theme", theme_segs, theme_masks, self.node_ids),
        ):
            rows += rows_from_counts(kind, "segment", _pair_counts(masks, names))
            by_part = _or_by(part[segs], masks) if len(segs) else masks
            rows += rows_from_counts(kind, "participant", _pair_counts(by_part, names))
        return rows

    def code_group_rows(self, prevalence: Prevalence, threshold: float) -> list[dict[str, Any]]:
        """:func:`qualpipe.themes.proposals.code_group_rows` from the per-segment codes."""
        pairs = _pair_counts(self.s_codes, self.codes)
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

        def segs_of(group: list[str]) -> np.ndarray:
            bits = _set_bits(np.array([self.code_index[c] for c in group]), self.code_words)
            mask = np.bitwise_or.reduce(bits, axis=0)
            hit = np.any(self.s_codes & mask, axis=1)
            out: np.ndarray = self.s_seg[hit]
            return out

        found = [(g, segs_of(g)) for g in groups.values() if len(g) > 1]
        found.sort(key=lambda gs: (-len(gs[1]), gs[0]))
        names = {c.id: c.name for c in self.book.codes}
        rows = []
        for i, (group, segs) in enumerate(found, 1):
            members = ", ".join(names.get(c, c) for c in group)
            rows.append(
                {
                    "theme_id": f"code-group-{i}",
                    "name": " + ".join(names.get(c, c) for c in group[:3])
                    + (" + …" if len(group) > 3 else ""),
                    "level": "theme",
                    "parent_id": None,
                    "description": (
                        "Machine proposal for researchers to review, not an agreed theme: "
                        f"codes that occur together in segments (Jaccard >= {threshold}): "
                        f"{members}."
                    ),
                    **prevalence.stats(segs),
                    "proposal": True,
                }
            )
        return rows

    # -- passes 3 and 4: centroids, quote pools, proposal sample -------------------------
    def centroids(self) -> np.ndarray:
        sums = np.zeros((self.n_nodes, len(self.vocab_sorted)), dtype=np.float64)
        if not self.n_nodes:
            return sums
        for first, indptr, indices, data in self._rows():
            last = first + len(indptr) - 1
            lo, hi = np.searchsorted(self.a_seg, [first, last])
            if lo == hi:
                continue
            rows = self.a_seg[lo:hi] - first
            starts, ends = indptr[rows], indptr[rows + 1]
            reps = ends - starts
            pos = np.repeat(starts - np.r_[0, np.cumsum(reps)[:-1]], reps) + np.arange(reps.sum())
            node = np.repeat(self.a_node[lo:hi], reps)
            np.add.at(sums, (node, indices[pos]), data[pos])
        for j in range(self.n_nodes):  # row by row: the same rounding as TfidfMatrix.centroid
            norm = float(np.linalg.norm(sums[j]))
            if norm:
                sums[j] = sums[j] / norm
        return sums

    def quote_pools(self, centroids: np.ndarray, want_sample: bool, seed: int) -> None:
        """Score the quote candidates; keep the bounded pools and the proposal sample."""
        ix = self.index
        per = self.options.per_theme
        role_of_set = [a.get(self.options.role_attribute, "") for a in ix.attrsets]
        self.roles = sorted(set(role_of_set))
        role_idx = {r: i for i, r in enumerate(self.roles)}
        set_role = np.array([role_idx[r] for r in role_of_set] or [0], dtype=np.int64)
        cand = ~ix.interviewer[self.a_seg] & ~ix.blank[self.a_seg]
        # The same words twice in a theme (a repeated answer): only the first counts.
        first = np.zeros(len(self.a_seg), dtype=bool)
        idx = np.flatnonzero(cand)
        if len(idx):
            order = idx[
                np.lexsort((self.a_seg[idx], ix.textkey[self.a_seg[idx]], self.a_node[idx]))
            ]
            keys = np.stack([self.a_node[order], ix.textkey[self.a_seg[order]]], axis=1)
            new = np.r_[True, np.any(keys[1:] != keys[:-1], axis=1)]
            first[order[new]] = True
        self._pool = {k: np.zeros(0, dtype=np.int64 if k != "score" else np.float64)
                      for k in ("node", "cls", "role", "part", "score", "seg")}  # fmt: skip
        eligible = ~ix.interviewer & (ix.n_terms > 0)
        self.sample_total = int(np.count_nonzero(eligible))
        sampling = self.sample_total > PROPOSAL_CAP
        self.sample: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._sample_keys: dict[int, int] = {}
        for start, indptr, indices, data in self._rows():
            last = start + len(indptr) - 1
            if want_sample:
                for s in np.flatnonzero(eligible[start:last]).tolist():
                    seg = start + s
                    self.sample[seg] = (
                        indices[indptr[s] : indptr[s + 1]].copy(),
                        data[indptr[s] : indptr[s + 1]].copy(),
                    )
                    if sampling:
                        self._sample_keys[seg] = _sample_key(ix.id_list[seg], seed)
                if sampling and len(self.sample) > 2 * PROPOSAL_CAP:
                    self._prune_sample()
            if not per or not self.n_nodes:
                continue
            lo, hi = np.searchsorted(self.a_seg, [start, last])
            sel = np.arange(lo, hi)[first[lo:hi]]
            if not len(sel):
                continue
            rows = self.a_seg[sel] - start
            starts, ends = indptr[rows], indptr[rows + 1]
            reps = ends - starts
            pos = np.repeat(starts - np.r_[0, np.cumsum(reps)[:-1]], reps) + np.arange(reps.sum())
            which = np.repeat(np.arange(len(sel)), reps)
            prod = data[pos] * centroids[self.a_node[sel][which], indices[pos]]
            raw = np.bincount(which, weights=prod, minlength=len(sel))
            scores = np.array([round(x, 6) for x in raw.tolist()], dtype=np.float64)
            segs = self.a_seg[sel]
            readable = ix.words[segs] >= self.options.min_words
            base = {
                "node": self.a_node[sel],
                "role": set_role[ix.attrset[segs]],
                "part": ix.part[segs].astype(np.int64),
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
            self._prune_sample(final=True)

    def _prune_sample(self, final: bool = False) -> None:
        keep = sorted(self.sample, key=lambda s: (self._sample_keys[s], s))[:PROPOSAL_CAP]
        self.sample = {s: self.sample[s] for s in sorted(keep)}
        self._sample_keys = {s: self._sample_keys[s] for s in keep}

    def _prune_pool(self, per: int) -> None:
        p = self._pool
        if not len(p["seg"]):
            return
        order = np.lexsort((p["seg"], -p["score"], p["part"], p["role"], p["cls"], p["node"]))
        p = {k: v[order] for k, v in p.items()}
        group = np.stack([p["node"], p["cls"], p["role"], p["part"]], axis=1)
        new = np.r_[True, np.any(group[1:] != group[:-1], axis=1)]
        starts = np.flatnonzero(new)
        rank = np.arange(len(new)) - np.repeat(starts, np.diff(np.r_[starts, len(new)]))
        keep = rank < per
        p = {k: v[keep] for k, v in p.items()}
        new = new[keep]
        # Participants of one (theme, class, role), ranked by their best candidate.
        best = np.flatnonzero(new)
        order = np.lexsort(
            (p["seg"][best], -p["score"][best], p["role"][best], p["cls"][best], p["node"][best])
        )
        b = best[order]
        g = np.stack([p["node"][b], p["cls"][b], p["role"][b]], axis=1)
        gnew = np.r_[True, np.any(g[1:] != g[:-1], axis=1)]
        gstarts = np.flatnonzero(gnew)
        prank = np.arange(len(b)) - np.repeat(gstarts, np.diff(np.r_[gstarts, len(b)]))
        kept_best = np.zeros(len(new), dtype=bool)
        kept_best[b[prank < per]] = True
        member = np.cumsum(new) - 1
        keep = kept_best[best][member]
        self._pool = {k: v[keep] for k, v in p.items()}

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

    def proposals(self, n_proposals: int, seed: int) -> tuple[list[Proposal], TfidfMatrix]:
        segs = sorted(self.sample)
        ix = self.index
        lengths = np.array([len(self.sample[s][0]) for s in segs], dtype=np.int64)
        indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
        indices = (
            np.concatenate([self.sample[s][0] for s in segs]) if segs else np.zeros(0, np.int64)
        )
        data = (
            np.concatenate([self.sample[s][1] for s in segs]) if segs else np.zeros(0, np.float64)
        )
        matrix = TfidfMatrix(self.vocab_sorted, self.idf, indptr, indices, data)
        row_of = {ix.id_list[s]: r for r, s in enumerate(segs)}
        members = [ix.segment(s) for s in segs]
        return propose(members, n_proposals, seed, matrix, row_of), matrix

    def proposal_rows(
        self, found: Sequence[Proposal], prevalence: Prevalence, seed: int
    ) -> list[dict[str, Any]]:
        total = sum(len(p.segment_ids) for p in found)
        sampled = self.sample_total if self.sample_total > PROPOSAL_CAP else None
        rows = []
        for i, p in enumerate(found, 1):
            row = proposal_description(p, i, total, len(found), seed, sampled)
            segs = np.array([self.index.ids[s] for s in p.segment_ids], dtype=np.int64)
            rows.append({**row, **prevalence.stats(segs), "proposal": True})
        return rows


def _sample_key(segment_id: str, seed: int) -> int:
    digest = hashlib.blake2b(
        segment_id.encode("utf-8"), digest_size=8, key=str(seed).encode("ascii")
    ).digest()
    return int.from_bytes(digest, "big")


def spill_folder(parent: Path | None) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for the spilled word counts (next to the run store if known)."""
    if parent is not None and parent.is_dir():
        return tempfile.TemporaryDirectory(prefix=".theme-", dir=parent)
    return tempfile.TemporaryDirectory(prefix="qualpipe-theme-")


def segment_texts(
    batches: Iterable[pa.RecordBatch], index: SegmentIndex, wanted: set[int]
) -> dict[int, tuple[str, str | None]]:
    """segment position -> (text, speaker) for the ``wanted`` positions."""
    if not wanted:
        return {}
    ids = {index.id_list[s]: s for s in wanted}
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


__all__ = ["PROPOSAL_CAP", "Prevalence", "SegmentIndex", "ThemeEngine", "segment_texts"]
