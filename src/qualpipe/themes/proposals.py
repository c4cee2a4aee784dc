"""Inductive theme proposals: clusters of similar segments, for researchers to review.

Participant segments (interviewer turns left out) with at least one counted word are
clustered by their TF-IDF vectors (:mod:`qualpipe.themes.text`) with spherical k-means
(cosine similarity; k-means++ start from a fixed seed), ``k = n_proposals`` or fewer: at
most one cluster per two segments, and no more than there are different vectors. The same
segments give the same proposals on every run (they are ordered by id first).

A proposal is named after its three heaviest terms (``talk / coffee / listen``); its
description lists its ten heaviest terms and three representative segments (those most
like its centre). In reflexive thematic analysis themes are constructed by researchers:
a proposal is a pointer into the data, not a finding, and is never mixed with the agreed
themes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qualpipe.themes.rollup import Prevalence, Segment, counts
from qualpipe.themes.text import TfidfMatrix

#: Words in a proposal's name / in its description.
NAME_TERMS = 3
TOP_TERMS = 10
REPRESENTATIVES = 3
MAX_ITER = 100
#: Stop when at most this share of the segments changed cluster in an iteration.
TOLERANCE = 0.001
_EPS = 1e-9


@dataclass
class Proposal:
    """One cluster: its segments (best first), heaviest terms and representatives."""

    segment_ids: list[str]
    terms: list[str]
    representatives: list[str]


def kmeans(
    matrix: TfidfMatrix, rows: np.ndarray, k: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means of ``matrix`` rows ``rows``: (label per row, centroids k' × V).

    ``k' <= k``: the k-means++ start stops early when every row is already identical to a
    centre. Labels index the returned centroids.
    """
    n = len(rows)
    rng = np.random.default_rng(seed)

    def sims(centre: np.ndarray) -> np.ndarray:
        sim: np.ndarray = matrix.dot(centre)[rows]
        return sim

    first = int(rng.integers(n))
    centres = [matrix.centroid(rows[[first]])]
    best = sims(centres[0])
    while len(centres) < k:
        dist = 1.0 - best
        dist[dist < _EPS] = 0.0
        total = float(dist.sum())
        if total <= 0:
            break
        pick = int(rng.choice(n, p=dist / total))
        centres.append(matrix.centroid(rows[[pick]]))
        best = np.maximum(best, sims(centres[-1]))
    c = np.vstack(centres)
    labels = np.full(n, -1, dtype=np.int64)
    for _ in range(MAX_ITER):
        s = np.vstack([sims(centre) for centre in c])
        new = s.argmax(axis=0)
        for j in range(len(c)):
            if not np.any(new == j):  # an empty cluster takes the row least like its centre
                sizes = np.bincount(new, minlength=len(c))
                fit = s[new, np.arange(n)]
                fit[sizes[new] <= 1] = np.inf  # without emptying another cluster
                far = int(np.argmin(fit))
                if np.isfinite(fit[far]):
                    new[far] = j
        changed = int(np.count_nonzero(new != labels))
        if not changed:
            break
        labels = new
        for j in range(len(c)):
            c[j] = matrix.centroid(rows[labels == j])
        if changed <= n * TOLERANCE:
            break
    return labels, c


def propose(
    segments: Sequence[Segment],
    n_proposals: int,
    seed: int = 0,
    matrix: TfidfMatrix | None = None,
    row_of: Mapping[str, int] | None = None,
) -> list[Proposal]:
    """Cluster ``segments`` into at most ``n_proposals`` proposals, biggest first.

    ``matrix`` and ``row_of`` (segment_id -> row) reuse vectors already computed;
    without them the vectors are computed from ``segments`` alone.
    """
    if matrix is None or row_of is None:
        ordered = sorted(segments, key=lambda s: s.segment_id)
        matrix = TfidfMatrix.fit([s.text for s in ordered])
        row_of = {s.segment_id: i for i, s in enumerate(ordered)}
    nonempty = matrix.nonempty()
    usable = sorted(
        {s.segment_id for s in segments if nonempty[row_of[s.segment_id]]},
    )
    k = min(n_proposals, len(usable) // 2 if len(usable) > 1 else len(usable))
    if k < 1:
        return []
    rows = np.array([row_of[s] for s in usable], dtype=np.int64)
    labels, centres = kmeans(matrix, rows, k, seed)
    sims = np.vstack([matrix.dot(c)[rows] for c in centres])
    out = []
    for j in range(len(centres)):
        idx = np.flatnonzero(labels == j)
        if not len(idx):
            continue
        order = sorted(idx.tolist(), key=lambda i: (-round(float(sims[j, i]), 9), usable[i]))
        weights = matrix.sum_rows(rows[idx])
        ranked = np.lexsort((np.arange(matrix.n_terms), -weights))
        terms = [matrix.vocab[t] for t in ranked[:TOP_TERMS] if weights[t] > 0]
        ids = [usable[i] for i in order]
        out.append(Proposal(ids, terms, ids[:REPRESENTATIVES]))
    out.sort(key=lambda p: (-len(p.segment_ids), min(p.segment_ids)))
    return out


def proposal_rows(
    proposals: Sequence[Proposal],
    segments: Mapping[str, Segment],
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Rows of the ``proposals`` dataset (kind ``themes``, ``proposal`` true)."""
    prevalence = Prevalence(segments)
    total = sum(len(p.segment_ids) for p in proposals)
    rows = []
    for i, p in enumerate(proposals, 1):
        rows.append(
            {
                **proposal_description(p, i, total, len(proposals), seed),
                **counts(p.segment_ids, segments),
                "prevalence": prevalence.json(p.segment_ids),
                "proposal": True,
            }
        )
    return rows


def proposal_description(
    p: Proposal, i: int, total: int, n: int, seed: int, sampled_from: int | None = None
) -> dict[str, Any]:
    """Id, name, level, parent and description of the ``i``-th of ``n`` proposals.

    ``sampled_from``: the number of eligible segments when only a sample of ``total`` was
    clustered (the theme stage's cap).
    """
    theme_id = f"proposal-{i}"
    name = " / ".join(p.terms[:NAME_TERMS]) or theme_id
    sample = f" (a seeded sample of {sampled_from})" if sampled_from else ""
    description = (
        f"Machine proposal for researchers to review, not an agreed theme: k-means "
        f"over TF-IDF of {total} participant segments{sample} into {n} clusters "
        f"(seed {seed}); {len(p.segment_ids)} segment{'s' if len(p.segment_ids) != 1 else ''}. "
        f"Top terms: {', '.join(p.terms)}. "
        f"Representative segments: {', '.join(p.representatives)}."
    )
    return {
        "theme_id": theme_id,
        "name": name,
        "level": "theme",
        "parent_id": None,
        "description": description,
    }


def code_group_row(
    number: int,
    group: Sequence[str],
    names: Mapping[str, str],
    threshold: float,
    figures: Mapping[str, Any],
) -> dict[str, Any]:
    """The proposal row of one group of co-occurring codes; ``figures`` holds its
    counts and prevalence."""
    members = ", ".join(names.get(c, c) for c in group)
    return {
        "theme_id": f"code-group-{number}",
        "name": " + ".join(names.get(c, c) for c in group[:3]) + (" + …" if len(group) > 3 else ""),
        "level": "theme",
        "parent_id": None,
        "description": (
            "Machine proposal for researchers to review, not an agreed theme: codes "
            f"that occur together in segments (Jaccard >= {threshold}): {members}."
        ),
        **figures,
        "proposal": True,
    }


def code_group_rows(
    codes_of: Mapping[str, set[str]],
    segments: Mapping[str, Segment],
    names: Mapping[str, str],
    threshold: float = 0.3,
) -> list[dict[str, Any]]:
    """Candidate themes from codes that keep occurring together.

    Codes are grouped by single linkage over segment co-occurrence: two codes join one
    group when the Jaccard share of their segments (both / either) reaches
    ``threshold``. Every group of two or more codes is proposed, biggest first, with the
    segments that carry any of its codes.
    """
    segments_of: dict[str, set[str]] = {}
    for seg_id, seg_codes in codes_of.items():
        for code in seg_codes:
            segments_of.setdefault(code, set()).add(seg_id)
    parent = {code: code for code in segments_of}

    def find(code: str) -> str:
        while parent[code] != code:
            parent[code] = parent[parent[code]]
            code = parent[code]
        return code

    codes = sorted(segments_of)
    for i, a in enumerate(codes):
        for b in codes[i + 1 :]:
            both = len(segments_of[a] & segments_of[b])
            if both and both / len(segments_of[a] | segments_of[b]) >= threshold:
                parent[find(a)] = find(b)
    groups: dict[str, list[str]] = {}
    for code in codes:
        groups.setdefault(find(code), []).append(code)
    found = sorted(
        (g for g in groups.values() if len(g) > 1),
        key=lambda g: (-len(set().union(*(segments_of[c] for c in g))), g),
    )
    prevalence = Prevalence(segments)
    rows = []
    for i, group in enumerate(found, 1):
        seg_ids = sorted(set().union(*(segments_of[c] for c in group)))
        figures = {**counts(seg_ids, segments), "prevalence": prevalence.json(seg_ids)}
        rows.append(code_group_row(i, group, names, threshold, figures))
    return rows
