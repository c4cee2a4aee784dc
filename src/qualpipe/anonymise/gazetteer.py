"""Gazetteer recogniser: first names, surnames and places from shipped lists.

Looks up every capitalised phrase (see :mod:`qualpipe.anonymise.scanner`) in the name
and place lists: a run of name words is one PERSON (``Anna Svensson``); a known place is
a PLACE (a place after a preposition wins over a homonymous name: ``i Jordan``). A name
that is also an ordinary word counts only where the text shows it is used as a name:
capitalised, and for very common words (``Hans``, ``Per``, ``Will``) not at the start of
a sentence and only if the text never uses the word in lower case.
"""

from __future__ import annotations

from collections.abc import Iterator

from qualpipe.anonymise.recognisers import Recogniser, RecogniserContext, Span
from qualpipe.anonymise.scanner import scan


def possessive_end(text: str, end: int) -> bool:
    """True if a name ending at ``end`` is followed by a word boundary or a possessive."""
    n = len(text)
    if end >= n or not (text[end].isalnum() or text[end] in "'’:"):
        return True
    if text[end] in "'’":
        return (
            end + 1 >= n
            or not text[end + 1].isalnum()
            or (text[end + 1] == "s" and (end + 2 >= n or not text[end + 2].isalnum()))
        )
    if text[end] == ":":  # Swedish genitive after an abbreviation: SVT:s
        return (
            end + 1 < n and text[end + 1] == "s" and (end + 2 >= n or not text[end + 2].isalnum())
        )
    # Swedish genitive: Annas, Karins
    return text[end] == "s" and (end + 1 >= n or not text[end + 1].isalnum())


def starts_word(text: str, start: int) -> bool:
    if start == 0:
        return True
    before = text[start - 1]
    if before in "'’":  # inside a word (O'Neill, don't), or an opening quote ('Wayne, ...')
        return start < 2 or not text[start - 2].isalnum()
    return not (before.isalnum() or before == "-")


def find_gazetteer(text: str, ctx: RecogniserContext) -> Iterator[Span]:
    return iter(scan(text, ctx.language).gazetteer)


GAZETTEER = Recogniser(
    "gazetteer",
    ("PERSON", "PLACE"),
    find_gazetteer,
    priority=50,
    version="2",
    description="first names, surnames and places (Faker, GeoNames); see data/SOURCES.md",
)
