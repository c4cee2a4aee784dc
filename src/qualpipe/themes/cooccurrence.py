"""Co-occurrence of codes and of themes, within segments and within participants.

For items ``a <= b`` (ids compared as strings) that occur together in at least one unit
(a segment, or a participant), ``count`` is the number of units with both and
``jaccard`` is ``count / units with a or b``. The diagonal (``a == b``) gives how many
units have ``a`` at all, with ``jaccard`` 1. Pairs that never occur together are left out
(read them as 0).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any


def pair_counts(units: Iterable[Iterable[str]]) -> Counter[tuple[str, str]]:
    """``(a, b) -> units with both``, ``a <= b``, diagonal included."""
    counts: Counter[tuple[str, str]] = Counter()
    for items in units:
        ordered = sorted(set(items))
        for i, a in enumerate(ordered):
            for b in ordered[i:]:
                counts[(a, b)] += 1
    return counts


def cooccurrence_rows(
    kind: str, level: str, units: Mapping[str, Iterable[str]]
) -> list[dict[str, Any]]:
    """Rows of the ``cooccurrence`` dataset for ``units`` (unit id -> items in it)."""
    return rows_from_counts(kind, level, pair_counts(units.values()))


def rows_from_counts(
    kind: str, level: str, counts: Mapping[tuple[str, str], int]
) -> list[dict[str, Any]]:
    """Rows of the ``cooccurrence`` dataset from :func:`pair_counts`' counts."""
    rows = []
    for (a, b), n in sorted(counts.items()):
        union = counts[(a, a)] + counts[(b, b)] - n if a != b else n
        rows.append(
            {
                "kind": kind,
                "level": level,
                "a": a,
                "b": b,
                "count": n,
                "jaccard": n / union if union else None,
            }
        )
    return rows


def by_participant(
    by_segment: Mapping[str, Iterable[str]], participant_of: Mapping[str, str]
) -> dict[str, set[str]]:
    """Merge segment -> items into participant -> items."""
    out: dict[str, set[str]] = {}
    for seg_id, items in by_segment.items():
        p = participant_of.get(seg_id)
        if p is not None:
            out.setdefault(p, set()).update(items)
    return out
