"""TF-IDF vectors of segments (numpy only), for quotes and proposals.

Words are runs of letters, lower-cased; words of one letter, numbers and the English and
Swedish stop words of the semantic coder (including interview fillers such as um, yeah,
alltså, liksom) are dropped, and so are anonymisation placeholders and transcription
notes (``[PERSON 3]``, ``(name of the institution)``, ``[laughs]``, ``(skrattar)``): they
say who was replaced, not what was said. Weights are ``(1 + ln tf) × idf`` with
``idf = ln((1 + N) / (1 + df)) + 1`` over the N segments, and every row is scaled to unit
length, so the dot product of two rows is their cosine similarity.

The matrix is kept sparse (CSR-style arrays: ``indptr``, ``indices``, ``data``), so memory
grows with the number of words in the corpus, not with segments × vocabulary.

:func:`word_occurrences` and :func:`split_counts` give what :func:`raw_counts` and
``len(text.split())`` give, for a whole Arrow array of texts at once (the theme stage's
streaming engine reads segments this way); texts they cannot match exactly are left to
the Python functions.
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qualpipe.coding.semantic import STOP_WORDS

LETTERS = re.compile(r"[^\W\d_]+")
#: Left out: anonymisation placeholders and notes in square brackets ([PERSON 3],
#: [laughs]) and short ones in parentheses ((name of the institution), (skrattar)).
ANNOTATION = re.compile(r"\[[^\[\]\n]{0,60}\]|\(\s*[^()\s]+(?:\s+[^()\s]+){0,5}\s*\)")
#: Pieces of English contractions left when words are cut at the apostrophe.
CONTRACTIONS = frozenset(
    "don didn doesn isn wasn weren aren won wouldn couldn shouldn ll ve re".split()
)


#: Words that never count (stop words and pieces of contractions).
DROPPED = STOP_WORDS | CONTRACTIONS


def _words(text: str) -> list[str]:
    """Runs of letters, lower-cased, annotations left out (before the stop-word filter)."""
    cleaned = ANNOTATION.sub(" ", text)
    if "\u0130" in cleaned:  # İ lower-cases to two characters: lower word by word
        return [w.lower() for w in LETTERS.findall(cleaned)]
    return LETTERS.findall(cleaned.lower())


def tokens(text: str) -> list[str]:
    """The words of ``text`` that count: lower-cased letters, no stop words."""
    return [w for w in _words(text) if len(w) > 1 and w not in DROPPED]


def raw_counts(text: str) -> Counter[str]:
    """Every lower-cased word of ``text`` counted, stop words included."""
    return Counter(_words(text))


def token_counts(text: str) -> Counter[str]:
    """``Counter(tokens(text))``."""
    counts = raw_counts(text)
    for word in [w for w in counts if len(w) < 2 or w in DROPPED]:
        del counts[word]
    return counts


#: Characters the Arrow (RE2) tokeniser may see: below this code point only.
ARROW_RANGE = 0x3001


@dataclass(frozen=True)
class _ArrowClasses:
    """What the vectorised tokeniser needs to give, on texts made only of "safe"
    characters, exactly what the Python functions above give (see :func:`_arrow_classes`)."""

    unsafe: str  # RE2: one character the vectorised path cannot handle
    irregular: str  # RE2: white space that is not one space between two words
    letter: np.ndarray  # per code point below ARROW_RANGE: LETTERS matches it


def _ranges(codes: Sequence[int]) -> str:
    """An RE2 character-class body for the sorted code points ``codes``."""
    out: list[str] = []
    i = 0
    while i < len(codes):
        j = i
        while j + 1 < len(codes) and codes[j + 1] == codes[j] + 1:
            j += 1
        out.append(f"\\x{{{codes[i]:x}}}" + (f"-\\x{{{codes[j]:x}}}" if j > i else ""))
        i = j + 1
    return "".join(out)


@functools.cache
def _arrow_classes() -> _ArrowClasses:
    """Character classes built from Python's own behaviour, character by character.

    A character is *safe* when, below :data:`ARROW_RANGE`, it lower-cases to one
    character (also below it, of as many UTF-8 bytes) with no context rule (not Σ,
    whose lower case depends on the next letter) and Arrow's ``utf8_lower`` agrees: on
    safe text lower-casing is a character map that keeps every byte offset, so Arrow's
    result equals Python's. White space is what
    ``str.isspace`` says (what ``str.split()`` splits at; there is none from
    ARROW_RANGE on). Texts with any other character take the Python path.
    """
    chars = [chr(c) for c in range(1, ARROW_RANGE)]
    arrow_lower = pc.utf8_lower(pa.array(chars, pa.string())).to_pylist()
    safe = []
    for ch, lowered in zip(chars, arrow_lower, strict=True):
        py = ch.lower()
        if (
            len(py) == 1
            and ord(py) < ARROW_RANGE
            and ch != "\u03a3"
            and lowered == py
            and len(py.encode()) == len(ch.encode())  # the same bytes where they were
        ):
            safe.append(ord(ch))
    letter = np.zeros(ARROW_RANGE, dtype=bool)
    letter[[ord(ch) for ch in chars if LETTERS.fullmatch(ch)]] = True
    spaces = [ord(ch) for ch in chars if ch.isspace()]
    ws = _ranges(spaces)
    return _ArrowClasses(
        unsafe=f"[^{_ranges(safe)}]",
        irregular=f"^[{ws}]|[{ws}]$|[{ws}][{ws}]|[{_ranges([c for c in spaces if c != 32])}]",
        letter=letter,
    )


def split_counts(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(``len(text.split())`` of every text, whether ``" ".join(text.split())`` may not be
    the text itself). Where the second is false, white space is single spaces between
    words, and the words are the spaces plus one; elsewhere they are Python's count."""
    texts = _strings(texts)
    irregular = pc.match_substring_regex(texts, pattern=_arrow_classes().irregular)
    odd = irregular.to_numpy(zero_copy_only=False)
    offsets, data = _utf8(texts)
    spaces = np.diff(np.searchsorted(np.flatnonzero(data == 32), offsets))
    counts = np.where(offsets[1:] == offsets[:-1], 0, spaces + 1)
    at = np.flatnonzero(odd)
    if len(at):
        counts[at] = [len(t.split()) for t in texts.take(pa.array(at)).to_pylist()]
    return counts, odd


def _strings(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``texts`` as one array, nulls as empty strings."""
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not (pa.types.is_string(texts.type) or pa.types.is_large_string(texts.type)):
        texts = texts.cast(pa.large_string())  # e.g. string_view, dictionary, null
    if texts.null_count:
        texts = texts.fill_null("")
    return texts


def _utf8(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets from 0, UTF-8 bytes) of a string array without nulls."""
    buffers = texts.buffers()
    large = pa.types.is_large_string(texts.type)
    raw = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)
    offsets: np.ndarray = raw[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)
    if buffers[2] is None or not len(offsets) or offsets[-1] == offsets[0]:
        return offsets - offsets[:1], np.zeros(0, np.uint8)
    data = np.frombuffer(buffers[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
    return offsets - offsets[0], data


def _letter_bytes(data: np.ndarray, letter: np.ndarray) -> np.ndarray:
    """Per byte of safe UTF-8 text (characters of at most 3 bytes): whether its
    character is a letter (LETTERS)."""
    ascii_letter = np.zeros(256, dtype=bool)
    ascii_letter[:128] = letter[:128]
    out: np.ndarray = ascii_letter[data]
    lead = np.flatnonzero(data >= 0xC0)  # the first bytes of characters beyond ASCII
    if len(lead):
        first = data[lead].astype(np.int32)
        two = first < 0xE0
        padded = np.r_[data, np.uint8(0)]
        b1 = padded[lead + 1].astype(np.int32) & 0x3F
        b2 = padded[np.minimum(lead + 2, len(data))].astype(np.int32) & 0x3F
        code = np.where(
            two,
            ((first & 0x1F) << 6) | b1,
            ((first & 0x0F) << 12) | (b1 << 6) | b2,
        )
        is_letter = letter[code]
        out[lead] = is_letter
        out[lead + 1] = is_letter
        out[lead[~two] + 2] = is_letter[~two]
    return out


def word_occurrences(
    texts: pa.Array | pa.ChunkedArray, strings: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Every word of every text as :func:`raw_counts` finds them, vectorised.

    Returns (row, word) pairs, sorted by row, with ``word`` an index into the returned
    list of distinct words: ``Counter(words[w] for r, w in pairs if r == i)`` is
    ``raw_counts(texts[i])`` (the order of the pairs within a row is not that of the
    text). ``strings``: the texts as Python strings (nulls as ""), if at hand.

    The text is lower-cased by Arrow, the runs of letters are found with numpy on the
    UTF-8 bytes, leaving out the spans of annotations Python's ANNOTATION finds (only in
    texts with a bracket); texts with characters :func:`_arrow_classes` does not call
    safe are counted by :func:`raw_counts` itself.
    """
    texts = _strings(texts)
    classes = _arrow_classes()
    if strings is None:
        strings = texts.to_pylist()
    unsafe = pc.match_substring_regex(texts, pattern=classes.unsafe)
    python_mask = unsafe.to_numpy(zero_copy_only=False)
    python = np.flatnonzero(python_mask)
    rows: list[np.ndarray] = []
    idx: list[np.ndarray] = []
    words: list[str] = []
    if len(python) < len(texts):
        arrow = np.flatnonzero(~python_mask)
        part = texts if not len(python) else texts.take(pa.array(arrow))
        offsets, data = _utf8(pc.utf8_lower(part))
        letter = _letter_bytes(data, classes.letter)
        # annotations: their bytes are no letters (as if replaced by a space)
        spans: list[int] = []
        for base, i in zip(offsets.tolist(), arrow.tolist(), strict=False):
            text = strings[i]
            if "[" not in text and "(" not in text:
                continue
            ascii_ = text.isascii()
            for m in ANNOTATION.finditer(text):
                lo, hi = m.span()
                if not ascii_:
                    lo, hi = len(text[:lo].encode()), len(text[:hi].encode())
                spans += (base + lo, base + hi)
        if spans:
            at = np.array(spans, dtype=np.int64).reshape(-1, 2)
            sizes = at[:, 1] - at[:, 0]
            inside = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            letter[np.repeat(at[:, 0], sizes) + inside] = False
        start = letter.copy()
        start[1:] &= ~letter[:-1]
        end = letter.copy()
        end[:-1] &= ~letter[1:]
        row_start, row_end = offsets[:-1], offsets[1:]
        filled = row_start < row_end
        start[row_start[filled]] = letter[row_start[filled]]  # no word goes on into the
        end[row_end[filled] - 1] = letter[row_end[filled] - 1]  # next text
        starts = np.flatnonzero(start)
        lengths = np.flatnonzero(end) - starts + 1
        bounds = np.r_[0, np.cumsum(lengths)].astype(np.int32)
        flat = pa.StringArray.from_buffers(
            len(starts), pa.py_buffer(bounds), pa.py_buffer(data[letter])
        )
        encoded = pc.dictionary_encode(flat)
        words = encoded.dictionary.to_pylist()
        per_row = np.diff(np.searchsorted(starts, offsets))
        rows.append(np.repeat(arrow, per_row))
        idx.append(encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64))
    if len(python):
        index = {w: i for i, w in enumerate(words)}
        py_rows: list[int] = []
        py_idx: list[int] = []
        for i in python.tolist():
            for word, n in raw_counts(strings[i]).items():
                w = index.get(word)
                if w is None:
                    w = index[word] = len(words)
                    words.append(word)
                py_rows += [i] * n
                py_idx += [w] * n
        rows.append(np.array(py_rows, dtype=np.int64))
        idx.append(np.array(py_idx, dtype=np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), words
    if len(rows) == 1:
        return rows[0], idx[0], words
    row_of = np.concatenate(rows)
    word_of = np.concatenate(idx)
    order = np.argsort(row_of, kind="stable")
    return row_of[order], word_of[order], words


class TfidfMatrix:
    """Unit-length TF-IDF rows of a list of texts, stored sparse."""

    def __init__(
        self,
        vocab: list[str],
        idf: np.ndarray,
        indptr: np.ndarray,
        indices: np.ndarray,
        data: np.ndarray,
    ) -> None:
        self.vocab = vocab
        self.idf = idf
        self.indptr = indptr
        self.indices = indices
        self.data = data
        self.n_rows = len(indptr) - 1
        self.rows = np.repeat(np.arange(self.n_rows), np.diff(indptr))

    @classmethod
    def fit(cls, texts: Sequence[str]) -> TfidfMatrix:
        counts = [token_counts(t) for t in texts]
        df: Counter[str] = Counter()
        for c in counts:
            df.update(c.keys())
        vocab = sorted(df)
        index = {w: i for i, w in enumerate(vocab)}
        n = len(texts)
        idf = np.array([np.log((1 + n) / (1 + df[w])) + 1 for w in vocab], dtype=np.float64)
        indptr = np.zeros(n + 1, dtype=np.int64)
        indices_parts: list[np.ndarray] = []
        data_parts: list[np.ndarray] = []
        for i, c in enumerate(counts):
            idx = np.array(sorted(index[w] for w in c), dtype=np.int64)
            tf = np.array([c[vocab[j]] for j in idx], dtype=np.float64)
            weights = (1 + np.log(tf)) * idf[idx] if len(idx) else tf
            norm = float(np.sqrt(np.dot(weights, weights)))
            indices_parts.append(idx)
            data_parts.append(weights / norm if norm else weights)
            indptr[i + 1] = indptr[i] + len(idx)
        indices = np.concatenate(indices_parts) if indices_parts else np.zeros(0, np.int64)
        data = np.concatenate(data_parts) if data_parts else np.zeros(0, np.float64)
        return cls(vocab, idf, indptr, indices, data)

    @property
    def n_terms(self) -> int:
        return len(self.vocab)

    def nonempty(self) -> np.ndarray:
        """Boolean per row: has at least one word that counts."""
        return np.diff(self.indptr) > 0

    def dot(self, vector: np.ndarray) -> np.ndarray:
        """Every row's dot product with a dense vector over the vocabulary."""
        weights = self.data * vector[self.indices]
        return np.bincount(self.rows, weights=weights, minlength=self.n_rows)

    def sum_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """The dense sum of the given rows."""
        mask = np.zeros(self.n_rows, dtype=bool)
        mask[np.asarray(rows, dtype=np.int64)] = True
        keep = mask[self.rows]
        return np.bincount(self.indices[keep], weights=self.data[keep], minlength=self.n_terms)

    def centroid(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Unit-length mean direction of the given rows (zeros if they have no words)."""
        total = self.sum_rows(rows)
        norm = float(np.linalg.norm(total))
        return total / norm if norm else total
