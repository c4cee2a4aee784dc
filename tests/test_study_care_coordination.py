"""The care-coordination example (UK community mental health) runs end to end.

The sample data are 12 interviews written for qualpipe (5 service users, 3 carers,
4 professionals); every participant turn was written to illustrate one of the study's
three themes (labels.csv). The run must agree with those labels (Cohen's kappa >= 0.7),
remove the identifiers written into the transcripts from everything it writes, and count
prevalence for all three roles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from qualpipe.store import open_dataset
from qualpipe.testing import Project
from qualpipe.themes.evaluate import theme_agreement

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "pipelines" / "care-coordination.yaml"
DATA = REPO / "pipelines" / "data" / "care-coordination"
ROLES = {"Service user", "Carer", "Professional"}
THEMES = {"learning-together", "moving-forward", "culture-change"}

# Identifiers written into the sample transcripts.
NAMES = [
    "Gemma Whitworth",
    "Whitworth",
    "Darren Sykes",
    "Sykes",
    "Lorraine",
    "Kowalski",
    "Okafor",
    "Priya Chauhan",
    "Chauhan",
    "Hollie",
    "Steve Hargreaves",
    "Hargreaves",
    "Adeyemi",
    "Nadia Rahman",
    "Rahman",
    "Daniel",
    "Ruth Ellison",
    "Ellison",
    "Bennett",
    "Lindqvist",
    "Julie Marsh",
    "Marsh",
    "Craig",
    "Dobson",
    "Kieran Doyle",
    "Doyle",
]
NHS_NUMBERS = ["688 126 3406", "319 012 8464", "965 515 4920"]
POSTCODES = ["WF1 4QT", "BD3 9LP", "HG1 2LD", "LS11 6AD", "LS8 5AQ", "HD1 5RT"]
PHONES = [
    "07700 900461",
    "07700 900783",
    "07700 900215",
    "07700 900932",
    "07700 900518",
    "0113 496 0112",
    "0113 496 0457",
]
PLACES = [
    "12 Harehills Lane",
    "4 Bramley Grove",
    "27 Chapel Street",
    "3 Kirkgate Mews",
    "85 Roundhay Road",
    "Tempest Road",
    "Harehills CMHT",
    "Moorside CMHT",
    "Calder and Ridings NHS Foundation Trust",
    "Aire Valley Partnership NHS Foundation Trust",
]
IDENTIFIERS = NAMES + NHS_NUMBERS + POSTCODES + PHONES + PLACES


def _leaks(text: str) -> list[str]:
    found = [v for v in IDENTIFIERS if re.search(rf"\b{re.escape(v)}\b", text)]
    digits = re.sub(r"\D", "", text)
    found += [v for v in NHS_NUMBERS + PHONES if v.replace(" ", "") in digits]
    return found


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("care-coordination")
    workdir, out = tmp / "run", tmp / "export"
    with pytest.MonkeyPatch.context() as mp:  # as conftest's _isolated_env, for this scope
        for name in ("QUALPIPE_LOAD_PLUGINS", "QUALPIPE_DISABLE_PLUGINS", "QUALPIPE_DEBUG"):
            mp.delenv(name, raising=False)
        result = Project(tmp).run(
            "run",
            PIPELINE,
            "--workdir",
            workdir,
            "--no-progress",
            "--set",
            f"anonymise.key={tmp / 'keys' / 'key.json'}",
            "--set",
            f"export.out={out}",
        )
    assert result.exit_code == 0, result.stderr
    return {"workdir": workdir, "out": out}


def test_sample_data_is_complete() -> None:
    transcripts = sorted(p.name for p in (DATA / "transcripts").glob("*.txt"))
    assert len(transcripts) == 12
    labels = (DATA / "labels.csv").read_text(encoding="utf-8").splitlines()[1:]
    assert {line.split(",")[2] for line in labels} == THEMES
    assert {line.split(",")[0] for line in labels} == set(transcripts)
    manifest = (DATA / "participants.csv").read_text(encoding="utf-8").splitlines()[1:]
    roles = [line.split(",")[2] for line in manifest]
    assert sorted(roles) == sorted(["Service user"] * 5 + ["Carer"] * 3 + ["Professional"] * 4)
    # the identifiers checked below are really in the source transcripts
    source = "\n".join(p.read_text(encoding="utf-8") for p in (DATA / "transcripts").glob("*.txt"))
    assert set(_leaks(source)) >= set(IDENTIFIERS)


def test_themes_agree_with_labels(run: dict[str, Path]) -> None:
    result = theme_agreement(run["workdir"], DATA / "labels.csv")
    assert result["answers"] == len((DATA / "labels.csv").read_text().splitlines()) - 1
    assert result["kappa"] >= 0.7, result["confusion"]


def test_identifiers_removed(run: dict[str, Path]) -> None:
    docs = open_dataset(run["workdir"] / "anonymise", "documents").read_all().to_pylist()
    assert len(docs) == 12
    for doc in docs:
        assert not doc["sensitive"]
        assert _leaks(doc["text"]) == [], doc["source_path"]
    report = (run["out"] / "report.html").read_text(encoding="utf-8")
    assert _leaks(report) == []


def test_prevalence_and_quotes_cover_roles(run: dict[str, Path]) -> None:
    themes = open_dataset(run["workdir"] / "theme", "themes").read_all().to_pylist()
    by_id = {t["theme_id"]: t for t in themes}
    assert set(by_id) >= THEMES
    assert sum(t["level"] == "subtheme" for t in themes) == 9
    for theme_id in THEMES:
        role = json.loads(by_id[theme_id]["prevalence"])["role"]
        assert role["_total"] == {"Service user": 5, "Carer": 3, "Professional": 4}
        assert {r for r in ROLES if role[r] > 0} == ROLES, theme_id
    quotes = open_dataset(run["workdir"] / "theme", "quotes").read_all().to_pylist()
    assert {q["label"] for q in quotes} == {f"({r})" for r in ROLES}
    report = (run["out"] / "report.html").read_text(encoding="utf-8")
    for r in ROLES:
        assert f"({r})" in report
