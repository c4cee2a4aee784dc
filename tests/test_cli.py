"""The ``qualpipe`` command line: output, exit codes, errors, logs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import jsonschema
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import structlog
import yaml

from conftest import builtin_stage_types
from qualpipe import BatchContext, Output, StageContext, StageType, __version__, hookimpl
from qualpipe.errors import EXIT_INVALID, EXIT_PLUGIN, EXIT_QUARANTINE, EXIT_STAGE_FAILED
from qualpipe.testing import Project, Result

REPO = Path(__file__).resolve().parents[1]

#: A word that occurs only in the transcripts: it must never reach a log.
MARKER = "Quokkaberg"
P01 = f"""\
Interviewer: How do you plan your week?
P01: My support worker {MARKER} helps me with the shopping on Mondays and Thursdays.
"""
P02 = """\
Interviewer: What changed this year?
P02: I moved to a flat of my own.
"""

PIPELINE = """
qualpipe: 1
name: demo
stages:
  - id: ingest
    uses: ingest
    with:
      paths: data/t
  - id: segment
    uses: segment
"""


@pytest.fixture
def project(qualpipe_project: Project) -> Project:
    """Two transcripts in data/t and pipeline.yaml: ingest -> segment."""
    qualpipe_project.write("data/t/p01.txt", P01)
    qualpipe_project.write("data/t/p02.txt", P02)
    qualpipe_project.pipeline(PIPELINE)
    return qualpipe_project


@pytest.fixture
def ran(project: Project) -> Project:
    """The project after one successful run."""
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.stderr
    return project


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_error(result: Result, code: int, message: str) -> None:
    """One error line, no traceback, the documented exit code."""
    assert result.stderr == f"qualpipe: error: {message}\n"
    assert result.exit_code == code


def workdir(project: Project) -> Path:
    return project.root.resolve() / ".qualpipe" / "demo"


# -- general ----------------------------------------------------------------------------


def test_version(project: Project) -> None:
    result = project.run("--version")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        f"qualpipe, version {__version__}\n",
        "",
    )
    assert __version__ == "0.1.0"


def test_help_lists_the_core_commands(project: Project) -> None:
    out = ok(project.run("--help"))
    listed = re.findall(r"^  (\w+) ", out.split("Commands:")[1], re.MULTILINE)
    assert listed == [
        "agree", "decisions", "inspect", "plugin", "plugins", "review", "run", "schema", "stages",
        "status", "validate",
    ]  # fmt: skip


def test_unknown_command_is_a_usage_error(project: Project) -> None:
    result = project.run("frobnicate")
    assert result.exit_code == EXIT_INVALID
    assert "No such command 'frobnicate'" in result.stderr


# -- validate -------------------------------------------------------------------------

BAD_TYPE = PIPELINE.replace("uses: ingest", "uses: ingets")
BAD_TYPE_ERROR = (
    "pipeline.yaml:5:11: stage 'ingest': unknown stage type 'ingets'; did you mean 'ingest'? "
    f"(installed: {builtin_stage_types()}; is the plugin that provides it installed? "
    "see 'qualpipe plugins')"
)


def test_validate_ok(project: Project) -> None:
    result = project.run("validate", "pipeline.yaml")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "pipeline.yaml: valid (2 stages: ingest, segment)\n",
        "",
    )
    assert not (project.root / ".qualpipe").exists()  # validating writes nothing


def test_validate_invalid_exits_2_with_one_line(project: Project) -> None:
    project.pipeline(BAD_TYPE)
    result = project.run("validate", "pipeline.yaml")
    assert result.stdout == ""
    assert_error(result, EXIT_INVALID, BAD_TYPE_ERROR)
    assert EXIT_INVALID == 2


@pytest.mark.parametrize("how", ["flag", "env"])
def test_debug_shows_the_traceback(
    project: Project, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    project.pipeline(BAD_TYPE)
    if how == "flag":
        result = project.run("--debug", "validate", "pipeline.yaml")
    else:
        monkeypatch.setenv("QUALPIPE_DEBUG", "1")
        result = project.run("validate", "pipeline.yaml")
    assert result.exit_code == EXIT_INVALID
    lines = result.stderr.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert f"qualpipe.errors.PipelineError: {BAD_TYPE_ERROR}" in lines
    assert lines[-1] == f"qualpipe: error: {BAD_TYPE_ERROR}"


def test_validate_missing_file(project: Project) -> None:
    result = project.run("validate", "missing.yaml")
    assert_error(result, EXIT_INVALID, "pipeline file 'missing.yaml' not found; check the path")


def test_validate_a_folder_is_a_usage_error(project: Project) -> None:
    result = project.run("validate", "data")
    assert result.exit_code == EXIT_INVALID
    assert "Invalid value for 'PIPELINE'" in result.stderr
    assert "is a directory" in result.stderr


SIDL_IDS = [
    s["id"]
    for s in yaml.safe_load((REPO / "pipelines" / "sidl.yaml").read_text(encoding="utf-8"))[
        "stages"
    ]
]


def test_validate_the_shipped_sidl_pipeline(qualpipe_project: Project) -> None:
    result = qualpipe_project.run("validate", REPO / "pipelines" / "sidl.yaml")
    assert ok(result) == (
        f"{REPO / 'pipelines' / 'sidl.yaml'}: valid ({len(SIDL_IDS)} stages: "
        f"{', '.join(SIDL_IDS)})\n"
    )


# -- stages ---------------------------------------------------------------------------

SEGMENT_TEXT = """\
segment  (qualpipe.builtin.segment 0.1.0, batch by batch)
    Cut documents into segments: speaker turns, paragraphs, sentences, word windows or \
meaning units.
    consumes: documents    produces: segments:segments
    - strategy (str, default 'turn'): turn, paragraph, sentence, window or meaning_units
    - drop_speakers (list, default []): speaker labels whose turns are dropped (e.g. [I, \
Interviewer])
    - min_chars (int, default 1): drop segments shorter than this
    - participant_only (bool, default False): keep participant turns only; the \
interviewer turn before each is the context
    - size (int, default 100): window: words per window
    - overlap (int, default 20): window: words shared by neighbouring windows
    - window_scope (str, default 'turn'): window: within each turn, or across consecutive \
kept turns
    - max_words (int, default 60): meaning_units: most words per unit

"""

SEGMENT_JSON = {
    "name": "segment",
    "plugin": "qualpipe.builtin.segment",
    "version": "0.1.0",
    "mode": "batch",
    "description": "Cut documents into segments: speaker turns, paragraphs, sentences, word "
    "windows or meaning units.",
    "consumes": [{"name": "documents", "kind": "documents", "optional": False}],
    "produces": [{"name": "segments", "kind": "segments"}],
    "params": [
        {
            "name": "strategy",
            "type": "str",
            "required": False,
            "default": "turn",
            "help": "turn, paragraph, sentence, window or meaning_units",
            "choices": ["turn", "paragraph", "sentence", "window", "meaning_units"],
        },
        {
            "name": "drop_speakers",
            "type": "list",
            "required": False,
            "default": [],
            "help": "speaker labels whose turns are dropped (e.g. [I, Interviewer])",
            "choices": None,
        },
        {
            "name": "min_chars",
            "type": "int",
            "required": False,
            "default": 1,
            "help": "drop segments shorter than this",
            "choices": None,
        },
        {
            "name": "participant_only",
            "type": "bool",
            "required": False,
            "default": False,
            "help": "keep participant turns only; the interviewer turn before each is the context",
            "choices": None,
        },
        {
            "name": "size",
            "type": "int",
            "required": False,
            "default": 100,
            "help": "window: words per window",
            "choices": None,
        },
        {
            "name": "overlap",
            "type": "int",
            "required": False,
            "default": 20,
            "help": "window: words shared by neighbouring windows",
            "choices": None,
        },
        {
            "name": "window_scope",
            "type": "str",
            "required": False,
            "default": "turn",
            "help": "window: within each turn, or across consecutive kept turns",
            "choices": ["turn", "document"],
        },
        {
            "name": "max_words",
            "type": "int",
            "required": False,
            "default": 60,
            "help": "meaning_units: most words per unit",
            "choices": None,
        },
    ],
}


def test_stages_text_for_one_stage_type(project: Project) -> None:
    assert ok(project.run("stages", "segment")) == SEGMENT_TEXT


def test_stages_lists_every_type_with_params(project: Project) -> None:
    out = ok(project.run("stages"))
    assert SEGMENT_TEXT in out
    lines = out.splitlines()
    assert lines[0] == "agreement  (qualpipe.builtin.human 0.1.0, whole dataset)"
    lines = lines[lines.index("ingest  (qualpipe.builtin.ingest 0.1.0, whole dataset)") :]
    assert lines[2] == "    consumes: -    produces: documents:documents, quarantine:quarantine"
    assert [line.split(" (")[0] for line in lines[3:13]] == [
        "    - paths",
        "    - manifest",
        "    - strict",
        "    - language",
        "    - speaker_patterns",
        "    - speakers",
        "    - interviewer_labels",
        "    - readers",
        "    - survey",
        "",
    ]
    assert lines[3] == "    - paths (paths, required): transcript files, folders or globs"
    assert lines[5] == (
        "    - strict (bool, default True): manifest rows without a file, or files without "
        "a row, are an error"
    )


def test_stages_json(project: Project) -> None:
    data = project.run("stages", "--json").json()
    names = [s["name"] for s in data]
    assert names == builtin_stage_types().split(", ")
    by_name = {s["name"]: s for s in data}
    assert by_name["segment"] == SEGMENT_JSON
    assert by_name["anonymise"]["consumes"] == [
        {"name": "documents", "kind": "documents", "optional": False}
    ]
    paths = by_name["ingest"]["params"][0]
    assert paths == {
        "name": "paths",
        "type": "paths",
        "required": True,
        "default": None,
        "help": "transcript files, folders or globs",
        "choices": None,
    }
    assert [p["name"] for p in by_name["ingest"]["params"]] == [
        "paths",
        "manifest",
        "strict",
        "language",
        "speaker_patterns",
        "speakers",
        "interviewer_labels",
        "readers",
        "survey",
    ]


def test_stages_unknown_name(project: Project) -> None:
    result = project.run("stages", "segmnt")
    assert result.stdout == ""
    assert_error(
        result,
        EXIT_INVALID,
        f"no stage type 'segmnt'; did you mean 'segment'? (installed: {builtin_stage_types()})",
    )


# -- plugins used by several tests ---------------------------------------------------------


def _export_run(ctx: StageContext) -> None:
    ctx.note("exported", ctx.inputs["documents"].rows)


def _anonymise_batch(batch: pa.RecordBatch, ctx: BatchContext) -> dict[str, Any]:
    table = pa.Table.from_batches([batch])
    index = table.schema.get_field_index("sensitive")
    return {"documents": table.set_column(index, "sensitive", pa.array([False] * len(table)))}


def _chatty_run(ctx: StageContext) -> None:
    # A careless plugin: logs a transcript under a key the log redaction knows.
    for row in ctx.inputs["documents"].read_all().to_pylist():
        structlog.get_logger("test").info("peeked", doc=row["doc_id"], text=row["text"])


def _failing_run(ctx: StageContext) -> None:
    raise RuntimeError("disk on fire")


class ExamplePlugin:
    __version__ = "2.5"

    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(
            StageType(
                "test-export",
                "Export documents (test).",
                "whole",
                consumes=["documents"],
                run=_export_run,
                export=True,
            )
        )
        register(
            StageType(
                "test-anonymise",
                "Pretend to anonymise (test).",
                "batch",
                consumes=["documents"],
                produces=[Output("documents", "documents", sensitive=False)],
                process_batch=_anonymise_batch,
            )
        )
        register(
            StageType("test-chatty", "Logs text (test).", "whole", ["documents"], run=_chatty_run)
        )
        register(StageType("test-fail", "Fails (test).", "whole", ["documents"], run=_failing_run))

    @hookimpl
    def qualpipe_register_commands(self, cli: click.Group) -> None:
        @cli.command("test-exit")
        @click.argument("code", type=int)
        @click.pass_context
        def test_exit(ctx: click.Context, code: int) -> None:
            click.echo("exiting")
            ctx.exit(code)

        @cli.command("test-crash")
        def test_crash() -> None:
            raise ZeroDivisionError("nobody expected this")


@pytest.fixture
def plugin(qualpipe_plugin: Callable[..., str]) -> str:
    return qualpipe_plugin(ExamplePlugin(), "test-plugin")


def test_stages_shows_plugin_stage_with_allow_sensitive(project: Project, plugin: str) -> None:
    out = ok(project.run("stages", "test-export"))
    assert out == (
        "test-export  (test-plugin 2.5, whole dataset)\n"
        "    Export documents (test).\n"
        "    consumes: documents    produces: -\n"
        "    - allow_sensitive (bool, default False): "
        "export datasets still marked sensitive (not anonymised)\n"
        "\n"
    )
    data = project.run("stages", "--json", "test-export", "segment").json()
    assert [s["name"] for s in data] == ["test-export", "segment"]
    assert data[0]["params"] == [
        {
            "name": "allow_sensitive",
            "type": "bool",
            "required": False,
            "default": False,
            "help": "export datasets still marked sensitive (not anonymised)",
            "choices": None,
        }
    ]


def test_plugin_command_exit_code_is_kept(project: Project, plugin: str) -> None:
    assert project.run("test-exit", "3") == Result(3, "exiting\n", "")
    assert project.run("test-exit", "0") == Result(0, "exiting\n", "")


def test_internal_error_is_one_line_and_exit_1(project: Project, plugin: str) -> None:
    result = project.run("test-crash")
    assert result.stderr == (
        "qualpipe: internal error: ZeroDivisionError: nobody expected this "
        "(run with --debug for the traceback and report it)\n"
    )
    assert result.exit_code == EXIT_STAGE_FAILED
    debug = project.run("--debug", "test-crash")
    assert debug.exit_code == EXIT_STAGE_FAILED
    assert debug.stderr.startswith("Traceback (most recent call last):\n")
    assert "ZeroDivisionError: nobody expected this\n" in debug.stderr


class ClashPlugin:
    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(StageType("test-twin", "Twin (test).", "whole", ["documents"], run=_export_run))


def test_plugins_text_with_a_clash_exits_3(
    project: Project, qualpipe_plugin: Callable[..., str]
) -> None:
    qualpipe_plugin(ClashPlugin(), "twin-a")
    qualpipe_plugin(ClashPlugin(), "twin-b")
    result = project.run("plugins")
    names = [line.split(" ")[0] for line in result.stdout.splitlines()]
    assert names[-2:] == ["twin-a", "twin-b"]
    assert result.stderr in {
        f"qualpipe: error: plugin {a!r}: stage type 'test-twin' is already provided by "
        f"plugin {b!r}; uninstall one of them or set QUALPIPE_DISABLE_PLUGINS={a}\n"
        for a, b in (("twin-a", "twin-b"), ("twin-b", "twin-a"))
    }
    assert result.exit_code == EXIT_PLUGIN == 3
    listed = project.run("plugins", "--json")
    assert listed.exit_code == 0
    assert listed.json()["error"] == result.stderr.removeprefix("qualpipe: error: ").rstrip()


# -- schema ---------------------------------------------------------------------------


@pytest.fixture
def validator(project: Project) -> jsonschema.Draft202012Validator:
    schema = json.loads(ok(project.run("schema")))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def sidl() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "pipelines" / "sidl.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def errors(validator: jsonschema.Draft202012Validator, data: Any) -> list[tuple[list[Any], str]]:
    return [(list(e.absolute_path), e.message) for e in validator.iter_errors(data)]


def segment_index(data: Any) -> int:
    return next(i for i, s in enumerate(data["stages"]) if s["id"] == "segment")


def test_schema_accepts_the_sidl_pipeline(validator: jsonschema.Draft202012Validator) -> None:
    assert errors(validator, sidl()) == []


def test_schema_rejects_an_unknown_parameter(validator: jsonschema.Draft202012Validator) -> None:
    data = sidl()
    seg = segment_index(data)
    data["stages"][seg]["with"]["strategi"] = "turn"
    assert errors(validator, data) == [
        (
            ["stages", seg, "with"],
            "Additional properties are not allowed ('strategi' was unexpected)",
        )
    ]


def test_schema_rejects_unknown_keys_and_stage_types(
    validator: jsonschema.Draft202012Validator,
) -> None:
    data = sidl()
    data["parms"] = {}
    data["stages"][0]["uses"] = "ingets"
    assert [path for path, _ in errors(validator, data)] == [[], ["stages", 0, "uses"]]


#: Edits of sidl.yaml's segment stage: the schema and `validate` must agree on each.
SEGMENT_EDITS = [
    pytest.param({"min_chars": 3}, True, id="int"),
    pytest.param({"min_chars": "lots"}, False, id="int-as-text"),
    pytest.param({"min_chars": True}, False, id="bool-for-int"),
    pytest.param({"min_chars": "${params.n}"}, True, id="int-interpolated"),
    pytest.param({"strategy": "paragraph"}, True, id="choice"),
    pytest.param({"strategy": "sentences"}, False, id="not-a-choice"),
    pytest.param({"strategy": "${params.s}"}, True, id="choice-interpolated"),
    pytest.param({"drop_speakers": "Interviewer"}, True, id="one-item-list"),
    pytest.param({"drop_speakers": {"a": 1}}, False, id="mapping-for-list"),
]


@pytest.mark.parametrize(("edit", "valid"), SEGMENT_EDITS)
def test_schema_agrees_with_validate(
    project: Project,
    validator: jsonschema.Draft202012Validator,
    edit: dict[str, Any],
    valid: bool,
) -> None:
    data = sidl()
    data["params"].update(n=2, s="turn")
    data["stages"][0]["with"] = {"paths": "data/t", "manifest": None}
    data["stages"][segment_index(data)]["with"].update(edit)
    assert (errors(validator, data) == []) is valid
    project.write("edited.yaml", yaml.safe_dump(data, sort_keys=False))
    result = project.run("validate", "edited.yaml")
    assert (result.exit_code == 0) is valid, result.stderr


def test_schema_includes_plugin_stage_types(project: Project, plugin: str) -> None:
    schema = json.loads(ok(project.run("schema")))
    items = schema["properties"]["stages"]["items"]
    assert items["properties"]["uses"]["enum"] == sorted(
        [
            *builtin_stage_types().split(", "),
            "test-anonymise",
            "test-chatty",
            "test-export",
            "test-fail",
        ]
    )
    validator = jsonschema.Draft202012Validator(schema)
    data = yaml.safe_load(PIPELINE)
    data["stages"].append({"id": "export", "uses": "test-export", "with": {"allow_sensitive": 1}})
    assert errors(validator, data) == [
        (["stages", 2, "with", "allow_sensitive"], "1 is not valid under any of the given schemas")
    ]


# -- run ------------------------------------------------------------------------------

SECONDS = r"\d+\.\ds"


def test_run_summary(project: Project) -> None:
    first = project.run("run", "pipeline.yaml")
    assert first.exit_code == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        rf"  ingest           run          no output yet \[documents=2, quarantine=0\] {SECONDS}",
        lines[0],
    )
    assert re.fullmatch(
        rf"  segment          run          no output yet \[segments=4\] {SECONDS}", lines[1]
    )
    assert re.fullmatch(
        rf"demo: 2 ran, 0 unchanged in {SECONDS}; outputs in {re.escape(str(workdir(project)))}",
        lines[2],
    )

    again = project.run("run", "pipeline.yaml").stdout.splitlines()
    assert again[:2] == [
        "  ingest           skip         unchanged",
        "  segment          skip         unchanged",
    ]
    assert re.fullmatch(rf"demo: 0 ran, 2 unchanged in {SECONDS}; outputs in .*", again[2])


def test_run_reports_quarantined_files(project: Project) -> None:
    project.write("data/t/empty.txt", "")
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "[documents=2, quarantine=1]" in lines[0]
    assert re.fullmatch(
        rf"demo: 2 ran, 0 unchanged, 1 file\(s\) quarantined in {SECONDS}; outputs in .*", lines[2]
    )


def test_run_strict_exits_4_when_files_are_quarantined(project: Project) -> None:
    project.write("data/t/empty.txt", "")
    result = project.run("run", "pipeline.yaml", "--strict")
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1] == (
        f"qualpipe: error: 1 input file(s) were quarantined (see the quarantine dataset in "
        f"{workdir(project)}); fix or remove them, or run without --strict"
    )
    assert result.exit_code == EXIT_QUARANTINE == 4
    # The stages themselves completed and are kept.
    assert project.manifest("demo", "ingest")["outputs"]["quarantine"]["rows"] == 1


def test_run_invalid_pipeline_exits_2(project: Project) -> None:
    project.pipeline(BAD_TYPE)
    result = project.run("run", "pipeline.yaml")
    assert result.stdout == ""
    assert_error(result, EXIT_INVALID, BAD_TYPE_ERROR)


def test_run_failing_stage_exits_1(project: Project, plugin: str) -> None:
    project.pipeline(PIPELINE + "  - id: fail\n    uses: test-fail\n    inputs: [ingest]\n")
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == EXIT_STAGE_FAILED
    assert result.stderr.splitlines()[-1] == (
        "qualpipe: error: stage 'fail' (plugin 'test-plugin'): RuntimeError: disk on fire "
        "(run with --debug for the traceback)"
    )
    assert "Traceback" not in result.stderr


def test_run_with_workdir(project: Project) -> None:
    result = project.run("run", "pipeline.yaml", "--workdir", "runs/a")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[-1].endswith("; outputs in runs/a")
    assert (project.root / "runs" / "a" / "segment" / "manifest.json").is_file()
    assert not (project.root / ".qualpipe").exists()


# -- logs -----------------------------------------------------------------------------


def test_log_json_lines_without_transcript_text(project: Project) -> None:
    result = project.run("--log-json", "run", "pipeline.yaml")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(r["event"], r.get("stage")) for r in records] == [
        ("run started", None),
        ("stage started", "ingest"),
        ("stage finished", "ingest"),
        ("stage started", "segment"),
        ("stage finished", "segment"),
        ("run finished", None),
    ]
    assert {r["level"] for r in records} == {"info"}
    assert all(r["pipeline"] == "demo" for r in records)
    assert records[2]["rows"] == {"documents": 2, "quarantine": 0}
    assert records[-1]["ran"] == 2
    # The marker is in the data, but not in any log line or in the summary.
    texts = project.dataset("demo", "segment").column("text").to_pylist()
    assert any(MARKER in t for t in texts)
    assert MARKER not in result.stderr
    assert MARKER not in result.stdout


def test_console_logs_without_transcript_text(project: Project) -> None:
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == 0
    assert "run finished" in result.stderr
    assert "[documents=2, quarantine=0]" in result.stdout
    assert MARKER not in result.stderr


def test_text_a_plugin_logs_is_redacted(project: Project, plugin: str) -> None:
    project.pipeline(PIPELINE + "  - id: chatty\n    uses: test-chatty\n    inputs: [ingest]\n")
    result = project.run("--log-json", "run", "pipeline.yaml")
    assert result.exit_code == 0, result.stderr
    peeked = [json.loads(line) for line in result.stderr.splitlines() if "peeked" in line]
    assert [r["text"] for r in peeked] == ["<redacted>", "<redacted>"]
    assert MARKER not in result.stderr


def test_log_level_warning_is_quiet(project: Project) -> None:
    result = project.run("--log-level", "warning", "--log-json", "run", "pipeline.yaml")
    assert (result.exit_code, result.stderr) == (0, "")


# -- status ---------------------------------------------------------------------------


def test_status_before_a_run(project: Project) -> None:
    assert ok(project.run("status", "pipeline.yaml")) == (
        f"demo (workdir {workdir(project)})\n"
        "  ingest           will run      no output yet\n"
        "  segment          will run      upstream 'ingest' will run\n"
    )
    assert project.run("status", "pipeline.yaml", "--json").json() == [
        {"stage": "ingest", "action": "run", "reason": "no output yet"},
        {"stage": "segment", "action": "run", "reason": "upstream 'ingest' will run"},
    ]
    assert not (project.root / ".qualpipe").exists()  # status only looks


def test_status_after_a_run(ran: Project) -> None:
    assert ok(ran.run("status", "pipeline.yaml")).splitlines()[1:] == [
        "  ingest           up to date    unchanged",
        "  segment          up to date    unchanged",
    ]
    assert ran.run("status", "--json", "pipeline.yaml").json() == [
        {"stage": "ingest", "action": "skip", "reason": "unchanged"},
        {"stage": "segment", "action": "skip", "reason": "unchanged"},
    ]


def test_status_after_a_transcript_changed(ran: Project) -> None:
    ran.write("data/t/p02.txt", P02 + "Interviewer: Thank you.\n")
    assert ran.run("status", "--json", "pipeline.yaml").json() == [
        {"stage": "ingest", "action": "run", "reason": "files of parameter 'paths' changed"},
        {"stage": "segment", "action": "run", "reason": "upstream 'ingest' will run"},
    ]


def test_status_with_set_and_only(ran: Project) -> None:
    changed = ran.run("status", "--json", "pipeline.yaml", "--set", "segment.min_chars=2")
    assert changed.json() == [
        {"stage": "ingest", "action": "skip", "reason": "unchanged"},
        {"stage": "segment", "action": "run", "reason": "parameters changed"},
    ]
    only = ran.run("status", "pipeline.yaml", "--only", "segment")
    assert ok(only).splitlines()[1:] == [
        "  ingest           not selected  outside --from/--until/--only",
        "  segment          will run      forced (--only)",
    ]


def test_status_unknown_stage(project: Project) -> None:
    result = project.run("status", "pipeline.yaml", "--from", "segmnet")
    assert_error(
        result,
        EXIT_INVALID,
        "no stage 'segmnet' in pipeline.yaml (stages: ingest, segment); did you mean 'segment'?",
    )


# -- inspect --------------------------------------------------------------------------

DOCUMENTS_HEAD = """\
dataset: .qualpipe/demo/ingest/documents
kind: documents   rows: 2   sensitive: True
schema:
  doc_id: string
  source_path: string
  format: string
  reader: string
  encoding: string
  language: string
  participant_id: string
  attributes: map<string, string ('attributes')>
  text: large_string
  turns: list<element: struct<speaker: string, start: int64 not null, end: int64 not null, \
start_time: double, end_time: double, role: string>>
  sha256: string
  sensitive: bool
"""
HIDDEN = "(sensitive dataset: rows hidden; pass --rows N to show them)\n"


def test_inspect_stage_folder_with_several_outputs(ran: Project) -> None:
    result = ran.run("inspect", ".qualpipe/demo/ingest")
    assert_error(
        result,
        EXIT_INVALID,
        ".qualpipe/demo/ingest: stage has several outputs (documents, quarantine); "
        "name one, e.g. .qualpipe/demo/ingest/documents",
    )
    chosen = ran.run("inspect", ".qualpipe/demo/ingest", "--output", "documents")
    assert ok(chosen) == DOCUMENTS_HEAD + HIDDEN


def test_inspect_dataset_folder_hides_sensitive_rows(ran: Project) -> None:
    out = ok(ran.run("inspect", ".qualpipe/demo/ingest/documents"))
    assert out == DOCUMENTS_HEAD + HIDDEN
    assert MARKER not in out


def _segment_rows(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  segment_id=")]


def test_inspect_stage_folder_shows_rows_when_asked(ran: Project) -> None:
    hidden = ok(ran.run("inspect", ".qualpipe/demo/segment"))
    assert hidden.startswith(
        "dataset: .qualpipe/demo/segment/segments\nkind: segments   rows: 4   sensitive: True\n"
    )
    assert hidden.endswith(HIDDEN)
    assert _segment_rows(hidden) == []

    one = ok(ran.run("inspect", ".qualpipe/demo/segment", "-n", "1"))
    assert len(_segment_rows(one)) == 1
    assert HIDDEN not in one
    # --rows 5 is the default value, but given explicitly it still shows the rows.
    five = ok(ran.run("inspect", ".qualpipe/demo/segment", "--rows", "5"))
    assert len(_segment_rows(five)) == 4
    assert MARKER in five


def test_inspect_columns(ran: Project) -> None:
    out = ok(ran.run("inspect", ".qualpipe/demo/segment", "-n", "3", "--columns", "speaker, start"))
    p01_answer = P01.index("My support")
    assert out.splitlines()[-3:] == [
        "  speaker=Interviewer  |  start=13",
        f"  speaker=P01  |  start={p01_answer}",
        "  speaker=Interviewer  |  start=13",
    ]


def test_inspect_unknown_column(ran: Project) -> None:
    result = ran.run("inspect", ".qualpipe/demo/segment", "--columns", "speaker,speach")
    assert result.stdout == ""
    assert_error(
        result,
        EXIT_INVALID,
        ".qualpipe/demo/segment/segments: no column 'speach' (columns: segment_id, doc_id, "
        "start, end, text, speaker, participant_id, attributes, context, strategy, sensitive)",
    )


def test_inspect_single_parquet_file(ran: Project) -> None:
    (part,) = (ran.root / ".qualpipe/demo/segment/segments").glob("*.parquet")
    rel = part.relative_to(ran.root)
    out = ok(ran.run("inspect", rel))
    assert out.startswith(f"dataset: {rel}\nkind: segments   rows: 4   sensitive: True\n")
    assert out.endswith(HIDDEN)
    shown = ok(ran.run("inspect", rel, "-n", "2"))
    assert len(_segment_rows(shown)) == 2


def test_inspect_foreign_parquet_file(project: Project) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), project.root / "plain.parquet")
    out = ok(project.run("inspect", "plain.parquet"))
    # Unknown provenance: treated as sensitive.
    assert out == (
        "dataset: plain.parquet\nkind: unknown   rows: 2   sensitive: True\n"
        "schema:\n  a: int64\n  b: string\n" + HIDDEN
    )
    shown = ok(project.run("inspect", "plain.parquet", "-n", "5"))
    assert shown.splitlines()[-2:] == ["  a=1  |  b=x", "  a=2  |  b=y"]


def test_inspect_anonymised_dataset_shows_rows(project: Project, plugin: str) -> None:
    project.pipeline(PIPELINE.replace("uses: segment", "uses: test-anonymise"))
    assert project.run("run", "pipeline.yaml").exit_code == 0
    out = ok(project.run("inspect", ".qualpipe/demo/segment", "--columns", "source_path,text"))
    assert "kind: documents   rows: 2   sensitive: False\n" in out
    text = P01.replace("\n", " ")
    assert out.splitlines()[-2:] == [
        f"  source_path=p01.txt  |  text={text[:59]}…",
        f"  source_path=p02.txt  |  text={P02.replace(chr(10), ' ')[:59]}…",
    ]
    limited = ok(project.run("inspect", ".qualpipe/demo/segment", "-n", "1", "--columns", "format"))
    assert limited.splitlines()[-1] == "  format=txt"
    assert limited.count("format=") == 1


def test_inspect_missing_path(project: Project) -> None:
    assert_error(
        project.run("inspect", "nowhere"),
        EXIT_INVALID,
        "nowhere: no such dataset; check the path (run the pipeline first?)",
    )


def test_inspect_negative_rows_is_a_usage_error(project: Project) -> None:
    result = project.run("inspect", "nowhere", "-n", "-1")
    assert result.exit_code == EXIT_INVALID
    assert "-1 is not in the range x>=0" in result.stderr
