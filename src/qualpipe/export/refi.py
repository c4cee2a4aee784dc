"""REFI-QDA exports: a whole project (``qdpx``) and the codebook alone (``qdc``).

``qdpx`` writes ``<pipeline>.qdpx``: a zip holding ``project.qde`` (QDA-XML project 1.0,
valid against REFI-QDA's ``Project.xsd``) and ``sources/<GUID>.txt``, the anonymised text
of every document as UTF-8 without a BOM and with LF line ends, referenced as
``internal://<GUID>.txt``. The project holds, in the schema's order:

* ``Users``: one per coder (machine coders as ``name vVERSION``, people by name), ordered
  by how many codings they made (QualCoder makes the first user its current coder), and
  last the user ``qualpipe`` that made the sources and the memo;
* ``CodeBook``: the codebook with the GUIDs, names and descriptions of the ``.qdc``
  export (:mod:`qualpipe.qdc`), so both files and a later import agree;
* ``Variables``: one Text variable per participant attribute, and ``participant``;
* ``Cases``: one per participant, with its attribute values and ``SourceRef``s;
* ``Sources``: one ``TextSource`` per document named ``<participant>_<doc_id>`` (never a
  file name, which may hold a real name), with a ``PlainTextSelection`` per coding:
  Unicode code point offsets, end exclusive, checked against the exported text; the
  selection's ``Description`` gives status, coder, score and evidence; the source's
  ``participant`` value links it to its case in programs that ignore ``SourceRef``;
* ``Notes``: a dated project memo with the run's provenance (stages, plugins, versions,
  row counts; never parameters, which may hold names on a deny list);
* ``Sets``: one per participant with its sources (QualCoder ignores ``SourceRef`` in cases);
* ``Description`` and a ``NoteRef`` to the memo.

Every GUID is a UUID version 5 of what it names and every date is the time the last
stage of the run finished (from the run manifests), so exporting the same run twice gives
the same bytes. Options: ``statuses`` (default ``[suggested, accepted, human]``; rejected
codings are never exported), ``include_segments_as_codes`` (default false: also code
every segment with a code ``Segments (qualpipe)``), ``codebook_name`` (default: the
codebook file's own name, found through the codebook stage of the run).

``qdc`` writes ``codebook.qdc`` with :func:`qualpipe.qdc.write_qdc`.

What real programs do with imperfect files, and what this module guards against:
docs/interop.md.

Memory does not grow with the corpus: the datasets are read a batch at a time; the texts,
and the segments and codings partitioned by document, wait in spill files (a hidden
temporary folder beside the archive, removed at the end); each document's selections are
made from its own rows and its ``TextSource`` goes, compressed, to a spill of the XML,
which is copied into ``project.qde`` once the coders' totals (the ``Users`` that come
first) are known. Held throughout: a few fields per document and the codebook. Same bytes
as building it all in memory (tests/test_export_qdpx_stream.py); docs/performance.md.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
import xml.etree.ElementTree as ET
import zipfile
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any, BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from qualpipe.codebook import Codebook, load_codebook
from qualpipe.errors import DatasetError, PipelineError, QualpipeError
from qualpipe.exporters import ExportBundle, Exporter
from qualpipe.qdc import code_guid, describe, write_qdc, written_names
from qualpipe.store import DatasetReader, parquet_file

NS = "urn:QDA-XML:project:1.0"
#: uuid5 namespace of every GUID other than codes' (fixed forever).
OBJECT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:qualpipe:refi-qda:project")
STATUSES = ("suggested", "accepted", "human", "rejected")
DEFAULT_STATUSES = ("suggested", "accepted", "human")
#: the date written when the run has no manifests (the earliest a zip file can hold)
FALLBACK_TIME = "1980-01-01T00:00:00Z"
SEGMENTS_CODE = "Segments (qualpipe)"
EXPORTER_USER = "qualpipe"
PARTICIPANT_VARIABLE = "participant"

QDPX_OPTIONS = {
    "statuses": "coding statuses to export (default suggested, accepted, human; never rejected)",
    "include_segments_as_codes": "also code every segment with 'Segments (qualpipe)'",
    "codebook_name": "codebook name for the code GUIDs (default: the codebook file's name)",
}
QDC_OPTIONS = {"codebook_name": QDPX_OPTIONS["codebook_name"]}

# characters XML 1.0 cannot hold at all (as qualpipe.qdc)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_UNSAFE_NAME = re.compile(r"[^\w.-]+")


_DUMPS = json.JSONEncoder(ensure_ascii=False).encode
_NAMESPACE_BYTES = OBJECT_NAMESPACE.bytes


def object_guid(*parts: Any) -> str:
    """The GUID of a project object (source, user, selection, ...) named by ``parts``.

    ``str(uuid.uuid5(OBJECT_NAMESPACE, json.dumps(parts, ensure_ascii=False)))``, computed
    without building UUID objects (a project has one per coding).
    """
    return _guid_of_json(_DUMPS(parts))


_SHA1_NAMESPACE = hashlib.sha1(_NAMESPACE_BYTES)


def _guid_of_json(name: str) -> str:
    """:func:`object_guid` of the parts whose JSON text is ``name``."""
    sha = _SHA1_NAMESPACE.copy()
    sha.update(name.encode("utf-8"))
    digest = bytearray(sha.digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    x = digest[:16].hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


def _xml(text: str) -> str:
    return _NOT_XML.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _label(text: str) -> str:
    """An attribute value on one line (names, values)."""
    return " ".join(_xml(text).split())


# -- options, time, codebook ----------------------------------------------------------------


def _options(bundle: ExportBundle, fmt: str, allowed: Mapping[str, str]) -> dict[str, Any]:
    options = dict(bundle.options)
    unknown = sorted(str(k) for k in options if k not in allowed)
    if unknown:
        raise PipelineError(
            f"export: {fmt}: unknown option(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(allowed))})"
        )
    name = options.get("codebook_name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        raise PipelineError(f"export: {fmt}: codebook_name must be a non-empty string")
    return options


def _statuses(options: Mapping[str, Any]) -> tuple[str, ...]:
    raw = options.get("statuses", list(DEFAULT_STATUSES))
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise PipelineError("export: qdpx: statuses must be a list of coding statuses")
    if "rejected" in raw:
        raise PipelineError(
            "export: qdpx: statuses: rejected codings are never exported; "
            f"choose among {', '.join(DEFAULT_STATUSES)}"
        )
    unknown = [s for s in raw if s not in STATUSES]
    if unknown:
        raise PipelineError(
            f"export: qdpx: unknown status(es) {', '.join(unknown)} "
            f"(choose among {', '.join(DEFAULT_STATUSES)})"
        )
    return tuple(dict.fromkeys(raw))


def _run_stages(bundle: ExportBundle) -> list[dict[str, Any]]:
    """The run's stages without export stages (their manifests are from earlier runs)."""
    return [s for s in bundle.provenance() if "exports" not in (s.get("rows") or {})]


def _utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def export_time(stages: Sequence[Mapping[str, Any]]) -> str:
    """When the last stage of the run finished (xsd:dateTime in UTC), never the clock."""
    times = [t for t in (_utc(s.get("finished_at")) for s in stages) if t is not None]
    return max(times).strftime("%Y-%m-%dT%H:%M:%SZ") if times else FALLBACK_TIME


def _codebook_label(
    table: Any, stages: Sequence[Mapping[str, Any]], option: str | None
) -> tuple[str, str]:
    """(name, description) of the codebook: the GUIDs of its codes depend on the name.

    The ``codebook`` dataset keeps codes only, so the name comes from the option, else
    from the codebook stage that made this version (its ``codebook_name`` note, else its
    file when that file still has this version), else ``codebook``.
    """
    if option:
        return option.strip(), ""
    version = table.column("codebook_version")[0].as_py() if table.num_rows else None
    for stage in reversed(stages):
        stats = stage.get("stats") or {}
        if "codebook" not in (stage.get("rows") or {}) or stats.get("codebook_version") != version:
            continue
        if isinstance(stats.get("codebook_name"), str) and stats["codebook_name"]:
            return stats["codebook_name"], str(stats.get("codebook_description") or "")
        path = (stage.get("params") or {}).get("path")
        if isinstance(path, str) and Path(path).is_absolute():
            try:
                book = load_codebook(Path(path))
            except (QualpipeError, OSError, ValueError):
                continue  # a label is not worth failing the export for
            if book.version == version:
                return book.name, book.description
    return "codebook", ""


def export_codebook(bundle: ExportBundle, option: str | None = None) -> Codebook | None:
    """The codebook of the bundle with its name (None without a codebook dataset)."""
    table = bundle.table("codebook")
    if table is None:
        return None
    name, description = _codebook_label(table, _run_stages(bundle), option)
    book = Codebook.from_table(table, name=name, description=description)
    book.validate("codebook dataset")
    return book


# -- the project ----------------------------------------------------------------------------


class _LfText:
    """A document's text as exported (LF only, no BOM) and the offset map into it.

    Documents are normalised at ingest, so this is the identity there; a text that still
    holds a BOM or a CR loses them and every offset moves with the text.
    """

    def __init__(self, text: str) -> None:
        self.length = len(text)
        self.removed: list[int] = []
        if "\r" not in text and not text.startswith("\ufeff"):
            self.text = text
            return
        out: list[str] = []
        for i, ch in enumerate(text):
            if (ch == "\ufeff" and i == 0) or (ch == "\r" and text[i + 1 : i + 2] == "\n"):
                self.removed.append(i)
            else:
                out.append("\n" if ch == "\r" else ch)
        self.text = "".join(out)

    @classmethod
    def restored(cls, text: str, length: int, removed: list[int]) -> _LfText:
        """The text read back from :class:`_Texts`: the exported text, the length of the
        dataset's text and the offsets the export removed from it."""
        lf = cls.__new__(cls)
        lf.text, lf.length, lf.removed = text, length, removed
        return lf

    def map(self, offset: int) -> int:
        return offset - bisect_left(self.removed, offset) if self.removed else offset


@dataclass
class _User:
    guid: str
    name: str
    kind: str  # machine | human | exporter
    codings: int = 0


@dataclass(slots=True)
class _Selection:
    start: int
    end: int
    code_guid: str
    user: _User
    memo: str
    key: tuple[Any, ...]  # what makes it unique: its GUIDs come from it
    order: tuple[Any, ...]  # where it goes among the selections of its source


@dataclass
class _Source:
    """What the project keeps of a document throughout (the cases, sets and ``TextSource``
    name it); its text and its selections are read back from the spill files on disk when
    its ``TextSource`` is written, one document at a time."""

    doc_id: str
    guid: str
    name: str
    participant: str | None
    attributes: dict[str, str]
    length: int  # characters of the dataset's text (what offsets are checked against)
    sensitive: bool
    language: str | None
    text_at: tuple[int, int, int]  # in the texts file: offset, UTF-8 bytes, offsets removed
    number: int = -1  # the place in doc_id order: the document's partition in the spills


@dataclass
class QdpxContent:
    """What :func:`build_qdpx` made: the archive's members in order, and counts."""

    members: dict[str, bytes]
    stats: dict[str, Any]


def _attributes(value: Any) -> dict[str, str]:
    items: Iterable[Any] = value.items() if isinstance(value, Mapping) else (value or [])
    out: dict[str, str] = {}
    for k, v in items:
        if _label(str(k)):
            out.setdefault(_label(str(k)), "" if v is None else _label(str(v)))
    return out


def _coder_name(coder: str, version: str) -> str:
    if not version:
        return coder
    return f"{coder} v{version}" if version[:1].isdigit() else f"{coder} {version}"


@lru_cache(maxsize=1 << 16)
def _term_label(term: str) -> str:
    """:func:`_label` of an evidence term (the same few terms recur in every memo)."""
    return _label(term)


def _coding_memo(row: Mapping[str, Any], user: _User) -> str:
    """The selection's ``Description`` (QualCoder shows it as the coding memo)."""
    status = str(row["status"])
    lines = [f"status: {status}" + (" (machine suggestion: review it)" * (status == "suggested"))]
    settings = row.get("coder_settings") if user.kind == "machine" else None
    lines.append(f"coder: {user.name}" + (f", settings {settings}" if settings else ""))
    if row.get("score") is not None:
        lines.append(f"score: {float(row['score']):.4g}")
    terms: list[str] = []
    for raw in row.get("evidence") or []:  # the evidence's terms (see _coding_rows)
        term = _term_label(str(raw or ""))
        if term and term not in terms:
            terms.append(term)
    if terms:
        lines.append("evidence: " + ", ".join(terms))
    lines.append(f"qualpipe coding: {row['coding_id']}")
    return _xml("\n".join(lines))


def _coding_rows(table: pa.Table | None) -> list[dict[str, Any]]:
    """The codings as rows whose ``evidence`` is the list of the evidence items' terms
    (``None`` for an item without one), which is all the memos use: Arrow takes the terms
    out at once instead of a dict per evidence item (2.5 times faster to read)."""
    if table is None:
        return []
    ev_type = table.schema.field("evidence").type if "evidence" in table.column_names else None
    if not (
        ev_type is not None
        and pa.types.is_list(ev_type)
        and pa.types.is_struct(ev_type.value_type)
        and ev_type.value_type.get_field_index("term") >= 0
    ):
        rows: list[dict[str, Any]] = table.to_pylist()
        for row in rows:
            if "evidence" in row:
                items = row["evidence"] or []
                row["evidence"] = [i.get("term") if isinstance(i, Mapping) else None for i in items]
        return rows
    evidence = table["evidence"].combine_chunks()
    rows = table.drop_columns(["evidence"]).to_pylist()
    for row in rows:
        row["evidence"] = []
    terms = pc.struct_field(pc.list_flatten(evidence), "term").to_pylist()
    for i, term in zip(pc.list_parent_indices(evidence).to_pylist(), terms, strict=True):
        rows[i]["evidence"].append(term)
    return rows


def _text(text: str) -> str:
    """Character data escaped as ``ElementTree`` escapes it."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _attribute(text: str) -> str:
    """An attribute value escaped as ``ElementTree`` escapes it."""
    text = _text(text)
    if '"' in text:
        text = text.replace('"', "&quot;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    if "\n" in text:
        text = text.replace("\n", "&#10;")
    if "\t" in text:
        text = text.replace("\t", "&#09;")
    return text


#: Characters of XML text kept before they are written out as UTF-8.
XML_CHUNK = 1 << 20


class _Xml:
    """Writes an XML document as it is made, character for character what
    ``ET.indent(root, space="  ")`` and ``ET.tostring(root, encoding="unicode")`` write for
    the same tree, so that a project never has to be one tree (or one string) in memory.
    """

    def __init__(self, out: BinaryIO, within: Sequence[str] = ()) -> None:
        """``within``: the elements (outermost first) another writer has opened, so that
        this one writes a part of their children (the innermost has none written yet)."""
        self._out = out
        self._chunks: list[str] = []
        self._size = 0
        # tag, [has children]
        self._open: list[tuple[str, list[bool]]] = [(tag, [True]) for tag in within]
        if self._open:
            self._open[-1][1][0] = False

    def write(self, text: str) -> None:
        self._chunks.append(text)
        self._size += len(text)
        if self._size > XML_CHUNK:
            self.flush()

    def flush(self) -> None:
        if self._chunks:
            self._out.write("".join(self._chunks).encode("utf-8"))
            self._chunks, self._size = [], 0

    def indentation(self, extra: int = 0) -> str:
        """The newline and spaces before a child of the open element (``extra`` deeper)."""
        return "\n" + "  " * (len(self._open) + extra)

    def had_children(self) -> None:
        """Note that the open element has children written with :meth:`write`."""
        if self._open:
            self._open[-1][1][0] = True

    def has_children(self) -> bool:
        """Whether the open element has children written."""
        return bool(self._open and self._open[-1][1][0])

    def copy(self, path: Path, children: bool) -> None:
        """Copy in the spill file at ``path`` (:func:`_spill_output`): children of the open
        element, written by another :class:`_Xml` made ``within`` it; ``children``: whether
        it wrote any."""
        self.flush()
        with _spill_input(path) as spilled:
            while chunk := spilled.read(COPY_BYTES):
                self._out.write(chunk)
        if children:
            self.had_children()

    def _child(self) -> None:
        if self._open:
            state = self._open[-1][1]
            if not state[0]:
                self.write(">")
                state[0] = True
            self.write(self.indentation())

    def start(self, tag: str, attrs: Mapping[str, str] | None = None) -> None:
        self._child()
        self.write(f"<{tag}{_attributes_text(attrs)}")
        self._open.append((tag, [False]))

    def end(self) -> None:
        tag, state = self._open.pop()
        if state[0]:
            self.write(f"{self.indentation()}</{tag}>")
        else:
            self.write(" />")

    def leaf(self, tag: str, text: str | None, attrs: Mapping[str, str] | None = None) -> None:
        self._child()
        if text:
            self.write(f"<{tag}{_attributes_text(attrs)}>{_text(text)}</{tag}>")
        else:
            self.write(f"<{tag}{_attributes_text(attrs)} />")

    def element(self, element: ET.Element) -> None:
        """A small subtree, indented at the depth of the open element's children."""
        self._child()
        ET.indent(element, space="  ", level=len(self._open))
        self.write(ET.tostring(element, encoding="unicode"))
        if self._open:  # the open element's children are written
            self._open[-1][1][0] = True

    def elements(self, parent: ET.Element) -> None:
        """The children of ``parent`` as children of the open element."""
        for child in parent:
            self.element(child)


def _attributes_text(attrs: Mapping[str, str] | None) -> str:
    return "".join(f' {k}="{_attribute(v)}"' for k, v in (attrs or {}).items())


#: Rows a batch when the project reads a dataset (memory: one batch of rows at a time).
READ_ROWS = 16384


#: Documents a batch when their texts are read (the documents dataset's row groups hold 64).
DOCUMENT_ROWS = 64
#: Rows (codings, segments) gathered before they are sorted by document and written to
#: their spill file: the most rows of a dataset the project holds at once.
SPILL_ROWS = 1 << 16
#: Bytes a read when a spilled part of the XML is copied into the archive.
COPY_BYTES = 1 << 20


def _tables(
    reader: DatasetReader, wanted: Sequence[str] | None, rows: int | None = None
) -> Iterator[pa.Table]:
    """The dataset a batch of ``rows`` (default :data:`READ_ROWS`) at a time, only the
    ``wanted`` columns it has (all when None); a reader without part files (a plugin's
    or a test's) is read whole."""
    rows = rows or READ_ROWS
    files = getattr(reader, "files", None)
    if files is None:
        table = reader.read_all()
        if wanted is not None:
            table = table.select([c for c in wanted if c in table.column_names])
        for batch in table.to_batches(rows):
            yield pa.Table.from_batches([batch], table.schema)
        return
    for f in files:
        pf = parquet_file(f)
        columns = None if wanted is None else [c for c in wanted if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(batch_size=rows, columns=columns):
            yield pa.Table.from_batches([batch])


# -- spill files: what belongs to a document, on disk until its TextSource is written -------

#: Compression of the spilled XML (~12 times smaller at ~1 GB/s), none where pyarrow lacks
#: it; of the partitions (codings ~3, segments ~4 times smaller): lz4, which costs ~10% of
#: the export's CPU where zstd cost ~20%.
_SPILL_CODEC = "zstd" if pa.Codec.is_available("zstd") else None
_PARTITION_CODEC = "lz4" if pa.Codec.is_available("lz4") else None


def _spill_output(path: Path) -> Any:
    return pa.output_stream(str(path), compression=_SPILL_CODEC)


def _spill_input(path: Path) -> Any:
    return pa.input_stream(str(path), compression=_SPILL_CODEC)


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with the columns and types of ``schema`` (nulls for a column it lacks)."""
    if table.schema.equals(schema):
        return table
    columns = [
        table.column(f.name).cast(f.type)
        if f.name in table.column_names
        else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


class _Partitions:
    """A dataset's rows partitioned by document on disk, so that the project holds the
    rows of one document at a time, never a dataset's.

    Rows gathered up to :data:`SPILL_ROWS` are sorted by document, stably (a document's
    rows stay in the order they were read), and written to one Arrow IPC file as a record
    batch per document; :meth:`rows` reads a document's batches back.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.schema: pa.Schema | None = None
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: Any = None
        self._reader: Any = None
        self._file: Any = None
        self._batches: dict[int, list[int]] = {}  # document number -> batches in the file
        self._written = 0

    def add(self, table: pa.Table, documents: pa.ChunkedArray | pa.Array) -> None:
        """The rows of ``table``, row ``i`` of document number ``documents[i]``."""
        if not table.num_rows:
            return
        if self.schema is None:
            self.schema = table.schema
        table = _conform(table, self.schema)
        self._pending.append(table.append_column("__document", documents))
        self._pending_rows += table.num_rows
        if self._pending_rows >= SPILL_ROWS:
            self._spill()

    def _spill(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        documents = np.concatenate(
            [c.to_numpy(zero_copy_only=False) for c in table.column("__document").chunks]
        )
        order = np.argsort(documents, kind="stable")
        documents = documents[order]
        table = table.drop_columns(["__document"]).take(pa.array(order)).combine_chunks()
        if self._writer is None:
            options = pa.ipc.IpcWriteOptions(compression=_PARTITION_CODEC)
            self._writer = pa.ipc.new_file(str(self.path), table.schema, options=options)
        cuts = (np.flatnonzero(np.diff(documents)) + 1).tolist()
        for start, end in zip([0, *cuts], [*cuts, len(documents)], strict=True):
            for batch in table.slice(start, end - start).to_batches():
                self._writer.write_batch(batch)
                self._batches.setdefault(int(documents[start]), []).append(self._written)
                self._written += 1

    def finish(self) -> None:
        """Every row is added: write what is gathered and open the file to read."""
        self._spill()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self._file = pa.OSFile(str(self.path))
            self._reader = pa.ipc.open_file(self._file)

    def rows(self, document: int) -> pa.Table | None:
        """The rows of document number ``document`` in the order they were read."""
        numbers = self._batches.get(document)
        if not numbers:
            return None
        return pa.Table.from_batches([self._reader.get_batch(i) for i in numbers])

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        if self._file is not None:
            self._file.close()
        self._writer = self._reader = self._file = None


class _Texts:
    """The documents' texts as exported (UTF-8, LF) in one file on disk, each followed by
    the offsets its export removed (int64)."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("w+b")
        self._end = 0

    def add(self, text: _LfText) -> tuple[int, int, int]:
        """Keep ``text``; return where it is (:attr:`_Source.text_at`)."""
        data = text.text.encode("utf-8")
        removed = array("q", text.removed).tobytes()
        self._file.seek(self._end)
        self._file.write(data)
        self._file.write(removed)
        at = (self._end, len(data), len(text.removed))
        self._end += len(data) + len(removed)
        return at

    def data(self, source: _Source) -> bytes:
        """The exported text's bytes."""
        self._file.seek(source.text_at[0])
        return self._file.read(source.text_at[1])

    def text(self, source: _Source) -> _LfText:
        removed = array("q")
        data = self.data(source)
        removed.frombytes(self._file.read(8 * source.text_at[2]))
        return _LfText.restored(data.decode("utf-8"), source.length, removed.tolist())

    def close(self) -> None:
        self._file.close()


_STATUS_RANK = {"human": 0, "accepted": 1, "suggested": 2}

#: The codings' columns the project uses.
CODING_COLUMNS = (
    "coding_id", "segment_id", "doc_id", "start", "end", "code_id", "status",
    "coder", "coder_version", "coder_settings", "score", "evidence",
)  # fmt: skip


class _Project:
    """Reads and checks the bundle's datasets, then writes the project element.

    Memory does not grow with the corpus' text or codings: the datasets are read a batch
    at a time; the documents' texts, and the segments and codings partitioned by document,
    go to spill files in ``spill`` (a temporary folder); then each document's selections
    are made from its own rows and its ``TextSource`` is written, compressed, to a spill of
    the XML, counting codings per user (the ``Users`` that come first need them) and the
    XML's size. :meth:`write` copies that spill between the project's other parts. What
    stays in memory is a few fields per document (:class:`_Source`) and the codebook.
    """

    def __init__(
        self, bundle: ExportBundle, options: Mapping[str, Any], spill: Path, cleanup: ExitStack
    ) -> None:
        self.bundle = bundle
        self.statuses = _statuses(options)
        self.with_segments = options.get("include_segments_as_codes", False)
        if not isinstance(self.with_segments, bool):
            raise PipelineError("export: qdpx: include_segments_as_codes must be true or false")
        self.stages = _run_stages(bundle)
        self.time = export_time(self.stages)
        book = export_codebook(bundle, options.get("codebook_name"))
        self.has_codebook = book is not None
        self.book = book if book is not None else Codebook("codebook", [])
        self.code_names = written_names(self.book)
        self.position = {c.id: i for i, c in enumerate(self.book.codes)}
        self._code_guids: dict[str, str] = {}
        self.exporter = _User(object_guid("user", "exporter"), EXPORTER_USER, "exporter")
        self.users: dict[tuple[str, ...], _User] = {}
        self._user_of: dict[tuple[Any, ...], _User] = {}
        self.skipped: Counter[str] = Counter()
        self.segments_code: str | None = None
        self.codings = 0  # selections of codings written (duplicates left out)
        self.segment_codings = 0  # selections of segments written
        # an upper bound of the XML's size (a selection is ~700 bytes and its memo, escaped,
        # at most 6 times its characters in UTF-8): the zip uses ZIP64 only where it may need it
        self.size = 1 << 20
        self.texts = _Texts(spill / "texts.bin")
        cleanup.callback(self.texts.close)
        self.sources = self._read_documents()
        self.people = self.participants()
        self._doc_ids = pa.array(list(self.sources), pa.string())
        self._segments = _Partitions(spill / "segments.arrow")
        cleanup.callback(self._segments.close)
        self._codings = _Partitions(spill / "codings.arrow")
        cleanup.callback(self._codings.close)
        self._segment_rows = self._read_segments()
        self._read_codings()
        if self.with_segments:
            self._name_segments_code()
        self.sources_xml = spill / "sources.xml"
        self.sources_have_children = self._write_sources(self.sources_xml)

    # -- reading and checking ---------------------------------------------------------------

    def _read_documents(self) -> dict[str, _Source]:
        """The documents, their texts spilled to disk (a batch of documents at a time)."""
        reader = self.bundle.datasets.get("documents")
        found: dict[str, _Source] = {}
        wanted = ("doc_id", "participant_id", "attributes", "text", "sensitive", "language")
        batch = min(READ_ROWS, DOCUMENT_ROWS)
        for table in _tables(reader, wanted, batch) if reader is not None else ():
            for row in table.to_pylist():
                doc_id = str(row["doc_id"])
                participant = _label(str(row.get("participant_id") or "")) or None
                safe = _UNSAFE_NAME.sub("_", participant).strip("_") if participant else ""
                text = _LfText(str(row["text"]))
                found[doc_id] = _Source(  # the last of a doc_id read, as before
                    doc_id=doc_id,
                    guid=object_guid("source", doc_id),
                    name=f"{safe}_{doc_id}" if safe else doc_id,
                    participant=participant,
                    attributes=_attributes(row.get("attributes")),
                    length=text.length,
                    sensitive=bool(row.get("sensitive")),
                    language=row.get("language"),
                    text_at=self.texts.add(text),
                )
        sources = dict(sorted(found.items()))
        for number, source in enumerate(sources.values()):
            source.number = number
        return sources

    def _numbers(self, table: pa.Table) -> pa.ChunkedArray:
        """The number of each row's document (null: not an exported document)."""
        ids = pc.fill_null(table.column("doc_id").cast(pa.string()), "None")
        return pc.index_in(ids, value_set=self._doc_ids)

    def _read_segments(self) -> int:
        """Partition the segments by document (those of other documents have nothing to
        be written); return how many the dataset holds."""
        reader = self.bundle.datasets.get("segments")
        if reader is None:
            return 0
        wanted = ["segment_id", "doc_id", "start", "end", "text"]
        if self.with_segments:
            wanted += ["strategy", "speaker"]
        count = 0
        for table in _tables(reader, wanted):
            count += table.num_rows
            numbers = self._numbers(table)
            known = pc.is_valid(numbers)
            self._segments.add(table.filter(known), numbers.filter(known))
        self._segments.finish()
        return count

    def _check_span(self, what: str, doc_id: str, start: Any, end: Any) -> _Source:
        """The source of a span; a span off the text is an error."""
        source = self.sources.get(doc_id)
        if source is None:
            raise DatasetError(
                f"export: qdpx: {what} is in document {doc_id!r}, which is not in the "
                "documents dataset; export the documents it was made on"
            )
        n = source.length
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= n):
            raise DatasetError(
                f"export: qdpx: {what} has offsets [{start}, {end}), outside document "
                f"{doc_id!r} ({n} characters): it was made on another text; re-run the "
                "stages that made it"
            )
        return source

    def _check_coding(self, row: Mapping[str, Any]) -> None:
        """What is checked of a coding before its document's text is read."""
        what = f"coding {row['coding_id']!r}"
        if row["code_id"] not in self.position:
            raise DatasetError(
                f"export: qdpx: {what} uses code {row['code_id']!r}, which is not in "
                f"the codebook {self.book.name!r}; re-run the code stage with this codebook"
            )
        self._check_span(what, str(row["doc_id"]), row["start"], row["end"])

    def _segment_error(self, segment_id: Any, doc_id: str) -> DatasetError:
        return DatasetError(
            f"export: qdpx: segment {segment_id!r} does not match the text of "
            f"document {doc_id!r} (was the document changed after it was segmented?); "
            "re-run segment and code on the documents you export"
        )

    def _check_segment(self, seg: Mapping[str, Any], doc_id: str) -> None:
        """A segment's text must be the document's text at its offsets."""
        if not (str(seg["doc_id"]) == doc_id and seg["text_ok"]):
            raise self._segment_error(seg["segment_id"], doc_id)

    def _user(self, row: Mapping[str, Any]) -> _User:
        raw = (row["status"] == "human", row["coder"], row.get("coder_version"))
        user = self._user_of.get(raw)
        if user is None:
            user = self._user_of[raw] = self._new_user(row)
        return user

    def _new_user(self, row: Mapping[str, Any]) -> _User:
        coder = _label(str(row["coder"])) or "unknown"
        if row["status"] == "human":
            key: tuple[str, ...] = ("human", coder)
            name = coder
        else:
            version = _label(str(row.get("coder_version") or ""))
            key = ("machine", coder, version)
            name = _coder_name(coder, version)
        if key not in self.users:
            self.users[key] = _User(object_guid("user", *key), name, key[0])
        return self.users[key]

    def _read_codings(self) -> None:
        """Check the codings to export a batch at a time, with Arrow, and partition them by
        document; a coding's segment is checked when its document's text is read."""
        reader = self.bundle.datasets.get("codings")
        statuses = pa.array(self.statuses, pa.string())
        code_ids = pa.array(list(self.position), pa.string())
        lengths = pa.array([s.length for s in self.sources.values()], pa.int64())
        for table in _tables(reader, CODING_COLUMNS) if reader is not None else ():
            status = table.column("status").cast(pa.string())
            keep = pc.fill_null(pc.is_in(status, value_set=statuses), False)
            if pc.sum(keep).as_py() != table.num_rows:
                for value, n in Counter(status.filter(pc.invert(keep)).to_pylist()).items():
                    self.skipped[str(value)] += n
                table = table.filter(keep)
            if not table.num_rows:
                continue
            if not self.has_codebook:
                raise PipelineError(
                    "export: qdpx: the pipeline has codings but no codebook dataset; add "
                    "the codebook stage so the codes can be written"
                )
            numbers = self._numbers(table)
            known_code = pc.is_in(table.column("code_id").cast(pa.string()), value_set=code_ids)
            ok = pc.and_(pc.fill_null(known_code, False), pc.is_valid(numbers))
            start, end = table.column("start"), table.column("end")
            if pa.types.is_integer(start.type) and pa.types.is_integer(end.type):
                n = pc.take(lengths, numbers)
                span = pc.and_(
                    pc.and_(pc.greater_equal(start, 0), pc.less(start, end)),
                    pc.less_equal(end, n),
                )
                ok = pc.and_(ok, pc.fill_null(span, False))
            else:
                ok = pc.and_(ok, pa.scalar(False))
            if pc.sum(ok).as_py() != table.num_rows:
                for row in table.filter(pc.invert(ok)).to_pylist():
                    self._check_coding(row)  # raises the error of the first one
            self._codings.add(table, numbers)
        self._codings.finish()

    def _name_segments_code(self) -> None:
        if not self._segment_rows:
            raise PipelineError(
                "export: qdpx: include_segments_as_codes needs the segments dataset; add a "
                "segment stage or set the option to false"
            )
        taken = {n.casefold() for n in self.code_names.values()}
        name, n = SEGMENTS_CODE, 1
        while name.casefold() in taken:
            n += 1
            name = f"{SEGMENTS_CODE} {n}"
        self.segments_code = name

    def _write_sources(self, path: Path) -> bool:
        """Every ``TextSource`` with its selections, in doc_id order and a document at a
        time, into the spill at ``path``; return whether there is any."""
        participant_var = object_guid("participant") if self.people else None
        unresolved: dict[str, str] = {}  # segment id -> the document of a coding of it
        with _spill_output(path) as out:
            xml = _Xml(out, within=("Project", "Sources"))
            for source in self.sources.values():
                selections = self._selections(source, unresolved)
                memos = sum(map(len, (s.memo for s in selections)))
                self.size += 1024 + 6 * len(source.name) + 800 * len(selections) + 6 * memos
                self._source(xml, source, selections, participant_var)
            xml.flush()
            written = xml.has_children()
        if unresolved:
            self._check_other_segments(unresolved)
        return written

    def _check_other_segments(self, unresolved: Mapping[str, str]) -> None:
        """Codings whose segment is not one of their document's: an error where the segment
        is in the dataset (of another document), as when the codings were read whole."""
        reader = self.bundle.datasets.get("segments")
        wanted = pa.array(list(unresolved), pa.string())
        for table in _tables(reader, ("segment_id",)) if reader is not None else ():
            ids = pc.fill_null(table.column("segment_id").cast(pa.string()), "None")
            found = ids.filter(pc.is_in(ids, value_set=wanted))
            if len(found):
                segment_id = found[0].as_py()
                raise self._segment_error(segment_id, unresolved[segment_id])

    def _selections(self, source: _Source, unresolved: dict[str, str]) -> list[_Selection]:
        """The document's selections in order: its codings (one per code, coder and span)
        and, with ``include_segments_as_codes``, its segments."""
        text = self.texts.text(source)
        doc_id = source.doc_id
        segments: dict[str, dict[str, Any]] = {}
        table = self._segments.rows(source.number)
        if table is not None:
            has_text = "text" in table.column_names
            for seg in table.to_pylist():
                seg_text = seg.pop("text", None)
                start, end = seg["start"], seg["end"]
                seg["text_ok"] = (
                    isinstance(start, int)
                    and isinstance(end, int)
                    and 0 <= start <= end <= text.length
                    and (
                        not has_text
                        or text.text[text.map(start) : text.map(end)] == _LfText(str(seg_text)).text
                    )
                )
                segments[str(seg["segment_id"])] = seg
        checked: set[str] = set()
        picked: list[_Selection] = []
        guids = self._code_guids
        for row in _coding_rows(self._codings.rows(source.number)):
            start, end = text.map(row["start"]), text.map(row["end"])
            segment_id = str(row["segment_id"])
            seg = segments.get(segment_id)
            if seg is None:
                if self._segment_rows:
                    unresolved.setdefault(segment_id, doc_id)
            elif segment_id not in checked:
                checked.add(segment_id)
                self._check_segment(seg, doc_id)
            user = self._user(row)
            code_id = row["code_id"]
            order = (start, end, self.position[code_id], user.name,
                     _STATUS_RANK.get(row["status"], 9), str(row["coding_id"]))  # fmt: skip
            guid = guids.get(code_id)
            if guid is None:
                guid = guids[code_id] = code_guid(self.book.name, code_id)
            key = (doc_id, start, end, code_id, user.guid)
            memo = _coding_memo(row, user)
            picked.append(_Selection(start, end, guid, user, memo, key, order))
        picked.sort(key=lambda p: p.order)
        seen: set[tuple[Any, ...]] = set()
        selections: list[_Selection] = []
        for sel in picked:
            if sel.key in seen:  # QualCoder keeps one coding per code, coder and span
                self.skipped["duplicate"] += 1
                continue
            seen.add(sel.key)
            sel.user.codings += 1
            selections.append(sel)
        self.codings += len(selections)
        if self.with_segments:
            selections += self._segment_selections(source, text, segments.values())
        selections.sort(key=lambda s: s.order)
        return selections

    def _segment_selections(
        self, source: _Source, text: _LfText, segments: Iterable[Mapping[str, Any]]
    ) -> list[_Selection]:
        guid = object_guid("code", "segments")
        doc_id = source.doc_id
        out: list[_Selection] = []
        for seg in segments:
            what = f"segment {seg['segment_id']!r}"
            self._check_span(what, doc_id, seg["start"], seg["end"])
            start, end = text.map(seg["start"]), text.map(seg["end"])
            self._check_segment(seg, doc_id)
            memo = [f"qualpipe segment: {seg['segment_id']}"]
            memo += [f"{k}: {_label(str(seg[k]))}" for k in ("strategy", "speaker") if seg.get(k)]
            key = (doc_id, start, end, "segment", self.exporter.guid)
            order = (start, end, len(self.book.codes), "", 9, str(seg["segment_id"]))
            out.append(
                _Selection(start, end, guid, self.exporter, _xml("\n".join(memo)), key, order)
            )
        self.exporter.codings += len(out)
        self.segment_codings += len(out)
        return out

    # -- writing -----------------------------------------------------------------------------

    def users_in_order(self) -> list[_User]:
        """Coders with the most codings first (QualCoder's current coder), then qualpipe."""
        coders = sorted(self.users.values(), key=lambda u: (-u.codings, u.name, u.guid))
        return [*coders, self.exporter]

    def participants(self) -> dict[str, list[_Source]]:
        out: dict[str, list[_Source]] = {}
        for source in self.sources.values():
            if source.participant is not None:
                out.setdefault(source.participant, []).append(source)
        return dict(sorted(out.items()))

    def write(self, xml: _Xml, memo_guid: str) -> None:
        """The project element, streamed: the sources and their codings as they come, the
        small parts (codebook, variables, cases, sets) as element trees."""
        from qualpipe import __version__

        xml.start(
            "Project",
            {
                "xmlns": NS,
                "name": _label(self.bundle.pipeline_name) or "qualpipe",
                "origin": f"qualpipe {__version__}",  # QualCoder fails without one
                "creatingUserGUID": self.exporter.guid,
                "creationDateTime": self.time,
                "basePath": "",
            },
        )
        head = ET.Element("Project")
        users = ET.SubElement(head, "Users")
        for user in self.users_in_order():
            ET.SubElement(users, "User", {"guid": user.guid, "name": user.name})
        self._codebook(head)
        people = self.people
        attributes, _, participant_name = self._variables(head, people)
        self._cases(head, people, attributes)
        xml.elements(head)
        xml.start("Sources")
        xml.copy(self.sources_xml, self.sources_have_children)  # see _write_sources
        xml.end()
        tail = ET.Element("Project")
        self._notes(tail, memo_guid)
        self._sets(tail, people, {*attributes, participant_name})
        ET.SubElement(tail, "Description").text = self.summary()
        ET.SubElement(tail, "NoteRef", {"targetGUID": memo_guid})
        xml.elements(tail)
        xml.end()

    def _codebook(self, root: ET.Element) -> None:
        """The codes as :func:`qualpipe.qdc.qdc_bytes` writes them (GUIDs, names, memos)."""
        if not self.book.codes and self.segments_code is None:
            return
        codes = ET.SubElement(ET.SubElement(root, "CodeBook"), "Codes")
        elements: dict[str | None, ET.Element] = {None: codes}
        for c in self.book.codes:
            attrs = {"guid": code_guid(self.book.name, c.id), "name": _xml(self.code_names[c.id])}
            attrs["isCodable"] = "true"
            if c.colour:
                attrs["color"] = c.colour.upper()
            el = ET.SubElement(elements[c.parent_id], "Code", attrs)
            marker: dict[str, Any] = {"id": c.id, "level": c.level}
            if self.code_names[c.id] != c.name:
                marker["name"] = c.name
            ET.SubElement(el, "Description").text = describe(c, marker)
            elements[c.id] = el
        if self.segments_code is not None:
            attrs = {"guid": object_guid("code", "segments"), "name": self.segments_code}
            el = ET.SubElement(codes, "Code", attrs | {"isCodable": "true"})
            ET.SubElement(el, "Description").text = (
                "Every segment qualpipe analysed, one coding each, to show how the texts "
                "were cut; not a code of the codebook."
            )

    def _variables(
        self, root: ET.Element, people: Mapping[str, list[_Source]]
    ) -> tuple[dict[str, str], str | None, str]:
        """(attribute name -> GUID, GUID and name of the ``participant`` variable)."""
        if not people:
            return {}, None, PARTICIPANT_VARIABLE
        names = sorted(
            {k for sources in people.values() for s in sources for k in s.attributes},
            key=lambda k: (k.casefold(), k),
        )
        participant = PARTICIPANT_VARIABLE  # the manifest keeps it out of the attributes
        while participant.casefold() in {n.casefold() for n in names}:
            participant += " id"
        element = ET.SubElement(root, "Variables")
        attributes = {n: object_guid("variable", n) for n in names}
        rows = [(attributes[n], n, "participant attribute (cases)") for n in names]
        rows.append(
            (object_guid("participant"), participant, "the participant of a document (sources)")
        )
        for guid, name, about in rows:
            attrs = {"guid": guid, "name": name, "typeOfVariable": "Text"}
            ET.SubElement(ET.SubElement(element, "Variable", attrs), "Description").text = about
        return attributes, rows[-1][0], participant

    def _cases(
        self, root: ET.Element, people: Mapping[str, list[_Source]], variables: Mapping[str, str]
    ) -> None:
        if not people:
            return
        cases = ET.SubElement(root, "Cases")
        for pid, sources in people.items():
            case = ET.SubElement(cases, "Case", {"guid": object_guid("case", pid), "name": pid})
            ET.SubElement(case, "Description").text = f"participant {pid}"
            values: dict[str, str] = {}
            for source in sources:  # the first document's value where they differ
                for k, v in source.attributes.items():
                    values.setdefault(k, v)
            for name in (n for n in variables if n in values):
                _variable_value(case, variables[name], values[name])
            for source in sources:
                ET.SubElement(case, "SourceRef", {"targetGUID": source.guid})

    def _source(
        self,
        xml: _Xml,
        source: _Source,
        selections: Sequence[_Selection],
        participant_var: str | None,
    ) -> None:
        xml.start(
            "TextSource",
            {
                "guid": source.guid,
                "name": source.name,
                "plainTextPath": f"internal://{source.guid}.txt",
                "creatingUser": self.exporter.guid,
                "creationDateTime": self.time,
            },
        )
        about = [f"document {source.doc_id}"]
        if source.participant:
            about.append(f"participant {source.participant}")
        if source.language:
            about.append(f"language {_label(str(source.language))}")
        about.append("NOT ANONYMISED (allow_sensitive)" if source.sensitive else "anonymised")
        xml.leaf("Description", "; ".join(about))
        # a selection as ET.indent and ET.tostring write it, without building elements
        i3, i4, i5 = (xml.indentation(n) for n in (0, 1, 2))
        time = _attribute(self.time)
        write = xml.write
        for sel in selections:
            # object_guid("selection", *key) and object_guid("coding", *key) share the
            # JSON text of the key: encode it once
            tail = _DUMPS(sel.key)[1:]
            selection_guid = _guid_of_json('["selection", ' + tail)
            coding_guid = _guid_of_json('["coding", ' + tail)
            # GUIDs are hex digits and dashes: nothing to escape
            who = f' creatingUser="{sel.user.guid}" creationDateTime="{time}"'
            memo = (
                f"{i4}<Description>{_text(sel.memo)}</Description>"
                if sel.memo
                else f"{i4}<Description />"
            )
            write(
                f'{i3}<PlainTextSelection guid="{selection_guid}" startPosition="{sel.start}" '
                f'endPosition="{sel.end}"{who}>{memo}{i4}<Coding guid="{coding_guid}"{who}>'
                f'{i5}<CodeRef targetGUID="{sel.code_guid}" />{i4}</Coding>'
                f"{i3}</PlainTextSelection>"
            )
        if selections:
            xml.had_children()
        if participant_var is not None and source.participant:
            vv = ET.Element("VariableValue")
            ET.SubElement(vv, "VariableRef", {"targetGUID": participant_var})
            ET.SubElement(vv, "TextValue").text = source.participant
            xml.element(vv)
        xml.end()

    def _notes(self, root: ET.Element, memo_guid: str) -> None:
        # QualCoder reads a memo as a journal only from a file, and fails on an undated note
        attrs = {
            "guid": memo_guid,
            "name": "qualpipe provenance",
            "plainTextPath": f"internal://{memo_guid}.txt",
            "creatingUser": self.exporter.guid,
            "creationDateTime": self.time,
        }
        note = ET.SubElement(ET.SubElement(root, "Notes"), "Note", attrs)
        ET.SubElement(note, "Description").text = "how this project was made (qualpipe run)"

    def _sets(self, root: ET.Element, people: Mapping[str, list[_Source]], taken: set[str]) -> None:
        if not people:
            return
        sets = ET.SubElement(root, "Sets")
        used = {t.casefold() for t in taken}
        for pid, sources in people.items():
            name = f"Participant {pid}"
            while name.casefold() in used:  # QualCoder turns a set into a variable
                name += " (set)"
            used.add(name.casefold())
            el = ET.SubElement(sets, "Set", {"guid": object_guid("set", pid), "name": name})
            ET.SubElement(el, "Description").text = f"documents of participant {pid}"
            for source in sources:
                ET.SubElement(el, "MemberSource", {"targetGUID": source.guid})

    def counts(self) -> dict[str, Any]:
        return {
            "documents": len(self.sources),
            "participants": len(self.people),
            "codings": self.codings,
            "segments_as_codes": self.segment_codings,
            "coders": {u.name: u.codings for u in self.users_in_order() if u.kind != "exporter"},
            "not_exported": dict(sorted(self.skipped.items())),
            "sensitive_documents": sum(1 for s in self.sources.values() if s.sensitive),
        }

    def summary(self) -> str:
        from qualpipe import __version__

        c = self.counts()
        lines = [
            f"qualpipe {__version__} export of pipeline {self.bundle.pipeline_name!r}, made "
            f"from the run that finished {self.time}.",
            f"{c['documents']} documents of {c['participants']} participants; {c['codings']} "
            f"codings (statuses {', '.join(self.statuses)}) by {len(c['coders'])} "
            f"coder{'' if len(c['coders']) == 1 else 's'}.",
        ]
        if self.has_codebook:
            lines.append(
                f"Codebook {self.book.name!r}, version {self.book.version}, "
                f"{len(self.book.codes)} codes."
            )
        lines.append(
            "Machine codings are suggestions for people to review; each coding memo gives "
            "its status, coder, score and evidence. Offsets are Unicode code points into the "
            "UTF-8 text files, end exclusive."
        )
        if c["sensitive_documents"]:
            lines.append(
                f"WARNING: {c['sensitive_documents']} documents are NOT anonymised "
                "(the pipeline set allow_sensitive: true)."
            )
        return _xml("\n".join(lines))

    def memo(self) -> str:
        """The provenance memo: the run's stages, never their parameters or any text."""
        lines = [self.summary(), "", "Stages of the run, by the time they finished:"]
        for stage in self.stages:
            plugin = stage.get("plugin") or {}
            who = " ".join(str(plugin[k]) for k in ("name", "version") if plugin.get(k))
            rows = ", ".join(f"{k}={v}" for k, v in sorted((stage.get("rows") or {}).items()))
            line = f"- {stage.get('stage')} (uses {stage.get('uses')}{', ' + who if who else ''})"
            line += f": {rows or 'no datasets'}; finished {stage.get('finished_at')}"
            if stage.get("qualpipe_version"):
                line += f"; qualpipe {stage['qualpipe_version']}"
            if stage.get("git_sha"):
                line += f"; git {stage['git_sha']}"
            lines.append(line)
        c = self.counts()
        if c["coders"]:
            lines += ["", "Codings per coder:", *(f"- {k}: {v}" for k, v in c["coders"].items())]
        if c["not_exported"]:
            lines += ["", "Codings not exported:"]
            lines += [f"- {k}: {v}" for k, v in c["not_exported"].items()]
        return _xml("\n".join(lines)) + "\n"


def _variable_value(parent: ET.Element, variable_guid: str, value: str) -> None:
    vv = ET.SubElement(parent, "VariableValue")
    ET.SubElement(vv, "VariableRef", {"targetGUID": variable_guid})
    ET.SubElement(vv, "TextValue").text = value


MemberOpener = Callable[[str, int], ContextManager[BinaryIO]]


def write_qdpx_members(
    bundle: ExportBundle, open_member: MemberOpener, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write the members of the ``.qdpx`` archive for ``bundle`` in order, each into
    ``open_member(name, estimated size)``; return the counts (and ``time``). The project
    XML is streamed, never one tree or one string."""
    options = bundle.options if options is None else options
    # spill files in a hidden temporary folder beside the archive (the export's staging
    # folder), removed when the members are written or the export fails
    folder = bundle.out_dir if bundle.out_dir.is_dir() else None
    with ExitStack() as cleanup:
        spill = Path(cleanup.enter_context(TemporaryDirectory(prefix=".qdpx-", dir=folder)))
        project = _Project(bundle, options, spill, cleanup)
        memo_guid = object_guid("note", "provenance")
        with open_member("project.qde", project.size) as out:
            xml = _Xml(out)
            xml.write('<?xml version="1.0" encoding="utf-8"?>\n')
            project.write(xml, memo_guid)
            xml.write("\n")
            xml.flush()
        for source in project.sources.values():
            data = project.texts.data(source)
            with open_member(f"sources/{source.guid}.txt", len(data)) as out:
                out.write(data)
        memo = project.memo().encode("utf-8")
        with open_member(f"sources/{memo_guid}.txt", len(memo)) as out:
            out.write(memo)
        return project.counts() | {"time": project.time}


def build_qdpx(bundle: ExportBundle, options: Mapping[str, Any] | None = None) -> QdpxContent:
    """The members of the ``.qdpx`` archive for ``bundle`` in memory: same datasets, same
    bytes (:func:`export_qdpx` streams them into the zip instead)."""
    members: dict[str, bytes] = {}

    @contextmanager
    def collect(name: str, size: int) -> Iterator[BinaryIO]:
        buffer = io.BytesIO()
        yield buffer
        members[name] = buffer.getvalue()

    stats = write_qdpx_members(bundle, collect, options)
    return QdpxContent(members, stats)


def _zip_stamp(time: str) -> tuple[int, int, int, int, int, int]:
    moment = _utc(time) or datetime(1980, 1, 1, tzinfo=UTC)
    stamp = max(moment, datetime(1980, 1, 1, tzinfo=UTC)).timetuple()[:6]
    return (stamp[0], stamp[1], stamp[2], stamp[3], stamp[4], stamp[5])


def _zip_info(name: str, stamp: tuple[int, int, int, int, int, int]) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=stamp)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def write_zip(path: Path, members: Mapping[str, bytes], time: str) -> Path:
    """A zip whose bytes depend on ``members`` and ``time`` only."""
    stamp = _zip_stamp(time)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(_zip_info(name, stamp), data)
    return path


def export_zip(path: Path, bundle: ExportBundle, options: Mapping[str, Any]) -> Path:
    """:func:`write_qdpx_members` streamed into the zip at ``path``: the same bytes as
    :func:`write_zip` of :func:`build_qdpx`'s members (ZIP64 only for a member that may
    pass 2 GiB)."""
    stamp = _zip_stamp(export_time(_run_stages(bundle)))
    with zipfile.ZipFile(path, "w") as zf:

        @contextmanager
        def member(name: str, size: int) -> Iterator[BinaryIO]:
            big = size * 1.05 > zipfile.ZIP64_LIMIT  # as zipfile decides it for writestr
            with zf.open(_zip_info(name, stamp), "w", force_zip64=big) as out:
                yield out  # type: ignore[misc]

        write_qdpx_members(bundle, member, options)
    return path


def _file_name(name: str) -> str:
    return _UNSAFE_NAME.sub("_", name).strip("._") or "project"


def export_qdpx(bundle: ExportBundle) -> list[Path]:
    options = _options(bundle, "qdpx", QDPX_OPTIONS)
    path = bundle.out_dir / f"{_file_name(bundle.pipeline_name)}.qdpx"
    return [export_zip(path, bundle, options)]


def export_qdc(bundle: ExportBundle) -> list[Path]:
    options = _options(bundle, "qdc", QDC_OPTIONS)
    book = export_codebook(bundle, options.get("codebook_name"))
    if book is None:  # the stage checks ``needs`` first; a direct call gets this
        raise PipelineError("export: qdc needs the codebook dataset; add a codebook stage")
    return [write_qdc(book, bundle.out_dir / "codebook.qdc")]


QDPX = Exporter(
    "qdpx",
    export_qdpx,
    needs=("documents",),
    version="1",
    description=(
        "REFI-QDA project (.qdpx) for QualCoder, NVivo, ATLAS.ti, MAXQDA: anonymised texts, "
        "codebook, codings with memos, participants as cases"
    ),
)
QDC = Exporter(
    "qdc",
    export_qdc,
    needs=("codebook",),
    version="1",
    description="REFI-QDA codebook (codebook.qdc), the same codes and GUIDs as the .qdpx",
)
