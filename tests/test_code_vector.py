"""The code stage's batch-at-once coders give exactly what one segment at a time gives.

``rules_columns`` and ``semantic_columns`` tokenise a whole batch at once
(:class:`qualpipe.coding.stems.BatchWords`), work out each distinct word once, group the
matches and features of every segment with numpy, and hand the stage columns rather than
:class:`Suggestion` objects. The references below are the coders as they were written
segment by segment (the previous code), on the same compiled states; every test compares
the two exactly (scores, evidence, offsets and order), on inputs chosen to break them.
"""

from __future__ import annotations

import math
import random
import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from qualpipe.builtin import code as code_stage
from qualpipe.codebook import Code, Codebook, load_codebook
from qualpipe.coding import stems as stems_module
from qualpipe.coding.coders import Coder, CoderContext, Suggestion
from qualpipe.coding.rules import RULES, RulesState, _matchers, _Negation, setup_rules
from qualpipe.coding.semantic import _SKIP, SEMANTIC, SemanticState, TfidfIndex, setup_semantic
from qualpipe.coding.stems import batch_words, forget_words, tokens, words_of
from qualpipe.stage import BatchContext

SIDL = load_codebook(Path(__file__).parent.parent / "pipelines" / "codebooks" / "sidl.yaml")

BOOK = Codebook(
    "mixed",
    [
        Code("talk", "Talk", "talking and chatting", keywords=["talk", "small talk", "chat*"]),
        Code("small-talk", "Small talk", keywords=["small talk"], patterns=[r"\bsmall ?talk\b"]),
        Code("prata", "Prata", "prata och samtala", keywords=["prata", "promenad", "stöd*"]),
        Code("swim", "Swim", "swimming in the pool", keywords=["swim", "Åsa's friend"]),
        Code("manage", "Manage", patterns=[r"\bmanag(e|es|ed|ing)\b", r"(?i)klara(r|de)?"]),
        Code("smile", "Smile", keywords=["🙂", ":-)"]),
        Code("walk", "Walk", "walking, promenera", keywords=["walk", "promenera", "talk"]),
        Code("greek", "Greek", keywords=["οδος"]),
        Code(
            "alone",
            "Alone",
            "lonely and isolated, ensam",
            keywords=["lonely", "ensam*", "by myself"],
        ),
        Code("empty", "Empty"),  # no keywords, no patterns: never suggested
    ],
)

VOCABULARY = (
    "talk talked talking TALKS small-talk small talk smalltalk chat chatting chatted "
    "prata pratade pratar promenad promenader stöd stödet stödjande swim swimming swam "
    "Åsa's friend manage managed managing manager klarar klarade walk walked walks "
    "promenera lonely ensam ensamhet by myself 🙂 :-) οδος ΟΔΟΣ İstanbul "
    "not never no don't didn't inte aldrig ej utan ingen but men han hon jag we I "
    "the and och att det a of 42 7 x y z coffee kaffe friends vänner pool simhall "
    "group grupp together tillsammans proud stolt "
).split()
PUNCTUATION = [" ", " ", " ", " ", ", ", ". ", "; ", "! ", "? ", ": ", "\n", " - ", "’", "'"]


def _random_texts(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        kind = rng.random()
        if kind < 0.05:
            texts.append("")
        elif kind < 0.08:
            texts.append("  \n ")
        elif kind < 0.12:  # no word any code knows
            texts.append(
                " ".join(rng.choice(["the", "och", "coffee", "42", "zebra"]) for _ in range(5))
            )
        else:
            words = [rng.choice(VOCABULARY) for _ in range(rng.randint(1, 40))]
            texts.append("".join(w + rng.choice(PUNCTUATION) for w in words).strip(" "))
    return texts


def _segments(texts: Sequence[str]) -> list[dict[str, Any]]:
    doc, out = "", []
    for n, text in enumerate(texts):
        out.append(
            {
                "segment_id": f"s{n}",
                "doc_id": f"d{n % 3}",
                "start": len(doc),
                "end": len(doc) + len(text),
                "text": text,
                "speaker": None,
                "participant_id": None,
            }
        )
        doc += text + "\n"
    return out


# -- the references: the coders as they were, one segment at a time ------------------


def reference_rules(
    segments: Sequence[Mapping[str, Any]], state: RulesState
) -> Iterator[Suggestion]:
    """The rules coder as it was (commit 943b91e), verbatim."""
    n_keyword_terms = len(state.terms)
    cache, matched, plans = state.cache, state.matched, state.plans
    window, negate = state.window, state.negation
    empty: frozenset[int] = frozenset()
    for seg in segments:
        text: str = seg["text"]
        base: int = seg["start"]
        words, word_starts, word_ends = words_of(text)
        spans: list[tuple[int, int]] = []  # of every word, for negation
        unique = set(words)
        new = unique.difference(cache)
        if new:
            if len(cache) + len(new) > 500_000:  # a bound for very long runs: start afresh
                cache.clear()
                matched.clear()
                plans.clear()
                new = unique
            for word in new:
                _matchers(state, word)
        negation: _Negation | None = None
        # code index -> (its terms found, their (start, end) spans in the segment text)
        hits: dict[int, tuple[set[int], set[tuple[int, int]]]] = {}
        found = matched.keys() & unique
        if found:
            n_words = len(words)
            for i in [i for i, word in enumerate(words) if word in found]:
                singles, longer = plans[words[i]]
                if singles:
                    if negate:
                        if negation is None:
                            spans = list(zip(word_starts, word_ends, strict=True))
                            negation = _Negation(text, words, spans)
                        if negation(i, i, window):
                            singles = ()
                    span = (word_starts[i], word_ends[i])
                    for c, t in singles:
                        entry = hits.get(c)
                        if entry is None:
                            entry = hits[c] = (set(), set())
                        entry[0].add(t)
                        entry[1].add(span)
                if not longer or i + 1 == n_words:
                    continue
                after = matched.get(words[i + 1])  # a longer term needs the next word
                if after is None:
                    continue
                for c, t, rest in longer:
                    if rest[0] not in after:
                        continue
                    last = i + len(rest)
                    if last > i + 1 and (
                        last >= n_words
                        or any(
                            mid not in matched.get(words[i + k], empty)
                            for k, mid in enumerate(rest[1:], 2)
                        )
                    ):
                        continue
                    if negate:
                        if negation is None:
                            spans = list(zip(word_starts, word_ends, strict=True))
                            negation = _Negation(text, words, spans)
                        if negation(i, last, window):
                            continue
                    entry = hits.get(c)
                    if entry is None:
                        entry = hits[c] = (set(), set())
                    entry[0].add(t)
                    entry[1].add((word_starts[i], word_ends[last]))
        patterns = state.patterns
        if state.any_pattern is not None and state.any_pattern.search(text) is None:
            patterns = []
        for c, compiled in patterns:
            for number, pattern in compiled:
                for m in pattern.finditer(text):
                    if m.end() == m.start():
                        continue
                    if negate:
                        if negation is None:
                            spans = list(zip(word_starts, word_ends, strict=True))
                            negation = _Negation(text, words, spans)
                        # the words the match covers (or the gap it lies in)
                        first = bisect_right(word_starts, m.start()) - 1
                        if first < 0 or spans[first][1] <= m.start():
                            first += 1
                        last = max(first - 1, bisect_left(word_starts, m.end()) - 1)
                        if negation(first, last, window):
                            continue
                    entry = hits.get(c)
                    if entry is None:
                        entry = hits[c] = (set(), set())
                    entry[0].add(n_keyword_terms + number)
                    entry[1].add(m.span())
        for c in sorted(hits):
            found_terms, found_spans = hits[c]
            if len(found_terms) < state.min_matches:
                continue
            where = sorted(found_spans)
            yield Suggestion(
                segment_id=seg["segment_id"],
                code_id=state.code_ids[c],
                score=1.0 - 0.5 ** len(found_terms),
                evidence=[(text[s:e], base + s, base + e) for s, e in where],
            )


def reference_segment(
    self: TfidfIndex, text: str
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """TfidfIndex.segment as it was (commit 943b91e), verbatim but for the word cache."""
    words, starts, ends = words_of(text)
    features = {word: self._feature(word) for word in set(words)}
    feats = list(map(features.__getitem__, words))
    # a stop word, a number or a single character is no feature (_SKIP)
    counts = Counter(feats)  # in the order of first occurrence
    counts.pop(_SKIP, None)
    vocab = self.vocab
    known = [f for f in counts if f in vocab]
    if not known:
        return _NO_COLS, _NO_WEIGHTS, []
    most = max(counts.values())
    if most >= len(self._tf):
        self._grow(most)
    tf = self._tf
    cols = np.array([vocab[f] for f in known], dtype=np.intp)
    weights = np.array([tf[counts[f]] for f in known]) * self.idf[cols]
    unknown = [c for f, c in counts.items() if f not in vocab]
    # the sum of ((1 + ln tf) * oov_idf) ** 2 over the unknown words, in text order
    norm = math.sqrt(float(weights @ weights) + sum(map(self._oov_sq.__getitem__, unknown)))
    if norm:
        weights = weights / norm
    where = [feats.index(f) for f in known]
    return cols, weights, [(starts[k], ends[k]) for k in where]


def reference_evidence(
    self: TfidfIndex,
    row: int,
    cols: np.ndarray,
    weights: np.ndarray,
    where: list[tuple[int, int]],
    text: str,
    base: int,
) -> list[tuple[str, int, int]]:
    """TfidfIndex.evidence as it was (commit 943b91e), verbatim."""
    contrib: list[float] = (self.matrix[row, cols] * weights).tolist()
    out: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    # stable: equal contributions keep text order
    for k in sorted(range(len(contrib)), key=lambda k: (-contrib[k], where[k])):
        if contrib[k] <= 0 or len(out) == 3:
            break
        s, e = where[k]
        word = text[s:e]
        if word.lower() in seen:
            continue
        seen.add(word.lower())
        out.append((word, base + s, base + e))
    return out


_NO_COLS = np.zeros(0, dtype=np.intp)
_NO_WEIGHTS = np.zeros(0)


def reference_semantic(
    segments: Sequence[Mapping[str, Any]], state: SemanticState
) -> Iterator[Suggestion]:
    index = state.index
    if not index.code_ids:
        return
    for seg in segments:
        text: str = seg["text"]
        cols, weights, where = reference_segment(index, text)
        if not len(cols):
            continue
        sims = (index.matrix[:, cols] @ weights).tolist()
        chosen = [j for j, sim in enumerate(sims) if sim >= state.threshold and sim > 0]
        chosen.sort(key=lambda j: -sims[j])
        for j in chosen[: state.top_k] if state.top_k else chosen:
            yield Suggestion(
                segment_id=seg["segment_id"],
                code_id=index.code_ids[j],
                score=round(sims[j], 6),
                evidence=reference_evidence(index, j, cols, weights, where, text, seg["start"]),
            )


def _as_tuples(found: Sequence[Suggestion]) -> list[Any]:
    return [(s.segment_id, s.code_id, s.score, [tuple(e) for e in s.evidence]) for s in found]


# -- the words of a batch --------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_batch_words_equal_the_words_of_each_text(seed: int) -> None:
    texts = _random_texts(seed, 60)
    if seed == 1:
        texts[7] = "İİ TALK ΟΔΟΣ.Α talk"  # lower-casing moves offsets: text by text
    if seed == 2:
        texts = ["", "", "talk"]
    if seed == 3:  # underscores, apostrophes at a word's edges, doubled, curly
        texts += [
            "snake_case_talk talk_ _talk __ 42talk_x",
            "don''t 'tis rock’n’roll x' ' ’ a'b'c o’’k it's’",
            "Åsa’s_friend ÅSA'S",
        ]
    if seed == 4:  # the same without underscores: the other split pattern
        texts = ["don''t 'tis rock’n’roll x' ' ’ a'b'c o’’k it's’", "ÅSA'S 42'x", "'", ""]
    forget_words()
    batch = batch_words(texts)
    assert batch_words(list(texts)) is batch  # remembered for the batch's next coder
    for j, text in enumerate(texts):
        a, b = batch.bounds[j], batch.bounds[j + 1]
        expected = list(tokens(text))
        got = list(zip(batch.words[a:b], batch.starts[a:b], batch.ends[a:b], strict=True))
        assert got == expected
    assert [batch.unique[i] for i in batch.ids] == batch.words
    assert batch.unique == list(dict.fromkeys(batch.words))
    forget_words()
    assert stems_module._BATCH == []


# -- the coders --------------------------------------------------------------------------

RULE_OPTIONS = [
    {},
    {"negation": False},
    {"negation_window": 1},
    {"negation_window": 0},
    {"min_matches": 2},
    {"language": "sv"},
    {"language": "en", "negation": False, "min_matches": 3},
]


@pytest.mark.parametrize("book", [BOOK, SIDL], ids=["mixed", "sidl"])
@pytest.mark.parametrize(
    "options", RULE_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_rules_batch_equals_segment_by_segment(book: Codebook, options: dict[str, Any]) -> None:
    for seed in range(3):
        segs = _segments(_random_texts(seed, 150))
        forget_words()
        batch = list(RULES.code(segs, CoderContext(book, options, setup_rules(book, options))))
        forget_words()
        expected = list(reference_rules(segs, setup_rules(book, options)))
        assert _as_tuples(batch) == _as_tuples(expected)
        assert any(s.evidence for s in batch) or (book is BOOK and options.get("min_matches") == 3)


SEMANTIC_OPTIONS = [
    {},
    {"top_k": 0},
    {"top_k": 1},
    {"top_k": 3, "threshold": 0.2},
    {"top_k": 0, "threshold": 0.0},
    {"threshold": -1},
    {"language": "sv", "top_k": 0},
    {"language": "en"},
]


@pytest.mark.parametrize("book", [BOOK, SIDL], ids=["mixed", "sidl"])
@pytest.mark.parametrize(
    "options",
    SEMANTIC_OPTIONS,
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
def test_semantic_batch_equals_segment_by_segment(book: Codebook, options: dict[str, Any]) -> None:
    state = setup_semantic(book, options)
    for seed in range(3):
        texts = _random_texts(seed + 10, 150)
        if seed == 2:
            texts[3] = "İstanbul talk swimming ΟΔΟΣ talk"  # the text-by-text words
        segs = _segments(texts)
        forget_words()
        batch = list(SEMANTIC.code(segs, CoderContext(book, options, state)))
        expected = list(reference_semantic(segs, setup_semantic(book, options)))
        assert _as_tuples(batch) == _as_tuples(expected)
        assert batch


def test_semantic_batch_equals_segment_by_segment_on_repeated_words() -> None:
    """Features counted many times in one segment (the tf table grows) and one word's
    feature shared by words that differ (stems): the same weights and norms."""
    texts = [
        " ".join(["talk"] * 300 + ["talked", "talking", "swim"] * 40 + ["zebra"] * 70),
        "talks talk TALK talked; swimming swims swim swam",
        "chat " * 90 + "ensamhet ensam " * 3,
    ]
    segs = _segments(texts)
    for options in [{}, {"top_k": 0, "threshold": 0.0}]:
        forget_words()
        batch = list(
            SEMANTIC.code(segs, CoderContext(BOOK, options, setup_semantic(BOOK, options)))
        )
        expected = list(reference_semantic(segs, setup_semantic(BOOK, options)))
        assert _as_tuples(batch) == _as_tuples(expected) and batch


def test_coders_without_segments_or_codes() -> None:
    empty_book = Codebook("empty", [Code("a", "A")])
    for coder in (RULES, SEMANTIC):
        assert list(coder.code([], CoderContext(BOOK, {}))) == []
        assert list(coder.code(_segments(["", " "]), CoderContext(BOOK, {}))) == []
        assert list(coder.code(_segments(["talk swim"]), CoderContext(empty_book, {}))) == []


# -- the stage: columns, or suggestion by suggestion ------------------------------------


def _plain(coder: Coder) -> Coder:
    """The coder without its columns: the stage takes it suggestion by suggestion."""
    return Coder(coder.name, coder.code, setup=coder.setup, version=coder.version)


@pytest.mark.parametrize(("top_k", "min_score"), [(0, 0.0), (1, 0.0), (2, 0.3), (0, 0.6)], ids=str)
def test_code_stage_columns_equal_the_suggestions(top_k: int, min_score: float) -> None:
    texts = _random_texts(5, 400)
    segs = _segments(texts)
    batch = pa.RecordBatch.from_pylist(segs)
    coders = [
        {"name": "rules", "negation": False},
        {"name": "semantic", "top_k": 0, "threshold": 0.02},
        "rules",
    ]
    params = {"coders": coders, "min_score": min_score, "top_k": top_k}
    tables = []
    for components in (
        {"rules": RULES, "semantic": SEMANTIC},
        {"rules": _plain(RULES), "semantic": _plain(SEMANTIC)},
    ):
        ctx = BatchContext(
            "code", params, side={"codebook": SIDL.to_table()}, components={"coder": components}
        )
        code_stage._STATES.clear()
        tables.append(code_stage.process_batch(batch, ctx)["codings"])
    fast, slow = tables
    assert fast.num_rows > 0
    assert fast.schema.equals(slow.schema)
    assert fast.equals(slow)


def test_code_stage_takes_duplicate_segment_ids_one_by_one() -> None:
    """Two segments with one id (not what the segment stage writes): the columns would
    keep them apart, the suggestion by suggestion way merges them; it is used then."""
    segs = _segments(["we talked", "we walked and talked"])
    segs[1]["segment_id"] = "s0"
    batch = pa.RecordBatch.from_pylist(segs)
    params = {"coders": ["rules"], "min_score": 0.0, "top_k": 1}
    tables = [
        code_stage.process_batch(
            batch,
            BatchContext(
                "code", params, side={"codebook": BOOK.to_table()}, components={"coder": c}
            ),
        )["codings"]
        for c in ({"rules": RULES}, {"rules": _plain(RULES)})
    ]
    assert tables[0].equals(tables[1])
    assert tables[0].column("segment_id").to_pylist() == ["s0"]


def test_columns_give_what_the_tf_table_gives() -> None:
    """The weights come from the tf table (1 + ln c), not from numpy's log."""
    state = setup_semantic(BOOK, {})
    state.index._grow(5)
    assert state.index._tf[1:4] == [1 + math.log(c) for c in range(1, 4)]


def _word_by_word_segment(index: TfidfIndex, text: str) -> tuple[list[int], list[float], list[Any]]:
    """The reference segment vector written out word by word, from tokens()."""
    counts: dict[str, int] = {}
    first: dict[str, tuple[int, int]] = {}
    for word, start, end in tokens(text):
        feat = index._feature(word)
        if feat is _SKIP:
            continue
        counts[feat] = counts.get(feat, 0) + 1
        first.setdefault(feat, (start, end))
    known = [f for f in counts if f in index.vocab]
    cols = np.array([index.vocab[f] for f in known], dtype=np.intp)
    weights = np.array([1 + math.log(counts[f]) for f in known]) * index.idf[cols]
    unknown = [1 + math.log(c) for f, c in counts.items() if f not in index.vocab]
    norm = math.sqrt(float(weights @ weights) + sum((w * index.oov_idf) ** 2 for w in unknown))
    if norm:
        weights = weights / norm
    return cols.tolist(), weights.tolist(), [first[f] for f in known]


def test_reference_segment_equals_the_word_by_word_count() -> None:
    state = setup_semantic(BOOK, {})
    for text in [*_random_texts(3, 40), "talk talk talk walk prata the the och", "the and och"]:
        cols, weights, where = reference_segment(state.index, text)
        assert (cols.tolist(), weights.tolist(), where) == _word_by_word_segment(state.index, text)


PATTERN_BOOK = Codebook(
    "patterns",
    [
        Code("a", "A", patterns=[r"\bsmall ?talk\b", r"(talk|walk)ing"]),
        Code("b", "B", patterns=[r"stöd(et)?", r"KELVIN", r"straße|STRASSE"]),
        Code("c", "C", patterns=[r"ΣΟΦΙΑ", r"(?-i:ABC)x", r"x{2,3}yy"]),
        Code("d", "D", keywords=[":-)", "talk"], patterns=[r"ǆungla"]),
    ],
)
PATTERN_TEXTS = [
    "ſmall talk",  # long s: IGNORECASE matches it with s
    "and SMALL-TALK",
    "ſtöd",
    "STÖDET",
    "TALKING WALKING",
    "KELVIN K\u212aLVIN kelvin",  # the Kelvin sign lower-cases to k
    "ẞ STRASSE straße",
    "σοφια ΣΟΦΙΑ σοφιά",
    "abcX ABCx",
    "xxYY xYY",
    ":-) ǅungla ǄUNGLA",
    "nothing here at all",
]


@pytest.mark.parametrize("with_dotted_i", [False, True], ids=["one-to-one", "İ"])
def test_pattern_literals_skip_no_text_a_pattern_matches(with_dotted_i: bool) -> None:
    """Texts without any of the patterns' literals are not searched: the texts that are
    skipped are exactly ones where no pattern matches (IGNORECASE's own equivalences,
    such as s and ſ, included)."""
    texts = [t.replace("talk", "talk İ") if with_dotted_i else t for t in PATTERN_TEXTS]
    texts = [*texts, *(t.swapcase() for t in texts)]
    for options in [{}, {"negation": False}]:
        state = setup_rules(PATTERN_BOOK, options)
        assert state.literals is not None
        segs = _segments(texts)
        forget_words()
        batch = list(RULES.code(segs, CoderContext(PATTERN_BOOK, options, state)))
        forget_words()
        expected = list(reference_rules(segs, setup_rules(PATTERN_BOOK, options)))
        assert _as_tuples(batch) == _as_tuples(expected)
        assert {s.code_id for s in batch} == {"a", "b", "c", "d"}
    matching = [
        t
        for t in PATTERN_TEXTS
        if any(p.search(t) for _, compiled in state.patterns for _, p in compiled)
    ]
    for text in matching:  # every text a pattern matches holds a literal
        assert any(lit in text.lower() for lit in state.literals), text


def test_pattern_literals_are_only_what_every_match_holds() -> None:
    from qualpipe.coding.rules import _literals

    def literals(pattern: str) -> frozenset[str] | None:
        return _literals([re.compile(pattern, re.IGNORECASE)])

    assert literals(r"\bsmall ?talk\b") == {"mall"}  # s: IGNORECASE also matches ſ
    assert literals(r"(talk|walk)ing") == {"talk", "walk"}
    assert literals(r"\bmanag(e|es|ed|ing)\b") == {"manag"}
    assert literals(r"x{2,3}yy") == {"yy"}
    assert literals(r"(?:foo)+bar") == {"foo"}
    for none in [r"a|b", r"[abc]+", r"(?:foo)?", r"\w+", r"(?:ab|c*)"]:
        assert literals(none) is None
    assert _literals([re.compile("talk"), re.compile(r"\d+")]) is None
