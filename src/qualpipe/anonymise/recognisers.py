"""The recogniser API: how anonymise finds identifiers in a text.

A plugin contributes recognisers through ``qualpipe_register_recognisers``::

    from qualpipe import hookimpl
    from qualpipe.anonymise.recognisers import Recogniser, Span

    def find_badge_ids(text, ctx):
        for m in BADGE.finditer(text):
            yield Span(m.start(), m.end(), "ID", "badge-ids", 0.9)

    @hookimpl
    def qualpipe_register_recognisers(register):
        register(Recogniser("badge-ids", ("ID",), find_badge_ids))

``find(text, ctx)`` is called once per document and yields :class:`Span` objects with
offsets into ``text`` (code points, end exclusive). ``setup(options)``, if given, is
called once per process with the anonymise stage's parameters and its result is
``ctx.state`` (compile patterns or load a model there, not in ``find``). A recogniser
never logs or returns the text it found: spans carry offsets only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Entity types the built-in recognisers produce (plugins may add their own).
ENTITY_TYPES = (
    "PERSON",  # names of people (first names, surnames, full names)
    "PLACE",  # towns, cities, countries, regions, named places
    "ORG",  # institutions, services, companies, schools, wards
    "ADDRESS",  # street addresses
    "POSTCODE",  # postal codes
    "DATE",  # dates in numeric or written form (and years, when enabled)
    "PHONE",  # telephone numbers
    "EMAIL",  # e-mail addresses
    "URL",  # web addresses
    "IP",  # IP addresses
    "ID",  # personnummer, samordningsnummer, NHS numbers, case and file numbers
    "MONEY",  # amounts of money
    "DEM",  # nationalities, ethnicities, religions (quasi-identifiers)
    "OTHER",  # other proper names (the proper-noun heuristic)
)


@dataclass(frozen=True, order=True)
class Span:
    """An identifier found in a text: ``text[start:end]`` is the identifier."""

    start: int
    end: int
    entity_type: str
    recogniser: str
    score: float = 1.0


@dataclass
class RecogniserContext:
    """What a recogniser knows about the document besides its text."""

    doc_id: str = ""
    language: str | None = None
    speakers: Sequence[str] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    state: Any = None


FindFunction = Callable[[str, RecogniserContext], Iterable[Span]]


@dataclass(frozen=True)
class Recogniser:
    """A named source of :class:`Span` objects for some entity types.

    ``priority`` decides between overlapping spans of equal length (higher wins):
    validated patterns (100) beat deny lists (90), context rules (70), gazetteers (50)
    and heuristics (30). ``version`` is part of the stage fingerprint.
    """

    name: str
    entity_types: tuple[str, ...]
    find: FindFunction
    setup: Callable[[Mapping[str, Any]], Any] | None = None
    priority: int = 50
    version: str = "1"
    description: str = ""
