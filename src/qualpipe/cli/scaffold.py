"""``qualpipe plugin new``: generate a working plugin package from templates.

The templates are package data in ``qualpipe/templates/plugin/``; placeholders
(``{{name}}``, ``{{module}}``, ``{{kind}}``, ...) are filled in with ``str.replace``.
The generated package has a ``pyproject.toml`` with the ``qualpipe`` entry point, a
README, ``src/<module>/plugin.py`` with a minimal working contribution of the chosen
kind (stage type, reader, recogniser, coder or exporter) and tests that use the
``qualpipe.testing`` fixtures.
"""

from __future__ import annotations

import keyword
import re
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from qualpipe.errors import EXIT_INVALID, QualpipeError

KINDS = ("stage", "reader", "recogniser", "coder", "exporter")
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")
#: Module names a plugin must not take: they would shadow qualpipe or its dependencies.
RESERVED = frozenset({"qualpipe", "test", "tests", "pluggy", "click", "pyarrow", "yaml"})


class ScaffoldError(QualpipeError):
    """A bad plugin name or an existing target folder (a usage error)."""

    exit_code = EXIT_INVALID


def module_name(name: str) -> str:
    """The Python package name for plugin ``name``: ``my-coder`` -> ``my_coder``."""
    return name.replace("-", "_")


def validate_name(name: str) -> str:
    """Return the module name for ``name`` or raise :class:`ScaffoldError`."""
    if not NAME_RE.match(name):
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and '-', "
            "starting with a letter (e.g. qualpipe-my-coder)"
        )
    module = module_name(name)
    if keyword.iskeyword(module) or module in RESERVED:
        raise ScaffoldError(f"invalid plugin name {name!r}: {module!r} is a reserved name")
    return module


def _templates() -> Traversable:
    return resources.files("qualpipe").joinpath("templates", "plugin")


def _read(node: Traversable) -> str:
    return node.read_text(encoding="utf-8")


def render_files(name: str, kind: str) -> dict[str, str]:
    """``{relative path: content}`` of the package for plugin ``name`` of ``kind``."""
    module = validate_name(name)
    if kind not in KINDS:
        raise ScaffoldError(f"unknown plugin kind {kind!r} (choose from {', '.join(KINDS)})")
    root = _templates()
    specific = root.joinpath("kinds", kind)
    # Kind-specific pieces first: they may contain the common placeholders themselves.
    pieces = {
        "{{usage}}": _read(specific.joinpath("usage.md.tmpl")).rstrip("\n"),
        "{{provides}}": _read(specific.joinpath("provides.tmpl")).strip(),
        "{{kind_tests}}": _read(specific.joinpath("test.py.tmpl")).rstrip("\n"),
    }
    values = {"{{name}}": name, "{{module}}": module, "{{kind}}": kind}

    def render(text: str) -> str:
        for key, value in pieces.items():
            text = text.replace(key, value)
        for key, value in values.items():
            text = text.replace(key, value)
        return text

    return {
        "pyproject.toml": render(_read(root.joinpath("pyproject.toml.tmpl"))),
        "README.md": render(_read(root.joinpath("README.md.tmpl"))),
        f"src/{module}/__init__.py": render(_read(root.joinpath("__init__.py.tmpl"))),
        f"src/{module}/plugin.py": render(_read(specific.joinpath("plugin.py.tmpl"))),
        f"src/{module}/py.typed": "",
        "tests/test_plugin.py": render(_read(root.joinpath("test_plugin.py.tmpl"))),
    }


def generate(name: str, kind: str, directory: Path) -> Path:
    """Write the package for plugin ``name`` into ``directory/name``; return that folder."""
    files = render_files(name, kind)
    target = directory / name
    if target.exists():
        raise ScaffoldError(f"{target} already exists; not overwriting it (choose another --dir)")
    for rel, content in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return target


@click.group("plugin")
def plugin_cmd() -> None:
    """Create plugin packages (see docs/plugins.md)."""


@plugin_cmd.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default=".",
    help="Folder to create the package folder NAME in.",
)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="stage",
    show_default=True,
    help="What the plugin contributes.",
)
def new_cmd(name: str, directory: Path, kind: str) -> None:
    """Generate a plugin package NAME that contributes a KIND, with tests."""
    target = generate(name, kind, directory)
    module = module_name(name)
    click.echo(f"created {target} ({kind} {name!r} in src/{module}/plugin.py)")
    click.echo("next:")
    click.echo(f"  pip install -e '{target}[test]'")
    click.echo(f"  python -m pytest {target / 'tests'}")
    click.echo(f"  qualpipe plugins   # lists {name}")
