"""Documentation and code keep each other honest."""

from __future__ import annotations

import re
import types
from pathlib import Path

from qualpipe import docgen
from qualpipe.cli import build_cli
from qualpipe.plugins import create_manager
from qualpipe.testing import Project

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"


def test_generated_pages_are_current() -> None:
    for name, make in docgen.PAGES.items():
        committed = (DOCS / name).read_text(encoding="utf-8")
        assert committed == make(), f"docs/{name} is stale: run python -m qualpipe.docgen docs"


def test_every_hook_is_documented_in_hooks_md() -> None:
    page = (DOCS / "hooks.md").read_text(encoding="utf-8")
    names = docgen.hook_names()
    assert len(names) >= 6
    for name in names:
        assert f"## `{name}(" in page
    assert "UNDOCUMENTED" not in page


def test_every_cli_command_is_documented() -> None:
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in build_cli(create_manager()).commands:
        assert f"`qualpipe {name}" in page, name


def test_every_exit_code_is_documented() -> None:
    from qualpipe import errors

    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    codes = {v for k, v in vars(errors).items() if k.startswith("EXIT_")}
    for code in codes:
        assert re.search(rf"^\| {code} \|", page, re.M), code


def test_architecture_lists_every_module() -> None:
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    src = REPO / "src/qualpipe"
    for path in src.glob("*.py"):
        if path.name != "__main__.py":
            assert f"`{path.name}`" in page, path.name
    for sub in ("pipeline/", "executors/", "cli/", "builtin/"):
        assert f"`{sub}`" in page


def test_readme_quick_start_has_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "qualpipe run pipelines/sidl.yaml" in readme
    test_cmd = (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"
    )
    assert test_cmd in readme
    assert test_cmd in (REPO / ".ci/run").read_text(encoding="utf-8")


def test_plugin_guide_example_works(qualpipe_plugin: object, qualpipe_project: Project) -> None:
    page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", page, re.S)
    module = types.ModuleType("guide_example_plugin")
    exec(compile(blocks[0], "plugins.md", "exec"), module.__dict__)
    qualpipe_plugin(module)  # type: ignore[operator]
    test_src = blocks[1]
    namespace: dict[str, object] = {}
    exec(compile(test_src, "plugins.md", "exec"), namespace)
    fake_package = types.ModuleType("my_package")
    fake_package.plugin = module  # type: ignore[attr-defined]
    import sys

    sys.modules["my_package"] = fake_package
    sys.modules["my_package.plugin"] = module
    try:
        namespace["test_my_stage"](qualpipe_plugin, qualpipe_project)  # type: ignore[operator]
    finally:
        del sys.modules["my_package"], sys.modules["my_package.plugin"]
