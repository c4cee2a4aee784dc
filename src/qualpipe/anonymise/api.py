"""Anonymisation as a library call, outside a pipeline (benchmarks, notebooks).

``find_in_corpus({doc_id: text})`` returns, per document, the spans the ``anonymise``
stage would replace: the recognisers' findings plus every other mention of every value
found anywhere in the corpus, merged. Offsets point into the given texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qualpipe.anonymise.engine import DocContext, Engine, Propagator, merge, person_tokens
from qualpipe.anonymise.recognisers import ENTITY_TYPES, Recogniser, Span


def default_recognisers(heuristics: bool = True) -> list[Recogniser]:
    from qualpipe.anonymise.context import CONTEXT, DEMONYMS, PROPER_NOUNS
    from qualpipe.anonymise.gazetteer import GAZETTEER
    from qualpipe.anonymise.patterns import PATTERNS

    chosen = [PATTERNS, CONTEXT, GAZETTEER, DEMONYMS]
    return [*chosen, PROPER_NOUNS] if heuristics else chosen


def collect_values(text: str, spans: Sequence[Span], values: dict[str, str]) -> None:
    """Add the distinct values of ``spans`` (and PERSON name parts) to ``values``."""
    for s in spans:
        value = " ".join(text[s.start : s.end].split())
        values.setdefault(value, s.entity_type)
        if s.entity_type == "PERSON":
            for token in person_tokens(value):
                values.setdefault(token, "PERSON")


def find_in_corpus(
    texts: Mapping[str, str],
    language: str | None = None,
    recognisers: Sequence[Recogniser] | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, list[Span]]:
    """Spans to replace in each text (two passes, like the anonymise stage)."""
    opts = {"entities": list(ENTITY_TYPES), **(options or {})}
    engine = Engine(list(recognisers or default_recognisers()), opts)
    found: dict[str, list[Span]] = {}
    values: dict[str, str] = {}
    for doc_id, text in texts.items():
        spans = engine.detect(text, DocContext(doc_id, language, (), {}))
        found[doc_id] = spans
        collect_values(text, spans, values)
    allow = engine.allow
    propagator = Propagator(
        [(v, t) for v, t in values.items() if v.lower() not in allow],
        lowercase_seen=engine.lowercase_seen,
    )
    return {
        doc_id: merge(found[doc_id] + propagator.find(text), engine.priorities)
        for doc_id, text in texts.items()
    }


def tab_system(texts: Mapping[str, str]) -> dict[str, list[tuple[int, int]]]:
    """Entry point for ``benchmarks/tab_eval.py --system qualpipe.anonymise.api:tab_system``."""
    spans = find_in_corpus(texts, language="en")
    return {doc_id: [(s.start, s.end) for s in found] for doc_id, found in spans.items()}


def mask(texts: Mapping[str, str]) -> dict[str, list[tuple[int, int]]]:
    """Like :func:`tab_system`, guessing each text's language (English or Swedish)."""
    spans = find_in_corpus(texts, language=None)
    return {doc_id: [(s.start, s.end) for s in found] for doc_id, found in spans.items()}
