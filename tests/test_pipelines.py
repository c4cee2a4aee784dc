"""The shipped example pipelines run end to end on their sample data."""

from __future__ import annotations

from pathlib import Path

import pytest

from qualpipe.store import open_dataset
from qualpipe.testing import Project

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted((REPO / "pipelines").glob("*.yaml"))


@pytest.mark.parametrize("pipeline", PIPELINES, ids=[p.stem for p in PIPELINES])
def test_example_pipeline_runs(pipeline: Path, qualpipe_project: Project, tmp_path: Path) -> None:
    workdir = tmp_path / "run"
    args = ["run", pipeline, "--workdir", workdir, "--no-progress"]
    if "anonymise" in pipeline.read_text(encoding="utf-8"):
        args += ["--set", f"anonymise.key={tmp_path / 'keys' / 'key.json'}"]
    result = qualpipe_project.run(*args)
    assert result.exit_code == 0, result.stderr
    for stage in workdir.iterdir():
        if stage.is_dir() and not stage.name.startswith("."):
            assert (stage / "manifest.json").is_file(), stage
    if (workdir / "anonymise").is_dir():
        docs = open_dataset(workdir / "anonymise", "documents").read_all()
        assert not any(docs.column("sensitive").to_pylist())
    if (workdir / "code").is_dir():
        assert open_dataset(workdir / "code").rows > 0
