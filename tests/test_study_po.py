"""The personligt ombud (PO) content-analysis example: agreement, anonymisation, export.

The sample answers in pipelines/data/po were each written to illustrate one of the three
categories (pipelines/data/po/labels.csv); the pipeline must give them back with Cohen's
kappa of at least 0.7, mask the identifiers written into the transcripts, and export a
REFI-QDA project and an HTML report.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from qualpipe.store import open_dataset
from qualpipe.testing import Project
from qualpipe.themes.evaluate import theme_agreement

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "po-content-analysis.yaml"
DATA = REPO / "pipelines" / "data" / "po"
LABELS = DATA / "labels.csv"
CATEGORIES = {"freedom-promoted-flexibility", "surfing-welfare-system", "working-for-legitimacy"}

# Identifiers written into the sample transcripts (clients, colleagues, caseworkers at
# Försäkringskassan and elsewhere, the interviewer, places, addresses, phone numbers,
# personnummer with a valid Luhn digit, dates).
IDENTIFIERS = [
    # people
    "Sara Lindgren",
    "Anneli Holm",
    "Anneli",
    "Bengt Olofsson",
    "Jonas Berg",
    "Eva Sundberg",
    "Lisa Ek",
    "Patrik Nyström",
    "Ulla Strand",
    "Mats Viklund",
    "Ahmed Karimi",
    "Anna Persson",
    "Sofia Lund",
    "Maria",
    "Johan",
    "Karin",
    # places and addresses
    "Hudiksvall",
    "Sandviken",
    "Östersund",
    "Storgatan 14",
    "Ringvägen 3",
    "Kungsgatan 22",
    # phone numbers
    "08-545 123 40",
    "0650-123 45",
    "08-123 456 78",
    # personnummer
    "850312-1231",
    "670921-4560",
    # dates
    "14 mars 2023",
    "21 mars 2023",
    "4 april 2023",
    "12 april 2023",
    "26 April 2023",
    "3 May 2023",
    "10 May 2023",
    "17 maj 2023",
    "2 februari 1967",
]


@pytest.fixture(scope="module")
def po_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("po")
    paths = {"workdir": tmp / "run", "key": tmp / "keys" / "po.key.json", "out": tmp / "export"}
    (tmp / "project").mkdir()
    result = Project(tmp / "project").run(
        "run",
        PIPELINE,
        "--workdir",
        paths["workdir"],
        "--no-progress",
        "--set",
        f"anonymise.key={paths['key']}",
        "--set",
        f"export.out={paths['out']}",
    )
    assert result.exit_code == 0, result.stderr
    return paths


def test_sample_data_is_complete() -> None:
    transcripts = sorted(p.name for p in (DATA / "transcripts").glob("*.txt"))
    assert len(transcripts) == 8
    with (DATA / "participants.csv").open(encoding="utf-8", newline="") as fh:
        people = list(csv.DictReader(fh))
    assert sorted(Path(p["file"]).name for p in people) == transcripts
    assert {p["role"] for p in people} == {"Personligt ombud"}
    assert [p["participant"] for p in people] == [f"PO{i}" for i in range(1, 9)]
    assert sum(p["language"] == "en" for p in people) == 3
    with LABELS.open(encoding="utf-8", newline="") as fh:
        labels = list(csv.DictReader(fh))
    assert {row["theme"] for row in labels} == CATEGORIES
    assert {row["file"] for row in labels} == set(transcripts)


def test_categories_agree_with_labels(po_run: dict[str, Path]) -> None:
    result = theme_agreement(po_run["workdir"], LABELS)
    assert result["answers"] >= 30
    assert result["kappa"] >= 0.7, result["confusion"]


def test_identifiers_are_gone(po_run: dict[str, Path]) -> None:
    sources = "\n".join(
        p.read_text(encoding="utf-8") for p in sorted((DATA / "transcripts").glob("*.txt"))
    )
    for value in IDENTIFIERS:
        assert value in sources, f"{value!r} is not in the sample data"
    docs = open_dataset(po_run["workdir"] / "anonymise", "documents").read_all().to_pylist()
    assert len(docs) == 8
    for doc in docs:
        assert not doc["sensitive"]
        for value in IDENTIFIERS:
            # whole words: a pseudonym such as "Johansson" or "Karina" is not "Johan"/"Karin"
            pattern = rf"(?<!\w){re.escape(value)}(?!\w)"
            assert not re.search(pattern, doc["text"]), (doc["source_path"], value)
    text = "\n".join(doc["text"] for doc in docs)
    # agencies are data, not identifiers: they stay
    assert "Försäkringskassan" in text and "Social Insurance Agency" in text
    assert po_run["key"].is_file()


def test_export_has_project_and_report(po_run: dict[str, Path]) -> None:
    out = po_run["out"]
    assert list(out.glob("*.qdpx")), sorted(p.name for p in out.iterdir())
    assert (out / "report.html").is_file()
