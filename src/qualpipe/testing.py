"""Test helpers for qualpipe plugin authors (a pytest plugin, loaded automatically).

Installing qualpipe makes these fixtures available in any test suite:

``qualpipe_plugin``
    ``qualpipe_plugin(module_or_object, name=None)`` registers a plugin for the rest of
    the test, exactly as if it had been installed through an entry point.
``qualpipe_project``
    A :class:`Project` in a temporary folder: write pipeline files and data, run
    ``qualpipe`` commands in-process, read datasets back.
``hook_recorder``
    A spy plugin that records every qualpipe hook call (name and arguments) in order.
``fake_distribution``
    ``fake_distribution(dist, module, source, entry_point=None)`` writes a tiny
    installed distribution (module + ``.dist-info`` with a ``qualpipe`` entry point) on
    ``sys.path``, to test real entry-point discovery without pip.
"""

from __future__ import annotations

import importlib
import io
import json
import sys
import textwrap
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from qualpipe import hookimpl
from qualpipe.plugins import temporary_plugin
from qualpipe.store import open_dataset


@dataclass
class Result:
    """What an in-process ``qualpipe`` command returned and printed."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def json(self) -> Any:
        return json.loads(self.stdout)


def invoke(args: list[str]) -> Result:
    """Run ``qualpipe ARGS`` in this process and capture its exit code and output."""
    from qualpipe.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in args])
    return Result(code, out.getvalue(), err.getvalue())


class Project:
    """A scratch project folder for pipeline tests."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relpath: str, content: str | bytes) -> Path:
        """Write a file (text is dedented) below the project root; return its path."""
        path = self.root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")
        return path

    def pipeline(self, content: str, name: str = "pipeline.yaml") -> Path:
        return self.write(name, content)

    def run(self, *args: str | Path) -> Result:
        """``qualpipe ARGS`` with the project root as the current directory."""
        import os

        old = Path.cwd()
        os.chdir(self.root)
        try:
            return invoke([str(a) for a in args])
        finally:
            os.chdir(old)

    def workdir(self, pipeline_name: str) -> Path:
        return self.root / ".qualpipe" / pipeline_name

    def dataset(self, pipeline_name: str, stage_id: str, output: str | None = None) -> pa.Table:
        """Read a stage output of a run in the default workdir."""
        return open_dataset(self.workdir(pipeline_name) / stage_id, output).read_all()

    def manifest(self, pipeline_name: str, stage_id: str) -> dict[str, Any]:
        data = (self.workdir(pipeline_name) / stage_id / "manifest.json").read_text()
        return dict(json.loads(data))


class HookRecorder:
    """Records qualpipe hook calls; registered as a temporary plugin."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    @hookimpl
    def qualpipe_register_stages(self, register: Any) -> None:
        self.calls.append(("qualpipe_register_stages", {"register": register}))

    @hookimpl
    def qualpipe_register_dataset_kinds(self, register: Any) -> None:
        self.calls.append(("qualpipe_register_dataset_kinds", {"register": register}))

    @hookimpl
    def qualpipe_register_executors(self, register: Any) -> None:
        self.calls.append(("qualpipe_register_executors", {"register": register}))

    @hookimpl
    def qualpipe_register_readers(self, register: Any) -> None:
        self.calls.append(("qualpipe_register_readers", {"register": register}))

    @hookimpl
    def qualpipe_register_recognisers(self, register: Any) -> None:
        self.calls.append(("qualpipe_register_recognisers", {"register": register}))

    @hookimpl
    def qualpipe_register_coders(self, register: Any) -> None:
        self.calls.append(("qualpipe_register_coders", {"register": register}))

    @hookimpl
    def qualpipe_register_exporters(self, register: Any) -> None:
        self.calls.append(("qualpipe_register_exporters", {"register": register}))

    @hookimpl
    def qualpipe_register_commands(self, cli: Any) -> None:
        self.calls.append(("qualpipe_register_commands", {"cli": cli}))

    @hookimpl(wrapper=True)
    def qualpipe_run_pipeline(self, run: Any) -> Generator[None, Any, Any]:
        self.calls.append(("qualpipe_run_pipeline", {"run": run}))
        return (yield)

    @hookimpl(wrapper=True)
    def qualpipe_run_stage(self, stage: Any) -> Generator[None, Any, Any]:
        self.calls.append(("qualpipe_run_stage", {"stage": stage}))
        return (yield)


@pytest.fixture
def qualpipe_plugin() -> Iterator[Callable[..., str]]:
    """Register plugins for the duration of the test: ``qualpipe_plugin(obj, name=None)``."""
    with ExitStack() as stack:

        def register(plugin: object, name: str | None = None) -> str:
            return stack.enter_context(temporary_plugin(plugin, name))

        yield register


@pytest.fixture
def qualpipe_project(tmp_path: Path) -> Project:
    """A :class:`Project` rooted in a fresh temporary folder."""
    root = tmp_path / "project"
    root.mkdir()
    return Project(root)


@pytest.fixture
def hook_recorder(qualpipe_plugin: Callable[..., str]) -> HookRecorder:
    """A :class:`HookRecorder` registered as a plugin named ``hook-recorder``."""
    recorder = HookRecorder()
    qualpipe_plugin(recorder, "hook-recorder")
    return recorder


@pytest.fixture
def fake_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Create an importable distribution with a ``qualpipe`` entry point on sys.path."""
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    monkeypatch.syspath_prepend(str(site))

    def make(
        dist: str, module: str, source: str, entry_point: str | None = None, version: str = "1.0"
    ) -> Path:
        (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[qualpipe]\n{entry_point or dist} = {module}\n", encoding="utf-8"
        )
        importlib.invalidate_caches()
        sys.modules.pop(module, None)
        return site

    return make
