"""``qualpipe plugin new``: generated packages install, pass their own tests and work."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from qualpipe.cli.scaffold import KINDS, generate, plugin_cmd, render_files

EXPECTED_FILES = {
    "pyproject.toml",
    "README.md",
    "src/{m}/__init__.py",
    "src/{m}/plugin.py",
    "src/{m}/py.typed",
    "tests/test_plugin.py",
}


def new(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(plugin_cmd, ["new", *args])
    return result.exit_code, result.output + (str(result.exception or ""))


@pytest.mark.parametrize("kind", KINDS)
def test_renders_every_file_without_placeholders(kind: str) -> None:
    files = render_files("qualpipe-my-thing", kind)
    assert set(files) == {f.format(m="qualpipe_my_thing") for f in EXPECTED_FILES}
    for rel, content in files.items():
        assert "{{" not in content.replace("{{{", ""), rel
    pyproject = files["pyproject.toml"]
    assert 'name = "qualpipe-my-thing"' in pyproject
    assert '[project.entry-points.qualpipe]\nqualpipe-my-thing = "qualpipe_my_thing.plugin"' in (
        pyproject
    )
    assert 'test = ["pytest"]' in pyproject
    for rel, content in files.items():
        if rel.endswith(".py"):
            compile(content, rel, "exec")


@pytest.mark.parametrize("kind", KINDS)
def test_generated_plugin_imports_and_registers(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"scaffold-check-{kind}"
    code, output = new(name, "--dir", str(tmp_path), "--kind", kind)
    assert code == 0, output
    assert f"created {tmp_path / name}" in output
    monkeypatch.syspath_prepend(str(tmp_path / name / "src"))
    module = importlib.import_module(f"scaffold_check_{kind}.plugin")
    try:
        from qualpipe.plugins import create_manager, temporary_plugin

        with temporary_plugin(module, name):
            manager = create_manager()
            reg = manager.registry
            assert manager.plugins[name].error is None
            family = "stage type" if kind == "stage" else kind
            assert manager.plugins[name].provides == {family: [name]}
            if kind == "stage":
                assert name in reg.stage_types
            else:
                assert name in reg.components[kind]
    finally:
        for mod in [m for m in sys.modules if m.startswith(f"scaffold_check_{kind}")]:
            del sys.modules[mod]


def test_default_kind_is_stage(tmp_path: Path) -> None:
    code, output = new("my-stage", "--dir", str(tmp_path))
    assert code == 0, output
    plugin = (tmp_path / "my-stage/src/my_stage/plugin.py").read_text(encoding="utf-8")
    assert "qualpipe_register_stages" in plugin


@pytest.mark.parametrize(
    "name", ["My-Plugin", "my_plugin", "-my", "my-", "my--plugin", "1plugin", "qualpipe", "if", ""]
)
def test_rejects_bad_names(name: str, tmp_path: Path) -> None:
    code, output = new("--dir", str(tmp_path), "--", name)
    assert code != 0
    assert "invalid plugin name" in output
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    (tmp_path / "my-plugin").mkdir()
    (tmp_path / "my-plugin" / "keep.txt").write_text("mine", encoding="utf-8")
    code, output = new("my-plugin", "--dir", str(tmp_path))
    assert code != 0
    assert "already exists" in output
    assert [p.name for p in (tmp_path / "my-plugin").iterdir()] == ["keep.txt"]


def test_unknown_kind_is_a_usage_error(tmp_path: Path) -> None:
    code, output = new("my-plugin", "--dir", str(tmp_path), "--kind", "executor")
    assert code == 2
    assert "executor" in output


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], capture_output=True, text=True, check=False
    )


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["stage", "exporter"])
def test_generated_package_installs_and_passes_its_tests(kind: str, tmp_path: Path) -> None:
    name = f"qualpipe-scaffold-e2e-{kind}"
    target = generate(name, kind, tmp_path)
    installed = pip("install", "-q", "--no-deps", "-e", str(target))
    assert installed.returncode == 0, installed.stdout + installed.stderr
    try:
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
            cwd=target,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert tests.returncode == 0, tests.stdout + tests.stderr
        assert " passed" in tests.stdout and "skipped" not in tests.stdout
    finally:
        pip("uninstall", "-y", name)
