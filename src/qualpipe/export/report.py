"""Report exporters: one self-contained HTML page and a Word document.

``html`` writes ``report.html``: inline CSS and inline SVG only (no script, no font, no
URL), so the file can be mailed, archived and printed as it is. Sections: title and run
summary; "Table 1. Themes and illustrative quotes"; theme prevalence by a participant
attribute (``role`` by default) as a grouped bar chart and a table; a code x participant
heatmap; the co-occurrence matrix of themes; machine proposals, separated and marked
*for review*; the anonymisation summary (counts only, never a value); run provenance.

``docx`` writes ``report.docx`` (python-docx): Table 1 laid out as in a journal article
(Theme / Sub-theme / Illustrative quotes, theme cells merged across their sub-themes,
header row repeated on each page, thin horizontal rules only), a prevalence table and a
methods paragraph from the run's provenance.

Options (``export: {with: {options: {html: {...}}}}``, the same for ``docx``):
``title``; ``attribute`` (participant attribute to compare, default ``role``, else the
first one present); ``quotes_per_theme`` (default 3); ``cooccurrence_level``
(``segment`` or ``participant``); ``max_participants`` (heatmap columns, default 150).
"""

from __future__ import annotations

import importlib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from qualpipe.errors import QualpipeError
from qualpipe.export import svg
from qualpipe.export.svg import esc
from qualpipe.exporters import ExportBundle, Exporter

NOT_RECORDED = "(not recorded)"
TABLE1 = "Table 1. Themes and illustrative quotes"
#: Stage parameters that may hold real identifiers or secrets: never printed.
REDACTED_PARAMS = frozenset({"deny", "allow", "speakers", "key", "names", "secret", "token"})
DOCX_HINT = "pip install 'qualpipe[docx]'"


# -- the report model, shared by HTML and DOCX ------------------------------------------------


@dataclass
class Quote:
    text: str
    label: str
    rank: int
    segment_id: str
    participant_id: str | None


@dataclass
class Theme:
    theme_id: str
    name: str
    level: str | None
    parent_id: str | None
    description: str
    segments: int | None
    documents: int | None
    participants: int | None
    counts: dict[str, dict[str, int]]
    proposal: bool
    children: list[Theme] = field(default_factory=list)
    quotes: list[Quote] = field(default_factory=list)


@dataclass
class Table1Group:
    """One theme of Table 1 and its rows: (sub-theme or None, quotes)."""

    theme: Theme
    rows: list[tuple[Theme | None, list[Quote]]]
    overarching: Theme | None = None  # set on the first theme under an overarching theme


@dataclass
class Report:
    title: str
    pipeline: str
    attribute: str | None
    groups: list[str]  # attribute values, in display order
    totals: dict[str, int]  # participants per attribute value
    themes: list[Theme]  # roots, ordered
    by_id: dict[str, Theme]
    proposals: list[Theme]
    table1: list[Table1Group]
    has_subthemes: bool
    provenance: list[dict[str, Any]]
    summary: list[tuple[str, str]]
    codings: CodingStats
    codebook: list[dict[str, Any]]
    cooccurrence: list[dict[str, Any]]
    findings: FindingStats | None
    options: Mapping[str, Any]


@dataclass
class CodingStats:
    """What the report shows of the codings, counted a batch at a time (no coding is kept)."""

    total: int = 0
    status: Counter[str] = field(default_factory=Counter)
    coders: dict[str, str | None] = field(default_factory=dict)  # coder -> first version
    used: set[str] = field(default_factory=set)  # code ids of codings not rejected
    # (code id, participant) -> coded segments (not rejected)
    cells: Counter[tuple[str, str]] = field(default_factory=Counter)
    groups: dict[str, str] = field(default_factory=dict)  # participant -> group, in order

    def __bool__(self) -> bool:
        return self.total > 0


@dataclass
class FindingStats:
    """The anonymisation findings as counts (never values)."""

    total: int = 0
    per_type: Counter[str] = field(default_factory=Counter)
    docs_per_type: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    per_recogniser: Counter[str] = field(default_factory=Counter)
    documents: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return self.total > 0


def _read(bundle: ExportBundle, name: str, columns: Sequence[str]) -> list[dict[str, Any]] | None:
    """Only ``columns`` of dataset ``name`` (never full document text), or None."""
    reader = bundle.datasets.get(name)
    if reader is None:
        return None
    rows: list[dict[str, Any]] = []
    for f in reader.files:
        present = pq.read_schema(f).names
        table = pq.read_table(f, columns=[c for c in columns if c in present])
        rows.extend(table.to_pylist())
    return rows


def _batches(bundle: ExportBundle, name: str, columns: Sequence[str]) -> Iterable[pa.Table]:
    """Dataset ``name`` one part file at a time, only ``columns`` (those it has)."""
    reader = bundle.datasets.get(name)
    if reader is None:
        return
    for f in reader.files:
        present = pq.read_schema(f).names
        yield pq.read_table(f, columns=[c for c in columns if c in present])


class _Participants:
    """Segment -> (participant, group) without a dictionary of every segment: each
    document keeps the participant of its first segment, and only segments of another
    participant (in a focus group, say) are held one by one."""

    def __init__(self) -> None:
        self.of_doc: dict[str, tuple[str, str]] = {}
        self.of_segment: dict[str, tuple[str, str]] = {}
        self.groups: dict[str, str] = {}  # participant -> group, first seen first
        self.segments = 0

    def add(self, segment_id: str, doc_id: str, who: tuple[str, str]) -> None:
        self.segments += 1
        self.groups.setdefault(who[0], who[1])
        if self.of_doc.setdefault(doc_id, who) != who:
            self.of_segment[segment_id] = who

    def get(self, segment_id: str, doc_id: str) -> tuple[str, str] | None:
        return self.of_segment.get(segment_id) or self.of_doc.get(doc_id)


def _num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def parse_prevalence(
    raw: str | None,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """``(counts, totals)`` from a themes ``prevalence`` JSON string.

    ``counts[attribute][value]`` are participants with the theme; ``totals`` the
    participants per value, read from a ``"_total"`` entry inside each attribute
    (``{"role": {"Service user": 5, "_total": {"Service user": 6}}}``) or at the top
    level keyed by attribute (``{"role": {...}, "_total": {"role": {...}}}``).
    """
    counts: dict[str, dict[str, int]] = {}
    totals: dict[str, dict[str, int]] = {}
    if not raw:
        return counts, totals
    try:
        data = json.loads(raw)
    except ValueError:
        return counts, totals
    if not isinstance(data, dict):
        return counts, totals
    for attr, mapping in data.items():
        if attr == "_total" or not isinstance(mapping, dict):
            continue
        values: dict[str, int] = {}
        for value, n in mapping.items():
            if value == "_total":
                if isinstance(n, dict):
                    totals[attr] = {str(k): int(v) for k, v in n.items() if _num(v)}
            elif _num(n):
                values[str(value)] = int(n)
        counts[attr] = values
    top = data.get("_total")
    if isinstance(top, dict):
        if all(isinstance(v, dict) for v in top.values()):
            for attr, mapping in top.items():
                totals.setdefault(
                    str(attr), {str(k): int(v) for k, v in mapping.items() if _num(v)}
                )
        elif len(counts) == 1:  # {"role": {...}, "_total": {"Service user": 6}}
            attr = next(iter(counts))
            totals.setdefault(attr, {str(k): int(v) for k, v in top.items() if _num(v)})
    return counts, totals


def _natural(value: str) -> list[Any]:
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", value)]


def _label(row: Mapping[str, Any], attribute: str | None) -> str:
    label = str(row.get("label") or "").strip()
    if not label:
        attrs = dict(row.get("attributes") or [])
        label = str(attrs.get(attribute or "role") or row.get("participant_id") or "")
    if label and not label.startswith("("):
        label = f"({label})"
    return label


def _quoted(text: str) -> str:
    text = " ".join(str(text).split())
    if text[:1] in "\"“”'‘’«»„":
        return text
    return f"“{text}”"


def _order_key(codebook_pos: Mapping[str, int]) -> Any:
    def key(item: tuple[int, Theme]) -> tuple[int, int]:
        index, theme = item
        return (codebook_pos.get(theme.theme_id, 1 << 30), index)

    return key


def _codebook_positions(codebook: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Depth-first order of the codebook tree (siblings by ``position``)."""
    children: dict[str | None, list[tuple[int, int, str]]] = defaultdict(list)
    ids = {str(r["code_id"]) for r in codebook}
    for i, r in enumerate(codebook):
        parent = r.get("parent_id")
        parent = str(parent) if parent is not None and str(parent) in ids else None
        pos = r.get("position")
        children[parent].append((pos if isinstance(pos, int) else i, i, str(r["code_id"])))
    order: dict[str, int] = {}

    def walk(parent: str | None) -> None:
        for _, _, cid in sorted(children.get(parent, [])):
            if cid not in order:
                order[cid] = len(order)
                walk(cid)

    walk(None)
    return order


def _choose_attribute(
    option: Any, themes: Iterable[Theme], fallback: Iterable[Mapping[str, Any]]
) -> str | None:
    if option:
        return str(option)
    seen: list[str] = []
    for t in themes:
        seen.extend(a for a in t.counts if a not in seen)
    if not seen:
        for row in fallback:
            seen.extend(str(k) for k, _ in (row.get("attributes") or []) if str(k) not in seen)
    if "role" in seen:
        return "role"
    return seen[0] if seen else None


def build_report(bundle: ExportBundle) -> Report:
    """Everything both report formats show, from the bundle's datasets."""
    options = bundle.options
    quotes_per_theme = int(options.get("quotes_per_theme", 3))
    codebook = (
        _read(bundle, "codebook", ["code_id", "parent_id", "name", "level", "position"]) or []
    )
    positions = _codebook_positions(codebook)

    # themes, with prevalence parsed; the theme stage writes its machine proposals to a
    # dataset of their own (``proposals``, kind themes): they are proposals wherever found
    theme_rows = bundle.rows("themes")
    known = {str(r["theme_id"]) for r in theme_rows}
    theme_rows += [
        {**r, "proposal": True}
        for r in bundle.rows("proposals")
        if str(r.get("theme_id")) not in known
    ]
    themes: list[Theme] = []
    all_totals: dict[str, dict[str, int]] = defaultdict(dict)
    for r in theme_rows:
        counts, theme_totals = parse_prevalence(r.get("prevalence"))
        for attr, per_value in theme_totals.items():
            for value, n in per_value.items():
                all_totals[attr][value] = max(n, all_totals[attr].get(value, 0))
        themes.append(
            Theme(
                theme_id=str(r["theme_id"]),
                name=str(r.get("name") or r["theme_id"]),
                level=r.get("level"),
                parent_id=r.get("parent_id"),
                description=str(r.get("description") or ""),
                segments=r.get("segments"),
                documents=r.get("documents"),
                participants=r.get("participants"),
                counts=counts,
                proposal=bool(r.get("proposal")),
            )
        )
    by_id = {t.theme_id: t for t in themes}
    roots: list[tuple[int, Theme]] = []
    for i, t in enumerate(themes):
        parent = by_id.get(str(t.parent_id)) if t.parent_id is not None else None
        if parent is not None and parent is not t:
            parent.children.append(t)
        else:
            roots.append((i, t))
    index_of = {t.theme_id: i for i, t in enumerate(themes)}
    key = _order_key(positions)
    for t in themes:
        t.children.sort(key=lambda c: key((index_of[c.theme_id], c)))
    root_list = [t for _, t in sorted(roots, key=key)]

    # quotes, best first
    attribute_rows = _read(bundle, "documents", ["doc_id", "participant_id", "attributes"]) or []
    attribute = _choose_attribute(options.get("attribute"), themes, attribute_rows)
    quotes: dict[str, list[tuple[int, Quote]]] = defaultdict(list)
    for q in bundle.rows("quotes"):
        rank = int(q.get("rank") or 0)
        quotes[str(q["theme_id"])].append(
            (
                rank,
                Quote(
                    text=str(q.get("text") or ""),
                    label=_label(q, attribute),
                    rank=rank,
                    segment_id=str(q.get("segment_id")),
                    participant_id=q.get("participant_id"),
                ),
            )
        )
    for tid, qs in quotes.items():
        if tid in by_id:
            by_id[tid].quotes = [q for _, q in sorted(qs, key=lambda x: x[0])][:quotes_per_theme]

    # participants per segment (for the heatmap) and group sizes
    doc_info = {
        str(d["doc_id"]): (d.get("participant_id"), dict(d.get("attributes") or []))
        for d in attribute_rows
    }
    participants = _Participants()
    columns = ["segment_id", "doc_id", "participant_id", "attributes"]
    for part in _batches(bundle, "segments", columns):
        for s in part.to_pylist():
            pid, attrs = s.get("participant_id"), dict(s.get("attributes") or [])
            d_pid, d_attrs = doc_info.get(str(s["doc_id"]), (None, {}))
            pid = str(pid or d_pid or s["doc_id"])
            group = str((attrs or d_attrs).get(attribute or "") or NOT_RECORDED)
            participants.add(str(s["segment_id"]), str(s["doc_id"]), (pid, group))
    participant_group = dict(participants.groups)
    for doc_id, (pid, attrs) in doc_info.items():
        participant_group.setdefault(
            str(pid or doc_id), str(attrs.get(attribute or "") or NOT_RECORDED)
        )
    totals = dict(all_totals.get(attribute or "", {}))
    if not totals and participant_group:
        totals = dict(Counter(participant_group.values()))
    group_values = set(totals)
    for t in themes:
        group_values.update(t.counts.get(attribute or "", {}))
    groups = sorted(group_values, key=lambda v: (v == NOT_RECORDED, _natural(v)))

    # Table 1 (confirmed themes only) and the proposals
    table1: list[Table1Group] = []
    proposals = [t for t in themes if t.proposal]

    def confirmed(items: Iterable[Theme]) -> list[Theme]:
        return [t for t in items if not t.proposal]

    def flatten(t: Theme) -> list[Theme]:
        out = [t]
        for c in confirmed(t.children):
            out.extend(flatten(c))
        return out

    def group_for(t: Theme) -> Table1Group:
        rows: list[tuple[Theme | None, list[Quote]]] = []
        subs = [s for c in confirmed(t.children) for s in flatten(c)]
        shown = {q.segment_id for s in subs for q in s.quotes}
        own = [q for q in t.quotes if q.segment_id not in shown]
        if own or not subs:
            rows.append((None, own))
        rows.extend((s, s.quotes) for s in subs)
        return Table1Group(t, rows)

    for root in confirmed(root_list):
        if root.level == "overarching":
            first = True
            for child in confirmed(root.children):
                g = group_for(child)
                if first:
                    g.overarching = root
                    first = False
                table1.append(g)
            if first:  # an overarching theme without themes
                g = group_for(root)
                g.overarching = root
                table1.append(g)
        else:
            table1.append(group_for(root))
    has_subthemes = any(sub is not None for g in table1 for sub, _ in g.rows)

    codings = _coding_stats(bundle, participants)
    provenance = bundle.provenance()
    findings = _finding_stats(bundle)
    cooc = bundle.rows("cooccurrence")

    # run summary
    summary: list[tuple[str, str]] = []
    if attribute_rows:
        summary.append(("Documents", f"{len(attribute_rows)}"))
    if participant_group:
        per = Counter(participant_group.values())
        detail = ", ".join(f"{g} {per[g]}" for g in groups if per.get(g))
        summary.append(
            ("Participants", f"{len(participant_group)}" + (f" ({detail})" if detail else ""))
        )
    if "segments" in bundle.datasets:
        summary.append(("Segments", f"{participants.segments}"))
    if codings:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(codings.status.items()))
        summary.append(("Codings", f"{codings.total} ({detail})"))
    if codebook:
        summary.append(("Codebook nodes", f"{len(codebook)}"))
    if themes:
        conf = Counter(t.level or "theme" for t in themes if not t.proposal)
        parts = [
            f"{n} {label}"
            for level, label in (
                ("theme", "themes"),
                ("subtheme", "sub-themes"),
                ("overarching", "overarching"),
            )
            if (n := conf.get(level, 0))
        ]
        summary.append(("Themes", ", ".join(parts) or "0"))
    if proposals:
        summary.append(("Machine proposals", f"{len(proposals)} (for review)"))
    if findings is not None:
        summary.append(("Identifiers replaced", f"{findings.total}"))
    reviewed = review_counts(provenance)
    if reviewed:
        summary.append(("Review decisions", _review_sentence(reviewed)))

    title = str(options.get("title") or f"{bundle.pipeline_name or 'qualpipe'}: thematic analysis")
    return Report(
        title=title,
        pipeline=bundle.pipeline_name,
        attribute=attribute,
        groups=groups,
        totals=totals,
        themes=root_list,
        by_id=by_id,
        proposals=proposals,
        table1=table1,
        has_subthemes=has_subthemes,
        provenance=provenance,
        summary=summary,
        codings=codings,
        codebook=codebook,
        cooccurrence=cooc,
        findings=findings,
        options=options,
    )


def _coding_stats(bundle: ExportBundle, participants: _Participants) -> CodingStats:
    """Counts of the codings, one part file at a time. A segment coded with the same code
    by several coders counts once per cell of the heatmap; the code stage writes every
    coder's codings of a batch of segments to one part, so the check is per part."""
    stats = CodingStats()
    columns = ["segment_id", "doc_id", "code_id", "coder", "coder_version", "status"]
    for part in _batches(bundle, "codings", columns):
        n = part.num_rows
        cols = {
            c: part.column(c).to_pylist() if c in part.column_names else [None] * n for c in columns
        }
        in_part: set[tuple[str, str]] = set()
        for sid, doc, code, coder, version, status in zip(*cols.values(), strict=True):
            stats.total += 1
            stats.status[str(status)] += 1
            stats.coders.setdefault(str(coder), version)
            if status == "rejected":
                continue
            code = str(code)
            stats.used.add(code)
            if (sid, code) in in_part:
                continue
            in_part.add((sid, code))
            pid, group = participants.get(str(sid), str(doc)) or (str(doc), NOT_RECORDED)
            stats.groups.setdefault(pid, group)
            stats.cells[(code, pid)] += 1
    return stats


def _finding_stats(bundle: ExportBundle) -> FindingStats | None:
    if "findings" not in bundle.datasets:
        return None
    stats = FindingStats()
    for part in _batches(bundle, "findings", ["doc_id", "entity_type", "recogniser"]):
        docs = [str(d) for d in part.column("doc_id").to_pylist()]
        types = [str(t) for t in part.column("entity_type").to_pylist()]
        if "recogniser" in part.column_names:
            recs = [str(r or "?") for r in part.column("recogniser").to_pylist()]
        else:
            recs = ["?"] * part.num_rows
        stats.total += part.num_rows
        stats.per_type.update(types)
        stats.per_recogniser.update(recs)
        stats.documents.update(docs)
        for t, d in zip(types, docs, strict=True):
            stats.docs_per_type[t].add(d)
    return stats


def prevalence_themes(report: Report) -> list[Theme]:
    """Confirmed themes and sub-themes (not overarching), in Table 1 order."""
    out: list[Theme] = []
    for g in report.table1:
        out.append(g.theme)
        out.extend(sub for sub, _ in g.rows if sub is not None)
    return out


def _share(n: int, total: int | None) -> str:
    if not total:
        return f"{n}"
    return f"{n} ({n / total * 100:.0f}%)"


def redact(params: Mapping[str, Any]) -> dict[str, Any]:
    """Stage parameters with values that may identify people replaced by a note."""
    out: dict[str, Any] = {}
    for k, v in params.items():
        if k in REDACTED_PARAMS and v not in (None, [], {}, ""):
            n = len(v) if isinstance(v, list | dict) else 1
            out[k] = f"({n} value{'s' if n != 1 else ''}, not shown)"
        else:
            out[k] = v
    return out


def _run_facts(report: Report) -> tuple[str | None, str | None, str | None]:
    """(qualpipe version, git sha, finished at) of the run."""
    version = next(
        (s.get("qualpipe_version") for s in report.provenance if s.get("qualpipe_version")), None
    )
    sha = next((s.get("git_sha") for s in reversed(report.provenance) if s.get("git_sha")), None)
    finished = max(
        (str(s["finished_at"]) for s in report.provenance if s.get("finished_at")), default=None
    )
    if version is None:
        from qualpipe import __version__

        version = __version__
    return version, sha, finished


def _coders(report: Report) -> list[str]:
    seen = report.codings.coders
    return [f"{k} {v}" if v else k for k, v in sorted(seen.items())]


# -- HTML ----------------------------------------------------------------------------------------

CSS = """
:root{--ink:#1f2328;--muted:#59636e;--rule:#d0d7de;--accent:#0b5cad;--soft:#f6f8fa}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'Helvetica Neue',Arial,sans-serif;
color:var(--ink);line-height:1.5;margin:0;padding:2rem 1.5rem 4rem;font-size:16px;background:#fff}
main{max-width:70rem;margin:0 auto}
h1{font-size:1.9rem;line-height:1.2;margin:0 0 .4rem}
h2{font-size:1.3rem;margin:2.6rem 0 .8rem;padding-bottom:.3rem;border-bottom:2px solid var(--ink)}
h3{font-size:1.05rem;margin:1.6rem 0 .5rem}
p{margin:.4rem 0 .8rem;max-width:48rem}
.meta{color:var(--muted);font-size:.92rem}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em}
nav.toc{margin:1rem 0 0;font-size:.92rem;display:flex;flex-wrap:wrap;gap:.3rem 1.2rem}
nav.toc a{color:var(--accent);text-decoration:none;white-space:nowrap}
dl.summary{display:grid;grid-template-columns:repeat(auto-fill,minmax(13rem,1fr));gap:.6rem;
margin:1.2rem 0}
dl.summary div{background:var(--soft);border:1px solid var(--rule);border-radius:6px;
padding:.5rem .8rem}
dl.summary dt{font-size:.8rem;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
dl.summary dd{margin:0;font-size:1.05rem;font-weight:600}
table{border-collapse:collapse;width:100%;margin:.6rem 0 1rem;font-size:.95rem}
caption{caption-side:top;text-align:left;font-weight:700;padding:0 0 .5rem;font-size:1rem}
caption span,p.tcap span{font-weight:400;font-style:italic}
p.tcap{font-weight:700;margin:.6rem 0 .5rem;max-width:none}
p.legend{max-width:none}
th,td{text-align:left;vertical-align:top;padding:.45rem .6rem}
thead th{border-top:2px solid var(--ink);border-bottom:1px solid var(--ink);font-weight:700}
tbody tr:last-child td,tbody tr:last-child th{border-bottom:2px solid var(--ink)}
table.t1 td,table.t1 th{border-bottom:1px solid var(--rule)}
table.t1 td.theme{font-weight:700;width:20%}
table.t1 td.sub{width:20%;font-weight:600}
table.t1 tr.over td{background:var(--soft);font-style:italic;border-bottom:1px solid var(--ink)}
.desc{display:block;font-weight:400;color:var(--muted);font-size:.85rem;margin-top:.25rem;
font-style:normal}
ul.quotes{list-style:none;margin:0;padding:0}
ul.quotes li{margin:0 0 .55rem;font-family:Georgia,'Times New Roman',serif;font-size:1rem}
ul.quotes li:last-child{margin-bottom:0}
.label{font-family:system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;
color:var(--muted);font-size:.85rem;white-space:nowrap}
.none{color:var(--muted);font-style:italic}
table.num td.n,table.num th.n{text-align:right;font-variant-numeric:tabular-nums}
table.num td.indent{padding-left:1.8rem;color:var(--muted)}
figure{margin:1rem 0 1.5rem}
figcaption{font-weight:700;margin-bottom:.4rem}
figcaption span{font-weight:400;font-style:italic}
figure .note{font-size:.85rem;color:var(--muted);margin-top:.3rem}
svg.chart{max-width:100%;height:auto;display:block}
svg.hbar{width:100%}
.scroll{overflow-x:auto}
table.cooc{width:auto;font-size:.88rem}
table.cooc td{text-align:center;min-width:2.6rem;font-variant-numeric:tabular-nums}
table.cooc td.diag{font-weight:700;background:#eaeef2}
table.cooc th.row{text-align:left;white-space:nowrap;font-weight:400}
table.cooc th.col{text-align:center}
.legend .key{white-space:nowrap;margin-left:.8rem}
.legend i{display:inline-block;width:1.4rem;height:.9rem;vertical-align:middle;
border:1px solid var(--rule);margin-right:.25rem}
table.cooc td.zero{color:#b0b7bf}
section.review{border:2px dashed #b35900;background:#fffaf2;border-radius:8px;
padding:.2rem 1.2rem 1rem;margin-top:2.6rem}
section.review h2{border-bottom-color:#b35900;margin-top:1rem}
.badge{display:inline-block;background:#b35900;color:#fff;font-size:.75rem;font-weight:700;
letter-spacing:.05em;text-transform:uppercase;border-radius:4px;padding:.1rem .45rem;
vertical-align:middle;margin-left:.5rem}
.review .item{border-top:1px solid #f0d9bf;padding:.6rem 0}
table.prov{font-size:.85rem}
table.prov td,table.prov th{border-bottom:1px solid var(--rule)}
table.prov pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:.8rem;
font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
footer{margin-top:3rem;color:var(--muted);font-size:.85rem}
@media print{
 body{padding:0;font-size:10.5pt}
 main{max-width:none}
 nav.toc{display:none}
 h2,p.tcap,figcaption{break-after:avoid;page-break-after:avoid}
 figure,tr,dl.summary div,.review .item{break-inside:avoid;page-break-inside:avoid}
 thead{display:table-header-group}
 .scroll{overflow:visible}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 a{color:inherit;text-decoration:none}
}
@page{margin:18mm 15mm}
"""


class _Numbers:
    """Consecutive table and figure numbers (Table 1 is always the themes table)."""

    def __init__(self) -> None:
        self.table = 1
        self.figure = 0

    def next_table(self) -> int:
        self.table += 1
        return self.table

    def next_figure(self) -> int:
        self.figure += 1
        return self.figure


def _quote_list(quotes: Sequence[Quote]) -> str:
    if not quotes:
        return '<span class="none">No quote selected.</span>'
    items = "".join(
        f'<li>{esc(_quoted(q.text))} <span class="label">{esc(q.label)}</span></li>' for q in quotes
    )
    return f'<ul class="quotes">{items}</ul>'


def _name_desc(t: Theme) -> str:
    desc = f'<span class="desc">{esc(t.description)}</span>' if t.description else ""
    return f'<span class="name">{esc(t.name)}</span>{desc}'


def _html_table1(report: Report) -> str:
    if not report.table1:
        return (
            f'<p class="none">{esc(TABLE1)}: no themes in this run (add a theme stage, '
            "or the themes are all machine proposals awaiting review).</p>"
        )
    cols = 3 if report.has_subthemes else 2
    head = "<th>Theme</th>" + ("<th>Sub-theme</th>" if cols == 3 else "")
    head += "<th>Illustrative quotes</th>"
    body: list[str] = []
    for g in report.table1:
        if g.overarching is not None:
            o = g.overarching
            desc = f' <span class="desc">{esc(o.description)}</span>' if o.description else ""
            body.append(
                f'<tr class="over"><td colspan="{cols}">Overarching theme: '
                f"<strong>{esc(o.name)}</strong>{desc}</td></tr>"
            )
        span = len(g.rows)
        for i, (sub, quotes) in enumerate(g.rows):
            cells = []
            if i == 0:
                rs = f' rowspan="{span}"' if span > 1 else ""
                cells.append(f'<td class="theme"{rs}>{_name_desc(g.theme)}</td>')
            if cols == 3:
                cells.append(
                    f'<td class="sub">{_name_desc(sub)}</td>'
                    if sub is not None
                    else '<td class="sub"><span class="none">(theme as a whole)</span></td>'
                )
            cells.append(f"<td>{_quote_list(quotes)}</td>")
            tid = esc(sub.theme_id if sub is not None else g.theme.theme_id)
            body.append(f'<tr data-theme="{tid}">{"".join(cells)}</tr>')
    return (
        '<table class="t1" id="table-1"><caption>Table 1. <span>Themes and illustrative '
        f"quotes</span></caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}"
        "</tbody></table>"
    )


def _html_prevalence(report: Report, numbers: _Numbers) -> str:
    items = prevalence_themes(report)
    attr = report.attribute
    if not items or attr is None or not report.groups:
        return '<p class="none">No prevalence by participant attribute in this run.</p>'
    out: list[str] = []
    chart_themes = [t for t in items if t.level != "subtheme"] or items
    totals = report.totals
    if totals:
        series = [svg.Series(g, totals.get(g)) for g in report.groups]
        shares: dict[tuple[str, str], float] = {}
        counts: dict[tuple[str, str], int] = {}
        names = _unique_names(chart_themes)
        for t, name in zip(chart_themes, names, strict=True):
            for g in report.groups:
                n = t.counts.get(attr, {}).get(g, 0)
                counts[(name, g)] = n
                shares[(name, g)] = n / totals[g] if totals.get(g) else 0.0
        chart = svg.grouped_hbar(
            names,
            series,
            shares,
            counts,
            title=f"Theme prevalence by {attr}",
            x_label=f"Participants in each {attr} group with the theme (%)",
        )
        fig = numbers.next_figure()
        out.append(
            f'<figure id="figure-prevalence"><figcaption>Figure {fig}. <span>Theme prevalence '
            f"by {esc(attr)}: share of participants in each group who contributed at least one "
            f'segment to the theme</span></figcaption>{chart}<p class="note">Bars show '
            "per cent of the group; labels give participants with the theme / participants "
            "in the group.</p></figure>"
        )
    tno = numbers.next_table()
    head = "".join(
        f'<th class="n">{esc(g)}' + (f" (n = {totals[g]})" if g in totals else "") + "</th>"
        for g in report.groups
    )
    all_total = sum(totals.values()) if totals else None
    head += '<th class="n">All' + (f" (n = {all_total})" if all_total else "") + "</th>"
    rows = []
    for t in items:
        cells = "".join(
            f'<td class="n">{esc(_share(t.counts.get(attr, {}).get(g, 0), totals.get(g)))}</td>'
            for g in report.groups
        )
        total_n = t.participants
        if total_n is None:
            total_n = sum(t.counts.get(attr, {}).values())
        cells += f'<td class="n">{esc(_share(int(total_n), all_total))}</td>'
        cls = ' class="indent"' if t.level == "subtheme" else ""
        rows.append(f"<tr><td{cls}>{esc(t.name)}</td>{cells}</tr>")
    out.append(
        f'<table class="num" id="table-prevalence"><caption>Table {tno}. <span>Participants '
        f"with each theme by {esc(attr)}, n (%)</span></caption><thead><tr><th>Theme</th>{head}"
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return "".join(out)


def _unique_names(themes: Sequence[Theme]) -> list[str]:
    names: list[str] = []
    for t in themes:
        name = t.name
        while name in names:
            name = f"{name} ({t.theme_id})"
        names.append(name)
    return names


def _code_rows(report: Report) -> tuple[list[str], dict[str, str]]:
    """Codes present in the codings, codebook order; and code id -> display name."""
    names = {str(r["code_id"]): str(r.get("name") or r["code_id"]) for r in report.codebook}
    order = _codebook_positions(report.codebook)
    ids = sorted(report.codings.used, key=lambda c: (order.get(c, 1 << 30), c))
    label: dict[str, str] = {}
    taken: set[str] = set()
    for cid in ids:
        name = names.get(cid, cid)
        if name in taken:
            name = f"{name} ({cid})"
        taken.add(name)
        label[cid] = name
    return ids, label


def _html_heatmap(report: Report, numbers: _Numbers) -> str:
    if not report.codings:
        return '<p class="none">No codings in this run.</p>'
    ids, label = _code_rows(report)
    cells, groups = report.codings.cells, report.codings.groups
    max_p = int(report.options.get("max_participants", 150))
    per_participant: Counter[str] = Counter()
    for (_, pid), n in cells.items():
        per_participant[pid] += n
    participants = list(groups)
    note = ""
    if len(participants) > max_p:
        participants = [p for p, _ in per_participant.most_common(max_p)]
        note = (
            f" Showing the {max_p} participants with most coded segments of "
            f"{len(groups)} (option <code>max_participants</code>)."
        )
    group_order = {g: i for i, g in enumerate(report.groups)}
    participants.sort(
        key=lambda p: (group_order.get(groups[p], len(group_order)), groups[p], _natural(p))
    )
    column_groups: list[tuple[str, int]] = []
    for p in participants:
        if column_groups and column_groups[-1][0] == groups[p]:
            column_groups[-1] = (groups[p], column_groups[-1][1] + 1)
        else:
            column_groups.append((groups[p], 1))
    values = {(label[cid], pid): float(n) for (cid, pid), n in cells.items()}
    chart = svg.heatmap(
        [label[c] for c in ids],
        participants,
        values,
        title="Coded segments per code and participant",
        column_groups=column_groups if report.attribute else (),
        value_name="coded segments",
    )
    fig = numbers.next_figure()
    by = f", grouped by {esc(report.attribute)}" if report.attribute else ""
    return (
        f'<figure id="figure-heatmap"><figcaption>Figure {fig}. <span>Coded segments per code '
        f"(rows) and participant (columns){by}</span></figcaption>"
        f'<div class="scroll">{chart}</div><p class="note">Darker cells: more segments of the '
        "participant carry the code (rejected machine suggestions are left out)."
        f"{note}</p></figure>"
    )


def _html_cooccurrence(report: Report, numbers: _Numbers) -> str:
    rows = [r for r in report.cooccurrence if r.get("kind") == "theme"]
    if not rows:
        return '<p class="none">No co-occurrence of themes in this run.</p>'
    levels = sorted({str(r.get("level")) for r in rows})
    wanted = report.options.get("cooccurrence_level")
    level = str(wanted) if wanted in levels else ("segment" if "segment" in levels else levels[0])
    rows = [r for r in rows if r.get("level") == level]
    order: list[str] = []
    for g in report.table1:
        if g.overarching is not None:
            order.append(g.overarching.theme_id)
        order.append(g.theme.theme_id)
        order.extend(sub.theme_id for sub, _ in g.rows if sub is not None)
    order.extend(t.theme_id for t in report.proposals)
    present = {str(r["a"]) for r in rows} | {str(r["b"]) for r in rows}
    ids = [t for t in order if t in present] + sorted(present - set(order))
    cell: dict[tuple[str, str], tuple[int, float | None]] = {}
    for r in rows:
        a, b = str(r["a"]), str(r["b"])
        value = (int(r["count"]), r.get("jaccard"))
        cell[(a, b)] = value
        cell.setdefault((b, a), value)
    off = [c for (a, b), c in cell.items() if a != b]
    use_jaccard = bool(off) and all(j is not None for _, j in off)
    vmax = max([float(j) if use_jaccard and j is not None else float(n) for n, j in off] or [0.0])
    head = "".join(
        f'<th class="col" title="{esc(_theme_name(report, t))}">{i + 1}</th>'
        for i, t in enumerate(ids)
    )
    body = []
    for i, a in enumerate(ids):
        tds = []
        for b in ids:
            n, j = cell.get((a, b), (0, None))
            if a == b:
                tds.append(f'<td class="diag" title="segments with the theme">{n}</td>')
                continue
            if n == 0:
                tds.append('<td class="zero" title="0">·</td>')
                continue
            v = float(j) if use_jaccard and j is not None else float(n)
            bg = svg.shade(v, vmax)
            tip = f"{n}" + (f", Jaccard {float(j):.2f}" if j is not None else "")
            tds.append(
                f'<td style="background:{bg};color:{svg.ink_on(bg)}" title="{esc(tip)}">{n}</td>'
            )
        name = _theme_name(report, a)
        body.append(f'<tr><th class="row">{i + 1}. {esc(name)}</th>{"".join(tds)}</tr>')
    legend = "".join(
        f'<span class="key"><i style="background:{colour}"></i>{esc(lbl)}</span>'
        for lbl, colour in _legend_float(vmax, integer=not use_jaccard)
        if lbl != "0"
    )
    legend += '<span class="key">· never together</span>'
    unit = "segments" if level == "segment" else "participants"
    measure = "Jaccard index" if use_jaccard else unit
    tno = numbers.next_table()
    return (
        f'<p class="tcap">Table {tno}. <span>Co-occurrence of themes: {esc(unit)} with both '
        f"themes (diagonal: {esc(unit)} with the theme)</span></p>"
        '<div class="scroll"><table class="cooc" id="table-cooccurrence">'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>"
        f'{"".join(body)}</tbody></table></div><p class="legend meta">Shading: '
        f"{esc(measure)}{legend}</p>"
    )


def _legend_float(vmax: float, integer: bool) -> list[tuple[str, str]]:
    if integer:
        return svg.legend_classes(vmax)
    if vmax <= 0:
        return [("0", svg.EMPTY)]
    n = len(svg.SEQUENTIAL)
    return [("0", svg.EMPTY)] + [
        (f"≤ {vmax * (i + 1) / n:.2f}", svg.SEQUENTIAL[i]) for i in range(n)
    ]


def _theme_name(report: Report, theme_id: str) -> str:
    t = report.by_id.get(theme_id)
    if t is None:
        return theme_id
    return t.name + (" [proposal]" if t.proposal else "")


def _html_proposals(report: Report) -> str:
    if not report.proposals:
        return ""
    items = []
    for t in report.proposals:
        parent = report.by_id.get(str(t.parent_id)) if t.parent_id else None
        facts = [f"level: {t.level or 'theme'}"]
        if parent is not None:
            facts.append(f"under: {parent.name}")
        for what, n in (("segments", t.segments), ("participants", t.participants)):
            if n is not None:
                facts.append(f"{what}: {n}")
        desc = f"<p>{esc(t.description)}</p>" if t.description else ""
        items.append(
            f'<div class="item" data-theme="{esc(t.theme_id)}"><h3>{esc(t.name)}'
            f'<span class="badge">for review</span></h3><p class="meta">'
            f"{esc(' · '.join(facts))}</p>{desc}{_quote_list(t.quotes)}</div>"
        )
    return (
        '<section class="review" id="proposals"><h2>Machine proposals '
        '<span class="badge">for review</span></h2><p>These themes were proposed by a '
        "machine and have not been reviewed. They are not part of Table 1, the prevalence "
        "figure or the tables above; a researcher decides whether to keep, merge, rename or "
        f"drop each one.</p>{''.join(items)}</section>"
    )


def _html_anonymisation(report: Report) -> str:
    if report.findings is None:
        return (
            '<p class="none">No findings dataset: this run shows no anonymise stage. Exports '
            "refuse data that was not anonymised unless the pipeline allows it.</p>"
        )
    if not report.findings:
        return "<p>The anonymise stage found no identifiers to replace.</p>"
    found = report.findings
    per_type, docs_per_type, per_rec = found.per_type, found.docs_per_type, found.per_recogniser
    n_docs = len(found.documents)
    rows = "".join(
        f'<tr><td>{esc(t)}</td><td class="n">{n}</td>'
        f'<td class="n">{len(docs_per_type[t])}</td></tr>'
        for t, n in sorted(per_type.items(), key=lambda x: (-x[1], x[0]))
    )
    recs = "".join(
        f'<tr><td>{esc(r)}</td><td class="n">{n}</td></tr>'
        for r, n in sorted(per_rec.items(), key=lambda x: (-x[1], x[0]))
    )
    return (
        f"<p>{found.total} identifier(s) were replaced in {n_docs} document(s). "
        "Only counts are shown: original values are never part of any export, and the "
        "pseudonym key is kept apart from the run.</p>"
        '<table class="num" style="width:auto;min-width:24rem"><thead><tr><th>Entity type</th>'
        f'<th class="n">Replacements</th><th class="n">Documents</th></tr></thead><tbody>{rows}'
        '</tbody></table><table class="num" style="width:auto;min-width:24rem"><thead><tr>'
        f'<th>Recogniser</th><th class="n">Replacements</th></tr></thead><tbody>{recs}</tbody>'
        "</table>"
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


#: How review decisions are named in reports (docs/review.md), per action.
_REVIEW_WORDS = {
    "accept": "accepted",
    "reject": "rejected",
    "add": "added",
    "edit": "edited",
    "merge": "merged",
    "rename": "renamed",
}
_REVIEW_TARGETS = {
    "finding": "anonymisation findings",
    "coding": "codings",
    "theme": "themes",
    "quote": "quotes",
}


def review_counts(provenance: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str, int]]:
    """(target, action, who, n) of the researchers' decisions in force, from the stage
    manifests (counts only; each target from the first stage that reports it)."""
    seen: set[str] = set()
    out: list[tuple[str, str, str, int]] = []
    for stage in provenance:
        rows = ((stage.get("stats") or {}).get("decisions") or {}).get("counts") or []
        targets = {str(r[0]) for r in rows if isinstance(r, list | tuple) and len(r) == 4}
        for r in rows:
            if isinstance(r, list | tuple) and len(r) == 4 and str(r[0]) not in seen:
                out.append((str(r[0]), str(r[1]), str(r[2]), int(r[3])))
        seen |= targets
    return out


def _review_sentence(counts: Sequence[tuple[str, str, str, int]]) -> str:
    per_target: dict[str, Counter[str]] = defaultdict(Counter)
    for target, action, _, n in counts:
        per_target[target][action] += n
    parts = []
    for target, label in _REVIEW_TARGETS.items():
        if target in per_target:
            acts = ", ".join(
                f"{per_target[target][a]} {w}"
                for a, w in _REVIEW_WORDS.items()
                if per_target[target][a]
            )
            parts.append(f"{label}: {acts}")
    people = sorted({who for _, _, who, _ in counts})
    return "; ".join(parts) + f" (by {', '.join(people)})"


def _html_review(report: Report) -> str:
    counts = review_counts(report.provenance)
    if not counts:
        return ""
    cols = list(_REVIEW_WORDS)
    per: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for target, action, who, n in counts:
        per[(_REVIEW_TARGETS.get(target, target), who)][action] += n
    head = "".join(f'<th class="n">{esc(_REVIEW_WORDS[c])}</th>' for c in cols)
    body = "".join(
        f"<tr><td>{esc(target)}</td><td>{esc(who)}</td>"
        + "".join(f'<td class="n">{per[(target, who)][c] or ""}</td>' for c in cols)
        + "</tr>"
        for target, who in sorted(per)
    )
    return (
        '<h3>Review decisions</h3><p class="meta">The researchers\' decisions about the '
        "machine's suggestions in force for this run (counts only).</p>"
        f'<table class="prov num"><thead><tr><th>Suggestions</th><th>By</th>{head}</tr>'
        f"</thead><tbody>{body}</tbody></table>"
    )


def _html_provenance(report: Report) -> str:
    version, sha, finished = _run_facts(report)
    facts = [f"Pipeline <strong>{esc(report.pipeline or '?')}</strong>", f"qualpipe {esc(version)}"]
    facts.append(f"git <code>{esc(sha)}</code>" if sha else "git commit: not recorded")
    if finished:
        facts.append(f"finished {esc(finished)}")
    coders = _coders(report)
    if coders:
        facts.append("coders: " + esc(", ".join(coders)))
    if not report.provenance:
        return f'<p class="meta">{" · ".join(facts)}</p><p class="none">No stage manifests.</p>'
    rows = []
    for s in report.provenance:
        plugin = s.get("plugin") or {}
        plug = " ".join(str(x) for x in (plugin.get("name"), plugin.get("version")) if x)
        outs = ", ".join(f"{k}: {v}" for k, v in (s.get("rows") or {}).items())
        params = _json(redact(s.get("params") or {}))
        secs = s.get("seconds")
        rows.append(
            f"<tr><td><strong>{esc(s.get('stage'))}</strong><br>{esc(s.get('uses'))}</td>"
            f"<td>{esc(plug)}</td><td>{esc(outs)}</td>"
            f'<td class="n">{esc(f"{secs:.2f}" if _num(secs) else "")}</td>'
            f"<td><pre>{esc(params)}</pre></td></tr>"
        )
    return (
        f'<p class="meta">{" · ".join(facts)}</p><table class="prov num"><thead><tr>'
        '<th>Stage</th><th>Plugin</th><th>Rows written</th><th class="n">Seconds</th>'
        f"<th>Parameters</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="meta">Parameters that may hold names or secrets (deny and allow lists, '
        "speaker names, the key file) are not shown.</p>" + _html_review(report)
    )


def render_html(report: Report) -> str:
    numbers = _Numbers()
    version, sha, finished = _run_facts(report)
    meta = [f"Pipeline {report.pipeline or '?'}", f"qualpipe {version}"]
    if sha:
        meta.append(f"git {sha[:12]}")
    if finished:
        meta.append(f"run finished {finished}")
    summary = "".join(f"<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>" for k, v in report.summary)
    attr = report.attribute or "attribute"
    sections = [
        ("table-1-section", "Themes and illustrative quotes", _html_table1(report)),
        ("prevalence", f"Prevalence by {attr}", _html_prevalence(report, numbers)),
        ("heatmap", "Codes by participant", _html_heatmap(report, numbers)),
        ("cooccurrence", "Co-occurrence of themes", _html_cooccurrence(report, numbers)),
    ]
    toc = [(sid, title) for sid, title, _ in sections]
    proposals = _html_proposals(report)
    if proposals:
        toc.append(("proposals", "Machine proposals (for review)"))
    toc += [("anonymisation", "Anonymisation"), ("provenance", "Provenance")]
    body = "".join(
        f'<section id="{sid}"><h2>{esc(title)}</h2>{content}</section>'
        for sid, title, content in sections
    )
    nav = "".join(f'<a href="#{sid}">{esc(title)}</a>' for sid, title in toc)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="generator" content="qualpipe">'
        f"<title>{esc(report.title)}</title><style>{CSS}</style></head><body><main>"
        f'<header><h1>{esc(report.title)}</h1><p class="meta">{esc(" · ".join(meta))}</p>'
        f'<dl class="summary">{summary}</dl><nav class="toc">{nav}</nav></header>'
        f"{body}{proposals}"
        f'<section id="anonymisation"><h2>Anonymisation summary</h2>'
        f"{_html_anonymisation(report)}</section>"
        f'<section id="provenance"><h2>Run provenance</h2>{_html_provenance(report)}</section>'
        "<footer>Written by qualpipe. Themes are constructed by researchers: machine "
        "suggestions are marked and traceable to the coders above.</footer>"
        "</main></body></html>\n"
    )


def export_html(bundle: ExportBundle) -> Sequence[Path]:
    report = build_report(bundle)
    path = bundle.out_dir / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    return [path]


# -- DOCX ----------------------------------------------------------------------------------------


def _docx() -> tuple[Any, Any, Any, Any, Any]:
    """python-docx modules (document, shared, oxml, ns, enum.text), or a clear error."""
    try:
        modules = tuple(
            importlib.import_module(m)
            for m in ("docx", "docx.shared", "docx.oxml", "docx.oxml.ns", "docx.enum.text")
        )
    except ImportError:
        raise QualpipeError(
            f"the docx report needs python-docx, which is not installed: {DOCX_HINT}"
        ) from None
    return modules[0], modules[1], modules[2], modules[3], modules[4]


class _Word:
    """Helpers around a python-docx document."""

    def __init__(self) -> None:
        self.docx, self.shared, self.oxml, self.ns, self.enum = _docx()
        self.doc = self.docx.Document()
        section = self.doc.sections[0]
        cm = self.shared.Cm
        section.page_width, section.page_height = cm(21.0), cm(29.7)
        for side in ("left_margin", "right_margin", "top_margin", "bottom_margin"):
            setattr(section, side, cm(2.5))
        normal = self.doc.styles["Normal"]
        normal.font.size = self.shared.Pt(11)

    def el(self, tag: str, **attrs: str) -> Any:
        e = self.oxml.OxmlElement(tag)
        for k, v in attrs.items():
            e.set(self.ns.qn(f"w:{k}"), v)
        return e

    def caption(self, number: str, text: str) -> Any:
        p = self.doc.add_paragraph(style="Caption")
        r = p.add_run(f"{number}. ")
        r.bold = True
        p.add_run(text)
        for run in p.runs:
            run.font.size = self.shared.Pt(10.5)
            run.font.color.rgb = self.shared.RGBColor(0, 0, 0)
            run.italic = False
        p.paragraph_format.keep_with_next = True
        return p

    def table(self, rows: int, widths: Sequence[float]) -> Any:
        t = self.doc.add_table(rows=rows, cols=len(widths))
        t.autofit = False
        tbl_pr = t._tbl.tblPr
        borders = self.el("w:tblBorders")
        for edge, size, colour in (
            ("top", "8", "000000"),
            ("left", "0", "auto"),
            ("bottom", "8", "000000"),
            ("right", "0", "auto"),
            ("insideH", "2", "A6A6A6"),
            ("insideV", "0", "auto"),
        ):
            val = "single" if size != "0" else "nil"
            borders.append(self.el(f"w:{edge}", val=val, sz=size, space="0", color=colour))
        # schema order matters to Word: tblBorders comes before shd, tblLayout, tblLook, ...
        tbl_pr.insert_element_before(
            borders,
            "w:shd",
            "w:tblLayout",
            "w:tblCellMar",
            "w:tblLook",
            "w:tblCaption",
            "w:tblDescription",
            "w:tblPrChange",
        )
        for column, w in zip(t.columns, widths, strict=True):
            column.width = self.shared.Cm(w)  # the grid (LibreOffice reads this)
        for row in t.rows:
            for cell, w in zip(row.cells, widths, strict=True):
                cell.width = self.shared.Cm(w)  # the cells (Word reads this)
        return t

    def header_row(self, table: Any, labels: Sequence[str]) -> None:
        row = table.rows[0]
        tr_pr = row._tr.get_or_add_trPr()
        tr_pr.insert_element_before(
            self.el("w:tblHeader", val="true"),
            "w:tblCellSpacing",
            "w:jc",
            "w:hidden",
            "w:ins",
            "w:del",
            "w:trPrChange",
        )
        for cell, text in zip(row.cells, labels, strict=True):
            self.cell_text(cell, text, bold=True)
            tc_pr = cell._tc.get_or_add_tcPr()
            b = self.el("w:tcBorders")
            b.append(self.el("w:bottom", val="single", sz="6", space="0", color="000000"))
            tc_pr.insert_element_before(
                b,
                "w:shd",
                "w:noWrap",
                "w:tcMar",
                "w:textDirection",
                "w:tcFitText",
                "w:vAlign",
                "w:hideMark",
                "w:headers",
                "w:cellIns",
                "w:cellDel",
                "w:cellMerge",
                "w:tcPrChange",
            )

    def cell_text(
        self, cell: Any, text: str, bold: bool = False, italic: bool = False, size: float = 9.5
    ) -> Any:
        p = cell.paragraphs[0]
        for r in list(p.runs):
            r._r.getparent().remove(r._r)
        run = p.add_run(text)
        run.bold = bold
        run.italic = italic
        run.font.size = self.shared.Pt(size)
        p.paragraph_format.space_after = self.shared.Pt(2)
        return p

    def quote_paragraphs(self, cell: Any, quotes: Sequence[Quote]) -> None:
        first = True
        for q in quotes:
            p = cell.paragraphs[0] if first else cell.add_paragraph()
            first = False
            r = p.add_run(_quoted(q.text))
            r.font.size = self.shared.Pt(9.5)
            if q.label:
                lab = p.add_run(f" {q.label}")
                lab.font.size = self.shared.Pt(9.5)
            p.paragraph_format.space_after = self.shared.Pt(4)
        if first:
            self.cell_text(cell, "–")


def render_docx(report: Report, path: Path) -> None:
    w = _Word()
    doc = w.doc
    doc.add_heading(report.title, level=0)
    version, sha, _ = _run_facts(report)
    if report.summary:
        doc.add_paragraph("; ".join(f"{k}: {v}" for k, v in report.summary) + ".")

    # Table 1
    w.caption("Table 1", "Themes and illustrative quotes")
    three = report.has_subthemes
    widths = (3.6, 3.6, 8.8) if three else (4.6, 11.4)
    n_rows = 1 + sum(len(g.rows) + (1 if g.overarching is not None else 0) for g in report.table1)
    table = w.table(max(n_rows, 1), widths)
    w.header_row(
        table,
        ["Theme", "Sub-theme", "Illustrative quotes"]
        if three
        else ["Theme", "Illustrative quotes"],
    )
    r = 1
    for g in report.table1:
        if g.overarching is not None:
            cells = table.rows[r].cells
            merged = cells[0].merge(cells[-1])
            w.cell_text(merged, f"Overarching theme: {g.overarching.name}", bold=True, italic=True)
            r += 1
        first = r
        for sub, quotes in g.rows:
            cells = table.rows[r].cells
            if three:
                w.cell_text(cells[1], sub.name if sub is not None else "–")
            w.quote_paragraphs(cells[-1], quotes)
            r += 1
        theme_cell = table.cell(first, 0)
        if r - 1 > first:
            theme_cell = theme_cell.merge(table.cell(r - 1, 0))
        w.cell_text(theme_cell, g.theme.name, bold=True)
    if not report.table1:
        doc.add_paragraph("No themes in this run.")

    if report.proposals:
        p = doc.add_paragraph()
        p.add_run("Machine proposals for review (not part of Table 1): ").bold = True
        p.add_run("; ".join(t.name for t in report.proposals) + ".")

    # prevalence table
    items = prevalence_themes(report)
    attr = report.attribute
    if items and attr and report.groups:
        totals = report.totals
        all_total = sum(totals.values()) if totals else None
        doc.add_paragraph()
        w.caption("Table 2", f"Participants with each theme by {attr}, n (%)")
        labels = ["Theme"] + [
            v + (f" (n = {totals[v]})" if v in totals else "") for v in report.groups
        ]
        labels.append("All" + (f" (n = {all_total})" if all_total else ""))
        rest = 16.0 - 6.0
        pt = w.table(
            1 + len(items), [6.0] + [rest / (len(report.groups) + 1)] * (len(report.groups) + 1)
        )
        w.header_row(pt, labels)
        for i, t in enumerate(items, start=1):
            cells = pt.rows[i].cells
            is_sub = t.level == "subtheme"
            para = w.cell_text(cells[0], t.name, italic=is_sub)
            if is_sub:
                para.paragraph_format.left_indent = w.shared.Cm(0.4)
            for j, value in enumerate(report.groups, start=1):
                n = t.counts.get(attr, {}).get(value, 0)
                w.cell_text(
                    cells[j], _share(n, totals.get(value))
                ).alignment = w.enum.WD_ALIGN_PARAGRAPH.RIGHT
            total_n = (
                t.participants
                if t.participants is not None
                else sum(t.counts.get(attr, {}).values())
            )
            w.cell_text(
                cells[-1], _share(int(total_n), all_total)
            ).alignment = w.enum.WD_ALIGN_PARAGRAPH.RIGHT

    # methods / provenance
    doc.add_heading("Methods and provenance", level=1)
    doc.add_paragraph(_methods_text(report, version, sha))
    doc.save(str(path))


def _methods_text(report: Report, version: str | None, sha: str | None) -> str:
    parts = [
        f"Transcripts were processed with qualpipe {version} (pipeline "
        f"“{report.pipeline or '?'}”" + (f", commit {sha[:12]}" if sha else "") + ")."
    ]
    if report.provenance:
        stages = []
        for s in report.provenance:
            plugin = s.get("plugin") or {}
            stages.append(
                f"{s.get('stage')} ({s.get('uses')}; {plugin.get('name', '?')} "
                f"{plugin.get('version', '')})".replace(" )", ")")
            )
        parts.append("Stages, in order: " + ", ".join(stages) + ".")
    if report.findings is not None:
        per_type = report.findings.per_type
        detail = ", ".join(f"{t} {n}" for t, n in sorted(per_type.items(), key=lambda x: -x[1]))
        parts.append(
            f"Identifiers were replaced consistently before analysis ({report.findings.total} "
            f"replacements{': ' + detail if detail else ''}); the pseudonym key was kept apart."
        )
    coders = _coders(report)
    if coders:
        parts.append(f"Segments were coded by: {', '.join(coders)}.")
    reviewed = review_counts(report.provenance)
    if reviewed:
        parts.append(
            f"The researchers reviewed the machine's suggestions: {_review_sentence(reviewed)}."
        )
    if report.proposals:
        parts.append(
            f"{len(report.proposals)} machine-proposed theme(s) await review and are not "
            "reported as themes."
        )
    parts.append(
        "Themes were constructed and named by the researchers; quotes are anonymised and "
        "attributed by participant " + (report.attribute or "attribute") + "."
    )
    return " ".join(parts)


def export_docx(bundle: ExportBundle) -> Sequence[Path]:
    _docx()  # fail early and clearly when python-docx is missing
    report = build_report(bundle)
    path = bundle.out_dir / "report.docx"
    render_docx(report, path)
    return [path]


HTML = Exporter(
    "html",
    export_html,
    version="1",
    description="report.html: Table 1 (themes and quotes), prevalence chart, heatmap, "
    "co-occurrence, anonymisation summary, provenance; one self-contained file",
)
DOCX = Exporter(
    "docx",
    export_docx,
    version="1",
    description="report.docx: Table 1 as in a journal article, prevalence table, methods",
)
