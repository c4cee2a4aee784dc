"""The .docx, .odt, .rtf and .pdf readers, on files built here, through the real pipeline."""

from __future__ import annotations

import io
import logging
import random
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from qualpipe.builtin.readers.office import (
    DOCX_CORRUPT,
    DOCX_ENCRYPTED,
    ODT_CORRUPT,
    ODT_ENCRYPTED,
)
from qualpipe.builtin.readers.pdf import PDF_CORRUPT, PDF_NO_TEXT, PDF_PASSWORD, read_pdf
from qualpipe.testing import Project

PIPELINE = """\
qualpipe: 1
name: {name}
stages:
  - id: ingest
    uses: ingest
    with:
      paths: {folder}
{extra}"""

SEGMENT_PARAGRAPHS = """\
  - id: segment
    uses: segment
    with:
      strategy: paragraph
"""


def ingest(
    project: Project, folder: str, name: str = "office", extra: str = ""
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Run ``ingest`` on a folder; documents and quarantine rows by file name."""
    pipe = project.pipeline(PIPELINE.format(name=name, folder=folder, extra=extra))
    result = project.run("run", pipe)
    assert result.exit_code == 0, result.output
    # pypdf's own warnings (which can quote the document) never reach the output
    assert not [line for line in result.output.splitlines() if "pypdf" in line.lower()]
    docs = project.dataset(name, "ingest", "documents").to_pylist()
    bad = project.dataset(name, "ingest", "quarantine").to_pylist()
    return {d["source_path"]: d for d in docs}, {q["source_path"]: q for q in bad}


def turns_of(doc: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(t["speaker"], doc["text"][t["start"] : t["end"]], t["role"]) for t in doc["turns"]]


# -- building real files ---------------------------------------------------------------


def make_docx(path: Path) -> Path:
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    d = docx.Document()
    d.styles.add_style("Interviewer", WD_STYLE_TYPE.PARAGRAPH)
    d.styles.add_style("Respondent", WD_STYLE_TYPE.PARAGRAPH)
    d.add_heading("Intervju 7 \u2013 Göteborg", 1)
    facts = d.add_table(rows=0, cols=3)
    for row in (("Datum", "Plats", "Längd"), ("2024-05-02", "Malmö", "45 min")):
        for cell, value in zip(facts.add_row().cells, row, strict=True):
            cell.text = value
    d.add_paragraph("Hur upplevde du stödet på mötet?", style="Interviewer")
    d.add_paragraph("Det var bra, vi åt smörgåsar.", style="Respondent")
    d.add_paragraph("Sen gick vi hem.", style="Respondent")
    d.add_paragraph("")
    p = d.add_paragraph()
    p.add_run("Interviewer:").bold = True
    p.add_run(" Något mer?")
    p = d.add_paragraph()
    p.add_run("P07:").bold = True
    p.add_run(" Ja.\tSedan\nblev det kväll.")  # a tab and a line break (<w:br/>)
    talk = d.add_table(rows=0, cols=2)
    for row in (("Talare", "Yttrande"), ("I", "Vad hände sedan?"), ("P07", "Vi fikade på Åhléns.")):
        for cell, value in zip(talk.add_row().cells, row, strict=True):
            cell.text = value
    path.parent.mkdir(parents=True, exist_ok=True)
    d.save(str(path))
    return path


DOCX_TEXT = (
    "Intervju 7 \u2013 Göteborg\n\n"
    "Datum | Plats | Längd\n2024-05-02 | Malmö | 45 min\n\n"
    "Interviewer: Hur upplevde du stödet på mötet?\n\n"
    "Respondent: Det var bra, vi åt smörgåsar.\n\n"
    "Sen gick vi hem.\n\n"
    "Interviewer: Något mer?\n\n"
    "P07: Ja.\tSedan\nblev det kväll.\n\n"
    "I: Vad hände sedan?\n\n"
    "P07: Vi fikade på Åhléns."
)


def make_odt(path: Path) -> Path:
    from odf import teletype
    from odf.opendocument import OpenDocumentText
    from odf.style import Style
    from odf.table import Table, TableCell, TableColumn, TableRow
    from odf.text import H, List, ListItem, P

    doc = OpenDocumentText()
    doc.styles.addElement(Style(name="Interviewer", family="paragraph"))
    auto = Style(name="P1", family="paragraph", parentstylename="Interviewer")
    doc.automaticstyles.addElement(auto)

    def para(text: str, **kw: Any) -> Any:
        p = P(**kw)
        teletype.addTextToElement(p, text)  # tabs, line breaks and runs of spaces
        return p

    def table(rows: list[tuple[str, str]]) -> Any:
        t = Table(name=f"T{len(rows)}{rows[0][0]}")
        t.addElement(TableColumn(numbercolumnsrepeated=2))
        for row in rows:
            tr = TableRow()
            for value in row:
                cell = TableCell()
                cell.addElement(para(value))
                tr.addElement(cell)
            t.addElement(tr)
        return t

    doc.text.addElement(H(outlinelevel=1, text="Intervju 8 \u2013 Umeå"))
    items = List()
    for text in ("Plats Umeå bibliotek", "Längd 30 minuter"):
        item = ListItem()
        item.addElement(para(text))
        items.addElement(item)
    doc.text.addElement(items)
    doc.text.addElement(table([("Datum", "2024-05-03"), ("Plats", "Umeå")]))
    doc.text.addElement(para("Hur mår du idag?", stylename=auto))
    doc.text.addElement(para("P08: Jag mår bra,  tack.\tVi ses\nsnart."))
    doc.text.addElement(
        table([("Interviewer", "Vad gjorde ni i helgen?"), ("P08", "Vi åkte till sjön.\nKallt.")])
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    doc.save(str(path))
    return path


ODT_TEXT = (
    "Intervju 8 \u2013 Umeå\n\n"
    "Plats Umeå bibliotek\n\n"
    "Längd 30 minuter\n\n"
    "Datum | 2024-05-03\nPlats | Umeå\n\n"
    "Interviewer: Hur mår du idag?\n\n"
    "P08: Jag mår bra,  tack.\tVi ses\nsnart.\n\n"
    "Interviewer: Vad gjorde ni i helgen?\n\n"
    "P08: Vi åkte till sjön.\nKallt."
)

# Hand-written RTF: \'xx escapes (Windows-1252), \uN? escapes, \uc0, an escaped brace,
# ignorable destinations, a soft line break and a speaker table.
RTF_SOURCE = r"""{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0\fswiss Arial;}}
{\colortbl;\red0\green0\blue0;}{\info{\title Intervju nio}{\author Forskare}}
{\*\generator Handskriven;}
\pard\plain\f0\fs24 Intervju 9\par
\pard Interviewer: Hur l\'e5ngt var det till aff\'e4ren?\par
\pard P09: Det var l\u229?ngt. Vi \u246?vade p\u229? att g\'e5.\line
Sen gick det b\'e4ttre. Han sa \{hej\} till {\uc0\u197 sa}.\par
\trowd\cellx2000\cellx8000\pard\intbl Interviewer\cell Och sedan?\cell\row
\trowd\cellx2000\cellx8000\pard\intbl P09\cell Vi \'e5t glass.\cell\row
\pard\par
}
"""

RTF_TEXT = (
    "Intervju 9\n\n"
    "Interviewer: Hur långt var det till affären?\n\n"
    "P09: Det var långt. Vi övade på att gå.\nSen gick det bättre. Han sa {hej} till Åsa.\n\n"
    "Interviewer: Och sedan?\n\n"
    "P09: Vi åt glass."
)


def make_pdf(pages: list[list[str]]) -> bytes:
    """A minimal PDF: Helvetica with WinAnsiEncoding, one Tj per line, exact xref."""

    def esc(line: str) -> str:
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    n = len(pages)
    # objects: 1 catalog, 2 pages, 3 font, then a page and its content per page
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "14 TL", "72 720 Td"]
        ops += [f"({esc(line)}) Tj T*" for line in lines]
        ops.append("ET")
        stream = "\n".join(ops).encode("cp1252") if lines else b""
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


PDF_PAGES = [
    ["Interviewer: Hur mår du?", "P10: Jag mår bra, tack. Åsa och Örjan kom."],
    [],  # a blank page between: no text, no extra blank lines
    ["Interviewer: Något mer?", "P10: Nej, det är bra så (skratt)."],
]
PDF_TEXT = (
    "Interviewer: Hur mår du?\nP10: Jag mår bra, tack. Åsa och Örjan kom.\n\n"
    "Interviewer: Något mer?\nP10: Nej, det är bra så (skratt)."
)


def encrypt_pdf(data: bytes, user: str, owner: str | None = None) -> bytes:
    import pypdf

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(data))
    writer.encrypt(user, owner, algorithm="RC4-128")  # RC4 needs no cryptography package
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def good_files(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True, exist_ok=True)
    make_docx(folder / "p07.docx")
    make_odt(folder / "p08.odt")
    (folder / "p09.rtf").write_bytes(RTF_SOURCE.encode("ascii"))
    (folder / "p10.pdf").write_bytes(make_pdf(PDF_PAGES))
    return {f.suffix: f.read_bytes() for f in folder.iterdir()}


# -- reading -----------------------------------------------------------------------------


def test_docx_paragraphs_tables_styles_and_labels(qualpipe_project: Project) -> None:
    make_docx(qualpipe_project.root / "data" / "p07.docx")
    docs, bad = ingest(qualpipe_project, "data", extra=SEGMENT_PARAGRAPHS)
    assert bad == {}
    doc = docs["p07.docx"]
    assert (doc["format"], doc["reader"]) == ("docx", "docx")
    assert doc["text"] == DOCX_TEXT
    assert turns_of(doc) == [
        ("Interviewer", "Hur upplevde du stödet på mötet?", "interviewer"),
        ("Respondent", "Det var bra, vi åt smörgåsar.\n\nSen gick vi hem.", "participant"),
        ("Interviewer", "Något mer?", "interviewer"),
        ("P07", "Ja.\tSedan\nblev det kväll.", "participant"),
        ("I", "Vad hände sedan?", "interviewer"),
        ("P07", "Vi fikade på Åhléns.", "participant"),
    ]
    # each Word paragraph (and the plain table) is one paragraph segment
    segs = qualpipe_project.dataset("office", "segment").to_pylist()
    assert [s["text"] for s in segs] == DOCX_TEXT.split("\n\n")
    assert [s["speaker"] for s in segs][2:5] == ["Interviewer", "Respondent", "Respondent"]


def test_docx_tracked_changes_links_fields_and_content_controls(
    qualpipe_project: Project,
) -> None:
    import docx
    from docx.oxml import parse_xml
    from docx.oxml.ns import nsdecls

    d = docx.Document()
    body = d.element.body
    xml = [
        # a tracked insertion is read, a tracked deletion is not; a hyperlink's text is
        "<w:p {ns}><w:r><w:t xml:space='preserve'>Interviewer: Vi </w:t></w:r>"
        "<w:ins w:id='1' w:author='A'><w:r><w:t>åkte</w:t></w:r></w:ins>"
        "<w:del w:id='2' w:author='A'><w:r><w:delText>gick</w:delText></w:r></w:del>"
        "<w:r><w:t xml:space='preserve'> till </w:t></w:r>"
        "<w:hyperlink><w:r><w:t>Örebro</w:t></w:r></w:hyperlink><w:r><w:t>?</w:t></w:r></w:p>",
        # a content control around a paragraph; a field shows its result, not its code
        "<w:sdt {ns}><w:sdtPr><w:alias w:val='svar'/></w:sdtPr><w:sdtContent>"
        "<w:p><w:r><w:t xml:space='preserve'>P01: Ja, sidan </w:t></w:r>"
        "<w:r><w:fldChar w:fldCharType='begin'/></w:r>"
        "<w:r><w:instrText xml:space='preserve'> PAGE </w:instrText></w:r>"
        "<w:r><w:fldChar w:fldCharType='separate'/></w:r><w:r><w:t>3</w:t></w:r>"
        "<w:r><w:fldChar w:fldCharType='end'/></w:r>"
        "<w:r><w:t xml:space='preserve'> i häftet.</w:t><w:footnoteReference w:id='1'/></w:r>"
        "</w:p></w:sdtContent></w:sdt>",
        # a shape with a text box is layout, not speech
        "<w:p {ns} xmlns:mc='http://schemas.openxmlformats.org/markup-compatibility/2006'>"
        "<w:r><w:t xml:space='preserve'>Interviewer: Tack.</w:t></w:r><w:r>"
        "<mc:AlternateContent><mc:Choice Requires='wps'><w:t>LOGGA</w:t></mc:Choice>"
        "<mc:Fallback><w:pict><w:t>LOGGA</w:t></w:pict></mc:Fallback></mc:AlternateContent>"
        "</w:r></w:p>",
    ]
    for element in xml:
        body.insert(len(body) - 1, parse_xml(element.format(ns=nsdecls("w"))))
    path = qualpipe_project.root / "data" / "p13.docx"
    path.parent.mkdir(parents=True)
    d.save(str(path))
    docs, bad = ingest(qualpipe_project, "data")
    assert bad == {}
    doc = docs["p13.docx"]
    assert doc["text"] == (
        "Interviewer: Vi åkte till Örebro?\n\nP01: Ja, sidan 3 i häftet.\n\nInterviewer: Tack."
    )
    assert [t[:2] for t in turns_of(doc)] == [
        ("Interviewer", "Vi åkte till Örebro?"),
        ("P01", "Ja, sidan 3 i häftet."),
        ("Interviewer", "Tack."),
    ]


def test_docx_named_speaker_styles_and_timed_speaker_table(qualpipe_project: Project) -> None:
    import docx
    from docx.enum.style import WD_STYLE_TYPE

    d = docx.Document()
    for name in ("Forskare", "Anna", "Citat"):
        d.styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    d.add_paragraph("Berätta om flytten.", style="Forskare")
    d.add_paragraph("Vi flyttade till Växjö.", style="Anna")
    d.add_paragraph("Det var svårt att lämna allt.", style="Citat")  # a layout style
    d.add_paragraph("Forskare: Varför då?", style="Forskare")  # already labelled
    d.add_paragraph("Jobbet.", style="Anna")
    timed = d.add_table(rows=0, cols=3)
    rows = [
        ("Tid", "Talare", "Text"),
        ("00:01:05", "Forskare", "Och nu?"),
        ("00:01:09", "Anna", "Bra."),
    ]
    for row in rows:
        for cell, value in zip(timed.add_row().cells, row, strict=True):
            cell.text = value
    d.save(str(qualpipe_project.root / "p14.docx"))
    pipe = qualpipe_project.pipeline(
        "qualpipe: 1\nname: styles\nstages:\n  - id: ingest\n    uses: ingest\n"
        "    with:\n      paths: p14.docx\n      interviewer_labels: [forskare]\n"
    )
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 0, result.output
    (doc,) = qualpipe_project.dataset("styles", "ingest", "documents").to_pylist()
    assert doc["text"] == (
        "Forskare: Berätta om flytten.\n\nAnna: Vi flyttade till Växjö.\n\n"
        "Det var svårt att lämna allt.\n\nForskare: Varför då?\n\nAnna: Jobbet.\n\n"
        "[00:01:05] Forskare: Och nu?\n\n[00:01:09] Anna: Bra."
    )
    assert turns_of(doc) == [
        ("Forskare", "Berätta om flytten.", "interviewer"),
        ("Anna", "Vi flyttade till Växjö.\n\nDet var svårt att lämna allt.", "participant"),
        ("Forskare", "Varför då?", "interviewer"),
        ("Anna", "Jobbet.", "participant"),
        ("Forskare", "Och nu?", "interviewer"),
        ("Anna", "Bra.", "participant"),
    ]
    assert [t["start_time"] for t in doc["turns"]][-2:] == [65.0, 69.0]


def test_odt_headings_lists_tables_and_styles(qualpipe_project: Project) -> None:
    make_odt(qualpipe_project.root / "data" / "p08.odt")
    docs, bad = ingest(qualpipe_project, "data")
    assert bad == {}
    doc = docs["p08.odt"]
    assert (doc["format"], doc["reader"]) == ("odt", "odt")
    assert doc["text"] == ODT_TEXT
    assert turns_of(doc) == [
        ("Interviewer", "Hur mår du idag?", "interviewer"),
        ("P08", "Jag mår bra,  tack.\tVi ses\nsnart.", "participant"),
        ("Interviewer", "Vad gjorde ni i helgen?", "interviewer"),
        ("P08", "Vi åkte till sjön.\nKallt.", "participant"),
    ]


def test_rtf_escapes_and_tables(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/p09.rtf", RTF_SOURCE.encode("ascii"))
    docs, bad = ingest(qualpipe_project, "data")
    assert bad == {}
    doc = docs["p09.rtf"]
    assert (doc["format"], doc["reader"]) == ("rtf", "rtf")
    assert doc["text"] == RTF_TEXT
    assert turns_of(doc) == [
        ("Interviewer", "Hur långt var det till affären?", "interviewer"),
        (
            "P09",
            "Det var långt. Vi övade på att gå.\nSen gick det bättre. Han sa {hej} till Åsa.",
            "participant",
        ),
        ("Interviewer", "Och sedan?", "interviewer"),
        ("P09", "Vi åt glass.", "participant"),
    ]


def test_pdf_text_layer_and_owner_only_encryption(qualpipe_project: Project) -> None:
    data = make_pdf(PDF_PAGES)
    qualpipe_project.write("data/p10.pdf", data)
    # restrictions only (empty user password): opens like any PDF
    qualpipe_project.write("data/p11.pdf", encrypt_pdf(data, "", "ägarlösen"))
    docs, bad = ingest(qualpipe_project, "data")
    assert bad == {}
    for name in ("p10.pdf", "p11.pdf"):
        doc = docs[name]
        assert (doc["format"], doc["reader"]) == ("pdf", "pdf")
        assert doc["text"] == PDF_TEXT
        assert turns_of(doc) == [
            ("Interviewer", "Hur mår du?", "interviewer"),
            ("P10", "Jag mår bra, tack. Åsa och Örjan kom.", "participant"),
            ("Interviewer", "Något mer?", "interviewer"),
            ("P10", "Nej, det är bra så (skratt).", "participant"),
        ]
    # the blank page is reported in the document's notes
    (raw,) = read_pdf(qualpipe_project.root / "data/p10.pdf", {})
    assert raw.notes == [
        "page(s) 2 have no text layer (blank or scanned); their content is missing"
    ]


def test_unreadable_files_are_quarantined_with_clear_reasons(qualpipe_project: Project) -> None:
    import docx

    data = qualpipe_project.root / "data"
    good = good_files(data)
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + random.Random(1).randbytes(4000)
    qualpipe_project.write("data/locked.docx", ole)
    docx.Document().save(str(data / "empty.docx"))
    qualpipe_project.write("data/notes.rtf", "Interviewer: det här är ingen RTF-fil\n")
    qualpipe_project.write("data/scan.pdf", make_pdf([[], []]))
    qualpipe_project.write("data/locked.pdf", encrypt_pdf(good[".pdf"], "hemligt"))
    # an .odt saved with a password: the manifest lists encryption data
    with (
        zipfile.ZipFile(io.BytesIO(good[".odt"])) as src,
        zipfile.ZipFile(data / "locked.odt", "w") as dst,
    ):
        for info in src.infolist():
            payload = src.read(info)
            if info.filename == "content.xml":
                payload = random.Random(2).randbytes(len(payload))  # encrypted
            if info.filename == "META-INF/manifest.xml":
                payload = payload.replace(
                    b"</manifest:manifest>",
                    b'<manifest:file-entry manifest:full-path="content.xml">'
                    b"<manifest:encryption-data/></manifest:file-entry></manifest:manifest>",
                )
            dst.writestr(info, payload)
    docs, bad = ingest(qualpipe_project, "data")
    assert sorted(docs) == ["p07.docx", "p08.odt", "p09.rtf", "p10.pdf"]
    reasons = {name: (row["reader"], row["reason"]) for name, row in bad.items()}
    assert reasons == {
        "locked.docx": ("docx", DOCX_ENCRYPTED),
        "empty.docx": ("docx", "no text found"),
        "notes.rtf": ("rtf", "not an RTF file"),
        "scan.pdf": ("pdf", PDF_NO_TEXT),
        "locked.pdf": ("pdf", PDF_PASSWORD),
        "locked.odt": ("odt", ODT_ENCRYPTED),
    }
    assert DOCX_ENCRYPTED == (
        "password-protected (encrypted) or legacy .doc file; remove the password or save as .docx"
    )
    assert PDF_NO_TEXT == "no text layer (scanned image?); run OCR first"
    assert PDF_PASSWORD == "password-protected PDF; remove the password or export the text"


HEADERS = {
    ".docx": b"PK\x03\x04",
    ".odt": b"PK\x03\x04",
    ".rtf": b"{\\rtf1 ",
    ".pdf": b"%PDF-1.4\n",
}
READER = {".docx": "docx", ".odt": "odt", ".rtf": "rtf", ".pdf": "pdf"}
TRUNCATED = {
    ".docx": DOCX_CORRUPT,
    ".odt": ODT_CORRUPT,
    ".rtf": "not a valid RTF file (truncated: a {group} is not closed)",
    ".pdf": PDF_CORRUPT,
}


def test_truncated_and_garbage_files_never_crash_ingest(
    qualpipe_project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    data = qualpipe_project.root / "data"
    good = good_files(data / "good")
    truncated: dict[str, str] = {}
    garbage: dict[str, str] = {}
    mutated: dict[str, str] = {}
    for suffix, valid in good.items():
        fmt = suffix.lstrip(".")
        for cut in sorted({len(valid) * k // 7 for k in range(1, 7)} | {len(valid) - 12}):
            name = f"bad/{fmt}-cut{cut}{suffix}"
            qualpipe_project.write(f"data/{name}", valid[:cut])
            truncated[name] = suffix
        rng = random.Random(f"qualpipe-{fmt}")
        blobs = [rng.randbytes(n) for n in (0, 1, 97, 3000)]
        blobs.append(HEADERS[suffix] + rng.randbytes(1500))
        blobs.append(HEADERS[suffix] + rng.randbytes(1500) + b"\n%%EOF\n")
        for i, blob in enumerate(blobs):
            name = f"bad/{fmt}-garbage{i}{suffix}"
            qualpipe_project.write(f"data/{name}", blob)
            garbage[name] = suffix
        for i in range(8):  # a few changed bytes, maybe a deleted run: read or quarantined
            damaged = bytearray(valid)
            for _ in range(rng.choice([1, 4, 16])):
                damaged[rng.randrange(len(damaged))] = rng.randrange(256)
            if i % 3 == 0:
                at = rng.randrange(len(damaged))
                del damaged[at : at + rng.randrange(1, 200)]
            name = f"mutated/{fmt}-{i}{suffix}"
            qualpipe_project.write(f"data/{name}", bytes(damaged))
            mutated[name] = suffix
    docs, bad = ingest(qualpipe_project, "data")
    assert {n for n in docs if n.startswith("good/")} == {
        "good/p07.docx",
        "good/p08.odt",
        "good/p09.rtf",
        "good/p10.pdf",
    }
    assert docs["good/p07.docx"]["text"] == DOCX_TEXT
    assert docs["good/p10.pdf"]["text"] == PDF_TEXT
    # damaged PDFs make pypdf log warnings; they are counted in notes, never passed on
    assert not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert set(bad) >= set(truncated) | set(garbage)
    assert set(docs) | set(bad) == {f"good/{f.name}" for f in (data / "good").iterdir()} | set(
        truncated
    ) | set(garbage) | set(mutated)
    for name, suffix in truncated.items():
        assert (bad[name]["reader"], bad[name]["reason"]) == (READER[suffix], TRUNCATED[suffix])
    for name, row in bad.items():
        suffix = Path(name).suffix
        assert row["reader"] == READER[suffix], name
        assert row["reason"].strip(), name
        # each reader recognised the damage itself (not a crash caught by ingest)
        assert not row["reason"].startswith("reader "), (name, row["reason"])
        assert row["sha256"], name


@pytest.mark.parametrize(
    ("module", "suffix", "reason"),
    [
        ("docx", ".docx", "needs python-docx: pip install 'qualpipe[docx]'"),
        ("odf.opendocument", ".odt", "needs odfpy: pip install 'qualpipe[odt]'"),
        ("striprtf.striprtf", ".rtf", "needs striprtf: pip install 'qualpipe[rtf]'"),
        ("pypdf", ".pdf", "needs pypdf: pip install 'qualpipe[pdf]'"),
    ],
)
def test_missing_library_names_the_extra(
    qualpipe_project: Project,
    monkeypatch: pytest.MonkeyPatch,
    module: str,
    suffix: str,
    reason: str,
) -> None:
    good_files(qualpipe_project.root / "data")
    qualpipe_project.write("data/p12.txt", "Interviewer: Hej!\nP12: Hej på dig.\n")
    monkeypatch.setitem(sys.modules, module, None)  # "import module" now fails
    pipe = qualpipe_project.pipeline(PIPELINE.format(name="office", folder="data", extra=""))
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 0, result.output
    assert "reader unavailable" in result.output
    docs = {
        d["source_path"]: d
        for d in qualpipe_project.dataset("office", "ingest", "documents").to_pylist()
    }
    bad = {
        q["source_path"]: q
        for q in qualpipe_project.dataset("office", "ingest", "quarantine").to_pylist()
    }
    name = next(n for n in ["p07.docx", "p08.odt", "p09.rtf", "p10.pdf"] if n.endswith(suffix))
    assert {n: (r["reader"], r["reason"]) for n, r in bad.items()} == {
        name: (READER[suffix], reason)
    }
    assert "p12.txt" in docs and len(docs) == 4
