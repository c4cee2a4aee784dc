"""Human coding import: REFI-QDA .qdpx (QualCoder, NVivo, broken files) and CSV."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import qualpipe.builtin.human as human
from qualpipe.codebook import Code, Codebook
from qualpipe.coding.human import (
    TextMap,
    Utf16Index,
    import_codings,
    read_qdpx,
)
from qualpipe.errors import PipelineError
from qualpipe.plugins import BUILTIN_PLUGINS
from qualpipe.testing import Project

LINES = [
    "I: Hur går det?",
    "IP: Bra 😀 vi åt smörgås på ön.",
    "IP: Vi pratar om allt, också 🙂 om köket.",
]
#: our document text: LF, NFC, no BOM (as ingest writes it)
TEXT = "\n".join(LINES) + "\n"
#: the same text as NVivo for Windows writes it: CRLF (the BOM is added to the bytes)
CRLF = "\r\n".join(LINES) + "\r\n"

# Offsets of words in our text (code points):
#   "I: Hur går det?" is 15 characters, so line 2 starts at 16; in it "IP: Bra " is 8,
#   the emoji 1, " vi åt " 7: "smörgås" starts at 16 + 16 = 32 and ends at 39.
#   Line 2 is 30 characters (16 to 46), so line 3 starts at 47 and its words at 51.
# Segments (the words after each speaker label): [3, 15), [20, 46), [51, 87).
SEG = [(3, 15), (20, 46), (51, 87)]

GUID_TALKING = "a0000000-0000-4000-8000-000000000001"
GUID_HEARD = "a0000000-0000-4000-8000-000000000002"
GUID_FOOD = "a0000000-0000-4000-8000-000000000003"
GUID_WEATHER = "a0000000-0000-4000-8000-000000000009"
USER_ANNA = "b0000000-0000-4000-8000-000000000001"
USER_BERTIL = "b0000000-0000-4000-8000-000000000002"
SRC1 = "c0000000-0000-4000-8000-000000000001"
SRC2 = "c0000000-0000-4000-8000-000000000002"
SRC3 = "c0000000-0000-4000-8000-000000000003"

CODES_XML = f"""
  <CodeBook><Codes>
    <Code guid="{GUID_TALKING}" name="Talking" isCodable="true">
      <Code guid="{GUID_HEARD}" name="Being heard" isCodable="true"/>
    </Code>
    <Code guid="{GUID_FOOD}" name="Food" isCodable="true"/>
    <Code guid="{GUID_WEATHER}" name="Weather" isCodable="true"/>
  </Codes></CodeBook>"""

Selection = tuple[int, int, str, str]  # start, end, code guid, user guid


def book() -> Codebook:
    return Codebook(
        "SIDL",
        [
            Code("talking", "Talking", level="theme"),
            Code("being-heard", "Being heard", level="subtheme", parent_id="talking"),
            Code("food", "Food", level="theme", position=1),
        ],
    )


def documents(text: str = TEXT) -> list[dict[str, Any]]:
    return [{"doc_id": "d1", "source_path": "t/p01.txt", "text": text}]


def segments(text: str = TEXT, doc_id: str = "d1") -> list[dict[str, Any]]:
    return [
        {"segment_id": f"{doc_id}:t{m.start(1)}-{m.end(1)}", "doc_id": doc_id}
        | {"start": m.start(1), "end": m.end(1)}
        for m in re.finditer(r"^[A-Z]+: (.*)$", text, re.M)
    ]


def source_xml(guid: str, name: str, selections: Sequence[Selection], ext: str = "txt") -> str:
    sels = "".join(
        f'<PlainTextSelection guid="d{i:07d}-0000-4000-8000-{guid[-12:]}" '
        f'startPosition="{s}" endPosition="{e}" creatingUser="{user}">'
        f'<Coding guid="e{i:07d}-0000-4000-8000-{guid[-12:]}" creatingUser="{user}">'
        f'<CodeRef targetGUID="{code}"/></Coding></PlainTextSelection>'
        for i, (s, e, code, user) in enumerate(selections)
    )
    return (
        f'<TextSource guid="{guid}" name="{name}" plainTextPath="internal://{guid}.{ext}">'
        f"{sels}</TextSource>"
    )


def write_qdpx(
    path: Path,
    origin: str | None,
    sources: Sequence[tuple[str, str, Sequence[Selection]]],
    files: dict[str, bytes],
    folder: str = "sources",
) -> Path:
    """A .qdpx: project.qde plus ``folder/<guid>.txt`` for every entry of ``files``."""
    origin_attr = f' origin="{origin}"' if origin is not None else ""
    qde = (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<Project xmlns="urn:QDA-XML:project:1.0" name="SIDL"{origin_attr} basePath="">'
        f'<Users><User guid="{USER_ANNA}" name="anna"/><User guid="{USER_BERTIL}" '
        f'name="bertil"/></Users>{CODES_XML}<Sources>'
        + "".join(source_xml(g, n, sels) for g, n, sels in sources)
        + "</Sources></Project>"
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("project.qde", qde.encode("utf-8"))
        for guid, data in files.items():
            zf.writestr(f"{folder}/{guid}.txt", data)
    return path


def spans(result: Any) -> list[tuple[str, int, int, str, str, float]]:
    return sorted(
        (r["segment_id"], r["start"], r["end"], r["code_id"], r["coder"], r["overlap"])
        for r in result.rows
    )


# -- offsets --------------------------------------------------------------------------------


def test_the_test_segments() -> None:
    assert [(s["start"], s["end"]) for s in segments()] == SEG
    assert TEXT[32:39] == "smörgås" and TEXT[81:86] == "köket"


def test_utf16_units_to_code_points() -> None:
    index = Utf16Index("a😀b")  # units: a=0, 😀=1-2, b=3, end=4
    assert [index.to_codepoint(u) for u in range(5)] == [0, 1, None, 2, 3]
    assert index.to_codepoint(5) is None
    assert Utf16Index("abc").to_codepoint(3) == 3  # no astral characters: identity


def test_text_map_removes_bom_crlf_and_composes() -> None:
    raw = "\ufeffga\u030ar\r\nok"  # BOM, decomposed å, CRLF
    tm = TextMap(raw)
    assert tm.text == "går\nok"
    assert [tm.to_text(p) for p in (0, 1, 2, 4, 5, 7, 9)] == [0, 0, 1, 2, 3, 4, 6]
    # inside a cluster: a start moves back, an end forward
    assert (tm.to_text(3), tm.to_text(3, end=True)) == (1, 2)  # between a and the ring
    assert (tm.to_text(6), tm.to_text(6, end=True)) == (3, 4)  # between CR and LF
    assert not tm.is_boundary(6) and tm.is_boundary(5)


# -- QualCoder: LF, code points ---------------------------------------------------------------


def test_qualcoder_code_points_with_a_decomposed_letter(tmp_path: Path) -> None:
    # QualCoder stores what it was given: here "går" with a decomposed å (a + U+030A),
    # so every code point offset after it is one more than in our NFC text.
    raw = TEXT.replace("går", "ga\u030ar")
    sels: list[Selection] = [
        (3, 6, GUID_TALKING, USER_ANNA),  # "Hur", before the å: [3, 6) in both
        (33, 40, GUID_FOOD, USER_ANNA),  # "smörgås": 32 + 1, 39 + 1 in the raw text
        (44, 61, GUID_HEARD, USER_BERTIL),  # "ön.\nIP: Vi pratar": [43, 60) in ours
    ]
    path = write_qdpx(
        tmp_path / "qc.qdpx",
        "QualCoder 3.5",
        [(SRC1, "p01", sels)],
        {SRC1: raw.encode("utf-8")},
    )
    result = import_codings(path, documents(), segments(), book())
    assert result.report == []
    assert result.stats["reading"] == "qualcoder"
    assert result.stats["sources_matched"] == {"text": 1}
    assert spans(result) == [
        ("d1:t20-46", 32, 39, "food", "anna", round(7 / 26, 6)),
        # one selection over two segments: a row for each, with the overlapping part
        ("d1:t20-46", 43, 46, "being-heard", "bertil", round(3 / 26, 6)),
        ("d1:t3-15", 3, 6, "talking", "anna", 0.25),
        ("d1:t51-87", 51, 60, "being-heard", "bertil", 0.25),  # 9 of 36 characters
    ]
    row = next(r for r in result.rows if r["code_id"] == "food")
    assert TEXT[row["start"] : row["end"]] == "smörgås"
    assert row["status"] == "human" and row["score"] == 1.0
    assert row["codebook_version"] == book().version
    table = result.codings_table()
    assert table.column_names[-2:] == ["overlap", "selection"]


# -- NVivo: BOM, CRLF, UTF-16 units -----------------------------------------------------------

# "smörgås" in NVivo's numbers: 32 in our text, +1 for the CRLF of line 1 = 33, +1 for
# the emoji (two UTF-16 units) = 34; end 34 + 7 = 41. "köket": 81 in ours, +2 CRLF,
# +2 emoji = 85 to 90. "Hur" is [3, 6) in every reading.
NVIVO_SELECTIONS: list[Selection] = [
    (3, 6, GUID_TALKING, USER_ANNA),
    (34, 41, GUID_FOOD, USER_ANNA),
    (85, 90, GUID_FOOD, USER_BERTIL),
]
NVIVO_BYTES = b"\xef\xbb\xbf" + CRLF.encode("utf-8")


def nvivo_file(tmp_path: Path, origin: str | None = "NVivo 12.6 (Windows)") -> Path:
    return write_qdpx(
        tmp_path / "nvivo.qdpx",
        origin,
        [(SRC1, "p01", NVIVO_SELECTIONS)],
        {SRC1: NVIVO_BYTES},
        folder="Sources",
    )


def test_nvivo_utf16_offsets_over_crlf_text_land_on_our_words(tmp_path: Path) -> None:
    assert len(CRLF.encode("utf-16-le")) // 2 == 93  # 88 code points + 3 CR + 2 emoji
    result = import_codings(nvivo_file(tmp_path), documents(), segments(), book())
    assert result.report == []
    assert result.stats["reading"] == "nvivo"
    assert spans(result) == [
        ("d1:t20-46", 32, 39, "food", "anna", round(7 / 26, 6)),
        ("d1:t3-15", 3, 6, "talking", "anna", 0.25),
        ("d1:t51-87", 81, 86, "food", "bertil", round(5 / 36, 6)),
    ]
    assert [TEXT[r["start"] : r["end"]] for r in sorted(result.rows, key=lambda r: r["start"])] == [
        "Hur",
        "smörgås",
        "köket",
    ]


def test_nvivo_offsets_are_detected_without_an_origin(tmp_path: Path) -> None:
    # read as code points, 34 is "m" of "smörgås": the word-boundary check rejects it
    result = import_codings(nvivo_file(tmp_path, origin=None), documents(), segments(), book())
    assert result.stats["reading"] == "nvivo"
    assert result.stats["boundary_hits"] == {"nvivo": 6, "qualcoder": 3, "codepoints": 2}
    (note,) = result.report
    assert (note.problem, note.mapped) == ("reading", True)
    assert "read as nvivo" in note.detail


def test_a_forced_origin_is_kept_but_questioned(tmp_path: Path) -> None:
    path = nvivo_file(tmp_path)
    result = import_codings(path, documents(), segments(), book(), origin="qualcoder")
    assert result.stats["reading"] == "qualcoder"
    assert result.report[0].problem == "reading"
    assert "kept qualcoder as configured" in result.report[0].detail
    # the wrong reading puts "köket" past line 3's words: [85, 90) - 2 (CRLF) = [83, 88)
    assert {(r["start"], r["end"]) for r in result.rows} >= {(3, 6), (33, 40)}


def test_nvivo_file_matched_by_name_when_our_text_differs(tmp_path: Path) -> None:
    # our document was anonymised after the export: the texts differ, so the source is
    # matched by name and each selection is found again by its words
    ours = TEXT.replace("Bra", "Okej")  # one character longer, before "smörgås"
    result = import_codings(nvivo_file(tmp_path), documents(ours), segments(ours), book())
    assert result.stats["sources_matched"] == {"name": 1}
    assert sorted((r["start"], r["end"]) for r in result.rows) == [(3, 6), (33, 40), (82, 87)]
    assert [r.problem for r in result.report] == ["relocated", "relocated", "relocated"]
    assert all(r.mapped for r in result.report)


# -- a broken file: nothing is dropped silently -----------------------------------------------


def test_broken_file_reports_every_coding_it_could_not_place(tmp_path: Path) -> None:
    path = write_qdpx(
        tmp_path / "broken.qdpx",
        "QualCoder 3.5",
        [
            (
                SRC1,
                "p01",
                [
                    (3, 6, GUID_TALKING, USER_ANNA),  # fine
                    (80, 200, GUID_FOOD, USER_ANNA),  # past the end (88 characters)
                    (3, 6, GUID_WEATHER, USER_BERTIL),  # a code we do not have
                    (7, 7, GUID_FOOD, USER_ANNA),  # empty
                ],
            ),
            (SRC2, "p99", [(0, 4, GUID_FOOD, USER_ANNA)]),  # its file is missing
            (SRC3, "ghost", [(0, 4, GUID_FOOD, USER_BERTIL)]),  # matches no document
        ],
        {SRC1: TEXT.encode("utf-8"), SRC3: b"Some other interview.\n"},
    )
    result = import_codings(path, documents(), segments(), book())
    assert spans(result) == [("d1:t3-15", 3, 6, "talking", "anna", 0.25)]
    got = [(r.problem, r.source, r.code, r.coder, r.start, r.end) for r in result.report]
    assert got == [
        ("past_end", "p01", "Food", "anna", 80, 200),
        ("unknown_code", "p01", "Weather", "bertil", 3, 6),
        ("empty_selection", "p01", "Food", "anna", 7, 7),
        ("missing_source_file", "p99", "Food", "anna", 0, 4),
        ("unknown_source", "ghost", "Food", "bertil", 0, 4),
    ]
    assert not any(r.mapped for r in result.report)
    assert "88 qualcoder positions" in result.report[0].detail
    assert "codes parameter" in result.report[1].detail
    assert f"internal://{SRC2}.txt" in result.report[3].detail
    assert "mapping parameter" in result.report[4].detail
    assert result.stats["unmapped"] == 5 and result.stats["codings_imported"] == 1
    assert result.stats["problems"] == {
        "empty_selection": 1,
        "missing_source_file": 1,
        "past_end": 1,
        "unknown_code": 1,
        "unknown_source": 1,
    }
    assert result.report_table().num_rows == 5


def test_mapping_and_codes_parameters_fix_what_was_unmapped(tmp_path: Path) -> None:
    path = write_qdpx(
        tmp_path / "p.qdpx",
        "ATLAS.ti 23",
        [(SRC3, "ghost", [(3, 6, GUID_WEATHER, USER_ANNA)])],
        {SRC3: TEXT.replace("Hur", "Vad").encode("utf-8")},
    )
    result = import_codings(
        path,
        documents(),
        segments(),
        book(),
        mapping={"ghost": "t/p01.txt"},
        codes={GUID_WEATHER: "Talking / Being heard"},
    )
    assert result.stats["sources_matched"] == {"mapping": 1}
    # "Vad" is not in our text: the mapped source differs and the words are not found
    assert [r.problem for r in result.report] == ["text_differs"]
    with pytest.raises(PipelineError, match="'Nope'"):
        import_codings(path, documents(), segments(), book(), codes={"Weather": "Nope"})


def test_selection_outside_every_segment_is_reported(tmp_path: Path) -> None:
    path = write_qdpx(
        tmp_path / "p.qdpx",
        "QualCoder",
        [(SRC1, "p01", [(0, 2, GUID_TALKING, USER_ANNA)])],  # "I:", the speaker label
        {SRC1: TEXT.encode("utf-8")},
    )
    result = import_codings(path, documents(), segments(), book())
    assert result.rows == []
    assert [r.problem for r in result.report] == ["no_segment"]


def test_qualpipe_codebook_marker_maps_codes_by_id(tmp_path: Path) -> None:
    path = write_qdpx(
        tmp_path / "p.qdpx",
        "QualCoder",
        [(SRC1, "p01", [(3, 6, GUID_WEATHER, USER_ANNA)])],
        {SRC1: TEXT.encode("utf-8")},
    )
    data = zipfile.ZipFile(path).read("project.qde").decode()
    data = data.replace(
        'name="Weather" isCodable="true"/>',
        'name="Väder" isCodable="true"><Description>Weather.\n\n'
        'qualpipe: {"id": "food", "level": "theme"}</Description></Code>',
    )
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("project.qde", data)
        zf.writestr(f"sources/{SRC1}.txt", TEXT.encode("utf-8"))
    assert read_qdpx(path).codes[GUID_WEATHER].marker_id == "food"
    result = import_codings(path, documents(), segments(), book())
    assert [r["code_id"] for r in result.rows] == ["food"]


def test_not_a_qdpx_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.qdpx"
    bad.write_bytes(b"not a zip")
    with pytest.raises(PipelineError, match=r"not a readable \.qdpx"):
        import_codings(bad, documents(), segments(), book())
    other = tmp_path / "x.txt"
    other.write_text(TEXT, encoding="utf-8")
    with pytest.raises(PipelineError, match=r"import a REFI-QDA \.qdpx project or a \.csv"):
        import_codings(other, documents(), segments(), book())
    with pytest.raises(PipelineError, match="no such file"):
        import_codings(tmp_path / "missing.qdpx", documents(), segments(), book())


# -- CSV --------------------------------------------------------------------------------------


def test_csv_import_with_every_problem(tmp_path: Path) -> None:
    csv_path = tmp_path / "coding.csv"
    csv_path.write_text(
        "doc;start;end;code;coder\n"
        "t/p01.txt;32;39;food;anna\n"  # by source path and code id
        "d1;3;6;Being heard;bertil\n"  # by doc_id and code name
        "p01;43;60;Talking / Being heard;\n"  # by stem and path name; default coder
        "p01;80;99;food;anna\n"  # past the end (88 characters)
        "p02;0;3;food;anna\n"  # unknown document
        "p01;3;6;weather;anna\n"  # unknown code
        "p01;x;6;food;anna\n",  # not a number
        encoding="utf-8-sig",
    )
    result = import_codings(csv_path, documents(), segments(), book(), default_coder="team")
    assert spans(result) == [
        ("d1:t20-46", 32, 39, "food", "anna", round(7 / 26, 6)),
        ("d1:t20-46", 43, 46, "being-heard", "team", round(3 / 26, 6)),
        ("d1:t3-15", 3, 6, "being-heard", "bertil", 0.25),
        ("d1:t51-87", 51, 60, "being-heard", "team", 0.25),
    ]
    assert [(r.problem, r.selection) for r in result.report] == [
        ("past_end", "line 5"),
        ("unknown_source", "line 6"),
        ("unknown_code", "line 7"),
        ("bad_row", "line 8"),
    ]
    assert result.stats["unmapped"] == 4


def test_csv_without_required_columns(tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("document,from,to\n", encoding="utf-8")
    with pytest.raises(PipelineError, match="missing column"):
        import_codings(csv_path, documents(), segments(), book())


# -- the import-codings stage ------------------------------------------------------------------


@pytest.fixture
def human_plugin(qualpipe_plugin: Callable[..., str]) -> None:
    """The plugin under test, registered unless it is already a built-in."""
    if "qualpipe.builtin.human" not in BUILTIN_PLUGINS:
        qualpipe_plugin(human)


CODEBOOK_YAML = """\
codebook: 1
name: SIDL
codes:
  - id: talking
    name: Talking
    level: theme
    children:
      - id: being-heard
        name: Being heard
        level: subtheme
  - id: food
    name: Food
    level: theme
"""

PIPELINE = """\
qualpipe: 1
name: hum
stages:
  - id: ingest
    uses: ingest
    with: {paths: data}
  - id: segment
    uses: segment
  - id: codebook
    uses: codebook
    with: {path: codebook.yaml}
  - id: human
    uses: import-codings
    with: {path: nvivo.qdpx}
  - id: agree
    uses: agreement
    inputs: [human, segment]
    with: {level: segment}
"""


def test_import_stage_end_to_end(qualpipe_project: Project, human_plugin: None) -> None:
    qualpipe_project.write("data/p01.txt", TEXT)
    qualpipe_project.write("codebook.yaml", CODEBOOK_YAML)
    sels: list[Selection] = [*NVIVO_SELECTIONS, (85, 90, GUID_WEATHER, USER_ANNA)]
    write_qdpx(
        qualpipe_project.root / "nvivo.qdpx",
        "NVivo 12.6 (Windows)",
        [(SRC1, "p01", sels)],
        {SRC1: NVIVO_BYTES},
        folder="Sources",
    )
    qualpipe_project.pipeline(PIPELINE)
    result = qualpipe_project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    doc = qualpipe_project.dataset("hum", "ingest", "documents").to_pylist()[0]
    codings = qualpipe_project.dataset("hum", "human", "codings").to_pylist()
    assert sorted((doc["text"][c["start"] : c["end"]], c["coder"]) for c in codings) == [
        ("Hur", "anna"),
        ("köket", "bertil"),
        ("smörgås", "anna"),
    ]
    assert {c["status"] for c in codings} == {"human"}
    book_version = qualpipe_project.dataset("hum", "codebook").column("codebook_version")[0]
    assert {c["codebook_version"] for c in codings} == {book_version.as_py()}
    report = qualpipe_project.dataset("hum", "human", "mapping_report").to_pylist()
    assert [(r["problem"], r["code"]) for r in report] == [("unknown_code", "Weather")]
    stats = qualpipe_project.manifest("hum", "human")["stats"]
    assert (stats["reading"], stats["unmapped"], stats["codings"]) == ("nvivo", 1, 3)
    agreement = qualpipe_project.dataset("hum", "agree").to_pylist()
    assert {(r["coder_a"], r["coder_b"]) for r in agreement} == {("anna", "bertil"), ("*", "*")}
    manifest = qualpipe_project.manifest("hum", "agree")
    assert manifest["stats"]["coders"] == ["anna", "bertil"]
    assert "agreement.txt" in manifest["artifacts"]
