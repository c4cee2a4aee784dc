"""Agreement between coders: percent agreement, Cohen's kappa, Krippendorff's alpha.

Codebook approaches to thematic analysis (and framework analysis) have several people
apply one codebook and report how far they agree; reflexive TA does not (docs/agreement.md).
Coders may be people (imported codings, status ``human``) or machine coders.

Two levels, each per code and overall (``code_id == "*"``):

``segment``
    Units are segments; a coder's value for (segment, code) is 1 if the coder applied the
    code to the segment, 0 if not. Segments nobody coded count (agreement on absence)
    when the segments dataset is given.
``character``
    Units are the characters that **at least one** coder coded with the code; text no
    coder coded is not counted as agreement (it would swamp every score).

**Missing data.** A person who did not code a document (no coding at all in it) has
no value for its units, rather than 0; machine coders see every document. Kappa and
percent agreement use the units both coders have values for; alpha handles gaps itself.

The statistics are computed from counts of value patterns (weighted by characters at
the character level), nominal level of measurement:

- percent agreement: share of agreeing coder pairs;
- Cohen's kappa: ``(p_o - p_e) / (1 - p_e)``, ``p_e`` from each coder's own marginals;
  overall, the pooled kappa of De Vries et al. (2008): the unit-weighted means of
  ``p_o`` and ``p_e`` over codes;
- Krippendorff's alpha: ``1 - D_o / D_e`` from the coincidence matrix; overall, the
  coincidences of every code pooled.

A statistic that is undefined (every value the same, so chance agreement is 1) is
``None`` (a null ``value``), never 1 or 0. Numbers agree with scikit-learn's
``cohen_kappa_score`` and the ``krippendorff`` package (tests check both).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from itertools import combinations, pairwise
from typing import Any

import pyarrow as pa

from qualpipe.datasets import DatasetKind
from qualpipe.errors import PipelineError

LEVELS = ("segment", "character")
ALL = "*"

AGREEMENT = DatasetKind(
    name="agreement",
    version=1,
    description="Agreement between coders per code and overall (percent, kappa, alpha).",
    schema=pa.schema(
        [
            pa.field("code_id", pa.string(), nullable=False),
            pa.field("coder_a", pa.string(), nullable=False),
            pa.field("coder_b", pa.string(), nullable=False),
            pa.field("level", pa.string(), nullable=False),
            pa.field("measure", pa.string(), nullable=False),
            pa.field("value", pa.float64()),
            pa.field("n", pa.int64(), nullable=False),
        ]
    ),
    fields={
        "code_id": "code, or * for all codes pooled",
        "coder_a": "first coder of the pair, or * for all coders (alpha, percent)",
        "coder_b": "second coder of the pair, or * for all coders",
        "level": "segment (presence of the code per segment) or character (per character "
        "that at least one coder coded)",
        "measure": "percent | kappa | alpha",
        "value": "the statistic; null when undefined (every value identical)",
        "n": "units compared: segments, or characters (pairs: both coders have a value; "
        "*: at least two coders have one)",
    },
)

Value = Hashable | None
Patterns = Mapping[tuple[Value, ...], float]


# -- statistics over pattern counts -----------------------------------------------------------


def patterns_of(
    data: Sequence[Sequence[Value]], weights: Sequence[float] | None = None
) -> dict[tuple[Value, ...], float]:
    """A reliability matrix (coders x units, None = missing) -> pattern counts."""
    if not data:
        return {}
    n = len(data[0])
    if any(len(row) != n for row in data):
        raise ValueError("every coder needs a value (or None) for every unit")
    out: defaultdict[tuple[Value, ...], float] = defaultdict(float)
    for j in range(n):
        out[tuple(row[j] for row in data)] += weights[j] if weights is not None else 1
    return dict(out)


def _present(pattern: tuple[Value, ...]) -> list[Value]:
    return [v for v in pattern if v is not None]


def pairable_units(patterns: Patterns) -> float:
    """Units (or characters) with values from at least two coders."""
    return sum(w for p, w in patterns.items() if len(_present(p)) >= 2)


def percent_from(patterns: Patterns) -> float | None:
    """Share of agreeing pairs of coders over units with two or more values."""
    agree = pairs = 0.0
    for p, w in patterns.items():
        values = Counter(_present(p))
        m = sum(values.values())
        if m < 2:
            continue
        agree += w * sum(k * (k - 1) / 2 for k in values.values())
        pairs += w * m * (m - 1) / 2
    return agree / pairs if pairs else None


def kappa_parts(patterns: Patterns) -> tuple[float, float, float] | None:
    """(p_o, p_e, n) of Cohen's kappa for two-coder patterns; None without units."""
    joint: defaultdict[tuple[Value, Value], float] = defaultdict(float)
    for (a, b), w in patterns.items():
        if a is not None and b is not None:
            joint[a, b] += w
    n = sum(joint.values())
    if not n:
        return None
    rows: defaultdict[Value, float] = defaultdict(float)
    cols: defaultdict[Value, float] = defaultdict(float)
    for (a, b), w in joint.items():
        rows[a] += w
        cols[b] += w
    p_o = sum(w for (a, b), w in joint.items() if a == b) / n
    p_e = sum(rows[v] * cols[v] for v in rows) / (n * n)
    return p_o, p_e, n


def _kappa(p_o: float, p_e: float) -> float | None:
    return None if 1 - p_e < 1e-12 else (p_o - p_e) / (1 - p_e)


def kappa_from(patterns: Patterns) -> float | None:
    """Cohen's kappa of two coders; None when undefined (chance agreement is 1)."""
    parts = kappa_parts(patterns)
    return _kappa(parts[0], parts[1]) if parts else None


def pooled_kappa(parts: Iterable[tuple[float, float, float] | None]) -> float | None:
    """De Vries et al. (2008): kappa of the unit-weighted mean p_o and p_e over codes."""
    known = [p for p in parts if p is not None]
    n = sum(p[2] for p in known)
    if not n:
        return None
    p_o = sum(p[0] * p[2] for p in known) / n
    p_e = sum(p[1] * p[2] for p in known) / n
    return _kappa(p_o, p_e)


def alpha_from(patterns: Patterns) -> float | None:
    """Krippendorff's alpha (nominal) from pattern counts; None when undefined."""
    coincidences: defaultdict[tuple[Value, Value], float] = defaultdict(float)
    for p, w in patterns.items():
        values = Counter(_present(p))
        m = sum(values.values())
        if m < 2:
            continue
        for c, nc in values.items():
            for k, nk in values.items():
                pairs = nc * (nc - 1) if c == k else nc * nk
                if pairs:
                    coincidences[c, k] += w * pairs / (m - 1)
    totals: defaultdict[Value, float] = defaultdict(float)
    for (c, _), w in coincidences.items():
        totals[c] += w
    n = sum(totals.values())
    observed = sum(w for (c, k), w in coincidences.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k)
    if n <= 1 or expected <= 0:
        return None
    return 1 - (n - 1) * observed / expected


def percent_agreement(
    data: Sequence[Sequence[Value]], weights: Sequence[float] | None = None
) -> float | None:
    """Percent agreement of a reliability matrix (coders x units; None = missing)."""
    return percent_from(patterns_of(data, weights))


def cohen_kappa(
    a: Sequence[Value], b: Sequence[Value], weights: Sequence[float] | None = None
) -> float | None:
    """Cohen's kappa of two coders' values (units where either is None are left out)."""
    return kappa_from(patterns_of([a, b], weights))


def krippendorff_alpha(
    data: Sequence[Sequence[Value]], weights: Sequence[float] | None = None
) -> float | None:
    """Krippendorff's alpha, nominal, of a reliability matrix (None = missing)."""
    return alpha_from(patterns_of(data, weights))


# -- codings -> patterns ---------------------------------------------------------------------


def _project(patterns: Patterns, i: int, j: int) -> dict[tuple[Value, ...], float]:
    out: defaultdict[tuple[Value, ...], float] = defaultdict(float)
    for p, w in patterns.items():
        if p[i] is not None and p[j] is not None:
            out[p[i], p[j]] += w
    return out


def _merge(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if e <= s:
            continue
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _covered(intervals: Sequence[tuple[int, int]], s: int, e: int) -> bool:
    # elementary intervals never straddle a boundary, so testing the start is enough
    return any(a <= s and e <= b for a, b in intervals)


class Agreement:
    """Collects codings of several coders and computes the agreement rows."""

    def __init__(
        self,
        codings: Iterable[Mapping[str, Any]],
        segments: Iterable[Mapping[str, Any]] | None = None,
        coders: Sequence[str] | None = None,
    ) -> None:
        rows = [r for r in codings if r.get("status") != "rejected"]
        present = sorted({r["coder"] for r in rows})
        chosen = list(coders) if coders else present
        unknown = [c for c in chosen if c not in present]
        if unknown:
            raise PipelineError(
                f"coder(s) {', '.join(map(repr, unknown))} have no codings "
                f"(coders present: {', '.join(present) or 'none'})"
            )
        if len(chosen) < 2:
            raise PipelineError(
                f"agreement needs at least two coders; found {', '.join(chosen) or 'none'}"
            )
        self.coders = chosen
        index = {c: i for i, c in enumerate(chosen)}
        self.rows = [r for r in rows if r["coder"] in index]
        self.codes = sorted({r["code_id"] for r in self.rows})
        # people cover the documents they coded; machine coders every document
        human = {r["coder"] for r in self.rows if r.get("status") == "human"}
        self.coverage: dict[str, set[str] | None] = dict.fromkeys(chosen)
        for c in human:
            self.coverage[c] = {r["doc_id"] for r in self.rows if r["coder"] == c}
        self.segments_given = segments is not None
        units: dict[str, str] = {}
        if segments is not None:
            units = {s["segment_id"]: s["doc_id"] for s in segments}
        for r in self.rows:
            units.setdefault(r["segment_id"], r["doc_id"])
        self.units = units

    def _covers(self, coder: str, doc_id: str) -> bool:
        docs = self.coverage[coder]
        return docs is None or doc_id in docs

    def segment_patterns(self) -> dict[str, Counter[tuple[Value, ...]]]:
        applied: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for r in self.rows:
            applied[r["code_id"]][r["coder"]].add(r["segment_id"])
        out: dict[str, Counter[tuple[Value, ...]]] = {}
        for code in self.codes:
            counts: Counter[tuple[Value, ...]] = Counter()
            for seg, doc in self.units.items():
                counts[
                    tuple(
                        (1 if seg in applied[code][c] else 0) if self._covers(c, doc) else None
                        for c in self.coders
                    )
                ] += 1
            out[code] = counts
        return out

    def character_patterns(self) -> dict[str, Counter[tuple[Value, ...]]]:
        spans: dict[tuple[str, str], dict[str, list[tuple[int, int]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for r in self.rows:
            spans[r["code_id"], r["doc_id"]][r["coder"]].append((int(r["start"]), int(r["end"])))
        out: dict[str, Counter[tuple[Value, ...]]] = {c: Counter() for c in self.codes}
        for (code, doc), by_coder in sorted(spans.items()):
            merged = {c: _merge(by_coder.get(c, [])) for c in self.coders}
            cuts = sorted({x for iv in merged.values() for s, e in iv for x in (s, e)})
            for s, e in pairwise(cuts):
                values = tuple(
                    (1 if _covered(merged[c], s, e) else 0) if self._covers(c, doc) else None
                    for c in self.coders
                )
                if 1 in values:  # only characters somebody coded
                    out[code][values] += e - s
        return out

    def rows_for(self, level: str) -> list[dict[str, Any]]:
        per_code = self.segment_patterns() if level == "segment" else self.character_patterns()
        out: list[dict[str, Any]] = []
        pairs = list(combinations(range(len(self.coders)), 2))

        def emit(code: str, a: str, b: str, measure: str, value: float | None, n: float) -> None:
            out.append(
                {
                    "code_id": code,
                    "coder_a": a,
                    "coder_b": b,
                    "level": level,
                    "measure": measure,
                    "value": None if value is None else round(value, 6),
                    "n": round(n),
                }
            )

        pooled: Counter[tuple[Value, ...]] = Counter()
        for code in self.codes:
            patterns = per_code[code]
            pooled.update(patterns)
            self._emit_code(emit, code, patterns, pairs)
        pair_parts = {
            (i, j): [kappa_parts(_project(per_code[c], i, j)) for c in self.codes] for i, j in pairs
        }
        for i, j in pairs:
            a, b = self.coders[i], self.coders[j]
            projected = _project(pooled, i, j)
            n = pairable_units(projected)
            emit(ALL, a, b, "percent", percent_from(projected), n)
            emit(ALL, a, b, "kappa", pooled_kappa(pair_parts[i, j]), n)
        n = pairable_units(pooled)
        emit(ALL, ALL, ALL, "percent", percent_from(pooled), n)
        emit(ALL, ALL, ALL, "alpha", alpha_from(pooled), n)
        return out

    def _emit_code(
        self, emit: Any, code: str, patterns: Patterns, pairs: list[tuple[int, int]]
    ) -> None:
        for i, j in pairs:
            projected = _project(patterns, i, j)
            n = pairable_units(projected)
            a, b = self.coders[i], self.coders[j]
            emit(code, a, b, "percent", percent_from(projected), n)
            emit(code, a, b, "kappa", kappa_from(projected), n)
        n = pairable_units(patterns)
        emit(code, ALL, ALL, "percent", percent_from(patterns), n)
        emit(code, ALL, ALL, "alpha", alpha_from(patterns), n)

    def table(self, level: str = "both") -> pa.Table:
        if level not in (*LEVELS, "both"):
            raise PipelineError(f"level must be segment, character or both; got {level!r}")
        levels = LEVELS if level == "both" else (level,)
        rows = [r for lv in levels for r in self.rows_for(lv)]
        return pa.Table.from_pylist(rows, schema=AGREEMENT.schema)


def agreement_table(
    codings: Iterable[Mapping[str, Any]],
    segments: Iterable[Mapping[str, Any]] | None = None,
    coders: Sequence[str] | None = None,
    level: str = "both",
) -> pa.Table:
    """The ``agreement`` dataset for ``codings`` (rows with coder, code_id, segment_id,
    doc_id, start, end, status); rejected codings are left out."""
    return Agreement(codings, segments, coders).table(level)


# -- a readable table ------------------------------------------------------------------------


def _fmt(value: float | None, known: bool) -> str:
    if not known:
        return ""
    return "undef" if value is None else f"{value:.3f}"


def format_table(table: pa.Table) -> str:
    """One line per level, code and coder pair: percent, kappa, alpha and n."""
    cells: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in table.to_pylist():
        key = (r["level"], r["code_id"], r["coder_a"], r["coder_b"])
        cell = cells.setdefault(key, {"n": r["n"]})
        cell[r["measure"]] = r["value"]
    header = ("level", "code", "coders", "percent", "kappa", "alpha", "n")
    lines = [header]
    for (level, code, a, b), cell in cells.items():
        who = f"{a} ~ {b}" if a != ALL else "all coders"
        lines.append(
            (
                level,
                "all codes" if code == ALL else code,
                who,
                _fmt(cell.get("percent"), "percent" in cell),
                _fmt(cell.get("kappa"), "kappa" in cell),
                _fmt(cell.get("alpha"), "alpha" in cell),
                str(cell["n"]),
            )
        )
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = []
    for row in lines:
        left = [row[i].ljust(widths[i]) for i in range(3)]
        right = [row[i].rjust(widths[i]) for i in range(3, len(header))]
        out.append("  ".join(left + right).rstrip())
    return "\n".join(out) + "\n"
