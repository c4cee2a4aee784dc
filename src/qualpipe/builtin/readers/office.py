"""Word processor documents: .docx (python-docx), .odt (odfpy), .rtf (striprtf).

The three readers lay the document out the same way, so one transcript gives the same
text whichever format it was saved in:

* Every paragraph, heading and list item is one block, in document order (tables
  included where they stand). Blocks are separated by one blank line (``"\\n\\n"``), so
  ``segment`` with ``strategy: paragraph`` follows the document's paragraphs whether the
  author separated them with empty paragraphs or with paragraph spacing; empty
  paragraphs add nothing. A line break inside a paragraph (Shift+Enter) is ``"\\n"``, a
  tab ``"\\t"``; the words are otherwise as written (NFC).
* A *speaker table* -- two columns whose first holds short labels (``Interviewer``,
  ``I``, ``P01``, ``Anna``), optionally with a column of timestamps before the text --
  becomes one ``Label: text`` block per row (``[00:01:02] Label: text`` with a time
  column); a row with an empty label continues the previous turn. A header row
  (``Speaker | Text``, ``Talare | Text``) is dropped. It counts as a speaker table when
  it has a header row or a time column, or a label is a known one (``Interviewer``,
  ``P01``, a configured speaker) or repeats; otherwise (``Datum | 2024-05-03``) it is an
  ordinary table.
* Any other table is one block with a line per row, cells joined by ``" | "``.
* A paragraph in a speaker-named style (.docx, .odt: a user-defined style such as
  ``Interviewer`` or ``Respondent``, not ``Normal``, ``Body Text``, ``Heading 1``,
  ``Quote``, ...) gets ``Style: `` put before it when the speaker changes, unless it
  already starts with a label. Unknown names (``Anna``) count as speakers when the
  document uses at least two such styles.
* Not read: headers, footers, footnotes, comments, text boxes and deleted tracked
  changes (tracked insertions are read).

Speaker turns are left to ``ingest`` (``turns=None``), which finds them in this text
with the pipeline's speaker conventions.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualpipe.readers import RawDocument, Reader, UnreadableFile, require
from qualpipe.transcripts import LABEL, TS, SpeakerRules, normalise

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
NO_TEXT = "no text found"

# -- the common layout ---------------------------------------------------------------


@dataclass
class _Para:
    text: str
    style: str | None = None  # the paragraph style's display name
    custom: bool = True  # a user-defined style (.docx says so; .odt cannot tell)
    heading: bool = False


@dataclass
class _Table:
    rows: list[list[str]]


_Block = _Para | _Table

_LABELLED = re.compile(
    rf"^[ \t]*(?:[\[(]?{TS}[\])]?[ \t]*)?(?P<speaker>{LABEL})"
    rf"[ \t]*(?:[\[(]{TS}[\])][ \t]*)?[:\uff1a]"
)
_LABEL_CELL = re.compile(rf"\[?(?P<speaker>{LABEL})\]?[ \t]*[:\uff1a]?")
_TIME_CELL = re.compile(rf"[\[(]?(?P<t>{TS})[\])]?(?:\s*[-\u2013]\s*[\[(]?{TS}[\])]?)?")
_HEADER_WORDS = frozenset(
    {"speaker", "talare", "name", "namn", "person", "who", "vem", "role", "roll", "time",
     "tid", "timestamp", "tidkod", "text", "utterance", "yttrande", "transcript",
     "transkription"}
)  # fmt: skip
# Words in paragraph style names that mark a layout style, not a speaker.
_STYLE_WORDS = frozenset(
    {"normal", "normalt", "default", "standard", "body", "text", "heading", "title",
     "subtitle", "list", "caption", "quote", "quotation", "quotations", "footnote",
     "endnote", "header", "footer", "toc", "contents", "index", "table", "paragraph",
     "compact", "block", "plain", "web", "html", "spacing", "emphasis", "strong",
     "reference", "bibliography", "abstract", "author", "date", "source", "code",
     "hyperlink", "balloon", "comment", "annotation", "signature", "salutation",
     "closing", "envelope", "macro", "figure", "intense", "subtle", "book", "note",
     "first", "frame", "marginalia", "sender", "addressee", "illustration", "drawing",
     "preformatted", "horizontal", "line", "numbering", "bullet", "article", "section",
     "chapter", "appendix", "hanging", "indent", "citat", "brödtext", "rubrik",
     "underrubrik", "lista", "tabell", "fotnot", "slutnot", "sidhuvud", "sidfot",
     "stycke", "innehåll", "bildtext", "källa", "anteckning", "kommentar", "ingress"}
)  # fmt: skip


def _rules(options: Mapping[str, Any]) -> SpeakerRules:
    return SpeakerRules.build(
        None, options.get("speakers") or (), options.get("interviewer_labels") or None
    )


def _speakerish(style: str) -> bool:
    words = re.split(r"[\s_-]+", style.strip().lower())
    return (
        len(style) <= 30
        and bool(re.fullmatch(LABEL, style.strip()))
        and not any(w in _STYLE_WORDS for w in words)
    )


def _speaker_styles(paras: list[_Para], rules: SpeakerRules) -> set[str]:
    """Paragraph styles that name a speaker."""
    found = {
        p.style
        for p in paras
        if p.style
        and not p.heading
        and _speakerish(p.style)
        and (p.custom or rules.accepted(p.style, 0))
    }
    if len(found) >= 2:
        return found
    return {s for s in found if rules.accepted(s, 0)}


def _speaker_rows(
    rows: list[list[str]], rules: SpeakerRules
) -> list[tuple[str | None, str | None, str]] | None:
    """(label, time, text) per row if the table is a speaker table, else None."""
    rows = [[c.strip() for c in r] for r in rows if any(c.strip() for c in r)]
    if not rows or len({len(r) for r in rows}) != 1 or len(rows[0]) not in (2, 3):
        return None
    label_col, time_col = 0, None
    if len(rows[0]) == 3:
        body = rows[1:] if len(rows) > 1 else rows
        for tcol, lcol in ((0, 1), (1, 0)):
            times = [r[tcol] for r in body if r[tcol]]
            if times and all(_TIME_CELL.fullmatch(x) for x in times):
                label_col, time_col = lcol, tcol
                break
        else:
            return None
    text_col = len(rows[0]) - 1
    header = rows[0][label_col].rstrip(":").strip().lower() in _HEADER_WORDS
    if header:
        rows = rows[1:]
    labels: list[str | None] = []
    for r in rows:
        cell = r[label_col]
        m = _LABEL_CELL.fullmatch(cell) if cell else None
        if cell and (m is None or len(cell) > 40):
            return None
        labels.append(m.group("speaker") if m else None)
    named = [lab for lab in labels if lab]
    if len(named) < 2 or len(named) * 2 < len(rows):
        return None
    # evidence that the first column names speakers, not the keys of a fact table
    counts = Counter(named)
    if not (
        header
        or time_col is not None
        or any(
            rules.accepted(lab, counts[lab]) or rules.role(lab) == "interviewer" for lab in counts
        )
    ):
        return None
    out: list[tuple[str | None, str | None, str]] = []
    for r, lab in zip(rows, labels, strict=True):
        t = None
        if time_col is not None and r[time_col]:
            tm = _TIME_CELL.fullmatch(r[time_col])
            t = tm.group("t") if tm else None
        out.append((lab, t, r[text_col]))
    return out


def _layout(blocks: list[_Block], rules: SpeakerRules) -> str:
    styles = _speaker_styles([b for b in blocks if isinstance(b, _Para)], rules)
    out: list[str] = []
    last: str | None = None  # the speaker of the turn we are in
    for block in blocks:
        if isinstance(block, _Table):
            speaker_rows = _speaker_rows(block.rows, rules)
            if speaker_rows is None:
                lines = [" | ".join(" ".join(c.split()) for c in r) for r in block.rows]
                table = "\n".join(line for line in lines if line.replace("|", "").strip())
                if table:
                    out.append(table)
                continue
            for label, t, text in speaker_rows:
                if not text:
                    continue
                if label:
                    out.append(f"{f'[{t}] ' if t else ''}{label}: {text}")
                    last = label
                else:
                    out.append(text)
            continue
        text = block.text.rstrip()
        if not text.strip():
            continue
        m = _LABELLED.match(text)
        if block.heading:
            last = None
        elif block.style is not None and block.style in styles:
            said = m.group("speaker") if m else None
            if said and (said.casefold() == block.style.casefold() or rules.accepted(said, 0)):
                last = said
            elif block.style != last:
                text = f"{block.style}: {text}"
                last = block.style
        elif m:
            last = m.group("speaker")
        out.append(text)
    return "\n\n".join(out)


def _document(blocks: list[_Block], options: Mapping[str, Any], notes: list[str]) -> RawDocument:
    text = normalise(_layout(blocks, _rules(options)))
    if not text.strip():
        raise UnreadableFile(NO_TEXT)
    return RawDocument(text=text, notes=notes)


# -- .docx ---------------------------------------------------------------------------

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
_WRAPPERS = frozenset({_W + "sdt", _W + "sdtContent", _W + "customXml", _W + "smartTag"})
_DOCX_SKIP = frozenset(
    _W + t
    for t in ("pPr", "rPr", "del", "moveFrom", "delText", "instrText", "delInstrText",
              "drawing", "pict", "object", "sdtPr", "sdtEndPr", "fldData", "trPr", "tcPr",
              "tblPr", "tblGrid", "customXmlPr")
) | {_MC + "AlternateContent"}  # fmt: skip
DOCX_ENCRYPTED = (
    "password-protected (encrypted) or legacy .doc file; remove the password or save as .docx"
)
DOCX_CORRUPT = "not a valid .docx (corrupt or not a Word document)"


def _children(el: Any, tags: frozenset[str] | None = None) -> Iterator[Any]:
    """Child elements, looking through content controls and custom XML wrappers."""
    for child in el.iterchildren():
        tag = child.tag
        if not isinstance(tag, str):
            continue  # comments, processing instructions
        if tag in _WRAPPERS:
            yield from _children(child, tags)
        elif tags is None or tag in tags:
            yield child


def _docx_inline(el: Any, out: list[str]) -> None:
    for child in el.iterchildren():
        tag = child.tag
        if not isinstance(tag, str) or tag in _DOCX_SKIP:
            continue
        if tag == _W + "t":
            out.append(child.text or "")
        elif tag in (_W + "tab", _W + "ptab"):
            out.append("\t")
        elif tag in (_W + "br", _W + "cr"):
            out.append("\n")
        elif tag == _W + "noBreakHyphen":
            out.append("-")
        elif tag == _W + "softHyphen":
            continue
        else:
            _docx_inline(child, out)


def _docx_para(p: Any, styles: Mapping[str, tuple[str, bool]]) -> _Para:
    out: list[str] = []
    _docx_inline(p, out)
    style_id = None
    ppr = p.find(_W + "pPr")
    if ppr is not None:
        pstyle = ppr.find(_W + "pStyle")
        if pstyle is not None:
            style_id = pstyle.get(_W + "val")
    name, custom = styles.get(style_id or "", (None, False))
    low = (name or "").lower()
    heading = low.startswith("heading") or low in ("title", "subtitle")
    return _Para("".join(out), name, custom, heading)


def _docx_rows(tbl: Any, styles: Mapping[str, tuple[str, bool]]) -> list[list[str]]:
    rows: list[list[str]] = []
    for tr in _children(tbl, frozenset({_W + "tr"})):
        trpr = tr.find(_W + "trPr")
        if trpr is not None and trpr.find(_W + "del") is not None:
            continue  # a deleted row (tracked changes)
        cells = []
        for tc in _children(tr, frozenset({_W + "tc"})):
            parts = []
            for block in _docx_blocks(tc, styles):
                if isinstance(block, _Para):
                    parts.append(block.text)
                else:
                    parts.extend(" | ".join(r) for r in block.rows)
            cells.append("\n".join(parts))
        rows.append(cells)
    return rows


def _docx_blocks(container: Any, styles: Mapping[str, tuple[str, bool]]) -> Iterator[_Block]:
    for el in _children(container, frozenset({_W + "p", _W + "tbl"})):
        if el.tag == _W + "p":
            yield _docx_para(el, styles)
        else:
            yield _Table(_docx_rows(el, styles))


def read_docx(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    docx = require("docx", "docx", "python-docx")
    with path.open("rb") as fh:
        if fh.read(len(OLE_MAGIC)) == OLE_MAGIC:
            raise UnreadableFile(DOCX_ENCRYPTED)
    try:
        document = docx.Document(str(path))
        body = document.element.body
    except Exception:
        raise UnreadableFile(DOCX_CORRUPT) from None
    notes: list[str] = []
    styles: dict[str, tuple[str, bool]] = {}
    try:
        for style in document.styles:
            if style.style_id and style.name:
                styles[style.style_id] = (style.name, not style.builtin)
    except Exception:
        notes.append("the styles part could not be read; paragraph styles were ignored")
    if body.find(f".//{_W}altChunk") is not None:
        notes.append("embedded documents (altChunk) were not read")
    yield _document(list(_docx_blocks(body, styles)), options, notes)


# -- .odt ----------------------------------------------------------------------------

_TEXT = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_TABLE = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_OFFICE = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_STYLE = "urn:oasis:names:tc:opendocument:xmlns:style:1.0"
_DRAW = "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0"
_ELEMENT_NODE, _TEXT_NODE = 1, 3
_ODT_CONTAINERS = frozenset(
    {(_TEXT, "list"), (_TEXT, "list-item"), (_TEXT, "list-header"), (_TEXT, "section"),
     (_TEXT, "index-body"), (_TEXT, "index-title"), (_TEXT, "table-of-content"),
     (_TEXT, "alphabetical-index"), (_TEXT, "illustration-index"), (_TEXT, "table-index"),
     (_TEXT, "object-index"), (_TEXT, "user-index"), (_TEXT, "bibliography"),
     (_OFFICE, "text")}
)  # fmt: skip
_ODT_ROW_GROUPS = frozenset(
    {(_TABLE, "table-header-rows"), (_TABLE, "table-rows"), (_TABLE, "table-row-group")}
)
# Inside a paragraph: comments and footnote bodies are not the speaker's words.
_ODT_SKIP = frozenset(
    {(_OFFICE, "annotation"), (_OFFICE, "annotation-end"), (_TEXT, "note"),
     (_TEXT, "tracked-changes")}
)  # fmt: skip
ODT_ENCRYPTED = (
    "password-protected (encrypted) .odt; remove the password or save an unencrypted copy"
)
ODT_CORRUPT = "not a valid .odt (corrupt or not an OpenDocument text)"


def _odt_inline(node: Any) -> str:
    """Text of a paragraph, as odf.teletype.extractText, minus comments and footnotes."""
    out: list[str] = []
    for child in node.childNodes:
        if child.nodeType == _TEXT_NODE:
            out.append(child.data)
        elif child.nodeType == _ELEMENT_NODE:
            q = child.qname
            if q == (_TEXT, "s"):
                c = str(child.attributes.get((_TEXT, "c")) or "1")
                out.append(" " * (int(c) if c.isdigit() else 1))
            elif q == (_TEXT, "tab"):
                out.append("\t")
            elif q == (_TEXT, "line-break"):
                out.append("\n")
            elif q in _ODT_SKIP or q[0] == _DRAW:
                continue
            else:
                out.append(_odt_inline(child))
    return "".join(out)


def _odt_styles(document: Any) -> dict[str, str]:
    """Paragraph style name -> display name of the named (common) style it is based on."""
    common: dict[str, str] = {}
    parent: dict[str, str] = {}
    for holder, is_common in ((document.styles, True), (document.automaticstyles, False)):
        for st in holder.childNodes:
            if st.nodeType != _ELEMENT_NODE or st.qname != (_STYLE, "style"):
                continue
            name = st.attributes.get((_STYLE, "name"))
            if not name:
                continue
            if is_common:
                display = st.attributes.get((_STYLE, "display-name"))
                common[str(name)] = str(display or str(name).replace("_20_", " "))
            elif st.attributes.get((_STYLE, "parent-style-name")):
                parent[str(name)] = str(st.attributes[(_STYLE, "parent-style-name")])
    resolved = dict(common)
    for name, base in parent.items():
        if base in common:
            resolved[name] = common[base]
    return resolved


def _odt_rows(table: Any, styles: Mapping[str, str]) -> list[list[str]]:
    rows: list[list[str]] = []
    for child in table.childNodes:
        if child.nodeType != _ELEMENT_NODE:
            continue
        if child.qname in _ODT_ROW_GROUPS:
            rows.extend(_odt_rows(child, styles))
        elif child.qname == (_TABLE, "table-row"):
            cells = []
            for cell in child.childNodes:
                if cell.nodeType == _ELEMENT_NODE and cell.qname == (_TABLE, "table-cell"):
                    parts = []
                    for block in _odt_blocks(cell, styles):
                        if isinstance(block, _Para):
                            parts.append(block.text)
                        else:
                            parts.extend(" | ".join(r) for r in block.rows)
                    cells.append("\n".join(parts))
            rows.append(cells)
    return rows


def _odt_blocks(node: Any, styles: Mapping[str, str]) -> Iterator[_Block]:
    for child in node.childNodes:
        if child.nodeType != _ELEMENT_NODE:
            continue
        q = child.qname
        if q in ((_TEXT, "p"), (_TEXT, "h")):
            style = child.attributes.get((_TEXT, "style-name"))
            name = styles.get(str(style)) if style else None
            yield _Para(_odt_inline(child), name, True, q[1] == "h")
        elif q == (_TABLE, "table"):
            yield _Table(_odt_rows(child, styles))
        elif q in _ODT_CONTAINERS:
            yield from _odt_blocks(child, styles)


def read_odt(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    opendocument = require("odf.opendocument", "odt", "odfpy")
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            manifest = z.read("META-INF/manifest.xml") if "META-INF/manifest.xml" in names else b""
            mimetype = (
                z.read("mimetype").decode("ascii", "replace").strip() if "mimetype" in names else ""
            )
    except Exception:
        raise UnreadableFile(ODT_CORRUPT) from None
    if b"encryption-data" in manifest:
        raise UnreadableFile(ODT_ENCRYPTED)
    if mimetype and not mimetype.startswith("application/vnd.oasis.opendocument.text"):
        raise UnreadableFile(f"not an OpenDocument text document (it is {mimetype[:80]})")
    try:
        document = opendocument.load(str(path))
        styles = _odt_styles(document)
        blocks = list(_odt_blocks(document.text, styles))
    except Exception:
        raise UnreadableFile(ODT_CORRUPT) from None
    yield _document(blocks, options, [])


# -- .rtf ----------------------------------------------------------------------------

# Table structure survives striprtf as Unicode noncharacters (never found in real text).
_CELL, _ROW_END, _ROW_START, _LINE = "\ufdd0", "\ufdd1", "\ufdd2", "\ufdd3"
_RTF_MARK = {"cell": _CELL, "row": _ROW_END, "trowd": _ROW_START, "line": _LINE}
_RTF_WORD = re.compile(r"\\\\|\\(cell|row|trowd|line)(?![a-zA-Z])(-?\d+)? ?")
_RTF_BRACES = re.compile(r"\\bin(\d+) ?|\\[\\{}]|[{}]")
RTF_NOT = "not an RTF file"
RTF_TRUNCATED = "not a valid RTF file (truncated: a {group} is not closed)"
RTF_BINARY = "not a valid RTF file (binary data)"


def _rtf_decode(data: bytes) -> tuple[str, list[str]]:
    """RTF is 7-bit text; stray 8-bit bytes are read as UTF-8 if valid, else Windows-1252."""
    if data.isascii():
        return data.decode("ascii"), []
    try:
        return data.decode("utf-8-sig"), [
            "raw non-ASCII bytes in the RTF source were read as UTF-8"
        ]
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), []
    except UnicodeDecodeError:
        return data.decode("latin-1"), []


def _rtf_check(source: str) -> None:
    depth = 0
    pos = 0
    while (m := _RTF_BRACES.search(source, pos)) is not None:
        pos = m.end()
        if m.group(1):
            pos += int(m.group(1))  # \binN: N raw bytes follow
        elif m.group() == "{":
            depth += 1
        elif m.group() == "}":
            depth -= 1
    if depth > 0:
        raise UnreadableFile(RTF_TRUNCATED)
    if "\\bin" not in source:
        body = source.rstrip("\x00 \t\r\n")
        bad = sum(1 for ch in body if ord(ch) < 32 and ch not in "\t\r\n\f")
        if bad > max(2, len(body) // 1000):
            raise UnreadableFile(RTF_BINARY)


def _rtf_marks(source: str) -> str:
    def sub(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return m.group()  # an escaped backslash
        return "{\\uc1\\u%d ?}" % ord(_RTF_MARK[m.group(1)])  # noqa: UP031

    return _RTF_WORD.sub(sub, source)


def _rtf_blocks(text: str) -> list[_Block]:
    blocks: list[_Block] = []
    outside: list[str] = []
    rows: list[list[str]] = []
    cells: list[str] | None = None  # the row being read
    cell: list[str] = []

    def flush_outside() -> None:
        chunk = "".join(outside)
        outside.clear()
        if not chunk.strip():
            return
        if rows:
            blocks.append(_Table([r[:] for r in rows]))
            rows.clear()
        for line in chunk.split("\n"):
            blocks.append(_Para(line.replace(_LINE, "\n")))

    for piece in re.split(f"([{_CELL}{_ROW_END}{_ROW_START}])", text):
        if piece == _ROW_START:
            if cells is None:
                flush_outside()
                outside.clear()
                cells, cell = [], []
        elif piece == _CELL:
            if cells is None:  # a cell without \trowd: it began after the last paragraph
                head, _, tail = "".join(outside).rpartition("\n")
                outside[:] = [head]
                flush_outside()
                cells, cell = [], [tail]
            cells.append("".join(cell).replace(_LINE, "\n").strip())
            cell = []
        elif piece == _ROW_END:
            if cells is not None:
                if "".join(cell).strip():
                    cells.append("".join(cell).replace(_LINE, "\n").strip())
                rows.append(cells)
            cells, cell = None, []
        elif cells is not None:
            cell.append(piece)
        else:
            outside.append(piece)
    if cells is not None:
        outside.append("".join(cell))
    if rows and not "".join(outside).strip():
        blocks.append(_Table(rows))
        outside.clear()
    flush_outside()
    return blocks


def read_rtf(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    striprtf = require("striprtf.striprtf", "rtf", "striprtf")
    source, notes = _rtf_decode(path.read_bytes())
    source = source.lstrip("\ufeff \t\r\n")
    if not source.startswith("{\\rtf"):
        raise UnreadableFile(RTF_NOT)
    _rtf_check(source)
    try:
        text = striprtf.rtf_to_text(_rtf_marks(source), errors="ignore")
    except Exception:
        raise UnreadableFile("not a valid RTF file (corrupt)") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    yield _document(_rtf_blocks(text), options, notes)


DOCX = Reader(
    "docx",
    (".docx",),
    read_docx,
    "Word .docx: paragraphs and tables in order; speaker tables and speaker styles become "
    "'Label: text'",
)
ODT = Reader(
    "odt",
    (".odt",),
    read_odt,
    "OpenDocument text: paragraphs, headings, lists and tables in order",
)
RTF = Reader("rtf", (".rtf",), read_rtf, "Rich Text Format: text, \\'xx and \\u escapes, tables")
