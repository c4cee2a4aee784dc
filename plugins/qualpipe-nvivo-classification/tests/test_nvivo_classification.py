"""The nvivo-classification exporter, on datasets built by a real pipeline run.

ingest (two transcripts and a participants manifest) -> anonymise (key in the test's
temporary folder) -> segment -> codebook -> code -> theme -> export.
"""

from __future__ import annotations

import csv
import importlib.metadata
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from qualpipe.testing import Project, invoke

import qualpipe_nvivo_classification.plugin as plugin

P01 = """\
Intervjuare: Hur går det med stödet hemma?

IP: Det går bra, jag heter Gunilla Ek och pratar med min stödperson om allt.

Intervjuare: Och maten?

IP: Vi lagar mat tillsammans i köket. Det är skönt.
"""

W01 = """\
Interviewer: How is the support?

P02: I am Hans Berg. We cook together and the food is nice.
"""

W02 = """\
Interviewer: What do you do together?

P03: Mostly we talk. She likes to talk about her week.
"""

PARTICIPANTS = """\
file,participant,role,gender,age band,municipality,pair
t/p01.txt,P01,Service user,woman,45-54,Sandviken,A
t/w01.txt,W01,Support worker,man,,Gävle,A
t/w02.txt,W02,Support worker,woman,35-44,Gävle,
"""

CODEBOOK = """\
codebook: 1
name: Test
codes:
  - id: talking
    name: Talking
    level: theme
    children:
      - {id: being-heard, name: Being heard, level: subtheme, keywords: [prata, talk]}
  - id: food
    name: Food
    level: theme
    keywords: [mat, food, cook]
"""


def pipeline(export_with: str) -> str:
    return f"""\
qualpipe: 1
name: nv
stages:
  - id: ingest
    uses: ingest
    with: {{paths: data/t, manifest: data/participants.csv}}
  - id: anonymise
    uses: anonymise
    with: {{key: ../keys/nv.key.json}}
  - id: segment
    uses: segment
    with: {{drop_speakers: [Interviewer, Intervjuare]}}
  - id: codebook
    uses: codebook
    with: {{path: codebook.yaml}}
  - id: code
    uses: code
    with: {{coders: [rules]}}
  - id: theme
    uses: theme
  - id: export
    uses: export
    with: {export_with}
"""


@pytest.fixture
def project(
    qualpipe_project: Project, qualpipe_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> Project:
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "nvivo-classification")
    qualpipe_plugin(plugin)
    qualpipe_project.write("data/t/p01.txt", P01)
    qualpipe_project.write("data/t/w01.txt", W01)
    qualpipe_project.write("data/t/w02.txt", W02)
    qualpipe_project.write("data/participants.csv", PARTICIPANTS)
    qualpipe_project.write("codebook.yaml", CODEBOOK)
    return qualpipe_project


def run(project: Project, export_with: str) -> None:
    project.pipeline(pipeline(export_with))
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output


HEADER = [
    "Case", "age band", "gender", "municipality", "pair", "role",
    "Theme: Talking", "Theme: Being heard", "Theme: Food",
]  # fmt: skip
ROWS = [
    ["P01", "45-54", "woman", "Sandviken", "A", "Service user", 1, 1, 1],
    ["W01", "", "man", "Gävle", "A", "Support worker", 0, 0, 1],
    ["W02", "35-44", "woman", "Gävle", "", "Support worker", 1, 1, 0],
]


def test_xlsx_sheet_has_one_row_per_participant(project: Project) -> None:
    run(project, "{formats: [nvivo-classification], out: out}")
    assert sorted(p.name for p in (project.root / "out").iterdir()) == ["classification.xlsx"]
    wb = openpyxl.load_workbook(project.root / "out" / "classification.xlsx")
    assert wb.sheetnames == ["Classification"]
    rows = [["" if v is None else v for v in row] for row in wb.active.iter_rows(values_only=True)]
    assert rows == [HEADER, *ROWS]
    # the 1/0 columns agree with the theme stage's own participant counts
    themes = project.dataset("nv", "theme", "themes").to_pylist()
    for i, theme in enumerate(themes):
        assert HEADER[6 + i] == f"Theme: {theme['name']}"
        assert sum(int(row[6 + i]) for row in ROWS) == theme["participants"]
    exports = project.dataset("nv", "export").to_pylist()
    assert [e["format"] for e in exports] == ["nvivo-classification"]


def read_csv(path: Path) -> list[list[str]]:
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel and NVivo
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


CSV_ROWS = [HEADER, *[[str(v) for v in row] for row in ROWS]]


def test_csv_when_asked(project: Project) -> None:
    run(
        project,
        "{formats: [nvivo-classification], out: out, "
        "options: {nvivo-classification: {format: csv}}}",
    )
    assert sorted(p.name for p in (project.root / "out").iterdir()) == ["classification.csv"]
    assert read_csv(project.root / "out" / "classification.csv") == CSV_ROWS


def test_csv_without_openpyxl(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugin, "_openpyxl", lambda: None)
    run(project, "{formats: [nvivo-classification], out: out}")
    assert read_csv(project.root / "out" / "classification.csv") == CSV_ROWS


def test_xlsx_without_openpyxl_is_an_error(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plugin, "_openpyxl", lambda: None)
    project.pipeline(
        pipeline(
            "{formats: [nvivo-classification], out: out, "
            "options: {nvivo-classification: {format: xlsx}}}"
        )
    )
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code != 0
    assert "needs openpyxl" in result.output
    assert not (project.root / "out").exists()


def test_options_levels_prefix_and_case_header(project: Project) -> None:
    run(
        project,
        "{formats: [nvivo-classification], out: out, options: {nvivo-classification: "
        "{format: csv, levels: [theme], theme_prefix: 'T-', case_header: Name}}}",
    )
    rows = read_csv(project.root / "out" / "classification.csv")
    assert rows[0] == ["Name", *HEADER[1:6], "T-Talking", "T-Food"]
    assert [r[6:] for r in rows[1:]] == [["1", "1"], ["0", "1"], ["1", "0"]]


class Reader:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def read_all(self) -> Any:
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows)


def test_theme_names_are_made_unique_and_proposals_left_out(tmp_path: Path) -> None:
    from qualpipe.exporters import ExportBundle

    def theme(tid: str, name: str, parent: str | None = None, proposal: bool = False) -> Any:
        return {"theme_id": tid, "name": name, "parent_id": parent, "proposal": proposal}

    bundle = ExportBundle(
        datasets={
            "documents": Reader(
                [
                    {"doc_id": "d1", "participant_id": "P1", "attributes": {"role": "user"}},
                    {"doc_id": "d2", "participant_id": None, "attributes": None},
                ]
            ),
            "themes": Reader(
                [
                    theme("a", "Talking"),
                    theme("a1", "Other", "a"),
                    theme("b", "Food"),
                    theme("b1", "Other", "b"),
                    theme("x1", "Other", "x"),
                    theme("x2", "Other", "x"),
                    theme("p", "New idea", proposal=True),
                ]
            ),
            "theme_assignments": Reader(
                [
                    {"segment_id": "s1", "doc_id": "d1", "theme_id": "b1"},
                    {"segment_id": "s2", "doc_id": "d2", "theme_id": "p"},
                ]
            ),
        },  # type: ignore[dict-item]
        out_dir=tmp_path,
    )
    sheet = plugin.build_sheet(bundle)
    assert sheet.header == [
        "Case", "role", "Theme: Talking", "Theme: Talking / Other", "Theme: Food",
        "Theme: Food / Other", "Theme: Other [x1]", "Theme: Other [x2]",
    ]  # fmt: skip
    assert sheet.rows == [["P1", "user", 0, 0, 0, 1, 0, 0], ["d2", "", 0, 0, 0, 0, 0, 0]]


def test_listed_by_qualpipe_plugins_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        dist = importlib.metadata.distribution("qualpipe-nvivo-classification")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "qualpipe-nvivo-classification is not installed "
            "(pip install -e plugins/qualpipe-nvivo-classification): "
            "entry-point discovery cannot be tested"
        )
    monkeypatch.delenv("QUALPIPE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("QUALPIPE_LOAD_PLUGINS", raising=False)
    result = invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    by_name = {p["name"]: p for p in result.json()["plugins"]}
    assert by_name["nvivo-classification"] == {
        "name": "nvivo-classification",
        "version": dist.version,
        "source": "entrypoint",
        "distribution": "qualpipe-nvivo-classification",
        "hooks": ["qualpipe_register_exporters"],
        "provides": {"exporter": ["nvivo-classification"]},
        "error": None,
    }
