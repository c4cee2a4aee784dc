"""The SIDL example pipeline on its sample data: themes agree with the labels, the
exports are written, no identifier survives, quotes are labelled by role."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pytest

from qualpipe.store import open_dataset
from qualpipe.testing import Project
from qualpipe.themes.evaluate import theme_agreement

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "sidl.yaml"
LABELS = REPO / "pipelines" / "data" / "sidl" / "labels.csv"

# Every name, phone number, personnummer and address written into the sample transcripts.
IDENTIFIERS = [
    "Karin",
    "Lindqvist",
    "Birgitta Holm",
    "Anders",
    "Lena Berg",
    "Per-Olof",
    "Johan",
    "Eriksson",
    "Ulla Sjöberg",
    "Mats Nyberg",
    "Maria Svensson",
    "Sofia",
    "Göran Ek",
    "Sixten",
    "Helen",
    "Lars Wikström",
    "Anna-Karin Dahl",
    "Kerstin Åberg",
    "Eva Lund",
    "Gunnar",
    "Ingrid Holmberg",
    "Emma Berglund",
    "Tomas Hedlund",
    "Jonas Öberg",
    "Sven Lindberg",
    "070-412 88 31",
    "08-514 52 30",
    "073-551 20 48",
    "08-714 23 90",
    "070-238 61 09",
    "08-655 40 12",
    "072-904 33 17",
    "070-663 18 24",
    "076-128 90 55",
    "08-590 112 47",
    "650312-1235",
    "710824-4562",
    "Björkvägen 14",
    "Kungsgatan 7",
    "Östra Långgatan 23",
    "Drottninggatan 31",
    "Södervägen 9",
    "Sandviken",
    "Gävle",
    "Uppsala",
    "Valhallabadet",
]


def _leaks(text: str) -> list[str]:
    return [
        value
        for value in IDENTIFIERS
        if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE)
    ]


@pytest.fixture(scope="module")
def sidl_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("sidl")
    workdir, exports = tmp / "run", tmp / "exports"
    (tmp / "project").mkdir()
    result = Project(tmp / "project").run(
        "run",
        PIPELINE,
        "--workdir",
        workdir,
        "--no-progress",
        "--set",
        f"anonymise.key={tmp / 'keys' / 'sidl.key.json'}",
        "--set",
        f"export.out={exports}",
    )
    assert result.exit_code == 0, result.stderr
    return workdir, exports


def test_sample_data_is_complete() -> None:
    transcripts = sorted((LABELS.parent / "transcripts").glob("*.txt"))
    assert len(transcripts) == 12
    for path in transcripts:
        assert all(value not in path.name for value in IDENTIFIERS)
    assert sum(_leaks(p.read_text(encoding="utf-8")) != [] for p in transcripts) == len(
        transcripts
    ), "every transcript carries identifiers for the anonymiser"


def test_themes_agree_with_labels(sidl_run: tuple[Path, Path]) -> None:
    workdir, _ = sidl_run
    result = theme_agreement(workdir, LABELS)
    assert result["answers"] >= 90
    assert result["kappa"] >= 0.7, result["confusion"]


def test_exports_are_written(sidl_run: tuple[Path, Path]) -> None:
    _, exports = sidl_run
    for name in ("sidl.qdpx", "report.html", "report.docx"):
        assert (exports / name).is_file(), name


def test_no_identifier_survives(sidl_run: tuple[Path, Path]) -> None:
    workdir, exports = sidl_run
    docs = open_dataset(workdir / "anonymise", "documents").read_all()
    for text in docs.column("text").to_pylist():
        assert _leaks(text) == []
    texts = {"report.html": (exports / "report.html").read_text(encoding="utf-8")}
    for name in ("sidl.qdpx", "report.docx"):
        with zipfile.ZipFile(exports / name) as zf:
            for member in zf.namelist():
                texts[f"{name}:{member}"] = zf.read(member).decode("utf-8", "replace")
    for path in exports.rglob("*.csv"):
        texts[path.name] = path.read_text(encoding="utf-8")
    for where, text in texts.items():
        assert _leaks(text) == [], where


def test_quotes_are_labelled_by_role(sidl_run: tuple[Path, Path]) -> None:
    workdir, exports = sidl_run
    quotes = open_dataset(workdir / "theme", "quotes").read_all().to_pylist()
    assert quotes
    html = (exports / "report.html").read_text(encoding="utf-8")
    assert "(Service user)" in html
    assert "(Support worker)" in html
