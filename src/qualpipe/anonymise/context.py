"""Context recognisers: what the words around a name give away.

``context``: titles (``Dr Lindqvist``, ``Mr C.A. Whomersley``, ``fru Berg``),
introductions (``my name is``, ``jag heter``), post-nominal titles (``Mummery LJ``),
places after prepositions (``from Sandviken``), institutions named with a keyword or
suffix (``St Mary's Hospital``, ``Gävle sjukhus``, ``Skönviksgården``), street names
(``Storgatan``) and speaker labels that are names (``Anna: ...``).

``proper-nouns``: a heuristic for the rest: capitalised words that are not at the start
of a sentence and not common words of the text's language (in Swedish, which
capitalises only proper nouns, nearly every capital mid-sentence). It catches foreign
names no gazetteer holds, at some cost in precision; ``heuristics: false`` turns it off.

``demonyms``: nationalities, ethnicities and religions (quasi-identifiers).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

from ahocorasick_rs import AhoCorasick, MatchKind

from qualpipe.anonymise.lexicon import lexicon
from qualpipe.anonymise.recognisers import Recogniser, RecogniserContext, Span
from qualpipe.anonymise.scanner import prev_word, scan
from qualpipe.transcripts import INTERVIEWER_LABELS, KNOWN_LABELS


def _is_role(label: str) -> bool:
    """A speaker label that names a role (Interviewer, IP, P01), not a person."""
    key = label.lower().rstrip(".")
    return (
        key in KNOWN_LABELS
        or key in INTERVIEWER_LABELS
        or bool(re.fullmatch(r"[A-ZÅÄÖ]{1,4}\d{0,3}", label))
        or bool(
            re.fullmatch(
                r"(?i)(speaker|talare|person|participant|respondent|interviewer|deltagare)\s*\d*",
                label,
            )
        )
    )


def find_context(text: str, ctx: RecogniserContext) -> Iterator[Span]:
    yield from scan(text, ctx.language).context
    for speaker in {s for s in ctx.speakers if s and not _is_role(s)}:
        pattern = re.compile(rf"(?m)^[ \t]*(?:\[[^\]]*\][ \t]*)?({re.escape(speaker)})[ \t]*:")
        for m in pattern.finditer(text):
            yield Span(m.start(1), m.end(1), "PERSON", "context", 0.8)


def find_proper_nouns(text: str, ctx: RecogniserContext) -> Iterator[Span]:
    return iter(scan(text, ctx.language).proper)


@cache
def _demonym_automaton() -> AhoCorasick:
    words: dict[str, None] = {}
    for word in lexicon().demonyms:
        words[word] = None
        words[word[:1].upper() + word[1:]] = None
    return AhoCorasick(list(words), matchkind=MatchKind.LeftmostLongest)


def _demonym_setup(options: object) -> Any:
    return _demonym_automaton()


LANGUAGE_CUES = frozenset(
    "på in speak speaks spoke speaking talar talade pratar pratade pratade översatt".split()
)


def find_demonyms(text: str, ctx: RecogniserContext) -> Iterator[Span]:
    lex = lexicon()
    automaton = ctx.state if ctx.state is not None else _demonym_automaton()
    n = len(text)
    for _, start, end in automaton.find_matches_as_indexes(text):
        if (start and text[start - 1].isalnum()) or (end < n and text[end].isalnum()):
            continue
        word = text[start:end].lower()
        if prev_word(text, start) in LANGUAGE_CUES:
            continue  # "på svenska", "in Swedish": the language, not a nationality
        lang = lex.demonyms.get(word, "en")
        # "finns" is Finns in English but "there is" in Swedish: a demonym of another
        # language that is a common word here does not count
        others = [rank.get(word, 10**6) for code, rank in lex.ranks.items() if code != lang]
        if (ctx.language not in (None, lang) or any(r <= 5000 for r in others)) and not (
            ctx.language == lang and text[start].isupper()
        ):
            continue
        yield Span(start, end, "DEM", "demonyms", 0.6)


CONTEXT = Recogniser(
    "context",
    ("PERSON", "PLACE", "ORG", "ADDRESS"),
    find_context,
    priority=70,
    version="2",
    description="titles, introductions, speaker names, place prepositions, institutions",
)
PROPER_NOUNS = Recogniser(
    "proper-nouns",
    ("OTHER", "DEM"),
    find_proper_nouns,
    priority=30,
    version="2",
    description="capitalised words mid-sentence that are not common words (heuristic)",
)
DEMONYMS = Recogniser(
    "demonyms",
    ("DEM",),
    find_demonyms,
    setup=_demonym_setup,
    priority=40,
    description="nationalities, ethnicities and religions (quasi-identifiers)",
)
