"""What the review app reads: the anonymised outputs of a pipeline's latest run.

The app reads only these datasets: the anonymise stage's ``documents`` and ``findings``,
the ``segments``, ``codings`` and ``codebook`` a code stage used, and a theme stage's
``themes`` and ``quotes``. Each is opened through the run store's manifest and refused
(:class:`SensitiveDataError`) when the manifest marks it sensitive, i.e. not
anonymised. The pseudonym key is never opened. Nothing here needs Flask: the queues
are plain data the templates render.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qualpipe.decisions import KEY_FIELDS, Decision
from qualpipe.errors import DatasetError
from qualpipe.pipeline import ResolvedStage
from qualpipe.store import DatasetReader, RunStore, open_dataset

#: Characters of anonymised text shown on each side of a finding.
CONTEXT_CHARS = 160

#: What the app reads, in the order the overview lists it.
DATASETS = ("documents", "findings", "segments", "codings", "codebook", "themes", "quotes")


class SensitiveDataError(DatasetError):
    """A dataset the app was asked to show is marked sensitive (not anonymised)."""


#: Where one dataset comes from: (stage id, output name) in the run store, or a path.
Source = tuple[str, str] | Path


@dataclass(frozen=True)
class Sources:
    """The datasets of a pipeline that the review app shows."""

    sources: dict[str, Source] = field(default_factory=dict)
    anonymise_stage: str | None = None
    code_stage: str | None = None
    theme_stage: str | None = None

    def get(self, what: str) -> Source | None:
        return self.sources.get(what)


def _output(stage: ResolvedStage, kind: str, name: str | None = None) -> str | None:
    for out in stage.type.outputs:
        if out.kind == kind and (name is None or out.name == name):
            return out.name
    return None


def _bound(stage: ResolvedStage, kind: str) -> Source | None:
    for b in stage.bindings.values():
        if b.kind == kind:
            if b.stage is not None and b.output is not None:
                return (b.stage, b.output)
            if b.path is not None:
                return b.path
    return None


def find_sources(stages: Sequence[ResolvedStage]) -> Sources:
    """Pick the anonymise, code and theme stages of a pipeline and what they read."""
    found: dict[str, Source] = {}
    anonymise = next(
        (
            s
            for s in stages
            if s.type.family == "anonymise" and _output(s, "findings") and _output(s, "documents")
        ),
        None,
    )
    if anonymise is not None:
        found["documents"] = (anonymise.id, _output(anonymise, "documents") or "documents")
        found["findings"] = (anonymise.id, _output(anonymise, "findings") or "findings")
    coders = [
        s
        for s in stages
        if _output(s, "codings") and any(i.kind == "segments" for i in s.type.inputs)
    ]
    code = next((s for s in reversed(coders) if s.type.family == "code"), None) or (
        coders[-1] if coders else None
    )
    if code is not None:
        out = _output(code, "codings")
        assert out is not None
        found["codings"] = (code.id, out)
        for kind in ("segments", "codebook"):
            src = _bound(code, kind)
            if src is not None:
                found[kind] = src
    for kind in ("segments", "codebook"):
        if kind not in found:
            producer = next((s for s in reversed(stages) if _output(s, kind)), None)
            if producer is not None:
                found[kind] = (producer.id, _output(producer, kind) or kind)
    theme = next(
        (s for s in reversed(stages) if _output(s, "themes", "themes") and _output(s, "quotes")),
        None,
    )
    if theme is not None:
        found["themes"] = (theme.id, "themes")
        found["quotes"] = (theme.id, _output(theme, "quotes") or "quotes")
    return Sources(
        found,
        anonymise.id if anonymise else None,
        code.id if code else None,
        theme.id if theme else None,
    )


# -- rendering helpers ---------------------------------------------------------------------


@dataclass(frozen=True)
class Piece:
    """A run of text with the same marks; ``start`` is its offset in the document."""

    text: str
    start: int
    marks: tuple[str, ...] = ()


def pieces(
    text: str, base: int, marks: Iterable[tuple[int, int, str]], lo: int = 0, hi: int | None = None
) -> list[Piece]:
    """Cut ``text`` (which starts at document offset ``base``) into pieces at mark edges.

    ``marks`` are (start, end, name) in document offsets; ``lo``/``hi`` (document
    offsets) clip what is returned.
    """
    end = base + len(text)
    lo, hi = max(lo, base), min(end if hi is None else hi, end)
    clipped = [(max(s, lo), min(e, hi), m) for s, e, m in marks if s < hi and e > lo and s < e]
    cuts = sorted({lo, hi, *(s for s, _, _ in clipped), *(e for _, e, _ in clipped)})
    out = []
    for a, b in itertools.pairwise(cuts):
        if a >= b:
            continue
        names = tuple(sorted({m for s, e, m in clipped if s <= a and b <= e}))
        out.append(Piece(text[a - base : b - base], a, names))
    return out


def _word_edge(text: str, pos: int, forward: bool) -> int:
    """Move ``pos`` to the nearest whitespace so context does not start mid-word."""
    limit = 40
    step = 1 if forward else -1
    i = pos
    for _ in range(limit):
        if i <= 0 or i >= len(text) or text[i - 1].isspace():
            return max(0, min(i, len(text)))
        i += step
    return pos


# -- the items of the queues ------------------------------------------------------------------


@dataclass
class FindingItem:
    doc_id: str
    participant_id: str
    start: int
    end: int
    type: str
    recogniser: str
    score: float | None
    replacement: str
    context: list[Piece]
    clipped_before: bool
    clipped_after: bool
    decision: Decision | None = None

    @property
    def ref(self) -> dict[str, Any]:
        return {
            "document_id": self.doc_id,
            "start": self.start,
            "end": self.end,
            "type": self.type,
            "replacement": self.replacement,
        }

    @property
    def key(self) -> str:
        return f"f:{self.doc_id}:{self.start}:{self.end}"


@dataclass
class CodeInfo:
    code_id: str
    name: str
    path: str
    level: str
    description: str


@dataclass
class CodingItem:
    segment_id: str
    doc_id: str
    participant_id: str
    speaker: str
    code: CodeInfo
    coders: list[str]
    statuses: list[str]
    score: float | None
    question: str
    text: list[Piece]
    span: tuple[int, int]
    seg_start: int
    seg_end: int
    decision: Decision | None = None

    @property
    def ref(self) -> dict[str, Any]:
        return {"segment_id": self.segment_id, "code": self.code.code_id}

    @property
    def key(self) -> str:
        return f"c:{self.segment_id}:{self.code.code_id}"


@dataclass
class QuoteItem:
    theme_id: str
    segment_id: str
    rank: int
    label: str
    text: str
    decision: Decision | None = None

    @property
    def ref(self) -> dict[str, Any]:
        return {"theme_id": self.theme_id, "segment_id": self.segment_id}


@dataclass
class ThemeItem:
    theme_id: str
    name: str
    level: str
    parent_id: str | None
    description: str
    segments: int
    documents: int
    participants: int
    prevalence: dict[str, Any]
    proposal: bool
    depth: int
    quotes: list[QuoteItem] = field(default_factory=list)
    decision: Decision | None = None

    @property
    def ref(self) -> dict[str, Any]:
        return {"theme_id": self.theme_id}


def decision_key(target: str, ref: Mapping[str, Any]) -> tuple[Any, ...]:
    """The key :class:`qualpipe.decisions.Decision` groups decisions by."""
    return (target, *(ref.get(k) for k in KEY_FIELDS[target]))


# -- reading the run store --------------------------------------------------------------------


class ReviewData:
    """Reads (and caches by content fingerprint) the anonymised datasets of a run store."""

    def __init__(self, store: RunStore, sources: Sources) -> None:
        self.store = store
        self.sources = sources
        self._cache: dict[str, tuple[str, list[dict[str, Any]]]] = {}

    def label(self, what: str) -> str:
        src = self.sources.get(what)
        if src is None:
            return what
        return f"{src[0]}.{src[1]}" if isinstance(src, tuple) else str(src)

    def reader(self, what: str) -> DatasetReader | None:
        """The dataset's reader; ``None`` if the pipeline has none or it has not run yet.

        Raises :class:`SensitiveDataError` for a dataset marked sensitive.
        """
        if what not in DATASETS:
            raise DatasetError(f"the review app does not read {what!r} datasets")
        src = self.sources.get(what)
        if src is None:
            return None
        try:
            if isinstance(src, tuple):
                manifest = self.store.manifest(src[0])
                if manifest is None or src[1] not in manifest.get("outputs", {}):
                    return None
                reader = self.store.reader(*src)
            else:
                reader = open_dataset(src)
        except DatasetError:
            return None
        if reader.sensitive:
            raise SensitiveDataError(
                f"{self.label(what)}: this {what} dataset is marked sensitive (not "
                "anonymised); the review app shows anonymised data only: add an anonymise "
                "stage before it and re-run"
            )
        return reader

    def rows(self, what: str) -> list[dict[str, Any]]:
        reader = self.reader(what)
        if reader is None:
            return []
        fp = reader.fingerprint
        hit = self._cache.get(what)
        if hit is not None and hit[0] == fp:
            return hit[1]
        rows: list[dict[str, Any]] = reader.read_all().to_pylist()
        self._cache[what] = (fp, rows)
        return rows

    def finished_at(self) -> str | None:
        """When the latest of the stages the app reads finished."""
        times = []
        for src in self.sources.sources.values():
            if isinstance(src, tuple):
                manifest = self.store.manifest(src[0])
                if manifest and manifest.get("finished_at"):
                    times.append(str(manifest["finished_at"]))
        return max(times) if times else None

    # -- documents and findings ---------------------------------------------------------------

    def documents(self) -> dict[str, dict[str, Any]]:
        return {r["doc_id"]: r for r in self.rows("documents")}

    def findings(self, decisions: Sequence[Decision] = ()) -> list[FindingItem]:
        docs = self.documents()
        rows = self.rows("findings")
        by_doc: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_doc.setdefault(r["doc_id"], []).append(r)
        decided = {d.key(): d for d in decisions if d.target == "finding"}
        items = []
        for r in rows:
            doc = docs.get(r["doc_id"])
            if doc is None:
                continue
            text: str = doc["text"]
            lo = _word_edge(text, max(0, r["start"] - CONTEXT_CHARS), forward=True)
            hi = _word_edge(text, min(len(text), r["end"] + CONTEXT_CHARS), forward=False)
            marks = [
                (o["start"], o["end"], "this" if o is r else "other")
                for o in by_doc[r["doc_id"]]
                if o["start"] < hi and o["end"] > lo
            ]
            item = FindingItem(
                doc_id=r["doc_id"],
                participant_id=doc.get("participant_id") or "",
                start=r["start"],
                end=r["end"],
                type=r["entity_type"],
                recogniser=r.get("recogniser") or "",
                score=r.get("score"),
                replacement=r.get("replacement") or text[r["start"] : r["end"]],
                context=pieces(text, 0, marks, lo, hi),
                clipped_before=lo > 0,
                clipped_after=hi < len(text),
            )
            item.decision = decided.get(decision_key("finding", item.ref))
            items.append(item)
        return items

    def document(self, doc_id: str) -> tuple[dict[str, Any], list[Piece]] | None:
        """An anonymised document and its text cut at its findings (marked ``other``)."""
        doc = self.documents().get(doc_id)
        if doc is None:
            return None
        marks = [
            (f["start"], f["end"], "other") for f in self.rows("findings") if f["doc_id"] == doc_id
        ]
        return doc, pieces(doc["text"], 0, marks)

    # -- codebook, segments and codings -------------------------------------------------------

    def codebook(self) -> dict[str, CodeInfo]:
        rows = self.rows("codebook")
        by_id = {r["code_id"]: r for r in rows}
        out: dict[str, CodeInfo] = {}
        for r in rows:
            names, node, seen = [r["name"]], r, {r["code_id"]}
            while node.get("parent_id") in by_id and node["parent_id"] not in seen:
                node = by_id[node["parent_id"]]
                seen.add(node["code_id"])
                names.append(node["name"])
            out[r["code_id"]] = CodeInfo(
                r["code_id"],
                r["name"],
                " › ".join(reversed(names)),
                r.get("level") or "code",
                r.get("description") or "",
            )
        return out

    def segments(self) -> dict[str, dict[str, Any]]:
        return {r["segment_id"]: r for r in self.rows("segments")}

    def codings(self, decisions: Sequence[Decision] = ()) -> list[CodingItem]:
        segments = self.segments()
        book = self.codebook()
        groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for r in self.rows("codings"):
            groups.setdefault((r["segment_id"], r["code_id"]), []).append(r)
        decided = {d.key(): d for d in decisions if d.target == "coding"}
        items = []
        for (seg_id, code_id), rows in groups.items():
            seg = segments.get(seg_id)
            if seg is None:
                continue
            info = book.get(code_id) or CodeInfo(code_id, code_id, code_id, "code", "")
            item = self._coding_item(seg, info, rows)
            item.decision = decided.get(decision_key("coding", item.ref))
            items.append(item)
        return items

    def coding_for(self, seg: Mapping[str, Any], info: CodeInfo) -> CodingItem:
        """An item for a coding people added that no run has produced yet."""
        return self._coding_item(seg, info, [])

    @staticmethod
    def _coding_item(
        seg: Mapping[str, Any], info: CodeInfo, rows: list[dict[str, Any]]
    ) -> CodingItem:
        s0, s1 = int(seg["start"]), int(seg["end"])
        span = (min(r["start"] for r in rows), max(r["end"] for r in rows)) if rows else (s0, s1)
        marks = [(e["start"], e["end"], "evidence") for r in rows for e in r.get("evidence") or []]
        if span != (s0, s1):
            marks.append((span[0], span[1], "span"))
        scores = [r["score"] for r in rows if r.get("score") is not None]
        return CodingItem(
            segment_id=seg["segment_id"],
            doc_id=seg["doc_id"],
            participant_id=seg.get("participant_id") or "",
            speaker=seg.get("speaker") or "",
            code=info,
            coders=sorted({r["coder"] for r in rows}),
            statuses=sorted({r["status"] for r in rows}),
            score=max(scores) if scores else None,
            question=seg.get("context") or "",
            text=pieces(seg["text"], s0, marks),
            span=span,
            seg_start=s0,
            seg_end=s1,
        )

    # -- themes and quotes --------------------------------------------------------------------

    def themes(self, decisions: Sequence[Decision] = ()) -> list[ThemeItem]:
        decided = {d.key(): d for d in decisions if d.target in ("theme", "quote")}
        rows = self.rows("themes")
        by_id = {r["theme_id"]: r for r in rows}
        quotes: dict[str, list[QuoteItem]] = {}
        for q in sorted(self.rows("quotes"), key=lambda q: (q["theme_id"], q["rank"])):
            quote = QuoteItem(
                q["theme_id"], q["segment_id"], q["rank"], q.get("label") or "", q["text"]
            )
            quote.decision = decided.get(decision_key("quote", quote.ref))
            quotes.setdefault(q["theme_id"], []).append(quote)
        items = []
        for r in rows:
            depth, node, seen = 0, r, {r["theme_id"]}
            while node.get("parent_id") in by_id and node["parent_id"] not in seen:
                node = by_id[node["parent_id"]]
                seen.add(node["theme_id"])
                depth += 1
            try:
                prevalence = json.loads(r.get("prevalence") or "{}")
            except ValueError:
                prevalence = {}
            item = ThemeItem(
                theme_id=r["theme_id"],
                name=r["name"],
                level=r.get("level") or "",
                parent_id=r.get("parent_id"),
                description=r.get("description") or "",
                segments=int(r.get("segments") or 0),
                documents=int(r.get("documents") or 0),
                participants=int(r.get("participants") or 0),
                prevalence=prevalence if isinstance(prevalence, dict) else {},
                proposal=bool(r.get("proposal")),
                depth=depth,
                quotes=quotes.get(r["theme_id"], []),
            )
            item.decision = decided.get(decision_key("theme", item.ref))
            items.append(item)
        return items

    def theme_counts(self) -> dict[str, tuple[int, int, int]]:
        """theme id -> (segments, documents, participants): what a re-run is compared by."""
        return {
            r["theme_id"]: (
                int(r.get("segments") or 0),
                int(r.get("documents") or 0),
                int(r.get("participants") or 0),
            )
            for r in self.rows("themes")
        }
