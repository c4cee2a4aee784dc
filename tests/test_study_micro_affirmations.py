"""The micro-affirmations example: paradox themes, numbered quotes, anonymised text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from qualpipe.store import open_dataset
from qualpipe.testing import Project
from qualpipe.themes.evaluate import theme_agreement

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "micro-affirmations.yaml"
DATA = REPO / "pipelines" / "data" / "micro-affirmations"
THEMES = {"own-decision-with-help", "structures-and-beyond", "small-things-great-importance"}

# Every identifier written into the sample transcripts: people, Stockholm districts and
# other places, institutions, phone numbers, e-mail, personnummer and dates.
IDENTIFIERS = [
    # people
    "Lena Holmqvist", "Lena", "Holmqvist", "Johan", "Sara", "Anna Lindqvist", "Lindqvist",
    "Karin", "Nilsson", "Mikael", "Eva Sjöberg", "Sjöberg", "Per Johansson", "Johansson",
    "Fatima", "Helena Strand", "Strand", "Mats Eriksson", "Eriksson",
    # places
    "Skärholmen", "Farsta", "Hägersten", "Rinkeby", "Södermalm", "Kista", "Kungsholmen",
    "Bagarmossen", "Skarpnäck", "Hässelby", "Tensta", "Uppsala", "Gävle", "Västerås",
    # institutions
    "Solbergakliniken", "St Görans", "Maria Beroendecentrum",
    # numbers, e-mail, dates
    "070-412 88 31", "08-508 123 45", "08-712 34 56", "helena.strand@example.se",
    "810412-3248", "760923-1183", "14 March 2023", "21 March 2023", "4 april 2023",
    "23 maj 2023", "12 juni 2023", "27 June 2023", "July 2022",
]  # fmt: skip

ROMAN = re.compile(r"^\((?=[IVXLCDM]+\))M{0,3}(CM|CD|D?C{0,3})(XC|XL|L?X{0,3})(IX|IV|V?I{0,3})\)$")
ROMAN_OF = {1: "I", 2: "II", 3: "III", 4: "IV"}  # professionals PR1..PR4


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("micro-affirmations")
    project = Project(tmp)
    workdir = tmp / "run"
    result = project.run(
        "run", PIPELINE, "--workdir", workdir, "--no-progress",
        "--set", f"anonymise.key={tmp / 'keys' / 'key.json'}",
        "--set", f"export.out={tmp / 'exports'}",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return workdir


def test_sample_data_is_complete() -> None:
    labels = (DATA / "labels.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert len(labels) >= 96
    assert {line.rsplit(",", 1)[1] for line in labels} == THEMES
    assert len(list((DATA / "transcripts").glob("*.txt"))) == 12


def test_themes_agree_with_labels(run: Path) -> None:
    result = theme_agreement(run, DATA / "labels.csv")
    assert result["answers"] >= 96
    assert result["kappa"] >= 0.7, result["confusion"]


def test_quotes_are_numbered_by_role(run: Path) -> None:
    quotes = open_dataset(run / "theme", "quotes").read_all().to_pylist()
    assert {q["theme_id"] for q in quotes} >= THEMES
    roles = set()
    for q in quotes:
        number = re.search(r"\d+$", q["participant_id"])
        assert number, q["participant_id"]
        if q["participant_id"].startswith("U"):
            assert q["label"] == f"({int(number.group())})"
            roles.add("user")
        else:
            assert ROMAN.match(q["label"]), q["label"]
            assert q["label"] == f"({ROMAN_OF[int(number.group())]})"
            roles.add("professional")
    assert roles == {"user", "professional"}


def test_identifiers_are_replaced(run: Path) -> None:
    docs = open_dataset(run / "anonymise", "documents").read_all().to_pylist()
    assert len(docs) == 12
    text = "\n".join(d["text"] for d in docs)
    for value in IDENTIFIERS:
        pattern = r"(?<!\w)" + re.escape(value) + r"(?!\w)"
        assert not re.search(pattern, text, re.IGNORECASE), f"{value!r} survived"
    assert "(name of the institution)" in text
    quotes = open_dataset(run / "theme", "quotes").read_all().to_pylist()
    for q in quotes:
        assert not any(re.search(rf"(?<!\w){re.escape(v)}(?!\w)", q["text"]) for v in IDENTIFIERS)
