"""Import human coding: REFI-QDA projects (``.qdpx``) and CSV files -> ``codings`` rows.

People code in NVivo, ATLAS.ti, MAXQDA or QualCoder; to compare their coding with each
other or with machine coders, their selections must land on **our** documents and
segments. This module:

1. reads the project: users, the code tree, text sources and their coded
   ``PlainTextSelection`` elements (``read_qdpx``);
2. matches each source to one of our documents: an explicit mapping, else identical
   text (after removing the BOM, CRLF and NFC differences), else the name;
3. converts offsets. The standard says code points over the plain text, and QualCoder
   does that; NVivo counts **UTF-16 code units** over the text as it wrote it (CRLF
   counting 2, without the BOM), so an emoji shifts every later selection
   (``../shared/docs/interop.md``). The reading is chosen from ``Project@origin`` and
   checked: the reading that puts more selection ends on word boundaries wins;
4. maps source offsets to our normalised text (LF, NFC) and to segments: every
   segment a selection overlaps gets a coding (status ``human``, score 1.0) with the
   overlapping span, and the extra columns ``overlap`` (share of the segment covered)
   and ``selection`` (where the coding came from).

Nothing is dropped silently: every coding that could not be placed (unknown source,
missing source file, selection past the end of the text, unknown code, no segment)
becomes a row of the ``mapping_report`` dataset with the reason and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
import xml.etree.ElementTree as ET
import zipfile
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from itertools import accumulate
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from qualpipe.codebook import Codebook
from qualpipe.datasets import DatasetKind
from qualpipe.errors import PipelineError
from qualpipe.schemas import CODINGS
from qualpipe.transcripts import normalise

#: How the offsets of a file are read: NVivo's UTF-16 units over the text as written,
#: code points over the text as written (QualCoder, the REFI-QDA standard), or code
#: points over our normalised text (qualpipe's own exports, CSV files).
READINGS = ("nvivo", "qualcoder", "codepoints")
ORIGINS = ("auto", *READINGS)

MAPPING_REPORT = DatasetKind(
    name="mapping_report",
    version=1,
    description="What an import of human coding could not place (or placed with a caveat).",
    schema=pa.schema(
        [
            pa.field("problem", pa.string(), nullable=False),
            pa.field("mapped", pa.bool_(), nullable=False),
            pa.field("detail", pa.string(), nullable=False),
            pa.field("source", pa.string()),
            pa.field("selection", pa.string()),
            pa.field("doc_id", pa.string()),
            pa.field("code", pa.string()),
            pa.field("coder", pa.string()),
            pa.field("start", pa.int64()),
            pa.field("end", pa.int64()),
        ]
    ),
    fields={
        "problem": "unknown_source | missing_source_file | unsupported_source | past_end | "
        "empty_selection | unknown_code | text_differs | no_segment | bad_row | relocated | "
        "duplicate | reading",
        "mapped": "false: the coding was not imported; true: imported, with this caveat",
        "detail": "one line: what was wrong and how to fix it",
        "source": "source name in the QDA project, or the CSV file",
        "selection": "selection guid (QDPX) or line number (CSV)",
        "doc_id": "our document, if the source was matched",
        "code": "code as the file names it (path of names, or the CSV value)",
        "coder": "coder (user name or guid)",
        "start": "start offset as written in the file",
        "end": "end offset as written in the file",
    },
)

#: Extra columns the import adds to ``codings`` (kept after the declared ones).
EXTRA_COLUMNS = [pa.field("overlap", pa.float64()), pa.field("selection", pa.string())]


# -- the project file ---------------------------------------------------------------------


@dataclass
class QdaCoding:
    guid: str
    code_guid: str
    user: str | None


@dataclass
class QdaSelection:
    guid: str
    start: int
    end: int | None  # None: a coding of the whole source
    user: str | None
    codings: list[QdaCoding] = field(default_factory=list)


@dataclass
class QdaSource:
    guid: str
    name: str
    path: str | None
    text: str | None = None  # decoded, without a BOM, line ends as written
    problem: str | None = None
    kind: str = "TextSource"
    selections: list[QdaSelection] = field(default_factory=list)


@dataclass
class QdaCode:
    guid: str
    name: str
    path: str  # names from the root, joined with " / "
    marker_id: str | None = None  # our code id, when qualpipe wrote the codebook


@dataclass
class QdaProject:
    file: str
    name: str
    origin: str
    users: dict[str, str]
    codes: dict[str, QdaCode]
    sources: list[QdaSource]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _int(value: str | None, where: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise PipelineError(f"{where}: expected an integer offset, got {value!r}") from None


def decode_source(data: bytes) -> str:
    """Source file bytes -> text without a BOM, line ends untouched."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16").lstrip("\ufeff")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _find_member(names: Sequence[str], path: str) -> str | None:
    """The archive member a ``plainTextPath`` names (``internal://x.txt``, any folder case)."""
    base = PurePosixPath(path.split("://", 1)[-1].replace("\\", "/")).name.casefold()
    hits = [n for n in names if PurePosixPath(n).name.casefold() == base]
    preferred = [n for n in hits if PurePosixPath(n).parent.name.casefold() == "sources"]
    found = preferred or hits
    return found[0] if found else None


_MARKER = re.compile(r"^qualpipe: (\{.*\})\s*$", re.M)


def _marker_id(description: ET.Element | None) -> str | None:
    """The code id in the ``qualpipe: {...}`` line qualpipe's .qdc export writes."""
    found = _MARKER.findall(description.text or "") if description is not None else []
    try:
        marker = json.loads(found[-1]) if found else None
    except ValueError:
        return None
    value = marker.get("id") if isinstance(marker, dict) else None
    return value if isinstance(value, str) else None


def _walk_codes(el: ET.Element, prefix: str, out: dict[str, QdaCode]) -> None:
    for code in _children(el, "Code"):
        name = (code.get("name") or "").strip()
        path = f"{prefix} / {name}" if prefix else name
        guid = code.get("guid") or ""
        description = next(iter(_children(code, "Description")), None)
        out[guid] = QdaCode(guid, name, path, _marker_id(description))
        _walk_codes(code, path, out)


def _coding(el: ET.Element, default_user: str | None) -> QdaCoding:
    ref = next(iter(_children(el, "CodeRef")), None)
    target = ref.get("targetGUID") if ref is not None else None
    return QdaCoding(el.get("guid") or "", target or "", el.get("creatingUser") or default_user)


def parse_project(xml: bytes, file: str, members: Mapping[str, bytes] | None = None) -> QdaProject:
    """Parse ``project.qde``; ``members`` maps archive paths to bytes (the sources)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise PipelineError(f"{file}: project.qde is not valid XML: {exc}") from None
    if _local(root.tag) != "Project":
        raise PipelineError(f"{file}: expected a REFI-QDA <Project>, got <{_local(root.tag)}>")
    users = {
        u.get("guid") or "": (u.get("name") or u.get("guid") or "")
        for u in root.iter()
        if _local(u.tag) == "User"
    }
    codes: dict[str, QdaCode] = {}
    for book in _children(root, "CodeBook"):
        for group in _children(book, "Codes"):
            _walk_codes(group, "", codes)
    names = list(members or {})
    sources: list[QdaSource] = []
    for group in _children(root, "Sources"):
        for el in group:
            kind = _local(el.tag)
            src = QdaSource(el.get("guid") or "", el.get("name") or "", None, kind=kind)
            sources.append(src)
            if kind != "TextSource":
                # codings of pictures, PDFs, audio and video cannot land on our text
                src.problem = f"{kind} is not imported (only text sources are)"
                src.selections = [
                    QdaSelection("", 0, None, None, [_coding(c, None)])
                    for c in el.iter()
                    if _local(c.tag) == "Coding"
                ]
                continue
            src.path = el.get("plainTextPath")
            content = next(iter(_children(el, "PlainTextContent")), None)
            if content is not None:
                src.text = content.text or ""
            elif src.path:
                member = _find_member(names, src.path)
                if member is None or members is None:
                    src.problem = f"its text file {src.path!r} is not in the project archive"
                else:
                    src.text = decode_source(members[member])
            else:
                src.problem = "it has neither plainTextPath nor PlainTextContent"
            where = f"{file}: source {src.name or src.guid!r}"
            for sel in _children(el, "PlainTextSelection"):
                user = sel.get("creatingUser")
                s = QdaSelection(
                    sel.get("guid") or "",
                    _int(sel.get("startPosition"), where),
                    _int(sel.get("endPosition"), where),
                    user,
                )
                s.codings = [_coding(c, user) for c in _children(sel, "Coding")]
                src.selections.append(s)
            whole = [_coding(c, el.get("creatingUser")) for c in _children(el, "Coding")]
            if whole:
                src.selections.append(QdaSelection("", 0, None, None, whole))
    return QdaProject(file, root.get("name") or "", root.get("origin") or "", users, codes, sources)


def read_qdpx(path: Path) -> QdaProject:
    """Read a ``.qdpx`` archive (``project.qde`` plus ``sources/`` or ``Sources/``)."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    except (OSError, zipfile.BadZipFile) as exc:
        raise PipelineError(f"{path}: not a readable .qdpx (zip) file: {exc}") from None
    qde = [n for n in members if PurePosixPath(n).name.casefold() == "project.qde"]
    if not qde:
        raise PipelineError(f"{path}: no project.qde in the archive; is it a REFI-QDA .qdpx?")
    return parse_project(members[qde[0]], path.name, members)


# -- offsets ------------------------------------------------------------------------------


def _joins_previous(ch: str) -> bool:
    # combining marks and Hangul vowel/final jamo compose with what precedes them
    return unicodedata.combining(ch) != 0 or 0x1160 <= ord(ch) <= 0x11FF


class TextMap:
    """Offsets in a source text as a QDA program saw it -> offsets in ``normalise(raw)``.

    The text is cut into clusters (a CRLF pair, or a character with its combining
    marks) whose normalised forms are concatenated; an offset inside a cluster moves
    to the cluster's start (for a selection start) or end (for an end).
    """

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.text = normalise(raw)
        bounds, norm, pieces = [0], [0], []
        i, n, out = 0, len(raw), 0
        leading = True
        while i < n:
            j = i + 1
            if raw[i] == "\r" and j < n and raw[j] == "\n":
                j += 1
            else:
                while j < n and _joins_previous(raw[j]):
                    j += 1
            piece = raw[i:j]
            if leading and piece == "\ufeff":
                piece = ""
            else:
                leading = False
                piece = piece.replace("\r\n", "\n").replace("\r", "\n")
                piece = unicodedata.normalize("NFC", piece)
            pieces.append(piece)
            out += len(piece)
            bounds.append(j)
            norm.append(out)
            i = j
        self._bounds, self._norm = bounds, norm
        # rare compositions across clusters: fall back to normalising each prefix
        self._exact = "".join(pieces) == self.text

    def is_boundary(self, p: int) -> bool:
        """True when ``p`` does not split a cluster (CRLF, letter + combining mark)."""
        k = bisect_left(self._bounds, p)
        return k < len(self._bounds) and self._bounds[k] == p

    def to_text(self, p: int, end: bool = False) -> int:
        """Offset ``p`` of the raw text in the normalised text."""
        if not self._exact:
            return len(normalise(self.raw[:p]))
        k = bisect_right(self._bounds, p) - 1
        if self._bounds[k] == p or not end:
            return self._norm[k]
        return self._norm[k + 1]


class Utf16Index:
    """UTF-16 code units -> code points for one text (identity without astral chars)."""

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.units: list[int] | None = None
        if any(ord(c) > 0xFFFF for c in text):
            self.units = list(accumulate((2 if ord(c) > 0xFFFF else 1 for c in text), initial=0))

    @property
    def total(self) -> int:
        return self.units[-1] if self.units else self.length

    def to_codepoint(self, u: int) -> int | None:
        """Code point offset of unit offset ``u``; None past the end or inside a pair."""
        if u < 0 or u > self.total:
            return None
        if self.units is None:
            return u
        k = bisect_left(self.units, u)
        return k if self.units[k] == u else None


def _good_boundary(t: str, p: int) -> bool:
    """A selection edge at ``p`` does not cut a word, a CRLF or a combining sequence."""
    if p < 0 or p > len(t):
        return False
    if p in (0, len(t)):
        return True
    if unicodedata.combining(t[p]) or (t[p - 1] == "\r" and t[p] == "\n"):
        return False
    return not (t[p - 1].isalnum() and t[p].isalnum())


@dataclass
class _Prepared:
    """One text source with everything needed to convert its offsets."""

    source: QdaSource
    map: TextMap
    utf16: Utf16Index

    def convert(self, reading: str, start: int, end: int) -> tuple[int, int] | str:
        """Source offsets -> offsets into the normalised text, or a problem name."""
        if start < 0 or end <= start:
            return "empty_selection"
        if reading == "codepoints":
            limit = len(self.map.text)
            if end > limit:
                return "past_end"
            return start, end
        if reading == "nvivo":
            if end > self.utf16.total:
                return "past_end"
            cs, ce = self.utf16.to_codepoint(start), self.utf16.to_codepoint(end)
            if cs is None or ce is None:
                return "empty_selection"  # cuts a surrogate pair: not a real offset
            start, end = cs, ce
        elif end > len(self.map.raw):
            return "past_end"
        s, e = self.map.to_text(start), self.map.to_text(end, end=True)
        return (s, e) if e > s else "empty_selection"

    def boundary_hits(self, reading: str, offsets: Iterable[int]) -> int:
        hits = 0
        for x in offsets:
            if reading == "codepoints":
                hits += _good_boundary(self.map.text, x)
                continue
            p = self.utf16.to_codepoint(x) if reading == "nvivo" else x
            if p is not None and self.map.is_boundary(p) and _good_boundary(self.map.raw, p):
                hits += 1
        return hits


def reading_prior(origin: str) -> str:
    """The reading ``Project@origin`` suggests: NVivo, qualpipe, else code points."""
    low = origin.casefold()
    if "nvivo" in low:
        return "nvivo"
    if "qualpipe" in low:
        return "codepoints"
    return "qualcoder"


def choose_reading(
    prepared: Sequence[_Prepared], origin_param: str, project_origin: str
) -> tuple[str, dict[str, int], str | None]:
    """(reading, word-boundary hits per reading, a note when the check disagrees)."""
    if origin_param not in ORIGINS:
        raise PipelineError(f"origin must be one of {', '.join(ORIGINS)}; got {origin_param!r}")
    prior = origin_param if origin_param != "auto" else reading_prior(project_origin)
    offsets = [
        (p, [x for s in p.source.selections if s.end is not None for x in (s.start, s.end)])
        for p in prepared
    ]
    hits = {r: sum(p.boundary_hits(r, xs) for p, xs in offsets) for r in READINGS}
    total = sum(len(xs) for _, xs in offsets)
    best = max(READINGS, key=lambda r: (hits[r], r == prior))
    margin = max(1, -(-total // 20))  # at least 5% of the selection ends
    if best == prior or hits[best] - hits[prior] < margin:
        return prior, hits, None
    said = f"origin {project_origin!r}" if origin_param == "auto" else f"origin: {origin_param}"
    note = (
        f"{said} suggests reading offsets as {prior}, but {best} puts "
        f"{hits[best]} of {total} selection ends on word boundaries against {hits[prior]}"
    )
    if origin_param == "auto":
        return best, hits, note + f"; read as {best} (set origin: to force one)"
    return prior, hits, note + f"; kept {prior} as configured: check the origin parameter"


# -- matching documents, codes and segments ------------------------------------------------


def _fold(name: str) -> str:
    return " ".join(name.replace("\\", "/").split()).casefold()


class DocumentIndex:
    """Find our documents by doc_id, source path, file name, stem or identical text."""

    def __init__(self, documents: Iterable[Mapping[str, Any]]) -> None:
        self.docs: dict[str, Mapping[str, Any]] = {}
        self.names: dict[str, set[str]] = defaultdict(set)
        self.texts: dict[str, list[str]] = defaultdict(list)
        for d in documents:
            doc_id = d["doc_id"]
            self.docs[doc_id] = d
            path = PurePosixPath(str(d.get("source_path") or "").replace("\\", "/"))
            for key in (doc_id, str(path), path.name, path.stem):
                if key and key != ".":
                    self.names[_fold(key)].add(doc_id)
            self.texts[d["text"]].append(doc_id)

    def by_name(self, *names: str | None) -> tuple[str | None, list[str]]:
        """(doc_id, []) for a unique match, (None, candidates) otherwise."""
        for name in names:
            if not name:
                continue
            path = PurePosixPath(name.replace("\\", "/"))
            for key in (name, path.name, path.stem):
                found = sorted(self.names.get(_fold(key), ()))
                if len(found) == 1:
                    return found[0], []
                if found:
                    return None, found
        return None, []

    def by_text(self, text: str) -> str | None:
        found = self.texts.get(text, [])
        return found[0] if len(found) == 1 else None


class CodeMatcher:
    """Map a code of the file (guid, path of names, name, CSV value) to our code id."""

    def __init__(self, book: Codebook, overrides: Mapping[str, str] | None = None) -> None:
        self.ids = {c.id for c in book.codes}
        self.by_id = {_fold(c.id): c.id for c in book.codes}
        self.by_path = {_fold(book.path_name(c.id)): c.id for c in book.codes}
        names: dict[str, list[str]] = defaultdict(list)
        for c in book.codes:
            names[_fold(c.name)].append(c.id)
        self.by_name = {k: v[0] for k, v in names.items() if len(v) == 1}
        self.overrides: dict[str, str] = {}
        for key, value in (overrides or {}).items():
            target = self._lookup(str(value))
            if target is None:
                raise PipelineError(
                    f"codes: {key!r} maps to {value!r}, which is not a code id, name or path "
                    "in the codebook"
                )
            self.overrides[_fold(str(key))] = target

    def _lookup(self, key: str) -> str | None:
        k = _fold(key)
        return self.by_id.get(k) or self.by_path.get(k) or self.by_name.get(k)

    def match(self, *keys: str | None) -> str | None:
        """The first key (guid first, then path, then name) that names one of our codes."""
        for key in keys:
            if key and _fold(key) in self.overrides:
                return self.overrides[_fold(key)]
        for key in keys:
            found = self._lookup(key) if key else None
            if found:
                return found
        return None


@dataclass
class ReportItem:
    """A row of the ``mapping_report`` dataset."""

    problem: str
    detail: str
    mapped: bool = False
    source: str | None = None
    selection: str | None = None
    doc_id: str | None = None
    code: str | None = None
    coder: str | None = None
    start: int | None = None
    end: int | None = None


@dataclass
class ImportResult:
    rows: list[dict[str, Any]]
    report: list[ReportItem]
    stats: dict[str, Any]

    @property
    def unmapped(self) -> list[ReportItem]:
        return [r for r in self.report if not r.mapped]

    def codings_table(self) -> pa.Table:
        schema = pa.schema([*CODINGS.schema, *EXTRA_COLUMNS])
        return pa.Table.from_pylist(self.rows, schema=schema)

    def report_table(self) -> pa.Table:
        return pa.Table.from_pylist([asdict(r) for r in self.report], schema=MAPPING_REPORT.schema)


class _Builder:
    """Turns placed selections into codings rows, one per overlapped segment."""

    def __init__(
        self, segments: Iterable[Mapping[str, Any]], codebook_version: str, program: str | None
    ) -> None:
        by_doc: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        for s in segments:
            by_doc[s["doc_id"]].append((int(s["start"]), int(s["end"]), s["segment_id"]))
        self.segments = {d: sorted(v) for d, v in by_doc.items()}
        self.starts = {d: [s for s, _, _ in v] for d, v in self.segments.items()}
        self.version = codebook_version
        self.program = program
        self.rows: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.report: list[ReportItem] = []

    def add(
        self, doc_id: str, start: int, end: int, code_id: str, coder: str, item: ReportItem
    ) -> bool:
        segs = self.segments.get(doc_id, [])
        hi = bisect_left(self.starts.get(doc_id, []), end)
        hit = [(s, e, sid) for s, e, sid in segs[:hi] if e > start]
        if not hit:
            item.problem = "no_segment"
            item.detail = (
                f"the selection [{start}, {end}) of document {doc_id!r} overlaps no segment "
                "(dropped speakers? too short?); segment the text it covers to import it"
            )
            self.report.append(item)
            return False
        duplicate = False
        for s, e, sid in hit:
            lo, up = max(s, start), min(e, end)
            coding_id = f"{sid}:{code_id}:{coder}:{lo}-{up}"
            if coding_id in self.seen:
                duplicate = True
                continue
            self.seen.add(coding_id)
            self.rows.append(
                {
                    "coding_id": coding_id,
                    "segment_id": sid,
                    "doc_id": doc_id,
                    "start": lo,
                    "end": up,
                    "code_id": code_id,
                    "coder": coder,
                    "coder_version": self.program,
                    "coder_settings": None,
                    "score": 1.0,
                    "evidence": [],
                    "codebook_version": self.version,
                    "status": "human",
                    "overlap": round((up - lo) / (e - s), 6) if e > s else 1.0,
                    "selection": item.selection,
                }
            )
        if duplicate:
            item.problem, item.mapped = "duplicate", True
            item.detail = "the same code, coder and span occurs twice; imported once"
            self.report.append(item)
        return True


def _codebook_version(codebook: Codebook, version: str | None) -> str:
    return version or codebook.version


# -- QDPX -----------------------------------------------------------------------------------


def _match_source(
    src: QdaSource, docs: DocumentIndex, mapping: Mapping[str, str]
) -> tuple[str | None, str]:
    """(doc_id, how) or (None, why not)."""
    file = PurePosixPath((src.path or "").split("://", 1)[-1]).name
    for key in (src.guid, src.name, file):
        if key and key in mapping:
            doc_id, found = docs.by_name(str(mapping[key]))
            if doc_id:
                return doc_id, "mapping"
            return None, (
                f"mapping: {key!r} -> {mapping[key]!r} names no single document "
                f"({', '.join(found) or 'no match'}); use a doc_id or source_path"
            )
    if src.text is not None:
        doc_id = docs.by_text(normalise(src.text))
        if doc_id:
            return doc_id, "text"
    doc_id, found = docs.by_name(src.name, file)
    if doc_id:
        return doc_id, "name"
    if found:
        return None, (
            f"its name matches several documents ({', '.join(found)}); "
            "choose one with the mapping parameter"
        )
    return None, (
        "no document has its name or its text; add it to the mapping parameter "
        "(source name -> doc_id or source_path)"
    )


def import_qdpx(
    project: QdaProject,
    documents: Sequence[Mapping[str, Any]],
    segments: Iterable[Mapping[str, Any]],
    codebook: Codebook,
    *,
    origin: str = "auto",
    mapping: Mapping[str, str] | None = None,
    codes: Mapping[str, str] | None = None,
    default_coder: str = "human",
    codebook_version: str | None = None,
) -> ImportResult:
    """Place the coded selections of ``project`` on ``documents`` and ``segments``."""
    docs = DocumentIndex(documents)
    matcher = CodeMatcher(codebook, codes)
    builder = _Builder(
        segments, _codebook_version(codebook, codebook_version), project.origin or None
    )
    report = builder.report
    prepared = {
        s.guid: _Prepared(s, TextMap(s.text), Utf16Index(s.text))
        for s in project.sources
        if s.text is not None and s.problem is None
    }
    reading, hits, note = choose_reading(list(prepared.values()), origin, project.origin)
    if note:
        report.append(ReportItem("reading", note, mapped=True, source=project.file))
    problems: Counter[str] = Counter()
    mapped_codings = 0
    total = 0
    matched_by: Counter[str] = Counter()
    for src in project.sources:
        doc_id: str | None = None
        why = src.problem
        if why is None:
            doc_id, how = _match_source(src, docs, mapping or {})
            if doc_id is None:
                why = how
            else:
                matched_by[how] += 1
        prep = prepared.get(src.guid)
        same_text = (
            doc_id is not None and prep is not None and (prep.map.text == docs.docs[doc_id]["text"])
        )
        for sel in src.selections:
            for c in sel.codings:
                total += 1
                code = project.codes.get(c.code_guid)
                coder = project.users.get(c.user or "", c.user or default_coder)
                item = ReportItem(
                    "",
                    "",
                    source=src.name or src.guid,
                    selection=sel.guid or None,
                    doc_id=doc_id,
                    code=code.path if code else c.code_guid,
                    coder=coder,
                    start=sel.start if sel.end is not None else None,
                    end=sel.end,
                )
                placed = _place_qda(item, src, sel, doc_id, why, prep, reading, same_text, docs)
                if placed is None:
                    problems[item.problem] += 1
                    report.append(item)
                    continue
                code_id = matcher.match(
                    *(
                        (code.marker_id, c.code_guid, code.path, code.name)
                        if code
                        else (c.code_guid,)
                    )
                )
                if code_id is None:
                    item.problem = "unknown_code"
                    item.detail = (
                        f"code {item.code!r} is not in the codebook; add it, or map it with "
                        "the codes parameter (guid, name or path -> code id)"
                    )
                    problems[item.problem] += 1
                    report.append(item)
                    continue
                relocated = item if item.problem == "relocated" else None
                fresh = ReportItem(**{**asdict(item), "problem": "", "mapped": False})
                if builder.add(doc_id or "", placed[0], placed[1], code_id, coder, fresh):
                    mapped_codings += 1
                    if relocated is not None:
                        report.append(relocated)
                else:
                    problems["no_segment"] += 1
    stats = {
        "origin": project.origin,
        "reading": reading,
        "boundary_hits": hits,
        "sources": len(project.sources),
        "sources_matched": dict(sorted(matched_by.items())),
        "codings_in_file": total,
        "codings_imported": mapped_codings,
        "unmapped": total - mapped_codings,
        "problems": dict(sorted(problems.items())),
    }
    return ImportResult(builder.rows, report, stats)


def _place_qda(
    item: ReportItem,
    src: QdaSource,
    sel: QdaSelection,
    doc_id: str | None,
    why: str | None,
    prep: _Prepared | None,
    reading: str,
    same_text: bool,
    docs: DocumentIndex,
) -> tuple[int, int] | None:
    """Offsets into our document for one selection, or None (``item`` says why)."""
    name = src.name or src.guid
    if why is not None or prep is None or doc_id is None:
        item.problem = (
            "unsupported_source"
            if src.kind != "TextSource"
            else "missing_source_file"
            if src.problem and src.text is None
            else "unknown_source"
        )
        item.detail = f"source {name!r}: {why}"
        return None
    if sel.end is None:
        span: tuple[int, int] | str = (0, len(prep.map.text))
    else:
        span = prep.convert(reading, sel.start, sel.end)
    if isinstance(span, str):
        item.problem = span
        length = prep.utf16.total if reading == "nvivo" else len(prep.map.raw)
        item.detail = (
            f"source {name!r}: selection [{sel.start}, {sel.end}) "
            + (
                f"ends past the end of the text ({length} {reading} positions)"
                if span == "past_end"
                else "is empty or cuts a character"
            )
            + "; fix the selection in the QDA program and export again"
        )
        return None
    if same_text:
        return span
    # the document text differs (anonymised since? edited?): find the quote instead
    quote = prep.map.text[span[0] : span[1]]
    text = docs.docs[doc_id]["text"]
    first = text.find(quote) if quote.strip() else -1
    if first < 0 or text.find(quote, first + 1) >= 0:
        item.problem = "text_differs"
        item.detail = (
            f"source {name!r} differs from document {doc_id!r} and the selected words "
            f"{'occur more than once' if first >= 0 else 'are not'} in the document; "
            "code the same text version (e.g. the anonymised export)"
        )
        return None
    item.problem, item.mapped = "relocated", True
    item.detail = (
        f"source {name!r} differs from document {doc_id!r}; the selected words were found "
        f"once in the document at [{first}, {first + len(quote)})"
    )
    return first, first + len(quote)


# -- CSV ------------------------------------------------------------------------------------

CSV_COLUMNS = ("doc", "start", "end", "code")


def import_csv(
    path: Path,
    documents: Sequence[Mapping[str, Any]],
    segments: Iterable[Mapping[str, Any]],
    codebook: Codebook,
    *,
    codes: Mapping[str, str] | None = None,
    default_coder: str = "human",
    codebook_version: str | None = None,
) -> ImportResult:
    """Import ``doc,start,end,code[,coder]`` rows (code points into our document text)."""
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read the CSV file as UTF-8: {exc}") from None
    first = raw.splitlines()[0] if raw.strip() else ""
    delimiter = max(",;\t", key=first.count)
    reader = csv.DictReader(io.StringIO(raw), delimiter=delimiter)
    header = {(h or "").strip().casefold(): h for h in reader.fieldnames or []}
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise PipelineError(
            f"{path}: missing column(s) {', '.join(missing)} (found: "
            f"{', '.join(reader.fieldnames or []) or 'none'}); expected doc,start,end,code[,coder]"
        )
    docs = DocumentIndex(documents)
    matcher = CodeMatcher(codebook, codes)
    builder = _Builder(segments, _codebook_version(codebook, codebook_version), "csv")
    problems: Counter[str] = Counter()
    total = imported = 0
    for line, row in enumerate(reader, start=2):
        total += 1
        start = end = 0
        values = {c: (row.get(h) or "").strip() for c, h in header.items()}
        coder = values.get("coder") or default_coder
        item = ReportItem(
            "", "", source=path.name, selection=f"line {line}", code=values["code"], coder=coder
        )
        try:
            start, end = int(values["start"]), int(values["end"])
            item.start, item.end = start, end
        except ValueError:
            item.problem = "bad_row"
            item.detail = f"start/end must be integers, got {values['start']!r}, {values['end']!r}"
        doc_id, found = docs.by_name(values["doc"])
        item.doc_id = doc_id
        code_id = matcher.match(values["code"])
        if item.problem:
            pass
        elif doc_id is None:
            item.problem = "unknown_source"
            item.detail = f"doc {values['doc']!r} " + (
                f"matches several documents ({', '.join(found)}); use the doc_id"
                if found
                else "is no doc_id or source_path of the documents"
            )
        elif start < 0 or end <= start:
            item.problem = "empty_selection"
            item.detail = f"[{start}, {end}) is empty; end must be greater than start"
        elif end > len(docs.docs[doc_id]["text"]):
            item.problem = "past_end"
            item.detail = (
                f"end {end} is past the end of document {doc_id!r} "
                f"({len(docs.docs[doc_id]['text'])} characters); offsets are code points"
            )
        elif code_id is None:
            item.problem = "unknown_code"
            item.detail = f"code {values['code']!r} is no code id, name or path in the codebook"
        if item.problem:
            problems[item.problem] += 1
            builder.report.append(item)
            continue
        assert doc_id is not None and code_id is not None
        if builder.add(doc_id, start, end, code_id, coder, item):
            imported += 1
        else:
            problems["no_segment"] += 1
    stats = {
        "reading": "codepoints",
        "codings_in_file": total,
        "codings_imported": imported,
        "unmapped": total - imported,
        "problems": dict(sorted(problems.items())),
    }
    return ImportResult(builder.rows, builder.report, stats)


def import_codings(
    path: Path,
    documents: Sequence[Mapping[str, Any]],
    segments: Iterable[Mapping[str, Any]],
    codebook: Codebook,
    *,
    origin: str = "auto",
    mapping: Mapping[str, str] | None = None,
    codes: Mapping[str, str] | None = None,
    default_coder: str = "human",
    codebook_version: str | None = None,
) -> ImportResult:
    """Import a ``.qdpx`` project or a ``.csv`` file of human codings."""
    suffix = path.suffix.casefold()
    if not path.is_file():
        raise PipelineError(f"{path}: no such file; export the project as .qdpx or write a .csv")
    if suffix == ".qdpx":
        return import_qdpx(
            read_qdpx(path),
            documents,
            segments,
            codebook,
            origin=origin,
            mapping=mapping,
            codes=codes,
            default_coder=default_coder,
            codebook_version=codebook_version,
        )
    if suffix == ".csv":
        return import_csv(
            path,
            documents,
            segments,
            codebook,
            codes=codes,
            default_coder=default_coder,
            codebook_version=codebook_version,
        )
    raise PipelineError(f"{path}: import a REFI-QDA .qdpx project or a .csv file")
