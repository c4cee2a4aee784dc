"""Finding identifiers: run recognisers, merge their spans, propagate across the corpus.

Per document, every recogniser's spans are filtered (entity types, minimum score, allow
list) and overlapping spans are merged into their union, typed by the strongest member
(recogniser priority, then length): masking a little more is safer than leaving half a
name. Across the corpus, every value found anywhere (and every value already in the
key) is searched for everywhere else by :class:`Propagator`, so a name found once is
masked in every mention, including possessive and genitive forms (``Anna's``,
``Annas``). Names that are also common words (``Hans``, ``Will``) are only matched when
capitalised mid-sentence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from ahocorasick_rs import AhoCorasick, MatchKind

from qualpipe.anonymise.gazetteer import possessive_end, starts_word
from qualpipe.anonymise.lexicon import lexicon, lower_used, name_tier
from qualpipe.anonymise.recognisers import Recogniser, RecogniserContext, Span
from qualpipe.anonymise.scanner import sentence_start

_START_END = attrgetter("start", "end")
DENY_PRIORITY = 90
PROPAGATION_PRIORITY = 60


def casefold_same_length(text: str) -> str:
    """Lower-case ``text`` without changing its length (so offsets stay valid)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)


def normalise_value(value: str) -> str:
    return " ".join(value.split())


def merge(spans: Iterable[Span], priorities: Mapping[str, int]) -> list[Span]:
    """Merge overlapping spans into their union, typed by the strongest member."""
    ordered = sorted(spans, key=_START_END)
    out: list[Span] = []
    i, n = 0, len(ordered)
    while i < n:
        best = ordered[i]
        end = best.end
        j = i + 1
        if j < n and ordered[j].start < end:
            group = [best]
            while j < n and ordered[j].start < end:
                group.append(ordered[j])
                end = max(end, ordered[j].end)
                j += 1
            best = max(
                group, key=lambda s: (priorities.get(s.recogniser, 50), s.end - s.start, s.score)
            )
            score = max(s.score for s in group)
            best = Span(ordered[i].start, end, best.entity_type, best.recogniser, score)
        out.append(best)
        i = j
    return out


@dataclass
class DocContext:
    doc_id: str
    language: str | None
    speakers: Sequence[str]
    attributes: Mapping[str, str]


class Engine:
    """Runs the recognisers over one document at a time (one per process)."""

    def __init__(self, recognisers: Sequence[Recogniser], options: Mapping[str, Any]) -> None:
        self.recognisers = list(recognisers)
        self.options = options
        self.states = {r.name: r.setup(options) if r.setup else None for r in self.recognisers}
        self.priorities = {r.name: r.priority for r in self.recognisers}
        self.priorities["deny"] = DENY_PRIORITY
        self.priorities["propagation"] = PROPAGATION_PRIORITY
        self.entities = frozenset(options.get("entities") or ())
        self.min_score = float(options.get("min_score") or 0.0)
        self.lowercase_seen: set[str] = set()
        self.allow = frozenset(normalise_value(a).lower() for a in options.get("allow") or ())
        deny = [(normalise_value(v), t) for v, t in options.get("deny_values") or ()]
        self.deny = Propagator(deny, match_case=False) if deny else None

    def keep(self, text: str, span: Span) -> bool:
        if self.entities and span.entity_type not in self.entities:
            return False
        if span.score < self.min_score or span.end <= span.start:
            return False
        return normalise_value(text[span.start : span.end]).lower() not in self.allow

    def detect(self, text: str, doc: DocContext) -> list[Span]:
        spans: list[Span] = []
        for r in self.recognisers:
            ctx = RecogniserContext(
                doc.doc_id,
                doc.language,
                doc.speakers,
                doc.attributes,
                self.options,
                self.states[r.name],
            )
            for span in r.find(text, ctx):
                if 0 <= span.start < span.end <= len(text) and self.keep(text, span):
                    spans.append(span)
        if self.deny is not None:
            spans.extend(self.deny.find(text, "deny"))
        merged = merge(spans, self.priorities)
        aliases = list(_aliases(text, merged))
        if aliases:
            merged = merge(merged + aliases, self.priorities)
        for s in merged:  # names this text also uses as ordinary words ("Hans"/"hans")
            value = text[s.start : s.end]
            if " " not in value and name_tier(value) == 1 and lower_used(text, value):
                self.lowercase_seen.add(value.lower())
        return merged


_ALIAS = re.compile(r"[ \t]*\((?:[“\"'‘]?(?:the[ \t]+)?)(?P<alias>[A-ZÅÄÖ][\w&.-]{1,20})[”\"'’]?\)")


def _aliases(text: str, spans: Sequence[Span]) -> Iterator[Span]:
    """Short names defined right after an identifier: British National Party ("the BNP")."""
    for s in spans:
        if text.startswith("(", s.end) or text.startswith(" (", s.end):
            m = _ALIAS.match(text, s.end)
            if m:
                yield Span(m.start("alias"), m.end("alias"), s.entity_type, s.recogniser, s.score)


class Propagator:
    """Finds every mention of known values (case-insensitive, word-bounded)."""

    def __init__(
        self,
        values: Iterable[tuple[str, str]],
        match_case: bool = False,
        lowercase_seen: Iterable[str] = (),
    ) -> None:
        seen = set(lowercase_seen)
        # key -> (length, type, tier); a key given twice keeps its last value
        entries: dict[str, tuple[int, str, int]] = {}
        for value, etype in values:
            key = casefold_same_length(value)
            if not key.strip():
                continue
            if len(key) < 2:
                # a person known by an initial ("Mr K."): only that capital letter alone
                if not (etype == "PERSON" and value.isupper()):
                    continue
                entries[key] = (1, etype, 1)
                continue
            # a name that is also an ordinary word counts only capitalised (tier 1), and
            # if very common ("Hans", "Will") not at the start of a sentence (tier 2)
            tier = 1 if match_case else 0
            if " " not in value:
                tier = max(tier, name_tier(value, seen))
            if etype == "OTHER":
                # found only by the proper-noun heuristic: other mentions count when
                # capitalised mid-sentence too, never in lower case or opening a sentence
                tier = 2
            entries[key] = (len(key), etype, tier)
        self.keys = list(entries)
        self.entries = list(entries.values())
        self.automaton = self._build(self.keys)

    @staticmethod
    def _build(keys: list[str]) -> AhoCorasick | None:
        # leftmost-longest, non-overlapping matches (ahocorasick-rs, compiled)
        return AhoCorasick(keys, matchkind=MatchKind.LeftmostLongest) if keys else None

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "automaton"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.automaton = self._build(self.keys)

    def find(self, text: str, recogniser: str = "propagation") -> list[Span]:
        if self.automaton is None:
            return []
        lowered = casefold_same_length(text)
        entries = self.entries
        out = []
        for index, start, end in self.automaton.find_matches_as_indexes(lowered):
            length, etype, tier = entries[index]
            if not (starts_word(text, start) and possessive_end(text, end)):
                continue
            if tier and not text[start].isupper():
                continue
            if tier == 2 and length > 1 and sentence_start(text, start):
                continue
            out.append(Span(start, end, etype, recogniser, 1.0))
        return out


def person_tokens(value: str) -> list[str]:
    """The name parts of a PERSON value worth propagating on their own (not "I'm")."""
    common = lexicon().common
    return [
        t
        for t in value.replace("-", " ").split()
        if len(t) >= 2 and t[0].isupper() and common.get(t.lower(), 10**6) > 100
    ]
