"""Researchers' decisions about anonymisation findings -> deny and allow list entries.

Decisions name findings by their place in the *anonymised* text and their replacement
(docs/review.md); they never hold an original value. Two kinds change the output:

``add`` (a missed identifier)
    the selected text (``value.text``, which was not replaced, so it is the same in the
    original) and its type go on the deny list: masked everywhere, in every document.
``reject`` (a false positive)
    the replacement is looked up in the pseudonym key to find the original value it
    stands for, which goes on the allow list for this run only. The original is held
    in memory and never written anywhere new (not in the decisions file, the manifest
    or a log). A replacement the key cannot resolve to exactly one value (the key was
    deleted, or ``description`` mode gives every name the same ``(name)``) is reported
    as a warning naming the decision id, never a value.

``accept`` (confirmed) changes nothing but is counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import structlog

from qualpipe.anonymise.keyfile import KeyStore
from qualpipe.anonymise.recognisers import ENTITY_TYPES
from qualpipe.decisions import Decision

log = structlog.get_logger("qualpipe")


@dataclass
class ReviewedLists:
    """What the ``finding`` decisions add to the stage's deny and allow lists."""

    deny: list[tuple[str, str]] = field(default_factory=list)
    allow: list[str] = field(default_factory=list)
    confirmed: int = 0
    #: ids of decisions that could not be applied (never values)
    unresolved: list[str] = field(default_factory=list)

    def stats(self) -> dict[str, int]:
        """Counts for the stage manifest."""
        return {
            "decisions:missed_identifiers": len(self.deny),
            "decisions:false_positives": len(self.allow),
            "decisions:confirmed": self.confirmed,
            "decisions:unresolved": len(self.unresolved),
        }


def _key_index(key: KeyStore) -> dict[str, list[tuple[str, str]]]:
    """replacement (case-folded) -> [(type, original)] of the key's entries."""
    index: dict[str, list[tuple[str, str]]] = {}
    for (etype, value), rep in key.entries.items():
        if not etype.startswith("_"):
            index.setdefault(rep.casefold(), []).append((etype, value))
    return index


def reviewed_lists(decisions: Iterable[Decision], key: KeyStore) -> ReviewedLists:
    """Deny and allow entries from the effective ``finding`` decisions."""
    out = ReviewedLists()
    index: dict[str, list[tuple[str, str]]] | None = None
    allowed: set[str] = set()
    for d in decisions:
        if d.target != "finding":
            continue
        if d.action == "accept":
            out.confirmed += 1
        elif d.action == "add":
            etype = str(d.value["type"]).upper()
            if etype not in ENTITY_TYPES:
                log.warning("missed identifier of an unknown type masked as OTHER", decision=d.id)
                etype = "OTHER"
            text = " ".join(str(d.value["text"]).split())
            if text:
                out.deny.append((text, etype))
        elif d.action == "reject":
            if index is None:
                index = _key_index(key)
            candidates = index.get(str(d.ref["replacement"]).casefold(), [])
            typed = [c for c in candidates if c[0] == str(d.ref["type"]).upper()]
            values = {v for _, v in (typed or candidates)}
            if len(values) != 1:
                out.unresolved.append(d.id)
                log.warning(
                    "false positive not applied: the pseudonym key does not link its "
                    "replacement to exactly one value; add the word to the allow list",
                    decision=d.id,
                    matches=len(values),
                )
                continue
            value = values.pop()
            if value not in allowed:
                allowed.add(value)
                out.allow.append(value)
    return out
