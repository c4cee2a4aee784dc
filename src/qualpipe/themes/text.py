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
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

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
