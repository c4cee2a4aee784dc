"""The .qdpx project is streamed: the XML writer writes what ElementTree wrote, the zip
has the bytes of the in-memory build, and awkward text stays valid against Project.xsd."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from qualpipe.codebook import Codebook
from qualpipe.export import refi
from qualpipe.export.refi import build_qdpx, export_qdpx, write_zip
from qualpipe.exporters import ExportBundle
from qualpipe.schemas import CODEBOOK, CODINGS, DOCUMENTS, SEGMENTS
from qualpipe.store import DatasetReader, write_part

etree = pytest.importorskip("lxml.etree")

PROJECT_XSD = Path(__file__).resolve().parents[1].parent / "shared" / "refi-qda" / "Project.xsd"
Q = "{urn:QDA-XML:project:1.0}"

AWKWARD = [
    "quote \" and apostrophe ' here",
    "amp & lt < gt > and ]]> end of CDATA",
    "line\nbreak\r\nand\rcr\ttab",
    "control \x00\x01\x08\x0b\x0c\x1b\x7f chars",
    "emoji 😀🍲 and åäö",
    '<tag attr="x">&amp;</tag>',
    "",
]


def write_tree(xml: Any, element: ET.Element) -> None:
    """``element`` through the streaming writer's calls (start/leaf/end)."""
    if len(element):
        xml.start(element.tag, dict(element.attrib))
        for child in element:
            write_tree(xml, child)
        xml.end()
    else:
        xml.leaf(element.tag, element.text, dict(element.attrib))


def test_streamed_xml_is_what_elementtree_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refi, "XML_CHUNK", 7)  # many small writes
    root = ET.Element("Project", {"xmlns": "urn:x", "name": AWKWARD[0], "basePath": ""})
    users = ET.SubElement(root, "Users")
    for i, text in enumerate(AWKWARD):
        ET.SubElement(users, "User", {"guid": str(i), "name": text.replace("\x00", "")})
    ET.SubElement(root, "Empty")
    sources = ET.SubElement(root, "Sources")
    for i, text in enumerate(AWKWARD):
        source = ET.SubElement(sources, "TextSource", {"name": text, "n": str(i)})
        ET.SubElement(source, "Description").text = text
        inner = ET.SubElement(ET.SubElement(source, "Deeper"), "Deepest", {"a": text})
        inner.text = text or None
    ET.SubElement(root, "Description").text = "last"
    tail = ET.Element("Project")
    notes = ET.SubElement(tail, "Notes")
    ET.SubElement(ET.SubElement(notes, "Note", {"guid": "n"}), "Description").text = "memo"
    for element in tail:
        root.append(element)

    out = io.BytesIO()
    xml = refi._Xml(out)
    xml.start(root.tag, dict(root.attrib))
    for child in list(root)[:-1]:  # all but Notes by calls
        write_tree(xml, child)
    xml.elements(tail)  # Notes as a subtree
    xml.end()
    xml.flush()
    ET.indent(root, space="  ")
    assert out.getvalue().decode("utf-8") == ET.tostring(root, encoding="unicode")


def awkward_bundle(tmp_path: Path, documents: int = 3) -> ExportBundle:
    texts = [f"Hej {AWKWARD[i % len(AWKWARD)]} och 😀 slut {i}\n" for i in range(documents)]
    docs = [
        {
            "doc_id": f"d{i}&<{i}>",
            "source_path": f"{i}.txt",
            "participant_id": f'P"{i % 2}&',
            "attributes": [("role", AWKWARD[i % len(AWKWARD)]), ("site", "åäö")],
            "text": text,
            "sensitive": False,
            "language": "sv",
        }
        for i, text in enumerate(texts)
    ]
    book = Codebook.from_table(
        pa.Table.from_pylist(
            [
                {"code_id": "c1", "name": "Talk & <eat>", "level": "theme"}
                | {"codebook_version": "v", "description": AWKWARD[2]},
                {"code_id": "c2", "name": 'Say "hi" ]]>', "level": "theme"}
                | {"codebook_version": "v", "description": AWKWARD[3]},
            ],
            schema=CODEBOOK.schema,
        )
    )
    segments: list[dict[str, Any]] = []
    codings: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        doc_id = docs[i]["doc_id"]
        seg_id = f"{doc_id}:t1"
        segments.append(
            {"segment_id": seg_id, "doc_id": doc_id, "start": 0, "end": len(text)}
            | {"text": text, "sensitive": False, "speaker": AWKWARD[i % len(AWKWARD)]}
        )
        for j in range(6):
            a = j % 4
            codings.append(
                {
                    "coding_id": f'{seg_id}:{j}&"<>',
                    "segment_id": seg_id,
                    "doc_id": doc_id,
                    "start": a,
                    "end": a + 3 + j,
                    "code_id": ("c1", "c2")[j % 2],
                    "coder": ("rules", 'anna ]]> & "co"', "semantic")[j % 3],
                    "coder_version": "1",
                    "coder_settings": AWKWARD[j % len(AWKWARD)],
                    "score": 0.5 / (j + 1),
                    "evidence": [
                        {"term": AWKWARD[(i + j) % len(AWKWARD)], "start": a, "end": a + 1},
                        {"term": "<b>", "start": a, "end": a + 2},
                    ],
                    "status": ("suggested", "accepted", "human")[j % 3],
                }
            )
    tables = {
        "documents": (DOCUMENTS, pa.Table.from_pylist(docs, schema=DOCUMENTS.schema)),
        "segments": (SEGMENTS, pa.Table.from_pylist(segments, schema=SEGMENTS.schema)),
        "codings": (CODINGS, pa.Table.from_pylist(codings, schema=CODINGS.schema)),
        "codebook": (CODEBOOK, book.to_table()),
    }
    datasets = {}
    for name, (kind, table) in tables.items():
        folder = tmp_path / "data" / name
        half = table.num_rows // 2
        write_part(folder, kind, table.slice(0, half), "part-000000.parquet", "test")
        write_part(folder, kind, table.slice(half), "part-000001.parquet", "test")
        datasets[name] = DatasetReader(folder)
    out = tmp_path / "out"
    out.mkdir()
    return ExportBundle(datasets, out, {"include_segments_as_codes": True}, "awk&ward")


def test_awkward_text_streams_to_a_valid_project_with_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = awkward_bundle(tmp_path)
    monkeypatch.setattr(refi, "READ_ROWS", 1000)
    [big] = export_qdpx(bundle)
    expected = big.read_bytes()
    # a row a batch and a spill run, and tiny XML and copy buffers give the same archive
    monkeypatch.setattr(refi, "READ_ROWS", 1)
    monkeypatch.setattr(refi, "DOCUMENT_ROWS", 1)
    monkeypatch.setattr(refi, "SPILL_ROWS", 1)
    monkeypatch.setattr(refi, "XML_CHUNK", 10)
    monkeypatch.setattr(refi, "COPY_BYTES", 3)
    big.unlink()
    [small] = export_qdpx(bundle)
    assert small.read_bytes() == expected
    # and so does the archive of the in-memory members
    content = build_qdpx(bundle)
    assert write_zip(
        tmp_path / "mem.qdpx", content.members, content.stats["time"]
    ).read_bytes() == (expected)
    with zipfile.ZipFile(small) as zf:
        qde = zf.read("project.qde")
        assert zf.namelist()[0] == "project.qde"
    schema = etree.XMLSchema(etree.parse(str(PROJECT_XSD)))
    root = etree.fromstring(qde)
    assert schema.validate(root), schema.error_log
    assert content.stats["codings"] == 18 - content.stats["not_exported"].get("duplicate", 0)
    memos = [s.findtext(f"{Q}Description") for s in root.iter(f"{Q}PlainTextSelection")]
    assert len(memos) == content.stats["codings"] + 3  # and a selection a segment
    joined = "\n".join(m or "" for m in memos)
    assert "]]>" in joined and "<b>" in joined and 'anna ]]> & "co"' in joined
    assert "\x00" not in joined and "\x1b" not in joined  # XML cannot hold them
    names = {s.get("name") for s in root.iter(f"{Q}TextSource")}
    assert names == {"P_0_d0&<0>", "P_1_d1&<1>", "P_0_d2&<2>"}
