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
and the terms it starts, so a segment costs one tokenisation (shared with the other
coders of the batch, :func:`qualpipe.coding.stems.words_of`), a set intersection with the
words that satisfy some matcher, and a look-up per such word, however many keywords the
codebook has; the patterns cost one regex scan (more only where one matches).
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualpipe.codebook import Codebook
from qualpipe.coding.coders import Coder, CoderContext, Suggestion
from qualpipe.coding.stems import WORD, languages_option, stem, words_of
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


def code_rules(segments: Sequence[Mapping[str, Any]], ctx: CoderContext) -> Iterator[Suggestion]:
    """Suggest the codes whose keywords or patterns occur in each segment."""
    state: RulesState = ctx.state
    if state is None:  # called without the code stage (tests, notebooks)
        state = setup_rules(ctx.codebook, ctx.options)
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


RULES = Coder(
    "rules",
    code_rules,
    setup=setup_rules,
    version="1",
    description="keywords (stemmed, English and Swedish, prefix*) and regex patterns per code",
)
