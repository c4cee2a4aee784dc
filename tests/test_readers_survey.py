"""Survey exports (csv/xlsx) and the participants manifest, through the real ingest stage."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import unicodedata
import zipfile
from typing import Any

import pytest

from qualpipe.builtin.ingest import doc_id_for
from qualpipe.errors import EXIT_INVALID
from qualpipe.testing import Project, Result

openpyxl = pytest.importorskip("openpyxl")

PIPELINE = """\
qualpipe: 1
name: survey
stages:
  - id: ingest
    uses: ingest
    with: {with_}
"""

Q1, Q2 = "Vad hjälpte dig?", "Vad var svårt?"
HEADER = ["ResponseId", "Deltagare", "Ålder", "Kommun", Q1, Q2]
ROWS = [
    ["R_1", "P01", "34", "Umeå", "Att någon lyssnade, på riktigt.", "Väntetiden."],
    ["R_2", "P02", "51", "Malmö", "", "Blanketterna.\nOch telefonkön."],
    ["R_3", "P03", "29", "Luleå", "  ", ""],
    ["R_4", "", "", "Göteborg", "Stödet från min kontaktperson; hon ringde varje vecka.", "Nej"],
]
OPTIONS: dict[str, Any] = {
    "text_columns": ["vad hjälpte dig?", Q2],  # matched case-insensitively
    "id_column": "responseid",
    "participant_column": "Deltagare",
    "attribute_columns": ["Ålder", "kommun"],
}
EXPECTED: list[dict[str, Any]] = [
    {
        "key": "R_1",
        "participant_id": "P01",
        "attributes": [("Kommun", "Umeå"), ("Ålder", "34")],
        "answers": [(Q1, "Att någon lyssnade, på riktigt."), (Q2, "Väntetiden.")],
    },
    {
        "key": "R_2",
        "participant_id": "P02",
        "attributes": [("Kommun", "Malmö"), ("Ålder", "51")],
        "answers": [(Q2, "Blanketterna.\nOch telefonkön.")],
    },
    {
        "key": "R_4",
        "participant_id": None,
        "attributes": [("Kommun", "Göteborg"), ("Ålder", "")],
        "answers": [(Q1, "Stödet från min kontaktperson; hon ringde varje vecka."), (Q2, "Nej")],
    },
]


def csv_bytes(
    rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8", before: str = ""
) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows(rows)
    return (before + buf.getvalue()).encode(encoding)


def xlsx_bytes(sheets: dict[str, list[list[Any]]]) -> bytes:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(row)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def ingest(project: Project, **with_: Any) -> Result:
    with_.setdefault("paths", "data")
    project.pipeline(PIPELINE.format(with_=json.dumps(with_, ensure_ascii=False)))
    return project.run("run", "pipeline.yaml")


def documents(project: Project) -> list[dict[str, Any]]:
    return list(project.dataset("survey", "ingest", "documents").to_pylist())


def quarantine(project: Project) -> dict[str, str]:
    rows = project.dataset("survey", "ingest", "quarantine").to_pylist()
    return {r["source_path"]: r["reason"] for r in rows}


def stats(project: Project) -> dict[str, Any]:
    return dict(project.manifest("survey", "ingest")["stats"])


def check_documents(docs: list[dict[str, Any]], rel: str, expected: list[dict[str, Any]]) -> None:
    assert [d["source_path"] for d in docs] == [f"{rel}#{e['key']}" for e in expected]
    for doc, exp in zip(docs, expected, strict=True):
        assert doc["doc_id"] == doc_id_for(rel, exp["key"])
        assert doc["text"] == "\n\n".join(answer for _, answer in exp["answers"])
        assert doc["participant_id"] == exp["participant_id"]
        assert doc["attributes"] == exp["attributes"]
        turns = [(t["speaker"], doc["text"][t["start"] : t["end"]]) for t in doc["turns"]]
        assert turns == exp["answers"]
        assert {t["role"] for t in doc["turns"]} == {"participant"}
        assert doc["sensitive"] is True
    assert len({d["doc_id"] for d in docs}) == len(docs)


# -- CSV --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "delimiter", "stored", "notes"),
    [
        ("utf-8", ",", "utf-8", 1),
        ("utf-8-sig", ",", "utf-8-sig", 1),
        ("utf-8", ";", "utf-8", 1),
        ("utf-16", "\t", "utf-16", 1),  # Excel "Unicode text"
        ("cp1252", ";", "cp1252", 2),  # Swedish Excel "CSV": the decode note is one more
    ],
)
def test_csv_one_document_per_response(
    qualpipe_project: Project, encoding: str, delimiter: str, stored: str, notes: int
) -> None:
    qualpipe_project.write("data/survey.csv", csv_bytes([HEADER, *ROWS], delimiter, encoding))
    result = ingest(qualpipe_project, survey=OPTIONS)
    assert result.exit_code == 0, result.output
    docs = documents(qualpipe_project)
    check_documents(docs, "survey.csv", EXPECTED)
    assert {(d["reader"], d["format"], d["encoding"]) for d in docs} == {
        ("survey-csv", "csv", stored)
    }
    assert quarantine(qualpipe_project) == {}
    st = stats(qualpipe_project)
    assert st["documents"] == 3
    assert st["turns"] == 5
    # R_3 has no answer: skipped, and counted in a note on the file's last document.
    assert st["documents_with_notes"] == notes
    assert "1 of 4 response(s) had no answer in the text columns and were skipped" in (
        result.stderr
    )
    if encoding == "cp1252":
        assert "not valid UTF-8: decoded as cp1252" in result.stderr


def test_csv_text_is_normalised_and_offsets_fit(qualpipe_project: Project) -> None:
    nfd = unicodedata.normalize("NFD", "Jag blev förstådd.\r\nTack!")
    rows = [["id", "Svar"], ["1", f"  {nfd}  "], ["2", "\n"], ["3", "Ok"], ["", ""]]
    qualpipe_project.write("data/s.csv", csv_bytes(rows))
    result = ingest(qualpipe_project, survey={"text_columns": "svar", "id_column": "id"})
    assert result.exit_code == 0, result.output
    docs = documents(qualpipe_project)
    assert [d["text"] for d in docs] == ["Jag blev förstådd.\nTack!", "Ok"]
    assert docs[0]["turns"] == [
        {
            "speaker": "Svar",
            "start": 0,
            "end": 24,
            "start_time": None,
            "end_time": None,
            "role": "participant",
        }
    ]
    assert docs[0]["attributes"] == []


def test_default_id_is_the_row_number_and_ids_are_stable(qualpipe_project: Project) -> None:
    rows = [["Fråga"], ["första"], [""], ["tredje"]]
    path = qualpipe_project.write("data/s.csv", csv_bytes(rows))
    assert ingest(qualpipe_project, survey={"text_columns": ["Fråga"]}).exit_code == 0
    first = documents(qualpipe_project)
    assert [d["source_path"] for d in first] == ["s.csv#row2", "s.csv#row4"]
    assert [d["participant_id"] for d in first] == [None, None]
    # An edited answer keeps its document id.
    path.write_bytes(csv_bytes([["Fråga"], ["första, ändrad"], [""], ["tredje"]]))
    assert qualpipe_project.run("run", "pipeline.yaml").exit_code == 0
    again = documents(qualpipe_project)
    assert [d["doc_id"] for d in again] == [d["doc_id"] for d in first]
    assert again[0]["text"] == "första, ändrad"


def test_response_ids_survive_reordering_and_differ_between_files(
    qualpipe_project: Project,
) -> None:
    qualpipe_project.write("data/a.csv", csv_bytes([HEADER, *ROWS]))
    qualpipe_project.write("data/b.csv", csv_bytes([HEADER, *ROWS[::-1]]))
    assert ingest(qualpipe_project, survey=OPTIONS).exit_code == 0
    docs = documents(qualpipe_project)
    by_path = {d["source_path"]: d for d in docs}
    assert len(docs) == len({d["doc_id"] for d in docs}) == 6
    for key in ("R_1", "R_2", "R_4"):
        a, b = by_path[f"a.csv#{key}"], by_path[f"b.csv#{key}"]
        assert a["doc_id"] == doc_id_for("a.csv", key) != b["doc_id"]
        assert a["text"] == b["text"]


def test_qualtrics_export_header_rows(qualpipe_project: Project) -> None:
    rows = [
        ["Enkät om stöd 2024"],  # a title row above the header
        ["ResponseId", "Q1", "Q2_TEXT"],
        ["Response ID", "Vad hjälpte?", "Övrigt - Text"],
        ['{"ImportId":"_recordId"}', '{"ImportId":"QID1"}', '{"ImportId":"QID2_TEXT"}'],
        ["R_a1", "Samtalen", ""],
        ["R_b2", "", "Mer tid, tack"],
    ]
    qualpipe_project.write("data/qualtrics.csv", csv_bytes(rows))
    survey = {
        "text_columns": ["Q1", "Q2_TEXT"],
        "id_column": "ResponseId",
        "skip_rows": 1,
        "skip_after_header": 2,
    }
    assert ingest(qualpipe_project, survey=survey).exit_code == 0
    docs = documents(qualpipe_project)
    assert [(d["source_path"], d["text"]) for d in docs] == [
        ("qualtrics.csv#R_a1", "Samtalen"),
        ("qualtrics.csv#R_b2", "Mer tid, tack"),
    ]
    assert [t["speaker"] for d in docs for t in d["turns"]] == ["Q1", "Q2_TEXT"]


def test_excel_sep_line_and_quoted_multiline_answers(qualpipe_project: Project) -> None:
    rows = [["id", "svar"], ["1", 'Hon sa: "kom igen";\nsen gick vi.'], ["2", "a;b;c"]]
    qualpipe_project.write("data/s.csv", csv_bytes(rows, ";", before="sep=;\r\n"))
    survey = {"text_columns": ["svar"], "id_column": "id"}
    assert ingest(qualpipe_project, survey=survey).exit_code == 0
    docs = documents(qualpipe_project)
    assert [d["text"] for d in docs] == ['Hon sa: "kom igen";\nsen gick vi.', "a;b;c"]


# -- XLSX -------------------------------------------------------------------------------


def test_xlsx_sheet_numbers_and_dates(qualpipe_project: Project) -> None:
    rows: list[list[Any]] = [
        ["Id", "Deltagare", "Ålder", "Poäng", "Datum", Q1, Q2],
        [101, 7, 34, 4.5, dt.datetime(2024, 3, 1), "Att någon lyssnade.", "Väntan\npå svar."],
        [102, 8, 51, 3.0, dt.datetime(2024, 3, 2, 14, 30), None, "Blanketterna."],
        [103, 9, 29, 2.25, dt.date(2024, 3, 3), None, "   "],
        [None, None, None, None, None, None, None],
    ]
    qualpipe_project.write("data/enkat.xlsx", xlsx_bytes({"Info": [["Om enkäten"]], "Svar": rows}))
    survey = {
        "text_columns": [Q1, Q2],
        "id_column": "id",
        "participant_column": "deltagare",
        "attribute_columns": ["Ålder", "Poäng", "Datum"],
        "sheet": "svar",
    }
    result = ingest(qualpipe_project, survey=survey)
    assert result.exit_code == 0, result.output
    docs = documents(qualpipe_project)
    check_documents(
        docs,
        "enkat.xlsx",
        [
            {
                "key": "101",
                "participant_id": "7",
                "attributes": [("Datum", "2024-03-01"), ("Poäng", "4.5"), ("Ålder", "34")],
                "answers": [(Q1, "Att någon lyssnade."), (Q2, "Väntan\npå svar.")],
            },
            {
                "key": "102",
                "participant_id": "8",
                "attributes": [("Datum", "2024-03-02T14:30:00"), ("Poäng", "3"), ("Ålder", "51")],
                "answers": [(Q2, "Blanketterna.")],
            },
        ],
    )
    assert {(d["reader"], d["format"]) for d in docs} == {("survey-xlsx", "xlsx")}
    assert "1 of 3 response(s) had no answer" in result.stderr


def test_xlsx_first_sheet_by_default_and_xlsm(qualpipe_project: Project) -> None:
    data = xlsx_bytes({"Blad1": [["Svar"], ["Från första bladet"]], "Blad2": [["Svar"], ["x"]]})
    qualpipe_project.write("data/a.xlsx", data)
    qualpipe_project.write("data/b.XLSM", data)
    assert ingest(qualpipe_project, survey={"text_columns": ["Svar"]}).exit_code == 0
    docs = documents(qualpipe_project)
    assert [(d["source_path"], d["text"]) for d in docs] == [
        ("a.xlsx#row2", "Från första bladet"),
        ("b.XLSM#row2", "Från första bladet"),
    ]


def rewrite_sheet(data: bytes, edit: Any) -> bytes:
    """The workbook with the XML of its first worksheet passed through ``edit``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as zin, zipfile.ZipFile(out, "w") as zout:
        for item in zin.infolist():
            content = zin.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = edit(content)
            zout.writestr(item, content)
    return out.getvalue()


def test_xlsx_with_a_wrong_recorded_size_is_read_whole(qualpipe_project: Project) -> None:
    data = xlsx_bytes({"Svar": [["Svar"], *[[f"svar {i}"] for i in range(30)]]})
    wrong = rewrite_sheet(
        data, lambda x: re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1"', x)
    )
    qualpipe_project.write("data/s.xlsx", wrong)
    assert ingest(qualpipe_project, survey={"text_columns": ["Svar"]}).exit_code == 0
    assert len(documents(qualpipe_project)) == 30


def test_xlsx_with_a_damaged_sheet_is_quarantined(qualpipe_project: Project) -> None:
    data = xlsx_bytes({"Svar": [["Svar"], ["ett"], ["två"]]})
    qualpipe_project.write("data/s.xlsx", rewrite_sheet(data, lambda x: x[: len(x) // 2]))
    assert ingest(qualpipe_project, survey={"text_columns": ["Svar"]}).exit_code == 0
    reason = quarantine(qualpipe_project)["s.xlsx"]
    assert reason.startswith("not a valid .xlsx workbook (corrupt or not Excel): ")
    assert documents(qualpipe_project) == []


# -- quarantine -------------------------------------------------------------------------

BAD_XLSX = "not a valid .xlsx workbook (corrupt or not Excel)"


def _truncated_xlsx() -> bytes:
    data = xlsx_bytes({"Svar": [["Svar"], *[[f"svar {i}"] for i in range(50)]]})
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "content", "survey", "reason"),
    [
        (
            "stray.csv",
            csv_bytes([["id", "q1", "q2"], ["1", "a", "b"]]),
            {},
            "survey export: set survey.text_columns to the open-answer columns "
            "(found columns: id, q1, q2)",
        ),
        (
            "s.csv",
            csv_bytes([["id", "q1", "Ålder"], ["1", "a", "3"]]),
            {"text_columns": ["q1", "q9"], "attribute_columns": ["ålder", "Kön"]},
            "survey export: no such column(s): survey.text_columns 'q9'; "
            "survey.attribute_columns 'Kön' (found columns: id, q1, Ålder)",
        ),
        (
            "s.csv",
            csv_bytes([["id", "q1"], ["1", ""], ["2", " "]]),
            {"text_columns": ["q1"]},
            "survey export: no non-empty answers in columns 'q1' (2 response row(s) read)",
        ),
        (
            "s.csv",
            csv_bytes([["id", "q1"], ["1", "a"], ["1", "b"]]),
            {"text_columns": ["q1"], "id_column": "id"},
            "survey export: response id '1' of column 'id' is on rows 2 and 3; "
            "survey.id_column must name a unique id",
        ),
        (
            "s.csv",
            csv_bytes([["id", "q1"], ["1", "a"], ["", "b"]]),
            {"text_columns": ["q1"], "id_column": "ID"},
            "survey export: row 3 has no response id in column 'id' (survey.id_column)",
        ),
        (
            "garbage.csv",
            bytes(range(256)) * 8,
            {"text_columns": ["q1"]},
            "binary file (NUL bytes), not a text transcript",
        ),
        ("empty.csv", b"", {"text_columns": ["q1"]}, "empty file"),
        ("corrupt.xlsx", b"PK\x03\x04" + b"\x00garbage" * 40, {"text_columns": ["q1"]}, BAD_XLSX),
        ("notexcel.xlsx", b"id,q1\n1,a\n", {"text_columns": ["q1"]}, BAD_XLSX),
        ("truncated.xlsx", _truncated_xlsx(), {"text_columns": ["Svar"]}, BAD_XLSX),
        (
            "locked.xlsx",
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 1024,
            {"text_columns": ["q1"]},
            "password-protected (encrypted) or legacy .xls workbook; "
            "remove the password or save as .xlsx",
        ),
        (
            "s.xlsx",
            xlsx_bytes({"Blad1": [["Svar"], ["x"]]}),
            {"text_columns": ["Svar"], "sheet": "Svar"},
            "survey export: no sheet 'Svar' (sheets: Blad1)",
        ),
        (
            "s.xlsx",
            xlsx_bytes({"Blad1": [["Svar"], ["x"]]}),
            {"text_column": ["Svar"]},
            "survey export: unknown survey option(s) text_column (options: attribute_columns, "
            "id_column, participant_column, sheet, skip_after_header, skip_rows, text_columns)",
        ),
    ],
    ids=[
        "no-text-columns",
        "unknown-columns",
        "no-answers",
        "duplicate-ids",
        "missing-id",
        "garbage",
        "empty",
        "corrupt-xlsx",
        "csv-named-xlsx",
        "truncated-xlsx",
        "encrypted-xlsx",
        "no-such-sheet",
        "option-typo",
    ],
)
def test_unreadable_exports_are_quarantined_with_a_reason(
    qualpipe_project: Project, name: str, content: bytes, survey: dict[str, Any], reason: str
) -> None:
    qualpipe_project.write(f"data/{name}", content)
    qualpipe_project.write("data/p01.txt", "Interviewer: Hur var det?\n\nP01: Bra.\n")
    result = ingest(qualpipe_project, survey=survey)
    assert result.exit_code == 0, result.output
    got = quarantine(qualpipe_project)
    assert list(got) == [name]
    if reason == BAD_XLSX:
        assert got[name].startswith(reason)
    else:
        assert got[name] == reason
    rows = qualpipe_project.dataset("survey", "ingest", "quarantine").to_pylist()
    assert rows[0]["reader"] == ("survey-xlsx" if name.endswith("xlsx") else "survey-csv")
    # The batch goes on: the transcript next to it is read.
    assert [d["source_path"] for d in documents(qualpipe_project)] == ["p01.txt"]


def test_many_columns_are_listed_briefly(qualpipe_project: Project) -> None:
    header = [f"c{i}" for i in range(60)]
    qualpipe_project.write("data/wide.csv", csv_bytes([header, ["x"] * 60]))
    assert ingest(qualpipe_project).exit_code == 0
    reason = quarantine(qualpipe_project)["wide.csv"]
    assert reason.endswith("c38, c39, ... (20 more))")


# -- participants manifest --------------------------------------------------------------

TRANSCRIPT = "Interviewer: Hur var stödet?\n\n{p}: Det hjälpte mig mycket.\n"


def transcripts(project: Project, *names: str) -> None:
    for name in names:
        project.write(f"data/t/{name}.txt", TRANSCRIPT.format(p=name.upper()))


def by_file(project: Project) -> dict[str, tuple[str | None, list[tuple[str, str]]]]:
    return {d["source_path"]: (d["participant_id"], d["attributes"]) for d in documents(project)}


def test_csv_manifest_in_the_transcript_folder_is_not_a_survey(qualpipe_project: Project) -> None:
    transcripts(qualpipe_project, "p01", "p02")
    qualpipe_project.write(
        "data/participants.csv",
        "File;Participant; Roll ;Kommun\nt/p01.txt;P01;Brukare;Umeå\nt/p02.txt;P02;Personal;\n",
    )
    result = ingest(
        qualpipe_project, manifest="data/participants.csv", survey={"text_columns": ["x"]}
    )
    assert result.exit_code == 0, result.output
    assert quarantine(qualpipe_project) == {}
    assert by_file(qualpipe_project) == {
        "t/p01.txt": ("P01", [("Kommun", "Umeå"), ("Roll", "Brukare")]),
        "t/p02.txt": ("P02", [("Kommun", ""), ("Roll", "Personal")]),
    }
    st = stats(qualpipe_project)
    assert (st["manifest_rows_without_file"], st["files_without_manifest_row"]) == (0, 0)


def test_xlsx_manifest(qualpipe_project: Project) -> None:
    transcripts(qualpipe_project, "p01", "p02")
    rows: list[list[Any]] = [
        ["FILE", "PARTICIPANT", "Ålder", "Intervjudatum", "Språk"],
        ["t/p01.txt", "P01", 34, dt.datetime(2024, 3, 1), "sv"],
        [None, None, None, None, None],
        ["t/p02.txt", 2, 51.5, dt.date(2024, 3, 2), None],
    ]
    qualpipe_project.write("data/deltagare.xlsx", xlsx_bytes({"Blad1": rows}))
    result = ingest(qualpipe_project, paths="data/t", manifest="data/deltagare.xlsx")
    assert result.exit_code == 0, result.output
    assert by_file(qualpipe_project) == {
        "p01.txt": ("P01", [("Intervjudatum", "2024-03-01"), ("Språk", "sv"), ("Ålder", "34")]),
        "p02.txt": ("2", [("Intervjudatum", "2024-03-02"), ("Språk", ""), ("Ålder", "51.5")]),
    }


def test_manifest_with_blank_header_cells_and_multiline_values(qualpipe_project: Project) -> None:
    # Excel pads a CSV with ';' when some row has cells beyond the header.
    transcripts(qualpipe_project, "p01", "p02")
    qualpipe_project.write(
        "data/m.csv",
        'file;participant;note;;\nt/p01.txt;P01;"rad ett\nrad två";;\nt/p02.txt;P02;;x;\n',
    )
    result = ingest(qualpipe_project, paths="data/t", manifest="data/m.csv")
    assert result.exit_code == 0, result.output
    assert by_file(qualpipe_project) == {
        "p01.txt": ("P01", [("note", "rad ett\nrad två")]),
        "p02.txt": ("P02", [("note", "")]),
    }


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            "fil,participant\nt/p01.txt,P01\n",
            "needs a 'file' column (found: fil, participant)",
        ),
        (
            "file,participant\nt/p01.txt,P01\nt/p01.txt,P02\n",
            "m.csv:3: file 't/p01.txt' is listed twice",
        ),
        (  # the line number counts blank lines too
            "file,participant\n\nt/p01.txt,P01\n,\nt/p01.txt,P02\n",
            "m.csv:5: file 't/p01.txt' is listed twice",
        ),
        ("file,participant\nt/p01.txt,P01\n,P02\n", "m.csv:3: empty 'file' value"),
    ],
    ids=["no-file-column", "duplicate-file", "duplicate-after-blank-lines", "empty-file-value"],
)
def test_bad_manifest_fails_ingest(qualpipe_project: Project, manifest: str, message: str) -> None:
    transcripts(qualpipe_project, "p01")
    qualpipe_project.write("data/m.csv", manifest)
    result = ingest(qualpipe_project, manifest="data/m.csv")
    assert result.exit_code == EXIT_INVALID
    assert message in result.stderr.splitlines()[-1]


@pytest.mark.parametrize("strict", [True, False])
def test_manifest_mismatch(qualpipe_project: Project, strict: bool) -> None:
    transcripts(qualpipe_project, "p01", "p02")
    qualpipe_project.write("data/m.csv", "file,participant\nt/p01.txt,P01\nt/p03.txt,P03\n")
    result = ingest(qualpipe_project, manifest="data/m.csv", strict=strict)
    if strict:
        # Bad input (exit 2, docs/cli.md), naming both sides of the mismatch.
        assert result.exit_code == EXIT_INVALID
        assert result.stderr.splitlines()[-1] == (
            "qualpipe: error: stage 'ingest' (plugin 'qualpipe.builtin.ingest'): ingest: "
            "participants manifest 'm.csv': 1 manifest row(s) match no file: t/p03.txt; "
            "1 file(s) have no manifest row: t/p02.txt. Fix the 'file' column, or set "
            "strict: false to go on with a warning"
        )
        assert not (qualpipe_project.workdir("survey") / "ingest" / "manifest.json").exists()
        return
    assert result.exit_code == 0, result.output
    st = stats(qualpipe_project)
    assert (st["manifest_rows_without_file"], st["files_without_manifest_row"]) == (1, 1)
    assert by_file(qualpipe_project) == {"t/p01.txt": ("P01", []), "t/p02.txt": (None, [])}
    assert "manifest mismatch" in result.stderr
