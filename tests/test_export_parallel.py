"""The export stage with ``--workers 2``: formats written at the same time, same files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from qualpipe import hookimpl
from qualpipe.exporters import ExportBundle, Exporter
from qualpipe.testing import Project

PIPELINE = """\
qualpipe: 1
name: par
stages:
  - {{id: ingest, uses: ingest, with: {{paths: data/t, manifest: data/participants.csv}}}}
  - {{id: anonymise, uses: anonymise, with: {{key: ../keys/par.key.json}}}}
  - {{id: segment, uses: segment, with: {{drop_speakers: [Interviewer]}}}}
  - {{id: codebook, uses: codebook, with: {{path: codebook.yaml}}}}
  - {{id: code, uses: code, with: {{coders: [rules]}}}}
  - {{id: theme, uses: theme}}
  - {{id: export, uses: export, with: {{formats: [{formats}]}}}}
"""
CODEBOOK = """\
codebook: 1
name: T
codes:
  - {id: talking, name: Talking, keywords: [talk, prata]}
  - {id: places, name: Places, keywords: [shop, simhall*]}
"""


def _project(qp: Project, formats: str) -> None:
    qp.write(
        "data/t/u1.txt", "Interviewer: Hur är det?\n\nP01: Vi pratar och går till simhallen.\n"
    )
    qp.write("data/t/w1.txt", "Interviewer: And work?\n\nW01: We talk, and go to the shop.\n")
    qp.write("data/participants.csv", "file,participant\nt/u1.txt,P01\nt/w1.txt,W01\n")
    qp.write("codebook.yaml", CODEBOOK)
    qp.pipeline(PIPELINE.format(formats=formats))


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def test_two_workers_write_the_same_files(qualpipe_project: Project) -> None:
    qp = qualpipe_project
    _project(qp, "csv, parquet, html, qdpx, qdc")
    one = qp.run("run", "pipeline.yaml", "--workers", "1")
    assert one.exit_code == 0, one.stderr
    out = qp.root / "exports" / "par"
    first = _files(out)
    two = qp.run("run", "pipeline.yaml", "--only", "export", "--force", "--workers", "2")
    assert two.exit_code == 0, two.stderr
    again = _files(out)
    assert set(again) == set(first) and len(first) > 5
    # the html report lists the stages of the run, the first export among them: the rest is equal
    assert {k: v for k, v in again.items() if k != "report.html"} == {
        k: v for k, v in first.items() if k != "report.html"
    }
    rows = qp.dataset("par", "export", "exports").to_pylist()
    assert [r["format"] for r in rows][:2] == ["csv", "csv"]  # in the order of formats


def broken_export(bundle: ExportBundle) -> Sequence[Path]:
    raise ValueError("the broken format failed")


class _Unpicklable(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(f"{a} {b}")


def unpicklable_export(bundle: ExportBundle) -> Sequence[Path]:
    raise _Unpicklable("odd", "error")


class BrokenFormats:
    @hookimpl
    def qualpipe_register_exporters(self, register: Any) -> None:
        register(Exporter("broken", broken_export))
        register(Exporter("odd", unpicklable_export))


@pytest.mark.parametrize(
    "fmt, message", [("broken", "the broken format failed"), ("odd", "odd error")]
)
def test_an_exporter_failing_in_a_worker_is_reported(
    qualpipe_project: Project, qualpipe_plugin: Any, fmt: str, message: str
) -> None:
    qualpipe_plugin(BrokenFormats(), "broken-formats")
    qp = qualpipe_project
    _project(qp, f"csv, {fmt}")
    result = qp.run("run", "pipeline.yaml", "--workers", "2")
    assert result.exit_code == 1
    assert message in result.stderr
    assert not (qp.root / "exports" / "par").exists()  # nothing half-written moved in
