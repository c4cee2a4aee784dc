"""The ``rules`` coder: a code's keywords and patterns, found in segment text.

For each code of the codebook, the coder looks for its ``keywords`` and ``patterns``:

* A **keyword** is a word or a phrase. It matches whole words, case-insensitively, by
  stem (:mod:`qualpipe.coding.stems`): ``talk`` finds talks/talked/talking, ``prata``
  finds pratar/pratade/pratat, ``small talk`` finds "small talk" and "small-talk". A
  word also matches when its stem is the keyword as written (``promenad`` finds
  ``promenader``, which Snowball stems to ``promenad``). A word written with a trailing
  ``*`` is a prefix and is not stemmed: ``stöd*`` finds stöd, stödet, stödjande.
* A keyword without letters or digits (an emoji, ``:-)``) is found as written.
* A **pattern** is a regular expression (Python syntax), searched case-insensitively
  as written: add ``\\b`` yourself where you want word boundaries.

**Negation** (option ``negation``, default true): a match is dropped when a negation
word (not, never, no, don't and other ``n't`` forms, nothing, without, ...; inte,
aldrig, ej, inget, ingen, inga, utan, ...) stands within ``negation_window`` (default
3) words before it, in the same clause: ``.``, ``!``, ``?``, ``;``, ``:``, a line break
and ``but``/``men`` end a clause. Swedish puts the negation after the finite verb
(*han lyssnar inte*), so ``inte``/``aldrig``/``ej``/``icke`` right after a match, or
after a subject pronoun that follows it (*då lyssnar han inte*), negate it too.
``No`` followed by a comma is an answer, not a negation, and ``utan`` after an earlier
negation is "but rather" (*inte X utan Y*), not "without". A negation window of 0
turns negation off as well.

**Score**: ``1 - 0.5 ** n`` for ``n`` distinct matched terms (keywords and patterns
alike; keywords whose words share a stem, such as ``talk`` and ``talking``, are one
term): 0.5, 0.75, 0.875, ... A code is suggested when ``n >= min_matches`` (default
1). **Evidence**: every (non-negated) match, as its text and its offsets into the
document text, in text order.

Everything is compiled once per codebook in :func:`setup_rules`: the keyword words
become *matchers* (one per prefix, one per group of words sharing a stem), and a
per-process cache maps each distinct word of the corpus to the matchers it satisfies
and the terms it starts. A batch is worked out at once (:func:`rules_columns`): it is
tokenised once for all coders (:func:`qualpipe.coding.stems.batch_words`), each
distinct word is looked up once, the one-word terms of every word are gathered with
numpy, only words followed by a matched word are tried for longer terms, and the
matches are grouped into suggestions per segment and code with numpy; the patterns
are searched only in the texts that hold one of the literal strings every match of
them contains (``mall`` for ``\\bsmall ?talk\\b``), where the patterns have such.
"""

from __future__ import annotations

import importlib
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qualpipe.codebook import Codebook
from qualpipe.coding.coders import Coder, CoderContext, Columns, Suggestion
from qualpipe.coding.stems import WORD, BatchWords, batch_words, languages_option, stem
from qualpipe.errors import PipelineError

#: Words that negate a match that follows them (lower-case; any word ending in n't too).
NEGATIONS = frozenset(
    {
        # English
        "not", "no", "never", "nothing", "nobody", "none", "neither", "nor", "without",
        "cannot", "hardly", "barely",
        # Swedish
        "inte", "aldrig", "ej", "icke", "inget", "ingen", "inga", "ingenting", "varken",
        "utan", "knappt",
    }
)  # fmt: skip
#: Swedish negation adverbs that also negate the (finite verb) match right before them,
#: or before a subject pronoun: "han lyssnar inte", "då lyssnar han inte".
NEGATIONS_AFTER = frozenset({"inte", "aldrig", "ej", "icke"})
SUBJECT_PRONOUNS = frozenset(
    {"jag", "du", "han", "hon", "hen", "den", "det", "vi", "ni", "de", "dom", "man"}
)
#: Words that end a clause for negation: "I didn't like it but we talked".
CONTRAST = frozenset({"but", "men", "although", "though", "however", "dock"})
_CLAUSE_END = re.compile(r"[.!?;:\n]")
# back-references, conditionals and inline flags change meaning inside an alternation
_UNCOMBINABLE = re.compile(r"\\[1-9]|\(\?\(|\(\?[aiLmsux]")

OPTIONS = {
    "negation": "drop matches negated by a nearby not/never/inte/aldrig/... (default true)",
    "negation_window": "how many words before a match a negation reaches (default 3)",
    "min_matches": "distinct keywords/patterns a code needs (default 1)",
    "language": "stemmers to use: auto (English and Swedish), en or sv (default auto)",
}


@dataclass(frozen=True)
class _Term:
    code: int  # index into RulesState.code_ids
    matchers: tuple[int, ...]  # one matcher per word of the keyword


_Later = tuple[int, int, tuple[int, ...]]


@dataclass
class RulesState:
    """The compiled codebook (built by :func:`setup_rules`)."""

    code_ids: list[str]
    languages: tuple[str, ...]
    negation: bool
    window: int
    min_matches: int
    #: (language, stem) -> matchers that accept a word with that stem
    by_stem: dict[tuple[str, str], tuple[int, ...]]
    #: prefix -> matchers; prefix lengths, longest first
    by_prefix: dict[str, tuple[int, ...]]
    prefix_lengths: tuple[int, ...]
    #: keyword terms, and the terms that start with each matcher
    terms: list[_Term]
    starts: dict[int, tuple[int, ...]]
    #: (code index, [(pattern number, compiled)]) for the codes with patterns
    patterns: list[tuple[int, list[tuple[int, re.Pattern[str]]]]]
    #: all patterns in one alternation: a segment it does not match skips them all
    any_pattern: re.Pattern[str] | None
    #: lower-case strings one of which every match of every pattern contains (None:
    #: some pattern has no such string): a batch is searched for them first
    literals: frozenset[str] | None = None
    #: per-process cache: lower-cased word -> matchers it satisfies
    cache: dict[str, frozenset[int]] = field(default_factory=dict)
    #: the words of ``cache`` that satisfy some matcher
    matched: dict[str, frozenset[int]] = field(default_factory=dict)
    #: each word of ``matched`` -> the terms it starts: one-word terms as (code, term),
    #: longer ones as (code, term, the matchers of its other words)
    plans: dict[str, tuple[tuple[tuple[int, int], ...], tuple[_Later, ...]]] = field(
        default_factory=dict
    )


def _options(options: Mapping[str, Any]) -> tuple[bool, int, int, tuple[str, ...]]:
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise PipelineError(
            f"coder 'rules': unknown option(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(OPTIONS)})"
        )
    negation = options.get("negation", True)
    if not isinstance(negation, bool):
        raise PipelineError(f"coder 'rules': negation must be true or false, got {negation!r}")
    ints = {}
    for name, default, low in (("negation_window", 3, 0), ("min_matches", 1, 1)):
        value = options.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise PipelineError(
                f"coder 'rules': {name} must be a whole number >= {low}, got {value!r}"
            )
        ints[name] = value
    langs = languages_option(options.get("language"), "rules")
    return negation, ints["negation_window"], ints["min_matches"], langs


def _keyword_words(keyword: str) -> list[tuple[str, bool]]:
    """``"small talk*"`` -> [("small", False), ("talk", True)] (word, is_prefix); [] for
    a keyword without letters or digits (an emoji, a symbol)."""
    return [
        (m.group(1).lower().replace("’", "'"), bool(m.group(2)))
        for m in re.finditer(r"(" + WORD.pattern + r")(\*)?", keyword)
    ]


def _stem_groups(codebook: Codebook, langs: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """Keyword word -> one (language, stem) key shared by all words with a common stem."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def root(key: tuple[str, str]) -> tuple[str, str]:
        while parent.setdefault(key, key) != key:
            key = parent[key]
        return key

    words = {
        word
        for code in codebook.codes
        for keyword in code.keywords
        for word, prefix in _keyword_words(keyword)
        if not prefix
    }
    for word in sorted(words):
        keys = [root((lang, stem(word, lang))) for lang in langs]
        for key in keys[1:]:
            if key != keys[0]:
                parent[key] = keys[0]
    return {word: root((langs[0], stem(word, langs[0]))) for word in words}


def setup_rules(codebook: Codebook, options: Mapping[str, Any]) -> RulesState:
    """Compile every code's keywords and patterns (once per process and codebook)."""
    negation, window, min_matches, langs = _options(options)
    # a matcher per prefix, and one for words that share a stem in any language:
    # "talk", "talks" and "talking" are one matcher, and so one term
    group = _stem_groups(codebook, langs)
    matcher_ids: dict[tuple[str, str], int] = {}
    by_stem: dict[tuple[str, str], set[int]] = {}
    by_prefix: dict[str, set[int]] = {}
    terms: list[_Term] = []
    starts: dict[int, list[int]] = {}
    patterns: list[tuple[int, list[tuple[int, re.Pattern[str]]]]] = []
    code_ids: list[str] = []
    for code in codebook.codes:
        if not code.keywords and not code.patterns:
            continue
        index = len(code_ids)
        code_ids.append(code.id)
        seen: set[tuple[int, ...]] = set()
        literals: list[str] = []
        for keyword in code.keywords:
            words = _keyword_words(keyword)
            if not words:  # no letters or digits: found as it is written
                if keyword.strip(" *") and keyword.strip(" *") not in literals:
                    literals.append(keyword.strip(" *"))
                continue
            ids = []
            for word, prefix in words:
                key = ("*", word) if prefix else group[word]
                mid = matcher_ids.setdefault(key, len(matcher_ids))
                if prefix:
                    by_prefix.setdefault(word, set()).add(mid)
                else:
                    for lang in langs:
                        by_stem.setdefault((lang, stem(word, lang)), set()).add(mid)
                        by_stem.setdefault((lang, word), set()).add(mid)  # as written
                ids.append(mid)
            if tuple(ids) in seen:  # "talk" and "talks": one term
                continue
            seen.add(tuple(ids))
            starts.setdefault(ids[0], []).append(len(terms))
            terms.append(_Term(index, tuple(ids)))
        compiled = []
        for number, pattern in enumerate(code.patterns):
            try:
                compiled.append((number, re.compile(pattern, re.IGNORECASE)))
            except re.error as exc:
                raise PipelineError(
                    f"coder 'rules': code {code.id!r} has an invalid pattern {pattern!r}: {exc}"
                ) from None
        for literal in literals:  # after the patterns: their own term numbers
            compiled.append((len(compiled), re.compile(re.escape(literal))))
        if compiled:
            patterns.append((index, compiled))
    return RulesState(
        any_pattern=_any_pattern([p for _, compiled in patterns for _, p in compiled]),
        literals=_literals([p for _, compiled in patterns for _, p in compiled]),
        code_ids=code_ids,
        languages=langs,
        negation=negation,
        window=window,
        min_matches=min_matches,
        by_stem={k: tuple(sorted(v)) for k, v in by_stem.items()},
        by_prefix={k: tuple(sorted(v)) for k, v in by_prefix.items()},
        prefix_lengths=tuple(sorted({len(p) for p in by_prefix}, reverse=True)),
        terms=terms,
        starts={k: tuple(v) for k, v in starts.items()},
        patterns=patterns,
    )


_PARSER: Any = importlib.import_module("re._parser")  # the parser behind re.compile
_OPS: Any = importlib.import_module("re._constants")
#: lower-case characters that IGNORECASE matches with other lower-case ones (s and ſ)
_FOLDED: frozenset[str] = frozenset(
    chr(c) for c in importlib.import_module("re._casefix")._EXTRA_CASES
)


def _plain(char: str) -> bool:
    """Does an IGNORECASE regex match this character exactly where a lower-cased text
    (one character to one) has its lower case?"""
    low = char.lower()
    return len(low) == 1 and low not in _FOLDED and char not in _FOLDED


def _required(items: Any) -> frozenset[str] | None:
    """Lower-case strings one of which every match of the parsed pattern ``items``
    contains, the longest such found; None when it cannot tell."""
    best: frozenset[str] | None = None

    def consider(found: frozenset[str] | None) -> None:
        nonlocal best
        if found and all(found) and (best is None or min(map(len, found)) > min(map(len, best))):
            best = found

    run: list[str] = []

    def flush() -> None:
        pieces = "".join(c.lower() if _plain(c) else "\0" for c in run).split("\0")
        consider(frozenset([max(pieces, key=len)]))
        run.clear()

    for op, av in items:
        if op is _OPS.LITERAL:
            run.append(chr(av))
            continue
        flush()
        if op is _OPS.SUBPATTERN:
            consider(_required(av[-1]))
        elif op in (_OPS.MAX_REPEAT, _OPS.MIN_REPEAT, _OPS.POSSESSIVE_REPEAT) and av[0] >= 1:
            consider(_required(av[2]))
        elif op is _OPS.ATOMIC_GROUP:
            consider(_required(av))
        elif op is _OPS.BRANCH:
            alternatives = [_required(alt) for alt in av[1]]
            if all(alternatives):
                consider(frozenset().union(*alternatives))  # type: ignore[arg-type]
    flush()
    return best


def _literals(compiled: list[re.Pattern[str]]) -> frozenset[str] | None:
    """The strings one of which every match of any of ``compiled`` contains, lower-cased
    (see :func:`_required`), or None where some pattern has none."""
    found: set[str] = set()
    for pattern in compiled:
        try:
            required = _required(_PARSER.parse(pattern.pattern, pattern.flags))
        except Exception:  # a parser of another Python: no short cut
            return None
        if required is None:
            return None
        found |= required
    return frozenset(found) if found else None


def _with_literals(state: RulesState, batch: BatchWords) -> list[int]:
    """The texts of ``batch`` that hold one of the patterns' literals (all texts where
    the patterns have none or the batch has no one-to-one lower case)."""
    low, literals = batch.low, state.literals
    if low is None or literals is None:
        return list(range(len(batch.texts)))
    at: list[int] = []
    for literal in literals:
        i = low.find(literal)
        while i >= 0:
            at.append(i)
            i = low.find(literal, i + 1)
    found: list[int] = np.unique(np.searchsorted(batch.bases, at, side="right") - 1).tolist()
    return found


def _any_pattern(compiled: list[re.Pattern[str]]) -> re.Pattern[str] | None:
    """One regex that matches where any of ``compiled`` does (a pre-filter), or None
    when they cannot be combined (back-references, inline flags, too many groups)."""
    if len(compiled) < 2 or any(_UNCOMBINABLE.search(p.pattern) for p in compiled):
        return None
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for p in compiled), re.IGNORECASE)
    except (re.error, OverflowError, RecursionError):
        return None


def _matchers(state: RulesState, word: str) -> frozenset[int]:
    found = state.cache.get(word)
    if found is not None:
        return found
    ids: set[int] = set()
    for lang in state.languages:
        ids.update(state.by_stem.get((lang, stem(word, lang)), ()))
    plain = word.replace("’", "'")
    for length in state.prefix_lengths:
        if len(plain) >= length:
            ids.update(state.by_prefix.get(plain[:length], ()))
    found = frozenset(ids)
    state.cache[word] = found
    if found:
        state.matched[word] = found
        singles: list[tuple[int, int]] = []
        longer: list[_Later] = []
        for mid in sorted(found):
            for t in state.starts.get(mid, ()):
                term = state.terms[t]
                if len(term.matchers) == 1:
                    singles.append((term.code, t))
                else:
                    longer.append((term.code, t, term.matchers[1:]))
        state.plans[word] = (tuple(singles), tuple(longer))
    return found


def _is_negation(word: str) -> bool:
    return word in NEGATIONS or word.endswith(("n't", "n’t"))


class _Negation:
    """Which matches of one segment are negated; built on the first match."""

    def __init__(self, text: str, words: list[str], spans: list[tuple[int, int]]) -> None:
        # clause[i]: clause number of word i; a clause ends at . ! ? ; : or a line break
        # between two words, and after but/men/...
        ends = [m.start() for m in _CLAUSE_END.finditer(text)]
        clause = []
        number = k = 0
        for i, (start, _) in enumerate(spans):
            while k < len(ends) and ends[k] < start:
                k += 1
                number += 1
            if i and words[i - 1] in CONTRAST:
                number += 1
            clause.append(number)
        before = [_is_negation(w) for w in words]
        for j, word in enumerate(words):
            if not before[j]:
                continue
            if word == "no" and text[spans[j][1] :].lstrip().startswith(","):
                before[j] = False  # "No, we talked a lot": an answer
            elif word == "utan" and any(  # "inte X utan Y": but rather
                before[k] and words[k] != "utan" and clause[k] == clause[j]
                for k in range(max(0, j - 6), j)
            ):
                before[j] = False
        self.words = words
        self.clause = clause
        self.before = before
        self.after = [w in NEGATIONS_AFTER for w in words]

    def __call__(self, first: int, last: int, window: int) -> bool:
        """Is the match of words ``first``..``last`` negated?"""
        clause, n = self.clause, len(self.clause)
        if first < n:
            here = clause[first]
            for j in range(max(0, first - window), first):
                if self.before[j] and clause[j] == here:
                    return True
        j = last + 1
        if 0 < j < n and window and self.words[j] in SUBJECT_PRONOUNS:
            j += 1
        return 0 < j < n and window > 0 and self.after[j] and clause[j] == clause[last]


class _Negations(dict[int, _Negation]):
    """Each text's :class:`_Negation` of a batch, built on its first use."""

    def __init__(self, batch: BatchWords) -> None:
        super().__init__()
        self.batch = batch

    def __missing__(self, j: int) -> _Negation:
        batch = self.batch
        a, b = batch.bounds[j], batch.bounds[j + 1]
        spans = list(zip(batch.starts[a:b], batch.ends[a:b], strict=True))
        found = self[j] = _Negation(batch.texts[j], batch.words[a:b], spans)
        return found


def rules_columns(texts: list[str], bases: list[int], ctx: CoderContext) -> Columns:
    """The suggestions of :func:`code_rules` for the segments ``texts`` (starting at
    ``bases`` in their documents), as columns, worked out for the whole batch at once."""
    state: RulesState = ctx.state
    if state is None:  # called without the code stage (tests, notebooks)
        state = setup_rules(ctx.codebook, ctx.options)
    batch = batch_words(texts)
    words, bounds = batch.words, batch.bounds
    start_array, end_array = batch.start_array, batch.end_array
    cache, matched, plans = state.cache, state.matched, state.plans
    new = set(batch.unique).difference(cache)
    if new:
        if len(cache) + len(new) > 500_000:  # a bound for very long runs: start afresh
            cache.clear()
            matched.clear()
            plans.clear()
            new = set(batch.unique)
        for word in new:
            _matchers(state, word)
    window, negate = state.window, state.negation
    negation = _Negations(batch)
    empty: frozenset[int] = frozenset()
    # one row per match: segment, code index, term, span in the segment text
    rows_j: list[int] = []
    rows_c: list[int] = []
    rows_t: list[int] = []
    rows_s: list[int] = []
    rows_e: list[int] = []
    # one-word terms, for every word at once: each distinct word's (code, term) pairs
    # in a pool, repeated for each of its occurrences
    n_words = len(words)
    plan_of = [plans.get(w) for w in batch.unique]
    n_singles = np.array([len(p[0]) if p else 0 for p in plan_of], dtype=np.int64)
    singles_from = np.zeros(len(plan_of), dtype=np.int64)
    np.cumsum(n_singles[:-1], out=singles_from[1:])
    pool = [pair for p in plan_of if p for pair in p[0]]
    ids = batch.id_array
    single = np.flatnonzero(n_singles[ids])
    if negate and len(single):
        segment_of = batch.segment[single].tolist()
        kept = [
            not negation[j](k - bounds[j], k - bounds[j], window)
            for k, j in zip(single.tolist(), segment_of, strict=True)
        ]
        single = single[np.array(kept, dtype=bool)]
    if len(single):
        repeat = n_singles[ids[single]]
        total = int(repeat.sum())
        token = np.repeat(single, repeat)
        heads = np.cumsum(repeat) - repeat
        at = np.repeat(singles_from[ids[single]] - heads, repeat) + np.arange(total)
        pairs = np.array(pool, dtype=np.int64).reshape(-1, 2)[at]
        rows_j += batch.segment[token].tolist()
        rows_c += pairs[:, 0].tolist()
        rows_t += pairs[:, 1].tolist()
        rows_s += batch.start_array[token].tolist()
        rows_e += batch.end_array[token].tolist()
    # longer terms: where a word that starts one has a matched word after it (in its text)
    starts_longer = np.array([bool(p and p[1]) for p in plan_of], dtype=bool)[ids]
    is_matched = np.array([p is not None for p in plan_of], dtype=bool)[ids]
    candidate = np.zeros(n_words, dtype=bool)
    candidate[:-1] = starts_longer[:-1] & is_matched[1:]
    last_words = np.array(bounds[1:-1], dtype=np.int64) - 1
    candidate[last_words[last_words >= 0]] = False  # a text's last word: no next word
    for k in np.flatnonzero(candidate).tolist():
        j = int(batch.segment[k])
        first, end = bounds[j], bounds[j + 1]
        after = matched[words[k + 1]]
        for c, t, rest in plans[words[k]][1]:
            if rest[0] not in after:
                continue
            last = k + len(rest)
            if last > k + 1 and (
                last >= end
                or any(
                    mid not in matched.get(words[k + i], empty) for i, mid in enumerate(rest[1:], 2)
                )
            ):
                continue
            if negate and negation[j](k - first, last - first, window):
                continue
            rows_j.append(j)
            rows_c.append(c)
            rows_t.append(t)
            rows_s.append(int(start_array[k]))
            rows_e.append(int(end_array[last]))
    if state.patterns:
        n_keyword_terms = len(state.terms)
        any_pattern = state.any_pattern
        for j in _with_literals(state, batch):
            text = texts[j]
            if any_pattern is not None and any_pattern.search(text) is None:
                continue
            first = bounds[j]
            seg_starts = batch.starts[first : bounds[j + 1]] if negate else []
            for c, compiled in state.patterns:
                for number, pattern in compiled:
                    for m in pattern.finditer(text):
                        if m.end() == m.start():
                            continue
                        if negate:
                            # the words the match covers (or the gap it lies in)
                            w = bisect_right(seg_starts, m.start()) - 1
                            if w < 0 or batch.ends[first + w] <= m.start():
                                w += 1
                            last = max(w - 1, bisect_left(seg_starts, m.end()) - 1)
                            if negation[j](w, last, window):
                                continue
                        rows_j.append(j)
                        rows_c.append(c)
                        rows_t.append(n_keyword_terms + number)
                        rows_s.append(m.start())
                        rows_e.append(m.end())
    return _columns(state, texts, bases, rows_j, rows_c, rows_t, rows_s, rows_e)


def _columns(
    state: RulesState,
    texts: list[str],
    bases: list[int],
    *rows: list[int],
) -> Columns:
    """Rows of (segment, code, term, start, end) matches -> a suggestion per segment and
    code with enough distinct terms, its distinct spans in text order as evidence."""
    if not rows[0]:
        return Columns(state.code_ids, [], [], [], [0], [], [], [])
    seg, code, term, start, end = (np.array(r, dtype=np.int64) for r in rows)
    # distinct terms per (segment, code)
    order = np.lexsort((term, code, seg))
    seg_o, code_o, term_o = seg[order], code[order], term[order]
    group_start = np.ones(len(order), dtype=bool)
    group_start[1:] = (seg_o[1:] != seg_o[:-1]) | (code_o[1:] != code_o[:-1])
    new_term = group_start.copy()
    new_term[1:] |= term_o[1:] != term_o[:-1]
    heads = np.flatnonzero(group_start)
    n_terms = np.add.reduceat(new_term.astype(np.int64), heads)
    keep = n_terms >= state.min_matches
    # distinct spans per (segment, code), in text order (the same groups, in the same order)
    order = np.lexsort((end, start, code, seg))
    seg_o, code_o, start_o, end_o = seg[order], code[order], start[order], end[order]
    same_group = np.zeros(len(order), dtype=bool)
    same_group[1:] = (seg_o[1:] == seg_o[:-1]) & (code_o[1:] == code_o[:-1])
    group = np.cumsum(~same_group) - 1
    span = ~(same_group & np.r_[False, (start_o[1:] == start_o[:-1]) & (end_o[1:] == end_o[:-1])])
    span &= keep[group]
    counts = np.bincount(group[span], minlength=len(heads))[keep]
    segments = seg_o[span]
    starts, ends = start_o[span], end_o[span]
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    base = np.array(bases, dtype=np.int64)[segments]
    js, ss, es = segments.tolist(), starts.tolist(), ends.tolist()
    return Columns(
        codes=state.code_ids,
        segment=seg[order][~same_group][keep].tolist(),
        code=code_o[~same_group][keep].tolist(),
        score=[1.0 - 0.5**n for n in n_terms[keep].tolist()],
        evidence=offsets.tolist(),
        term=[texts[j][s:e] for j, s, e in zip(js, ss, es, strict=True)],
        start=(starts + base).tolist(),
        end=(ends + base).tolist(),
    )


def code_rules(segments: Sequence[Mapping[str, Any]], ctx: CoderContext) -> Iterator[Suggestion]:
    """Suggest the codes whose keywords or patterns occur in each segment."""
    texts = [s["text"] for s in segments]
    columns = rules_columns(texts, [s["start"] for s in segments], ctx)
    yield from columns.suggestions([s["segment_id"] for s in segments])


RULES = Coder(
    "rules",
    code_rules,
    setup=setup_rules,
    version="1",
    description="keywords (stemmed, English and Swedish, prefix*) and regex patterns per code",
    columns=rules_columns,
)
