"""The plugin system: discovery, registration, set-aside failures and the lifecycle hooks.

Entry-point discovery is tested with real ``.dist-info`` folders (``fake_distribution``),
in this process and in a fresh one. Tests named ``test_hook_<hookname>_...`` exercise
each hook of :mod:`qualpipe.hookspecs`; ``test_every_hookspec_has_a_test`` keeps it so.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pytest

from qualpipe import (
    DatasetKind,
    Output,
    Param,
    PluginError,
    QualpipeError,
    StageContext,
    StageError,
    StageType,
    hookimpl,
    hookspecs,
)
from qualpipe.executors.local import LocalExecutor
from qualpipe.plugins import BUILTIN_PLUGINS, Manager, create_manager, temporary_plugin
from qualpipe.runner import RunContext, RunSummary, StageRun
from qualpipe.testing import HookRecorder, Project, invoke

TESTS = Path(__file__).resolve().parent
RegisterPlugin = Callable[..., str]
FakeDistribution = Callable[..., Path]

HOOKSPECS = sorted(
    name for name, obj in vars(hookspecs).items() if callable(obj) and hasattr(obj, "qualpipe_spec")
)

# -- a stage-providing plugin, as the source of an installed module ---------------------

DOCS_PLUGIN = """
import pyarrow as pa
from qualpipe import Output, Param, StageType, hookimpl


def run(ctx):
    rows = [
        {"doc_id": f"d{i}", "source_path": f"t{i}.txt", "text": text, "sensitive": False}
        for i, text in enumerate(ctx.params["texts"])
    ]
    ctx.write("documents", pa.Table.from_pylist(rows))


FAKE_DOCS = StageType(
    name="fake-docs",
    description="Documents from the texts parameter (a test plugin).",
    mode="whole",
    produces=[Output("documents", "documents", sensitive=False)],
    params=[Param("texts", "list", help="document texts")],
    run=run,
)


@hookimpl
def qualpipe_register_stages(register):
    register(FAKE_DOCS)
"""

FAKE_PIPELINE = """
qualpipe: 1
name: demo
stages:
  - id: docs
    uses: fake-docs
    with:
      texts: ["First paragraph.\\n\\nSecond paragraph.", "Only one."]
  - id: seg
    uses: segment
    with:
      strategy: paragraph
"""

SEGMENT_TEXTS = ["First paragraph.", "Second paragraph.", "Only one."]


def stage_plugin_source(stage_name: str) -> str:
    """A one-stage plugin module (for allow/block list tests)."""
    return f"""
from qualpipe import StageType, hookimpl


def run(ctx):
    pass


@hookimpl
def qualpipe_register_stages(register):
    register(StageType({stage_name!r}, "A test stage.", "whole", run=run))
"""


def install_docs_plugin(fake_distribution: FakeDistribution, version: str = "2.3.1") -> Path:
    return fake_distribution(
        "qualpipe-fake", "qp_fake_docs", DOCS_PLUGIN, entry_point="fake", version=version
    )


@pytest.fixture
def two_dists(fake_distribution: FakeDistribution) -> Path:
    fake_distribution(
        "qualpipe-alpha", "qp_alpha", stage_plugin_source("alpha-stage"), entry_point="alpha"
    )
    return fake_distribution(
        "qualpipe-beta", "qp_beta", stage_plugin_source("beta-stage"), entry_point="beta"
    )


def entrypoint_plugins(manager: Manager) -> list[str]:
    return sorted(name for name, p in manager.plugins.items() if p.source == "entrypoint")


def error_lines(stderr: str) -> list[str]:
    """The CLI's own messages, without the log lines around them."""
    return [line for line in stderr.splitlines() if line.startswith("qualpipe:")]


def clash_message(exc: PluginError, pair: set[str], what: str) -> str:
    """The exact clash message, whichever of the two plugins registered first."""
    assert exc.plugin in pair
    (other,) = pair - {exc.plugin}
    return (
        f"plugin {exc.plugin!r}: {what} is already provided by plugin {other!r}; "
        f"uninstall one of them or set QUALPIPE_DISABLE_PLUGINS={exc.plugin}"
    )


# -- in-process plugins (classes with @hookimpl methods) -------------------------------


def write_docs(ctx: StageContext) -> None:
    rows = [
        {"doc_id": f"d{i}", "source_path": f"t{i}.txt", "text": text, "sensitive": False}
        for i, text in enumerate(ctx.params["texts"])
    ]
    ctx.write("documents", pa.Table.from_pylist(rows))


DOCS = StageType(
    name="docs-from-params",
    description="Documents from the texts parameter (a test stage).",
    mode="whole",
    produces=[Output("documents", "documents", sensitive=False)],
    params=[Param("texts", "list", help="document texts")],
    run=write_docs,
)

DOCS_PIPELINE = """
qualpipe: 1
name: demo
stages:
  - id: docs
    uses: docs-from-params
    with:
      texts: ["First paragraph.\\n\\nSecond paragraph.", "Only one."]
  - id: seg
    uses: segment
    with:
      strategy: paragraph
"""


class DocsPlugin:
    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(DOCS)


def do_nothing(ctx: StageContext) -> None:
    pass


def one_stage(name: str) -> StageType:
    return StageType(name, "A test stage.", "whole", run=do_nothing)


class StagePlugin:
    """Registers the given stage types."""

    def __init__(self, *stage_types: Any) -> None:
        self.stage_types = stage_types

    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[Any], None]) -> None:
        for st in self.stage_types:
            register(st)


class KindPlugin:
    def __init__(self, *kinds: Any) -> None:
        self.kinds = kinds

    @hookimpl
    def qualpipe_register_dataset_kinds(self, register: Callable[[Any], None]) -> None:
        for kind in self.kinds:
            register(kind)


class InlineExecutor(LocalExecutor):
    name = "inline"


class ExecutorPlugin:
    def __init__(self, name: str = "inline") -> None:
        self.name = name

    @hookimpl
    def qualpipe_register_executors(self, register: Callable[[str, Any], None]) -> None:
        register(self.name, InlineExecutor)


class CommandPlugin:
    """Adds ``NAME WHO``, which greets and says who provides the segment stage."""

    def __init__(self, name: str = "hello", greeting: str = "hello") -> None:
        self.name = name
        self.greeting = greeting

    @hookimpl
    def qualpipe_register_commands(self, cli: click.Group) -> None:
        greeting = self.greeting

        @cli.command(self.name)
        @click.argument("who")
        @click.pass_obj
        def greet(manager: Manager, who: str) -> None:
            """Greet WHO (a test command)."""
            if who == "nobody":
                raise QualpipeError("no greeting for 'nobody'; name someone")
            provider = manager.registry.stage_types["segment"][1].name
            click.echo(f"{greeting} {who} (segment by {provider})")


NOTES = DatasetKind(
    name="notes",
    version=3,
    schema=pa.schema([pa.field("note", pa.string(), nullable=False)]),
    description="Free-text notes (a test kind).",
    fields={"note": "the note"},
)


def write_notes(ctx: StageContext) -> None:
    ctx.write("notes", pa.table({"note": ctx.params["notes"]}))


WRITE_NOTES = StageType(
    name="write-notes",
    description="Writes the notes parameter as a notes dataset (a test stage).",
    mode="whole",
    produces=[Output("notes", "notes", sensitive=False)],
    params=[Param("notes", "list", help="notes to write")],
    run=write_notes,
)


class NotesPlugin:
    @hookimpl
    def qualpipe_register_dataset_kinds(self, register: Callable[[DatasetKind], None]) -> None:
        register(NOTES)

    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(WRITE_NOTES)


def explode(ctx: StageContext) -> None:
    raise RuntimeError("kaboom\nsecond line of the message")


EXPLODE = StageType("explode", "Always fails (a test stage).", "whole", run=explode)


class StageTimer:
    """A wrapper plugin: times stages, sees manifests, summaries and exceptions."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, str, dict[str, int], float]] = []
        self.summaries: list[RunSummary] = []
        self.errors: list[tuple[str, BaseException]] = []

    @hookimpl(wrapper=True)
    def qualpipe_run_pipeline(self, run: RunContext) -> Generator[None, Any, Any]:
        try:
            summary = yield
        except BaseException as exc:
            self.errors.append((run.pipeline.name, exc))
            raise
        self.summaries.append(summary)
        return summary

    @hookimpl(wrapper=True)
    def qualpipe_run_stage(self, stage: StageRun) -> Generator[None, Any, Any]:
        t0 = time.perf_counter()
        try:
            manifest = yield
        except BaseException as exc:
            self.errors.append((stage.id, exc))
            raise
        rows = {name: out["rows"] for name, out in manifest["outputs"].items()}
        self.stages.append((stage.id, stage.plugin, rows, time.perf_counter() - t0))
        return manifest


# -- discovery through a real entry point ------------------------------------------------


def test_hook_qualpipe_register_stages_entry_point_plugin_is_loaded_with_its_version(
    fake_distribution: FakeDistribution,
) -> None:
    install_docs_plugin(fake_distribution)
    manager = create_manager()
    info = manager.plugins["fake"]
    assert (info.name, info.version, info.source, info.distribution, info.error) == (
        "fake",
        "2.3.1",
        "entrypoint",
        "qualpipe-fake",
        None,
    )
    assert info.hooks == ["qualpipe_register_stages"]
    assert manager.failures == []
    stage_type, provider = manager.registry.stage_types["fake-docs"]
    assert provider is info
    assert stage_type.mode == "whole"
    assert [p.name for p in stage_type.params] == ["texts"]
    assert info.provides == {"stage type": ["fake-docs"]}
    # the builtins are still there, provided by themselves
    assert manager.registry.stage_types["segment"][1].name == "qualpipe.builtin.segment"


def test_plugins_json_lists_entry_point_plugin_and_what_it_provides(
    fake_distribution: FakeDistribution,
) -> None:
    install_docs_plugin(fake_distribution)
    result = invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.output
    data = result.json()
    assert data["error"] is None
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["fake"] == {
        "name": "fake",
        "version": "2.3.1",
        "source": "entrypoint",
        "distribution": "qualpipe-fake",
        "hooks": ["qualpipe_register_stages"],
        "provides": {"stage type": ["fake-docs"]},
        "error": None,
    }
    assert plugins["qualpipe.builtin.segment"]["provides"] == {"stage type": ["segment"]}
    # builtins are listed first, in name order
    sources = [p["source"] for p in data["plugins"]]
    assert sources[: len(BUILTIN_PLUGINS)] == ["builtin"] * len(BUILTIN_PLUGINS)
    assert [p["name"] for p in data["plugins"][: len(BUILTIN_PLUGINS)]] == sorted(BUILTIN_PLUGINS)


def test_plugins_text_and_stages_show_entry_point_plugin(
    fake_distribution: FakeDistribution,
) -> None:
    install_docs_plugin(fake_distribution)
    text = invoke(["plugins"])
    assert text.exit_code == 0, text.output
    assert "fake 2.3.1 (entrypoint) stage type: fake-docs" in text.stdout.splitlines()
    stages = invoke(["stages", "fake-docs", "--json"])
    assert stages.exit_code == 0, stages.output
    (entry,) = stages.json()
    assert (entry["name"], entry["plugin"], entry["version"], entry["mode"]) == (
        "fake-docs",
        "fake",
        "2.3.1",
        "whole",
    )
    assert entry["produces"] == [{"name": "documents", "kind": "documents"}]


def test_pipeline_uses_stage_from_entry_point_plugin(
    fake_distribution: FakeDistribution, qualpipe_project: Project
) -> None:
    install_docs_plugin(fake_distribution)
    qualpipe_project.pipeline(FAKE_PIPELINE)
    result = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert result.exit_code == 0, result.output
    manifest = qualpipe_project.manifest("demo", "docs")
    assert manifest["uses"] == "fake-docs"
    assert manifest["plugin"] == {
        "name": "fake",
        "version": "2.3.1",
        "distribution": "qualpipe-fake",
    }
    assert manifest["outputs"]["documents"]["rows"] == 2
    segments = qualpipe_project.dataset("demo", "seg")
    assert segments.column("text").to_pylist() == SEGMENT_TEXTS


def test_upgrading_plugin_distribution_reruns_its_stage(
    fake_distribution: FakeDistribution, qualpipe_project: Project
) -> None:
    site = install_docs_plugin(fake_distribution, version="2.3.1")
    qualpipe_project.pipeline(FAKE_PIPELINE)
    assert qualpipe_project.run("run", "pipeline.yaml", "--no-progress").exit_code == 0
    shutil.rmtree(site / "qualpipe_fake-2.3.1.dist-info")
    install_docs_plugin(fake_distribution, version="2.4.0")
    assert create_manager().plugins["fake"].version == "2.4.0"
    status = qualpipe_project.run("status", "pipeline.yaml", "--json")
    assert status.exit_code == 0, status.output
    assert status.json() == [
        {"stage": "docs", "action": "run", "reason": "plugin version 2.3.1 -> 2.4.0"},
        {"stage": "seg", "action": "run", "reason": "upstream 'docs' will run"},
    ]


def _subprocess_env(site: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUALPIPE_")}
    env.pop("PYTHONPATH", None)
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return env


@pytest.mark.slow
def test_fresh_process_discovers_entry_point_plugin(
    fake_distribution: FakeDistribution, qualpipe_project: Project
) -> None:
    site = install_docs_plugin(fake_distribution)
    qualpipe_project.pipeline(FAKE_PIPELINE)
    script = Path(sys.executable).parent / "qualpipe"
    assert script.exists(), f"no console script at {script}"
    run = subprocess.run(
        [str(script), "run", "pipeline.yaml", "--no-progress"],
        cwd=qualpipe_project.root,
        env=_subprocess_env(site),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "demo: 2 ran, 0 unchanged" in run.stdout
    assert qualpipe_project.manifest("demo", "docs")["plugin"]["version"] == "2.3.1"

    listed = subprocess.run(
        [sys.executable, "-m", "qualpipe", "plugins", "--json"],
        cwd=qualpipe_project.root,
        env=_subprocess_env(site),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["fake"]["distribution"] == "qualpipe-fake"
    assert plugins["fake"]["provides"] == {"stage type": ["fake-docs"]}

    # control: without the fake site on the path the plugin is not there
    bare = subprocess.run(
        [sys.executable, "-m", "qualpipe", "plugins", "--json"],
        cwd=qualpipe_project.root,
        env=_subprocess_env(None),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bare.returncode == 0, bare.stderr
    assert "fake" not in {p["name"] for p in json.loads(bare.stdout)["plugins"]}


# -- name clashes ------------------------------------------------------------------------


def test_stage_type_clash_names_both_plugins(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(StagePlugin(one_stage("twin")), "alpha")
    qualpipe_plugin(StagePlugin(one_stage("twin")), "beta")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == clash_message(info.value, {"alpha", "beta"}, "stage type 'twin'")


def test_stage_type_clash_with_builtin_resolved_by_disabling_it(
    qualpipe_plugin: RegisterPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = one_stage("segment")
    qualpipe_plugin(StagePlugin(mine), "my-segmenter")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == clash_message(
        info.value, {"my-segmenter", "qualpipe.builtin.segment"}, "stage type 'segment'"
    )
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "qualpipe.builtin.segment")
    stage_type, provider = create_manager().registry.stage_types["segment"]
    assert stage_type is mine
    assert provider.name == "my-segmenter"


def test_stage_type_clash_through_cli_exits_with_plugin_error(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(StagePlugin(one_stage("twin")), "alpha")
    qualpipe_plugin(StagePlugin(one_stage("twin")), "beta")
    result = invoke(["stages"])
    assert result.exit_code == 3
    (line,) = error_lines(result.stderr)
    assert line in {
        f"qualpipe: error: plugin {a!r}: stage type 'twin' is already provided by plugin "
        f"{b!r}; uninstall one of them or set QUALPIPE_DISABLE_PLUGINS={a}"
        for a, b in (("alpha", "beta"), ("beta", "alpha"))
    }
    # `plugins --json` still lists every plugin, with the problem beside them
    listed = invoke(["plugins", "--json"])
    data = listed.json()
    assert "stage type 'twin' is already provided by" in data["error"]
    assert {"alpha", "beta"} <= {p["name"] for p in data["plugins"]}


def test_dataset_kind_clash_names_both_plugins(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(KindPlugin(NOTES), "notes-a")
    qualpipe_plugin(KindPlugin(NOTES), "notes-b")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == clash_message(
        info.value, {"notes-a", "notes-b"}, "dataset kind 'notes'"
    )


def test_dataset_kind_clash_with_core_kind_names_builtin(qualpipe_plugin: RegisterPlugin) -> None:
    documents = DatasetKind("documents", 9, pa.schema([pa.field("x", pa.string())]), "Mine.")
    qualpipe_plugin(KindPlugin(documents), "my-kinds")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == clash_message(
        info.value, {"my-kinds", "qualpipe.builtin.kinds"}, "dataset kind 'documents'"
    )


def test_executor_clash_names_both_plugins(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(ExecutorPlugin("cluster"), "exec-a")
    qualpipe_plugin(ExecutorPlugin("cluster"), "exec-b")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == clash_message(info.value, {"exec-a", "exec-b"}, "executor 'cluster'")


def test_executor_clash_with_builtin_local(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(ExecutorPlugin("local"), "my-local")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == clash_message(
        info.value, {"my-local", "qualpipe.builtin.executors"}, "executor 'local'"
    )


def test_rebuilding_registry_after_error_does_not_duplicate_provides(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(StagePlugin(one_stage("ok-stage"), one_stage("twin")), "alpha")
    qualpipe_plugin(StagePlugin(one_stage("twin")), "beta")
    manager = create_manager()
    for _ in range(2):
        with pytest.raises(PluginError):
            manager.registry  # noqa: B018
    kinds = manager.plugins["qualpipe.builtin.kinds"].provides["dataset kind"]
    assert sorted(kinds) == sorted(set(kinds))
    from qualpipe.schemas import CORE_KINDS

    assert len(kinds) == len(CORE_KINDS)
    assert manager.plugins["alpha"].provides["stage type"].count("ok-stage") == 1


def test_command_clash_between_plugins_names_both(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(CommandPlugin("hello", "hi"), "cmd-a")
    qualpipe_plugin(CommandPlugin("hello", "hey"), "cmd-b")
    with pytest.raises(PluginError) as info:
        create_manager().add_commands(click.Group("qualpipe"))
    exc = info.value
    assert exc.plugin in {"cmd-a", "cmd-b"}
    (other,) = {"cmd-a", "cmd-b"} - {exc.plugin}
    expected = (
        f"plugin {exc.plugin!r}: command 'hello' is already provided by {other!r}; "
        f"set QUALPIPE_DISABLE_PLUGINS={exc.plugin} to use the other one"
    )
    assert str(exc) == expected
    result = invoke(["hello", "world"])
    assert result.exit_code == 3
    assert error_lines(result.stderr) == [f"qualpipe: error: {expected}"]


def test_command_clash_with_core_command_names_qualpipe(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(CommandPlugin("run", "hi"), "hijack")
    result = invoke(["plugins"])
    assert result.exit_code == 3
    assert error_lines(result.stderr) == [
        "qualpipe: error: plugin 'hijack': command 'run' is already provided by 'qualpipe'; "
        "set QUALPIPE_DISABLE_PLUGINS=hijack to use the other one"
    ]


def test_command_clash_resolved_by_disabling_one_plugin(
    qualpipe_plugin: RegisterPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    qualpipe_plugin(CommandPlugin("hello", "hi"), "cmd-a")
    qualpipe_plugin(CommandPlugin("hello", "hey"), "cmd-b")
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "cmd-a")
    result = invoke(["hello", "world"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hey world (segment by qualpipe.builtin.segment)\n"


# -- QUALPIPE_LOAD_PLUGINS / QUALPIPE_DISABLE_PLUGINS --------------------------------------


def test_no_lists_load_every_entry_point_plugin(two_dists: Path) -> None:
    manager = create_manager()
    assert {"alpha", "beta"} <= set(entrypoint_plugins(manager))
    assert {"alpha-stage", "beta-stage"} <= set(manager.registry.stage_types)


@pytest.mark.parametrize(
    ("allow", "loaded"),
    [
        ("alpha", ["alpha"]),
        ("qualpipe-beta", ["beta"]),
        ("Qualpipe_Beta", ["beta"]),  # distribution names compare as pip compares them
        (" alpha , qualpipe-beta ", ["alpha", "beta"]),
        ("nothing-installed-by-this-name", []),
    ],
)
def test_load_plugins_allow_list(
    two_dists: Path, monkeypatch: pytest.MonkeyPatch, allow: str, loaded: list[str]
) -> None:
    monkeypatch.setenv("QUALPIPE_LOAD_PLUGINS", allow)
    manager = create_manager()
    assert entrypoint_plugins(manager) == loaded
    # builtins always load, whatever the allow list says
    builtins = sorted(n for n, p in manager.plugins.items() if p.source == "builtin")
    assert builtins == sorted(BUILTIN_PLUGINS)
    stage_types = set(manager.registry.stage_types)
    assert {"ingest", "segment"} <= stage_types
    assert ("alpha-stage" in stage_types) == ("alpha" in loaded)
    assert ("beta-stage" in stage_types) == ("beta" in loaded)


@pytest.mark.parametrize(
    ("block", "gone"),
    [
        ("alpha", "alpha"),
        ("qualpipe-beta", "beta"),
        ("qualpipe.beta", "beta"),
        ("unrelated,alpha", "alpha"),
    ],
)
def test_disable_plugins_block_list_for_entry_points(
    two_dists: Path, monkeypatch: pytest.MonkeyPatch, block: str, gone: str
) -> None:
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", block)
    manager = create_manager()
    ours = {"alpha", "beta"} & set(entrypoint_plugins(manager))
    assert ours == {"alpha", "beta"} - {gone}
    assert f"{gone}-stage" not in manager.registry.stage_types


def test_disable_wins_over_load(two_dists: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALPIPE_LOAD_PLUGINS", "alpha,beta")
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "qualpipe-beta")
    assert entrypoint_plugins(create_manager()) == ["alpha"]


@pytest.mark.parametrize("block", ["qualpipe.builtin.segment", "builtin.segment"])
def test_disable_builtin_by_module_name(monkeypatch: pytest.MonkeyPatch, block: str) -> None:
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", block)
    manager = create_manager()
    assert "qualpipe.builtin.segment" not in manager.plugins
    assert "segment" not in manager.registry.stage_types
    assert {"anonymise", "ingest"} <= set(manager.registry.stage_types)
    assert manager.failures == []


def test_disable_builtin_through_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "qualpipe.builtin.ingest")
    result = invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.output
    names = {p["name"] for p in result.json()["plugins"]}
    assert names >= set(BUILTIN_PLUGINS) - {"qualpipe.builtin.ingest"}
    assert "qualpipe.builtin.ingest" not in names


def test_disabling_core_kinds_is_a_plugin_error_about_unknown_kinds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "qualpipe.builtin.kinds")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert info.value.plugin in {
        "qualpipe.builtin.ingest",
        "qualpipe.builtin.segment",
        "qualpipe.builtin.anonymise",
        "qualpipe.builtin.code",
        "qualpipe.builtin.codebook",
        "qualpipe.builtin.human",
        "qualpipe.builtin.export",
        "qualpipe.builtin.theme",
    }
    assert "uses unknown dataset kind '" in str(info.value)
    assert str(info.value).endswith(("(known: )", "(known: agreement, mapping_report)"))


def test_disable_temporary_plugin_by_name(
    qualpipe_plugin: RegisterPlugin, monkeypatch: pytest.MonkeyPatch
) -> None:
    qualpipe_plugin(StagePlugin(one_stage("temp-stage")), "temp")
    assert "temp-stage" in create_manager().registry.stage_types
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "temp")
    manager = create_manager()
    assert "temp" not in manager.plugins
    assert "temp-stage" not in manager.registry.stage_types


# -- plugins set aside: import failures, misspelt and invalid hooks ------------------------

BROKEN_ERROR = (
    "failed to import 'qp_broken': ModuleNotFoundError: No module named "
    "'qp_missing_dependency' (set QUALPIPE_DISABLE_PLUGINS=broken to skip it)"
)


@pytest.fixture
def broken_dist(fake_distribution: FakeDistribution) -> Path:
    return fake_distribution(
        "qualpipe-broken",
        "qp_broken",
        "import qp_missing_dependency\n",
        entry_point="broken",
        version="0.3",
    )


def test_plugin_failing_to_import_is_reported_by_name(broken_dist: Path) -> None:
    manager = create_manager()
    assert [f.name for f in manager.failures] == ["broken"]
    info = manager.plugins["broken"]
    assert (info.version, info.source, info.distribution) == (
        "0.3",
        "entrypoint",
        "qualpipe-broken",
    )
    assert info.error == BROKEN_ERROR
    assert {"ingest", "segment"} <= set(manager.registry.stage_types)


def test_plugin_raising_at_import_is_reported(fake_distribution: FakeDistribution) -> None:
    fake_distribution("qualpipe-div", "qp_div", "x = 1 / 0\n", entry_point="div")
    info = create_manager().plugins["div"]
    assert info.error == (
        "failed to import 'qp_div': ZeroDivisionError: division by zero "
        "(set QUALPIPE_DISABLE_PLUGINS=div to skip it)"
    )


def test_cli_warns_about_plugin_failing_to_import_and_unrelated_stages_run(
    broken_dist: Path, fake_distribution: FakeDistribution, qualpipe_project: Project
) -> None:
    install_docs_plugin(fake_distribution)
    qualpipe_project.pipeline(FAKE_PIPELINE)
    result = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert result.exit_code == 0, result.output
    assert error_lines(result.stderr) == [
        f"qualpipe: warning: plugin 'broken' not loaded: {BROKEN_ERROR}"
    ]
    assert qualpipe_project.dataset("demo", "seg").column("text").to_pylist() == SEGMENT_TEXTS
    listed = invoke(["plugins", "--json"]).json()
    assert {p["name"]: p["error"] for p in listed["plugins"]}["broken"] == BROKEN_ERROR


def test_disabling_plugin_that_fails_to_import_silences_it(
    broken_dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "broken")
    assert "broken" not in create_manager().plugins
    result = invoke(["stages", "segment"])
    assert result.exit_code == 0, result.output
    assert error_lines(result.stderr) == []


class Misspelt:
    @hookimpl
    def qualpipe_register_stage(self, register: Callable[[StageType], None]) -> None:
        register(one_stage("never-registered"))

    @hookimpl
    def qualpipe_register_commands(self, cli: click.Group) -> None:
        @cli.command("misspelt-cmd")
        def cmd() -> None:
            """Never added (its plugin is set aside)."""


MISSPELT_ERROR = (
    "unknown hook 'qualpipe_register_stage': no such hook in qualpipe's contract "
    "(misspelt? see docs/hooks.md)"
)


def test_misspelt_hook_sets_aside_only_its_plugin(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(Misspelt(), "typo")
    qualpipe_plugin(StagePlugin(one_stage("fine-stage")), "fine")
    manager = create_manager()
    assert [f.name for f in manager.failures] == ["typo"]
    assert manager.plugins["typo"].error == MISSPELT_ERROR
    assert manager.pm.get_plugin("typo") is None
    assert manager.plugins["fine"].error is None
    stage_types = set(manager.registry.stage_types)
    assert {"fine-stage", "ingest", "segment"} <= stage_types
    assert "never-registered" not in stage_types
    group = click.Group("qualpipe")
    manager.add_commands(group)
    assert "misspelt-cmd" not in group.commands


def test_cli_warns_about_misspelt_hook(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(Misspelt(), "typo")
    result = invoke(["stages", "segment", "--json"])
    assert result.exit_code == 0, result.output
    assert [s["name"] for s in result.json()] == ["segment"]
    assert error_lines(result.stderr) == [
        f"qualpipe: warning: plugin 'typo' not loaded: {MISSPELT_ERROR}"
    ]


class Unprefixed:
    @hookimpl
    def register_stages(self, register: Callable[[StageType], None]) -> None:
        register(one_stage("never-registered"))


def test_hook_without_qualpipe_prefix_is_also_misspelt(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(Unprefixed(), "unprefixed")
    manager = create_manager()
    assert manager.plugins["unprefixed"].error == (
        "unknown hook 'register_stages': no such hook in qualpipe's contract "
        "(misspelt? see docs/hooks.md)"
    )
    assert "never-registered" not in manager.registry.stage_types


class OptionalExtra:
    @hookimpl(optionalhook=True)
    def qualpipe_future_hook(self) -> None:
        """A hook of a newer qualpipe; optional, so not an error here."""

    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(one_stage("optional-ok"))


def test_optional_unknown_hook_is_not_an_error(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(OptionalExtra(), "forward-compatible")
    manager = create_manager()
    assert manager.failures == []
    assert "optional-ok" in manager.registry.stage_types


class BadSignature:
    @hookimpl(wrapper=True)
    def qualpipe_run_pipeline(self, run: RunContext) -> Generator[None, Any, Any]:
        raise AssertionError("a set-aside plugin must not run")
        yield

    @hookimpl
    def qualpipe_run_stage(self, stage: StageRun, bogus: int) -> None:
        raise AssertionError("a set-aside plugin must not run")


def test_invalid_hook_signature_sets_aside_whole_plugin(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(BadSignature(), "badsig")
    manager = create_manager()
    error = manager.plugins["badsig"].error
    assert error is not None
    assert error.startswith(
        "invalid hook implementation: Plugin 'badsig' for hook 'qualpipe_run_stage'"
    )
    assert "Argument(s) {'bogus'}" in error
    assert manager.pm.get_plugin("badsig") is None
    for caller in (manager.hook.qualpipe_run_pipeline, manager.hook.qualpipe_run_stage):
        assert "badsig" not in [impl.plugin_name for impl in caller.get_hookimpls()]


def test_plugin_set_aside_does_not_run_its_hooks_in_a_run(
    qualpipe_plugin: RegisterPlugin, qualpipe_project: Project
) -> None:
    qualpipe_plugin(BadSignature(), "badsig")
    qualpipe_plugin(DocsPlugin(), "docs-plugin")
    qualpipe_project.pipeline(DOCS_PIPELINE)
    result = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert result.exit_code == 0, result.output
    (warning,) = error_lines(result.stderr)
    assert warning.startswith("qualpipe: warning: plugin 'badsig' not loaded: invalid hook")


def test_plugin_name_taken_by_builtin_is_set_aside(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(StagePlugin(one_stage("impostor")), "qualpipe.builtin.segment")
    manager = create_manager()
    impostor = manager.plugins["qualpipe.builtin.segment (temporary)"]
    assert impostor.error == (
        "a plugin named 'qualpipe.builtin.segment' is already loaded from builtin"
    )
    assert manager.plugins["qualpipe.builtin.segment"].error is None
    assert "impostor" not in manager.registry.stage_types
    assert manager.registry.stage_types["segment"][1].source == "builtin"


class RaisesWhileRegistering:
    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        raise RuntimeError("licence server unreachable")


def test_plugin_raising_in_register_stages_is_plugin_error(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(RaisesWhileRegistering(), "raiser")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert info.value.plugin == "raiser"
    assert str(info.value) == (
        "plugin 'raiser': qualpipe_register_stages raised RuntimeError: licence server unreachable"
    )
    assert isinstance(info.value.__cause__, RuntimeError)


def test_plugin_raising_in_register_stages_fails_cli_naming_it(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(RaisesWhileRegistering(), "raiser")
    result = invoke(["stages"])
    assert result.exit_code == 3
    assert error_lines(result.stderr) == [
        "qualpipe: error: plugin 'raiser': qualpipe_register_stages raised RuntimeError: "
        "licence server unreachable"
    ]


def test_registering_something_not_a_stage_type_is_plugin_error(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(StagePlugin("ingest"), "confused")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == "plugin 'confused': registered 'ingest', not a StageType"


def test_registering_something_not_a_dataset_kind_is_plugin_error(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(KindPlugin({"name": "notes"}), "confused-kinds")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == (
        "plugin 'confused-kinds': registered {'name': 'notes'}, not a DatasetKind"
    )


KNOWN_KINDS = {
    "agreement", "codebook", "codings", "cooccurrence", "documents", "exports", "findings",
    "mapping_report", "quarantine", "quotes", "segments", "theme_assignments", "themes",
}  # fmt: skip


def test_stage_type_with_unknown_dataset_kind_is_plugin_error(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    orphan = StageType(
        "orphan", "Needs transcripts.", "whole", consumes=["transcripts"], run=do_nothing
    )
    qualpipe_plugin(StagePlugin(orphan), "orphanage")
    with pytest.raises(PluginError) as info:
        create_manager().registry  # noqa: B018
    assert str(info.value) == (
        "plugin 'orphanage': stage type 'orphan' uses unknown dataset kind 'transcripts' "
        "(known: " + ", ".join(sorted(KNOWN_KINDS)) + ")"
    )


# -- dataset kinds, executors and commands from plugins -----------------------------------


def test_hook_qualpipe_register_dataset_kinds_plugin_kind_used_by_its_stage(
    qualpipe_plugin: RegisterPlugin, qualpipe_project: Project
) -> None:
    qualpipe_plugin(NotesPlugin(), "notes-plugin")
    manager = create_manager()
    kind, provider = manager.registry.kinds["notes"]
    assert kind is NOTES
    assert provider.name == "notes-plugin"
    assert manager.plugins["notes-plugin"].provides == {
        "dataset kind": ["notes"],
        "stage type": ["write-notes"],
    }
    qualpipe_project.pipeline(
        """
        qualpipe: 1
        name: notes-demo
        stages:
          - id: n
            uses: write-notes
            with:
              notes: [first, second]
        """
    )
    result = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert result.exit_code == 0, result.output
    table = qualpipe_project.dataset("notes-demo", "n")
    assert table.column("note").to_pylist() == ["first", "second"]
    assert table.schema.metadata[b"qualpipe.kind"] == b"notes"
    assert table.schema.metadata[b"qualpipe.version"] == b"3"


def test_hook_qualpipe_register_executors_selected_with_executor_option(
    qualpipe_plugin: RegisterPlugin, qualpipe_project: Project
) -> None:
    qualpipe_plugin(ExecutorPlugin("inline"), "inline-executor")
    qualpipe_plugin(DocsPlugin(), "docs-plugin")
    manager = create_manager()
    factory, provider = manager.registry.executors["inline"]
    assert factory is InlineExecutor
    assert provider.name == "inline-executor"
    qualpipe_project.pipeline(DOCS_PIPELINE)
    result = qualpipe_project.run("run", "pipeline.yaml", "--executor", "inline", "--no-progress")
    assert result.exit_code == 0, result.output
    assert qualpipe_project.manifest("demo", "seg")["executor"] == {"name": "inline", "workers": 1}


def test_hook_qualpipe_register_commands_command_runs_via_cli(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(CommandPlugin("hello", "hello"), "greeter")
    result = invoke(["hello", "world"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello world (segment by qualpipe.builtin.segment)\n"
    assert result.stderr == ""
    helped = invoke(["--help"])
    assert re.search(r"^\s+hello\s+Greet WHO \(a test command\)\.$", helped.stdout, re.M)
    listed = {p["name"]: p for p in invoke(["plugins", "--json"]).json()["plugins"]}
    assert listed["greeter"]["provides"] == {"command": ["hello"]}
    assert listed["greeter"]["hooks"] == ["qualpipe_register_commands"]


def test_plugin_command_user_error_is_one_line(qualpipe_plugin: RegisterPlugin) -> None:
    qualpipe_plugin(CommandPlugin("hello", "hello"), "greeter")
    result = invoke(["hello", "nobody"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert error_lines(result.stderr) == ["qualpipe: error: no greeting for 'nobody'; name someone"]


class CommandCrash:
    @hookimpl
    def qualpipe_register_commands(self, cli: click.Group) -> None:
        @cli.command("half")
        def half() -> None:
            """Added, then rolled back when the hook raises."""

        raise RuntimeError("no terminal")

    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(one_stage("crash-stage"))


def test_register_commands_raising_sets_plugin_aside_and_rolls_back(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(CommandCrash(), "cmd-crash")
    qualpipe_plugin(CommandPlugin("hello", "hello"), "greeter")
    result = invoke(["hello", "world"])
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello world (segment by qualpipe.builtin.segment)\n"
    assert error_lines(result.stderr) == [
        "qualpipe: warning: plugin 'cmd-crash' not loaded: "
        "qualpipe_register_commands raised RuntimeError: no terminal"
    ]
    assert invoke(["half"]).exit_code == 2  # no such command
    manager = create_manager()
    manager.add_commands(click.Group("qualpipe"))
    assert "crash-stage" not in manager.registry.stage_types


class CommandHookWithoutArguments:
    @hookimpl
    def qualpipe_register_commands(self) -> None:
        """pluggy lets an implementation take fewer arguments than the spec."""


def test_register_commands_implementation_may_omit_cli_argument(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    qualpipe_plugin(CommandHookWithoutArguments(), "no-args")
    manager = create_manager()
    group = click.Group("qualpipe")
    manager.add_commands(group)
    assert manager.plugins["no-args"].error is None
    assert set(group.commands) == {"agree"}


# -- temporary plugins (the qualpipe_plugin fixture) ---------------------------------------


class Versioned:
    __version__ = "4.5"

    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(one_stage("versioned-stage"))


def test_temporary_plugin_version_and_scope() -> None:
    plugin = Versioned()
    with temporary_plugin(plugin, "versioned") as name:
        assert name == "versioned"
        info = create_manager().plugins["versioned"]
        assert (info.version, info.source, info.distribution) == ("4.5", "temporary", None)
    assert "versioned" not in create_manager().plugins


def test_qualpipe_plugin_fixture_returns_the_name(qualpipe_plugin: RegisterPlugin) -> None:
    assert qualpipe_plugin(Versioned(), "given-name") == "given-name"
    manager = create_manager()
    assert manager.registry.stage_types["versioned-stage"][1].name == "given-name"


# -- lifecycle hooks -----------------------------------------------------------------------


def run_hook_calls(recorder: HookRecorder) -> list[tuple[str, Any]]:
    return [
        (name, args.get("stage") or args.get("run"))
        for name, args in recorder.calls
        if name in ("qualpipe_run_pipeline", "qualpipe_run_stage")
    ]


def test_hook_recorder_implements_every_hookspec() -> None:
    implemented = sorted(
        name for name in dir(HookRecorder) if hasattr(getattr(HookRecorder, name), "qualpipe_impl")
    )
    assert implemented == HOOKSPECS


def test_hook_qualpipe_register_commands_and_registration_hooks_recorded_in_order(
    hook_recorder: HookRecorder,
) -> None:
    result = invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.output
    assert hook_recorder.names() == [
        "qualpipe_register_commands",
        "qualpipe_register_dataset_kinds",
        "qualpipe_register_stages",
        "qualpipe_register_executors",
        "qualpipe_register_readers",
        "qualpipe_register_recognisers",
        "qualpipe_register_coders",
        "qualpipe_register_exporters",
    ]
    cli = hook_recorder.calls[0][1]["cli"]
    assert isinstance(cli, click.Group)
    assert {"run", "validate", "status", "plugins", "stages"} <= set(cli.commands)
    assert all(callable(args["register"]) for _, args in hook_recorder.calls[1:])
    listed = {p["name"]: p for p in result.json()["plugins"]}
    assert listed["hook-recorder"]["hooks"] == HOOKSPECS


def test_hook_qualpipe_run_stage_called_once_per_stage_that_runs(
    hook_recorder: HookRecorder, qualpipe_plugin: RegisterPlugin, qualpipe_project: Project
) -> None:
    qualpipe_plugin(DocsPlugin(), "docs-plugin")
    qualpipe_project.pipeline(DOCS_PIPELINE)
    first = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert first.exit_code == 0, first.output
    calls = run_hook_calls(hook_recorder)
    assert [name for name, _ in calls] == [
        "qualpipe_run_pipeline",
        "qualpipe_run_stage",
        "qualpipe_run_stage",
    ]
    run = calls[0][1]
    assert isinstance(run, RunContext)
    assert run.pipeline.name == "demo"
    assert [s.id for s in run.stages] == ["docs", "seg"]
    stages = [arg for _, arg in calls[1:]]
    assert all(isinstance(s, StageRun) for s in stages)
    assert [(s.id, s.type.name, s.plugin, s.reason) for s in stages] == [
        ("docs", "docs-from-params", "docs-plugin", "no output yet"),
        ("seg", "segment", "qualpipe.builtin.segment", "no output yet"),
    ]
    assert stages[1].params == {
        "strategy": "paragraph",
        "drop_speakers": [],
        "min_chars": 1,
        "participant_only": False,
        "size": 100,
        "overlap": 20,
        "window_scope": "turn",
        "max_words": 60,
    }
    assert stages[1].fingerprint == qualpipe_project.manifest("demo", "seg")["fingerprint"]

    # unchanged: the pipeline hook runs, no stage reaches qualpipe_run_stage
    hook_recorder.calls.clear()
    second = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert second.exit_code == 0, second.output
    assert "demo: 0 ran, 2 unchanged" in second.stdout
    assert [name for name, _ in run_hook_calls(hook_recorder)] == ["qualpipe_run_pipeline"]

    # --only: just that stage
    hook_recorder.calls.clear()
    third = qualpipe_project.run("run", "pipeline.yaml", "--only", "seg", "--no-progress")
    assert third.exit_code == 0, third.output
    assert [(n, getattr(a, "id", None)) for n, a in run_hook_calls(hook_recorder)] == [
        ("qualpipe_run_pipeline", None),
        ("qualpipe_run_stage", "seg"),
    ]
    assert run_hook_calls(hook_recorder)[1][1].reason == "forced (--only)"


def test_hook_qualpipe_run_pipeline_wrapper_times_stages_and_sees_results(
    qualpipe_plugin: RegisterPlugin, qualpipe_project: Project
) -> None:
    timer = StageTimer()
    qualpipe_plugin(timer, "stage-timer")
    qualpipe_plugin(DocsPlugin(), "docs-plugin")
    qualpipe_project.pipeline(DOCS_PIPELINE)
    result = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert result.exit_code == 0, result.output
    assert [(sid, plugin, rows) for sid, plugin, rows, _ in timer.stages] == [
        ("docs", "docs-plugin", {"documents": 2}),
        ("seg", "qualpipe.builtin.segment", {"segments": 3}),
    ]
    assert all(seconds >= 0 for *_, seconds in timer.stages)
    (summary,) = timer.summaries
    assert isinstance(summary, RunSummary)
    assert (summary.pipeline, summary.ran, summary.skipped) == ("demo", ["docs", "seg"], [])
    assert [r.rows() for r in summary.results] == [{"documents": 2}, {"segments": 3}]
    assert timer.errors == []


def test_hook_qualpipe_run_stage_exception_propagates_through_wrappers(
    qualpipe_plugin: RegisterPlugin, qualpipe_project: Project
) -> None:
    timer = StageTimer()
    qualpipe_plugin(timer, "stage-timer")
    qualpipe_plugin(DocsPlugin(), "docs-plugin")
    qualpipe_plugin(StagePlugin(EXPLODE), "exploder")
    qualpipe_project.pipeline(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: docs
            uses: docs-from-params
            with:
              texts: [Some text.]
          - id: boom
            uses: explode
        """
    )
    result = qualpipe_project.run("run", "pipeline.yaml", "--no-progress")
    assert result.exit_code == 1
    assert error_lines(result.stderr) == [
        "qualpipe: error: stage 'boom' (plugin 'exploder'): RuntimeError: kaboom "
        "(run with --debug for the traceback)"
    ]
    assert "Traceback" not in result.stderr
    # the stage wrapper saw the failure, then the pipeline wrapper saw the same exception
    assert [where for where, _ in timer.errors] == ["boom", "demo"]
    stage_exc, pipeline_exc = (exc for _, exc in timer.errors)
    assert stage_exc is pipeline_exc
    assert isinstance(stage_exc, StageError)
    assert (stage_exc.stage_id, stage_exc.plugin) == ("boom", "exploder")
    assert isinstance(stage_exc.__cause__, RuntimeError)
    assert [sid for sid, *_ in timer.stages] == ["docs"]
    assert timer.summaries == []
    # the stage before it is committed; the failed one left no manifest
    assert qualpipe_project.manifest("demo", "docs")["outputs"]["documents"]["rows"] == 1
    assert not (qualpipe_project.workdir("demo") / "boom" / "manifest.json").exists()

    debug = qualpipe_project.run("--debug", "run", "pipeline.yaml", "--no-progress")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr
    assert "RuntimeError: kaboom" in debug.stderr


# -- the hook reference --------------------------------------------------------------------


def test_hookspecs_are_the_documented_contract() -> None:
    assert HOOKSPECS == [
        "qualpipe_register_coders",
        "qualpipe_register_commands",
        "qualpipe_register_dataset_kinds",
        "qualpipe_register_executors",
        "qualpipe_register_exporters",
        "qualpipe_register_readers",
        "qualpipe_register_recognisers",
        "qualpipe_register_stages",
        "qualpipe_run_pipeline",
        "qualpipe_run_stage",
    ]


@pytest.mark.parametrize("name", HOOKSPECS)
def test_every_hookspec_has_a_docstring_of_substance(name: str) -> None:
    spec = getattr(hookspecs, name)
    doc = inspect.getdoc(spec) or ""
    assert len(doc) >= 100, f"{name}: docstring too short for the hook reference"
    for arg in inspect.signature(spec).parameters:
        assert re.search(rf"\b{arg}\b", doc), f"{name}: docstring never mentions {arg!r}"


def _test_function_names() -> set[str]:
    names: set[str] = set()
    for path in sorted(TESTS.glob("**/*.py")):
        text = path.read_text(encoding="utf-8")
        names.update(re.findall(r"^\s*(?:async\s+)?def (test_\w+)", text, re.M))
    return names


@pytest.mark.parametrize("name", HOOKSPECS)
def test_every_hookspec_has_a_test(name: str) -> None:
    tests = _test_function_names()
    assert any(t.startswith(f"test_hook_{name}") for t in tests), (
        f"no test named test_hook_{name}_... under tests/"
    )


def test_hook_qualpipe_register_coders_adds_a_coder(qualpipe_plugin: RegisterPlugin) -> None:
    from qualpipe.coding.coders import Coder

    def code_nothing(segments: object, ctx: object) -> list[object]:
        return []

    class CoderPlugin:
        @hookimpl
        def qualpipe_register_coders(self, register: Any) -> None:
            register(Coder("nothing", code_nothing, version="7"))

    qualpipe_plugin(CoderPlugin(), "coder-plugin")
    registry = create_manager().registry
    coder, info = registry.components["coder"]["nothing"]
    assert coder.version == "7" and info.name == "coder-plugin"
    assert registry.component_versions("coder")["nothing"] == "coder-plugin@0/7"


def test_hook_qualpipe_register_exporters_adds_a_format(
    qualpipe_plugin: RegisterPlugin,
) -> None:
    from qualpipe.exporters import Exporter

    class ExportPlugin:
        @hookimpl
        def qualpipe_register_exporters(self, register: Any) -> None:
            register(Exporter("notes", lambda bundle: [], needs=("themes",), version="2"))

    qualpipe_plugin(ExportPlugin(), "export-plugin")
    registry = create_manager().registry
    exporter, info = registry.components["exporter"]["notes"]
    assert exporter.needs == ("themes",) and info.name == "export-plugin"
    assert registry.component_versions("exporter")["notes"] == "export-plugin@0/2"
