"""The theme stage's vectorised paths give exactly what their simple Python references give.

The streaming engine tokenises a whole batch of segments at once (Arrow for annotations and
lower case, numpy for runs of letters), finds segment contexts once per run of equal
(document, participant, attributes) rows, and counts bit sets per distinct value. Each
check here compares one of them with the plain per-row code it replaced, on text made to
hit the corners: characters Arrow and Python lower-case differently, Σ, İ, ß, white space
beyond ASCII, annotations, characters outside the Basic Multilingual Plane, sliced arrays.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from qualpipe.themes import stream, text
from qualpipe.themes.quotes import QuoteOptions, is_interviewer
from qualpipe.themes.rollup import attributes_dict
from qualpipe.themes.text import raw_counts, split_counts, tokens, word_occurrences

PIECES = [
    *"abcxyzABCXYZ åäöÅÄÖéÉüß İıΣσςµÆæØøŁłĳǅǈ K Ω\u2126\u212a\u00b2\u00bd\u2160",
    *"\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2009\u200a\u2028\u2029\u202f\u205f\u3000",
    *"0123456789_-'.,!?:;\"()[]{}",
    "\u0301",  # a combining accent
    "😀",
    "\U0001d400",  # a mathematical bold capital A (a letter beyond the BMP)
    "\u4e2d\u6587",
    "\u0531\u0561",  # Armenian
    "[PERSON 3]",
    "[PLACE 12]",
    "(laughs)",
    "(skrattar)",
    "( name of the institution )",
    "(one two three four five six seven)",
    "[" + "x" * 59 + "]",
    "[" + "x" * 61 + "]",
    "[åäö" + "ö" * 57 + "]",
    "Don't",
    "ΣΑΣ ",
    "ΟΔΟΣ.",
    "straße",
    "ÉCOLE",
    "İstanbul",
]


def _texts(seed: int, n: int) -> list[str | None]:
    rng = random.Random(seed)
    out: list[str | None] = []
    for _ in range(n):
        if rng.random() < 0.02:
            out.append(None)
            continue
        k = rng.randrange(0, 25)
        if rng.random() < 0.5:  # mostly plain Swedish and English, as in interviews
            pool = [*"abcdefghijklmnopqrstuvwxyzåäö", " ", " ", " ", ".", "[PERSON 3]", "(mm)"]
            out.append("".join(rng.choice(pool) for _ in range(k * 3)))
        else:
            out.append("".join(rng.choice(PIECES) for _ in range(k)))
    return out


def _counted(texts: pa.Array) -> list[Counter[str]]:
    rows, words, distinct = word_occurrences(texts)
    assert np.all(np.diff(rows) >= 0)  # sorted by row
    got: list[Counter[str]] = [Counter() for _ in range(len(texts))]
    for r, w in zip(rows.tolist(), words.tolist(), strict=True):
        got[r][distinct[w]] += 1
    return got


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
def test_word_occurrences_equal_raw_counts(kind: pa.DataType) -> None:
    texts = _texts(1, 3000)
    array = pa.array(texts, kind)
    assert _counted(array) == [raw_counts(t or "") for t in texts]
    sliced = array.slice(17, 1000)  # an offset into the buffers
    assert _counted(sliced) == [raw_counts(t or "") for t in texts[17:1017]]
    chunked = pa.chunked_array([array.slice(0, 10), array.slice(10, 20)])
    assert _counted(chunked) == [raw_counts(t or "") for t in texts[:30]]


def test_word_occurrences_of_nothing() -> None:
    for texts in ([], [""], [None, "  "], ["1 2 3 ..."]):
        rows, words, _ = word_occurrences(pa.array(texts, pa.string()))
        assert len(rows) == len(words) == 0


def test_word_occurrences_fast_path_is_taken() -> None:
    # plain text goes through Arrow and numpy; the fallback is for what they cannot do
    texts = pa.array(["Vi åkte till [PLACE 1] (skrattar) och ÖVER sjön, sjön!"], pa.string())
    unsafe = pc.match_substring_regex(texts, pattern=text._arrow_classes().unsafe)
    assert unsafe.to_pylist() == [False]
    for odd in ("ΟΔΟΣ", "İ", "😀", "\x00"):  # these take the Python path
        assert pc.match_substring_regex(pa.array([odd]), pattern=text._arrow_classes().unsafe)[
            0
        ].as_py()
    _, words, distinct = word_occurrences(texts)
    assert sorted(distinct) == ["och", "sjön", "till", "vi", "åkte", "över"]
    assert Counter(distinct[w] for w in words.tolist())["sjön"] == 2


def test_case_folding_keeps_white_space() -> None:
    # the stage keys repeated answers by " ".join(text.split()).casefold(), which is
    # " ".join(text.casefold().split()) only because of this
    for c in range(sys.maxunicode + 1):
        ch = chr(c)
        folded = ch.casefold()
        if ch.isspace():
            assert folded == ch
        else:
            assert folded and not any(x.isspace() for x in folded), hex(c)


def _same_reference(attrs: list[list[tuple[str, str | None]] | None]) -> list[bool]:
    keys = [tuple(a) if a else () for a in attrs]
    return [False] + [a == b for a, b in pairwise(keys)]


def test_same_attributes_equals_python() -> None:
    rng = random.Random(3)
    choices: list[list[tuple[str, str | None]] | None] = [
        None,
        [],
        [("role", "Service user")],
        [("role", "Service user"), ("site", "S1")],
        [("role", "Service user"), ("site", "S2")],
        [("role", None), ("site", "S1")],
        [("site", "S1"), ("role", "Service user")],
        [("role", "Support worker")],
    ]
    attrs = []
    for _ in range(2000):
        attrs.append(attrs[-1] if attrs and rng.random() < 0.6 else rng.choice(choices))
    array = pa.array(attrs, pa.map_(pa.string(), pa.string()))
    assert stream._same_attributes(array).tolist() == _same_reference(attrs)
    sliced = array.slice(5, 700)
    assert stream._same_attributes(sliced).tolist() == _same_reference(attrs[5:705])
    # every row as many attributes (the usual case): compared as shifted arrays
    pairs = [c for c in choices if c and len(c) == 2]
    uniform = []
    for _ in range(1500):
        uniform.append(uniform[-1] if uniform and rng.random() < 0.7 else rng.choice(pairs))
    array = pa.array(uniform, pa.map_(pa.string(), pa.string()))
    assert stream._same_attributes(array).tolist() == _same_reference(uniform)
    sliced = array.slice(9, 600)
    assert stream._same_attributes(sliced).tolist() == _same_reference(uniform[9:609])
    as_lists = pa.array(
        [[list(p) for p in a] if a else a for a in attrs], pa.list_(pa.list_(pa.string()))
    )
    assert stream._same_attributes(as_lists).tolist() == _same_reference(
        [[tuple(p) for p in a] if a else a for a in attrs]  # type: ignore[misc]
    )


@pytest.mark.parametrize("words", [1, 2])
def test_distinct_bit_sets(words: int) -> None:
    rng = np.random.default_rng(5)
    masks = rng.integers(0, 6, size=(500, words)).astype(np.uint64)
    distinct, inverse = stream._distinct(masks)
    assert np.array_equal(distinct[inverse], masks)
    assert len({m.tobytes() for m in masks}) == len(distinct)
    distinct, counts = stream._distinct(masks, counts=True)
    expected = Counter(m.tobytes() for m in masks)
    assert {m.tobytes(): int(n) for m, n in zip(distinct, counts, strict=True)} == expected
    names = [f"c{i:03d}" for i in range(64 * words)]
    reference: Counter[tuple[str, str]] = Counter()
    for m in masks:
        ordered = sorted(names[i] for i in stream._decode(m))
        for i, a in enumerate(ordered):
            for b in ordered[i:]:
                reference[(a, b)] += 1
    total = stream._MaskCounts()
    total.add(masks[:200])
    total.add(masks[200:])
    assert total.pairs(names) == reference


def test_engine_reads_segments_as_row_by_row(tmp_path: Path) -> None:
    """Contexts found per run of equal rows, flags and words per batch: the same as
    reading the segments one row at a time (the first of a repeated id counts)."""
    from tests.test_theme_stream import STATUSES, _corpus  # the messy corpus

    segments, _, book = _corpus(4, 900)
    rows = segments.to_pylist()
    rows[5]["text"] = "ΟΔΟΣ [PERSON 1] straße İstanbul"  # the Python fallback
    rows[6]["participant_id"] = ""  # an empty id is none
    segments = pa.Table.from_pylist(rows, schema=segments.schema)
    options = QuoteOptions(per_theme=2, min_words=8)
    engine = stream.ThemeEngine(book, STATUSES, book.version, options, tmp_path)
    engine.read_segments(segments.to_batches(64))
    ix = engine.index

    seen: set[str] = set()
    kept = []
    for row in rows:
        if row["segment_id"] not in seen:
            seen.add(row["segment_id"])
            kept.append(row)
    assert len(ix) == len(kept)
    docs: list[str] = []
    participants: list[str] = []
    ctx_ids: dict[tuple[object, ...], int] = {}
    df: Counter[str] = Counter()
    for i, row in enumerate(kept):
        pid = row["participant_id"] or None
        key = (row["doc_id"], pid, tuple(row["attributes"] or ()))
        c = int(ix.ctx[i])
        assert ctx_ids.setdefault(key, c) == c  # equal contexts, equal ids
        if row["doc_id"] not in docs:
            docs.append(row["doc_id"])
        who = pid or f"doc:{row['doc_id']}"
        if who not in participants:
            participants.append(who)
            assert ix.first_segment[len(participants) - 1].segment_id == row["segment_id"]
        assert ix.docs[ix.ctx_doc[c]] == row["doc_id"]
        assert ix.participants[ix.ctx_part[c]] == who
        assert ix.attrsets[ix.ctx_attrset[c]] == attributes_dict(row["attributes"])
        words = (row["text"] or "").split()
        counted = tokens(row["text"] or "")
        df.update(set(counted))
        flags = (
            (
                stream.INTERVIEWER
                if is_interviewer(row["speaker"], options.interviewer_labels)
                else 0
            )
            | (stream.READABLE if len(words) >= options.min_words else 0)
            | (stream.BLANK if not words else 0)
            | (stream.HAS_TERMS if counted else 0)
        )
        assert int(ix.flags[i]) == flags, row
    assert len(set(ctx_ids.values())) == len(ctx_ids)  # distinct contexts, distinct ids
    assert ix.docs == docs and ix.participants == participants
    assert engine.vocab_sorted == sorted(df)
    n = len(kept)
    expected_idf = [np.log((1 + n) / (1 + df[w])) + 1 for w in engine.vocab_sorted]
    assert engine.idf.tolist() == expected_idf


def test_split_counts_equal_python() -> None:
    texts = [*_texts(2, 3000), "", " ", "a b", " a", "a ", "a  b", "a\tb", "a\xa0b", "ab"]
    array = pa.array(texts, pa.large_string())
    counts, odd = split_counts(array)
    assert counts.tolist() == [len((t or "").split()) for t in texts]
    for t, irregular in zip(texts, odd.tolist(), strict=True):
        if not irregular:  # the stage keys such a text by the text itself
            assert " ".join((t or "").split()) == (t or "")
    assert odd.tolist()[-9:] == [False, True, False, True, True, True, True, True, False]
    sliced_counts, _ = split_counts(array.slice(3, 100))
    assert sliced_counts.tolist() == counts.tolist()[3:103]


def test_round6_equals_python_round() -> None:
    rng = np.random.default_rng(7)
    k = rng.integers(0, 10**6, 50_000)
    halves = (k + 0.5) / 1e6  # the doubtful cases: next to a half in the sixth decimal
    values = np.r_[
        rng.random(200_000),
        rng.random(20_000) * 2 - 1,
        rng.random(2_000) * 5_000,
        halves,
        np.nextafter(halves, 2),
        np.nextafter(halves, -2),
        [0.0, -0.0, 1.0, 0.5, 5e-7, -5e-7, 1.5e-6, 2.5e-6, 1e300, np.inf, -np.inf],
    ]
    got = stream.round6(values)
    expected = np.array([round(v, 6) for v in values.tolist()])
    assert np.array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))
    assert np.isnan(stream.round6(np.array([np.nan]))).all()


def test_row_squares_are_np_dot_per_row() -> None:
    rng = np.random.default_rng(11)
    lengths = np.r_[rng.integers(0, 40, 3000), [0, 1, 15, 16, 17, 31, 32, 33, 64, 257, 0]]
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    weights = rng.random(int(indptr[-1])) * rng.integers(1, 30, int(indptr[-1]))
    expected = [float(np.dot(weights[lo:hi], weights[lo:hi])) for lo, hi in pairwise(indptr)]
    assert stream._row_squares(weights, indptr).tolist() == expected


def test_sample_keys_equal_the_reference() -> None:
    ids = [f"d{i}:t{i * 7}" for i in range(500)] + ["", "åäö:1", "😀"]
    for seed in (0, 7, 12345):
        got = stream._sample_keys(ids, seed)
        assert got.dtype == np.uint64
        assert [int(k) for k in got] == [stream._sample_key(i, seed) for i in ids]


def test_sample_keeps_the_smallest_keys() -> None:
    rng = np.random.default_rng(3)
    sample = stream._Sample()
    reference: dict[int, tuple[int, list[int]]] = {}
    seg = 0
    for _ in range(30):
        n = int(rng.integers(0, 20))
        segs = seg + np.sort(rng.choice(40, n, replace=False)).astype(np.int64)
        seg += 40
        keys = rng.integers(0, 50, n).astype(np.uint64)  # ties on keys: the segment decides
        lengths = rng.integers(0, 4, n).astype(np.int64)
        indices = rng.integers(0, 100, int(lengths.sum())).astype(np.int64)
        data = rng.random(int(lengths.sum()))
        sample.add(segs, keys, lengths, indices, data)
        at = 0
        for s, k, length in zip(segs.tolist(), keys.tolist(), lengths.tolist(), strict=True):
            reference[s] = (k, indices[at : at + length].tolist())
            at += length
        if len(sample) > 25:
            sample.prune(20)
            keep = sorted(reference, key=lambda s: (reference[s][0], s))[:20]
            reference = {s: reference[s] for s in sorted(keep)}
            assert sample.limit == reference[keep[-1]][0]
    assert list(sample) == sorted(reference)
    indptr = np.r_[0, np.cumsum(sample.lengths)]
    rows = [sample.indices[lo:hi].tolist() for lo, hi in pairwise(indptr.tolist())]
    assert rows == [reference[s][1] for s in sorted(reference)]


def test_equal_to_earlier() -> None:
    values = ["a", "a", None, None, "", None, "", "", "b", "a", "b", None]
    array = pa.array(values, pa.string())
    for shift in (1, 2, 3):
        plain = [values[i] == values[i - shift] for i in range(shift, len(values))]
        assert stream._equal_to_earlier(array, shift).tolist() == plain
        blank = [
            (values[i] or None) == (values[i - shift] or None) for i in range(shift, len(values))
        ]
        assert stream._equal_to_earlier(array, shift, blank=True).tolist() == blank
    sliced = array.slice(2, 6)
    expected = [values[i] == values[i - 1] for i in range(3, 8)]
    assert stream._equal_to_earlier(sliced, 1).tolist() == expected


def test_rebatch_keeps_rows_and_order() -> None:
    table = pa.table({"a": list(range(1000)), "b": [str(i) for i in range(1000)]})
    small = table.to_batches(7)
    other = pa.table({"a": [1, 2]}).to_batches()  # another schema starts a new batch
    out = list(stream._rebatch([*small, *other, *small[:3]], 100))
    assert all(b.num_rows <= 100 for b in out)
    assert sum(b.num_rows for b in out) == 1000 + 2 + 21
    assert pa.Table.from_batches(out[: len(out) - 2]).equals(table)
    assert out[-2].schema.names == ["a"] and out[-1].num_rows == 21
    assert list(stream._rebatch([], 100)) == []


@pytest.mark.parametrize("per", [1, 2, 3])
def test_prune_pool_equals_sorting_by_columns(per: int) -> None:
    rng = np.random.default_rng(per)
    engines = []
    for _ in range(2):
        engine = stream.ThemeEngine.__new__(stream.ThemeEngine)
        engine.n_nodes = 7
        engine.roles = ["", "Service user", "Support worker"]
        engine.index = stream.SegmentIndex()
        engine.index.participants = [f"P{i}" for i in range(40)]
        engines.append(engine)
    for _ in range(6):  # pool and new candidates, pruned again and again
        n = 3000
        new = {
            "node": rng.integers(0, 7, n),
            "cls": rng.integers(0, 2, n),
            "role": rng.integers(0, 3, n),
            "part": rng.integers(0, 40, n),
            "score": np.round(rng.random(n), 2),  # many ties: the segment decides
            "seg": rng.permutation(10**6)[:n],
        }
        for engine in engines:
            pool = getattr(engine, "_pool", {k: np.zeros(0, v.dtype) for k, v in new.items()})
            engine._pool = {k: np.concatenate([pool[k], v]) for k, v in new.items()}
        engines[0]._prune_pool(per)
        engines[1]._prune_pool_by_columns(per)
        a, b = engines[0]._pool, engines[1]._pool
        assert all(np.array_equal(a[k], b[k]) for k in new)
        assert len(a["seg"]) < 3000
