"""Pipeline file v1: located errors, interpolation, ``--set``, paths and sensitive exports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from conftest import builtin_stage_types
from qualpipe import BatchContext, Output, StageContext, StageType, hookimpl
from qualpipe.errors import EXIT_INVALID
from qualpipe.pipeline import ResolvedStage, load_pipeline, resolve
from qualpipe.plugins import create_manager
from qualpipe.testing import Project, Result

P01 = """\
Interviewer: How do you plan your week?
P01: My support worker helps me with the shopping on Mondays.
"""
P02 = """\
Interviewer: What changed this year?
P02: I moved to a flat of my own.
"""

SEGMENT_HELP = (
    "(known: strategy, drop_speakers, min_chars, participant_only, size, overlap, "
    "window_scope, max_words)"
)
INGEST_PARAMS = (
    "(known: paths, manifest, strict, language, speaker_patterns, speakers, "
    "interviewer_labels, readers, survey)"
)


@pytest.fixture
def project(qualpipe_project: Project) -> Project:
    """A project with two small transcripts in data/t."""
    qualpipe_project.write("data/t/p01.txt", P01)
    qualpipe_project.write("data/t/p02.txt", P02)
    return qualpipe_project


def validate(project: Project, text: str, *args: str) -> Result:
    project.pipeline(text)
    return project.run("validate", "pipeline.yaml", *args)


def assert_invalid(result: Result, message: str) -> None:
    """Exit code 2 and exactly one error line, no traceback."""
    assert result.stdout == ""
    assert result.stderr == f"qualpipe: error: {message}\n"
    assert result.exit_code == EXIT_INVALID


def resolved(
    project: Project, monkeypatch: pytest.MonkeyPatch, text: str, *overrides: str, name: str = ""
) -> dict[str, ResolvedStage]:
    """Load and resolve a pipeline through the API, with the project as current folder."""
    monkeypatch.chdir(project.root)
    path = project.pipeline(text, name or "pipeline.yaml")
    pipe = load_pipeline(path, overrides)
    return {s.id: s for s in resolve(pipe, create_manager().registry)}


# -- located errors -------------------------------------------------------------------

ERRORS = [
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
             with:
              paths: data/t
        """,
        "pipeline.yaml:6:10: invalid YAML: mapping values are not allowed here; "
        "check indentation and quoting",
        id="bad-indentation",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
        \t- id: ingest
        """,
        "pipeline.yaml:4:1: invalid YAML: found character '\\t' that cannot start any token "
        "(while scanning for the next token); check indentation and quoting",
        id="tab-indentation",
    ),
    pytest.param("", "pipeline.yaml:1:1: the pipeline file is empty", id="empty"),
    pytest.param(
        "# only a comment\n\n", "pipeline.yaml:1:1: the pipeline file is empty", id="comments-only"
    ),
    pytest.param(
        """
        - ingest
        - segment
        """,
        "pipeline.yaml:1:1: a pipeline file is a mapping with qualpipe:, name: and stages:",
        id="not-a-mapping",
    ),
    pytest.param(
        """
        name: demo
        stages:
          - id: ingest
            uses: ingest
        """,
        "pipeline.yaml:1:1: missing 'qualpipe: 1' (the pipeline file format version)",
        id="missing-version",
    ),
    pytest.param(
        """
        qualpipe: 2
        name: demo
        stages:
          - id: ingest
            uses: ingest
        """,
        "pipeline.yaml:1:11: unsupported pipeline format qualpipe: 2; "
        "this qualpipe reads version 1",
        id="wrong-version",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        parms:
          data: data
        stages:
          - id: ingest
            uses: ingest
        """,
        "pipeline.yaml:3:1: unknown top-level key 'parms' (allowed: qualpipe, name, "
        "description, params, stages, executor, workdir, decisions); did you mean 'params'?",
        id="unknown-top-level-key",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: my pipeline
        stages:
          - id: ingest
            uses: ingest
        """,
        "pipeline.yaml:2:7: name: must be a simple name (letters, digits, - and _), "
        "got 'my pipeline'",
        id="bad-name",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: "demo\\n"
        stages:
          - id: ingest
            uses: ingest
        """,
        "pipeline.yaml:2:7: name: must be a simple name (letters, digits, - and _), got 'demo\\n'",
        id="name-with-trailing-newline",
    ),
    pytest.param(
        """
        qualpipe: 1
        stages:
          - id: ingest
            uses: ingest
        """,
        "pipeline.yaml:1:1: name: must be a simple name (letters, digits, - and _), got None",
        id="missing-name",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages: []
        """,
        "pipeline.yaml:3:9: stages: must be a non-empty list of stages",
        id="no-stages",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: 2nd
            uses: ingest
        """,
        "pipeline.yaml:4:9: stage id must be a simple name (letters, digits, - and _), got '2nd'",
        id="bad-stage-id",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: ingest
            uses: segment
        """,
        "pipeline.yaml:8:9: duplicate stage id 'ingest'; stage ids must be unique",
        id="duplicate-stage-id",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segment
            input: [ingest]
        """,
        "pipeline.yaml:10:5: unknown stage key 'input' (allowed: id, uses, with, inputs, "
        "description, batch_size); did you mean 'inputs'?",
        id="unknown-stage-key",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            with:
              paths: data/t
        """,
        "pipeline.yaml:4:5: stage 'ingest' needs uses: STAGE_TYPE (see 'qualpipe stages')",
        id="missing-uses",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segment
            batch_size: 0
        """,
        "pipeline.yaml:10:17: stage 'segment': batch_size must be a positive integer",
        id="bad-batch-size",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segmnet
        """,
        "pipeline.yaml:9:11: stage 'segment': unknown stage type 'segmnet'; did you mean "
        "'segment'? (installed: " + builtin_stage_types() + "; is the plugin that provides it "
        "installed? see 'qualpipe plugins')",
        id="unknown-stage-type",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segment
            with:
              strategi: turn
        """,
        "pipeline.yaml:11:7: stage 'segment': unknown parameter 'strategi' for stage type "
        f"'segment' {SEGMENT_HELP}; did you mean 'strategy'?",
        id="unknown-parameter",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
              manifets: people.csv
        """,
        "pipeline.yaml:8:7: stage 'ingest': unknown parameter 'manifets' for stage type "
        f"'ingest' {INGEST_PARAMS}; did you mean 'manifest'?",
        id="unknown-parameter-after-known",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segment
            with:
              min_chars: lots
        """,
        "pipeline.yaml:11:18: stage 'segment': parameter 'min_chars': "
        "expected an integer, got 'lots'",
        id="wrong-parameter-type",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
              strict: "no"
        """,
        "pipeline.yaml:8:15: stage 'ingest': parameter 'strict': expected true or false, got 'no'",
        id="wrong-parameter-type-bool",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              language: en
        """,
        "pipeline.yaml:4:5: stage 'ingest': missing required parameter 'paths' "
        "(transcript files, folders or globs); add it under with:",
        id="missing-required-parameter",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segment
            with:
              strategy: sentences
        """,
        "pipeline.yaml:11:17: stage 'segment': parameter 'strategy': "
        "expected one of turn, paragraph, sentence, window, meaning_units; got 'sentences'",
        id="invalid-choice",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: segment
            uses: segment
            inputs: [ingest]
          - id: ingest
            uses: ingest
            with:
              paths: data/t
        """,
        "pipeline.yaml:6:13: stage 'segment': input 'ingest' comes later in the pipeline; "
        "a stage can only read earlier stages",
        id="input-is-a-later-stage",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segment
            inputs: [ingets]
        """,
        "pipeline.yaml:10:13: stage 'segment': input 'ingets' is not an earlier stage id or "
        "a dataset path; did you mean 'ingest'?",
        id="input-is-not-a-stage",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: segment
            uses: segment
            inputs: ingest.docs
        """,
        "pipeline.yaml:10:13: stage 'segment': stage 'ingest' has no output 'docs' "
        "(outputs: documents, quarantine)",
        id="input-names-missing-output",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: segment
            uses: segment
        """,
        "pipeline.yaml:5:11: stage 'segment' (segment) consumes a 'documents' dataset but "
        "no earlier stage produces one; add a stage that does",
        id="no-producer",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
          - id: turns
            uses: segment
          - id: paragraphs
            uses: segment
            inputs: [turns]
        """,
        "pipeline.yaml:12:13: stage 'paragraphs' (segment) consumes a 'documents' dataset but "
        "none of its inputs (turns) produces one; list a stage that does under inputs:",
        id="inputs-do-not-produce-kind",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: a
            uses: ingest
            with: {paths: data/t}
          - id: b
            uses: ingest
            with: {paths: data/t}
          - id: segment
            uses: segment
            inputs: [a, b]
        """,
        "pipeline.yaml:12:13: stage 'segment': several inputs provide 'documents' "
        "(a.documents, b.documents); choose one with inputs: {documents: STAGE.OUTPUT}",
        id="ambiguous-inputs",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
              paths: data/other
        """,
        "pipeline.yaml:8:7: duplicate key 'paths'; remove one of them",
        id="duplicate-mapping-key",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        name: other
        stages: []
        """,
        "pipeline.yaml:3:1: duplicate key 'name'; remove one of them",
        id="duplicate-top-level-key",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        params:
          data: data
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: ${params.dta}/t
        """,
        "pipeline.yaml:9:14: unknown parameter ${params.dta}: define 'dta' under top-level "
        "params:; did you mean 'data'?",
        id="unknown-interpolated-param",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: ${data}
        """,
        "pipeline.yaml:7:14: cannot interpolate ${data}: use ${params.NAME} or ${env.NAME}",
        id="interpolation-without-scope",
    ),
    pytest.param(
        """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
              language: ${env.QUALPIPE_TEST_SURELY_UNSET}
        """,
        "pipeline.yaml:8:17: environment variable 'QUALPIPE_TEST_SURELY_UNSET' is not set "
        "(used as ${env.QUALPIPE_TEST_SURELY_UNSET})",
        id="unset-environment-variable",
    ),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_invalid_pipeline_is_reported_with_its_location(
    project: Project, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.delenv("QUALPIPE_TEST_SURELY_UNSET", raising=False)
    assert_invalid(validate(project, text), message)


def test_non_utf8_file_names_the_offending_byte(project: Project) -> None:
    project.write("pipeline.yaml", "qualpipe: 1\nname: d\u00e9mo\n".encode("latin-1"))
    assert_invalid(
        project.run("validate", "pipeline.yaml"),
        "pipeline.yaml:2:8: the pipeline file is not UTF-8 text (byte 0xe9 cannot be decoded); "
        "save it as UTF-8",
    )


def test_non_utf8_column_counts_characters_not_bytes(project: Project) -> None:
    # "å" is two bytes in UTF-8 but one column in an editor.
    project.write("pipeline.yaml", b"qualpipe: 1\n# \xc3\xa5\xc3\xa4 \xff\n")
    assert_invalid(
        project.run("validate", "pipeline.yaml"),
        "pipeline.yaml:2:6: the pipeline file is not UTF-8 text (byte 0xff cannot be decoded); "
        "save it as UTF-8",
    )


def test_utf8_file_with_byte_order_mark_is_read(project: Project) -> None:
    text = "qualpipe: 1\nname: demo\nstages:\n  - id: ingest\n    uses: ingest\n"
    project.write(
        "pipeline.yaml", b"\xef\xbb\xbf" + (text + "    with: {paths: data/t}\n").encode()
    )
    result = project.run("validate", "pipeline.yaml")
    assert (result.exit_code, result.stdout) == (0, "pipeline.yaml: valid (1 stage: ingest)\n")


def test_missing_file(project: Project) -> None:
    assert_invalid(
        project.run("validate", "nope.yaml"),
        "pipeline file 'nope.yaml' not found; check the path",
    )


def test_location_names_the_file_as_given(project: Project) -> None:
    project.write("pipelines/sub.yaml", "qualpipe: 3\n")
    assert_invalid(
        project.run("validate", "pipelines/sub.yaml"),
        "pipelines/sub.yaml:1:11: unsupported pipeline format qualpipe: 3; "
        "this qualpipe reads version 1",
    )


# -- interpolation --------------------------------------------------------------------

INTERPOLATED = """
qualpipe: 1
name: demo
params:
  data: data
  n: 3
  speakers: [Interviewer, I]
  strict: false
stages:
  - id: ingest
    uses: ingest
    with:
      paths: ${params.data}/t
      strict: ${params.strict}
      language: ${env.QUALPIPE_TEST_LANG}
  - id: segment
    uses: segment
    with:
      min_chars: ${params.n}
      drop_speakers: ${params.speakers}
      strategy: ${ params.strategy }
"""


def test_interpolation_whole_value_keeps_type_embedded_substitutes(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUALPIPE_TEST_LANG", "sv")
    text = INTERPOLATED.replace("  strict: false\n", "  strict: false\n  strategy: paragraph\n")
    monkeypatch.chdir(project.root)
    pipe = load_pipeline(project.pipeline(text))
    ingest, segment = pipe.stages
    assert ingest.params == {"paths": "data/t", "strict": False, "language": "sv"}
    assert segment.params == {
        "min_chars": 3,
        "drop_speakers": ["Interviewer", "I"],
        "strategy": "paragraph",
    }


def test_embedded_interpolation_of_a_number_is_text(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages = resolved(
        project,
        monkeypatch,
        """
        qualpipe: 1
        name: demo
        params: {n: 2, lang: en}
        stages:
          - id: ingest
            uses: ingest
            with:
              paths: data/t
              language: ${params.lang}-${params.n}
              speaker_patterns: ["^(?P<speaker>P0${params.n}):"]
        """,
    )
    params = stages["ingest"].params
    assert params["language"] == "en-2"
    assert params["speaker_patterns"] == ["^(?P<speaker>P02):"]


def test_interpolation_inside_lists(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    stages = resolved(
        project,
        monkeypatch,
        """
        qualpipe: 1
        name: demo
        params: {who: Interviewer}
        stages:
          - id: ingest
            uses: ingest
            with: {paths: data/t}
          - id: segment
            uses: segment
            with:
              drop_speakers: [I, "${params.who}", "Dr ${params.who}"]
        """,
    )
    assert stages["segment"].params["drop_speakers"] == ["I", "Interviewer", "Dr Interviewer"]


# -- --set overrides ------------------------------------------------------------------

BASE = """
qualpipe: 1
name: demo
params:
  n: 1
stages:
  - id: ingest
    uses: ingest
    with:
      paths: data/t
  - id: segment
    uses: segment
    with:
      min_chars: ${params.n}
"""


@pytest.mark.parametrize(
    ("override", "stage", "param", "expected"),
    [
        ("segment.min_chars=3", "segment", "min_chars", 3),
        ("segment.strategy=paragraph", "segment", "strategy", "paragraph"),
        (
            "segment.drop_speakers=[I, Interviewer]",
            "segment",
            "drop_speakers",
            ["I", "Interviewer"],
        ),
        ("ingest.strict=false", "ingest", "strict", False),
        ("ingest.strict=true", "ingest", "strict", True),
        ("ingest.language=sv", "ingest", "language", "sv"),
        ("params.n=7", "segment", "min_chars", 7),
        ("params.n=12", "segment", "min_chars", 12),
    ],
)
def test_set_values_are_parsed_as_yaml(
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
    override: str,
    stage: str,
    param: str,
    expected: Any,
) -> None:
    stages = resolved(project, monkeypatch, BASE, override)
    value = stages[stage].params[param]
    assert value == expected
    assert type(value) is type(expected)


def test_set_several_and_last_wins(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    stages = resolved(
        project, monkeypatch, BASE, "segment.min_chars=4", "segment.min_chars=5", "params.n=9"
    )
    assert stages["segment"].params["min_chars"] == 5


def test_set_params_adds_an_undefined_param(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = BASE.replace("min_chars: ${params.n}", "min_chars: ${params.extra}")
    stages = resolved(project, monkeypatch, text, "params.extra=8")
    assert stages["segment"].params["min_chars"] == 8


def test_set_through_the_cli(project: Project) -> None:
    project.pipeline(BASE)
    result = project.run(
        "validate", "pipeline.yaml", "--set", "segment.min_chars=2", "--set", "params.n=3"
    )
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "pipeline.yaml: valid (2 stages: ingest, segment)\n",
        "",
    )


def test_set_value_of_the_wrong_type_names_the_set(project: Project) -> None:
    # The file says ${params.n} on line 13; the bad value is the command line's.
    result = validate(project, BASE, "--set", "segment.min_chars=lots")
    assert_invalid(result, "--set segment.min_chars: expected an integer, got 'lots'")


def test_set_param_of_the_wrong_type_points_at_its_use(project: Project) -> None:
    result = validate(project, BASE, "--set", "params.n=[1, 2]")
    assert_invalid(
        result,
        "pipeline.yaml:13:18: stage 'segment': parameter 'min_chars': "
        "expected an integer, got [1, 2]",
    )


def test_set_unknown_parameter(project: Project) -> None:
    result = validate(project, BASE, "--set", "segment.min_char=2")
    assert_invalid(
        result,
        "--set segment.min_char: unknown parameter 'min_char' for stage type "
        f"'segment' {SEGMENT_HELP}; did you mean 'min_chars'?",
    )


def test_set_on_unknown_stage(project: Project) -> None:
    result = validate(project, BASE, "--set", "segmnet.min_chars=3")
    assert_invalid(
        result,
        "--set segmnet.min_chars: no stage 'segmnet' in pipeline.yaml "
        "(stages: ingest, segment); did you mean 'segment'?",
    )


@pytest.mark.parametrize(
    "item", ["segment", "segment=3", "segment.=3", ".min_chars=3", "segment.min_chars", "=3"]
)
def test_malformed_set(project: Project, item: str) -> None:
    result = validate(project, BASE, "--set", item)
    assert_invalid(
        result,
        f"--set {item!r}: expected STAGE_ID.PARAM=VALUE or params.NAME=VALUE "
        "(e.g. --set ingest.paths=data/transcripts)",
    )


# -- paths ----------------------------------------------------------------------------

PATHS = """
qualpipe: 1
name: demo
params:
  data: data
  manifest: people.csv
stages:
  - id: ingest
    uses: ingest
    with:
      paths: ${params.data}/t
      manifest: ${params.manifest}
"""


def _ingest(project: Project, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> dict[str, Any]:
    stages = resolved(project, monkeypatch, PATHS, *overrides, name="pipelines/demo.yaml")
    return stages["ingest"].params


def test_path_params_resolve_relative_to_the_pipeline_file(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = _ingest(project, monkeypatch)
    here = project.root.resolve() / "pipelines"
    assert params["paths"] == [str(here / "data" / "t")]
    assert params["manifest"] == str(here / "people.csv")


def test_set_path_values_resolve_relative_to_the_current_directory(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = _ingest(project, monkeypatch, "ingest.paths=my/t", "ingest.manifest=m.csv")
    cwd = project.root.resolve()
    assert params["paths"] == [str(cwd / "my" / "t")]
    assert params["manifest"] == str(cwd / "m.csv")


def test_set_of_a_param_used_as_a_whole_value_resolves_from_cwd(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = _ingest(project, monkeypatch, "params.manifest=m.csv", "params.data=elsewhere")
    root = project.root.resolve()
    assert params["manifest"] == str(root / "m.csv")
    # Inside a longer string the file's own text decides: relative to the file.
    assert params["paths"] == [str(root / "pipelines" / "elsewhere" / "t")]


def test_absolute_paths_stay_absolute(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    params = _ingest(project, monkeypatch, f"ingest.paths=[{elsewhere}, rel]")
    assert params["paths"] == [str(elsewhere), str(project.root.resolve() / "rel")]


def test_run_with_set_path_reads_from_the_current_directory(project: Project) -> None:
    project.write("pipelines/data/t/only.txt", P01)  # one transcript beside the file
    project.write("pipelines/people.csv", "file,participant\nt/only.txt,P01\n")
    project.pipeline(PATHS.replace("      manifest: ${params.manifest}\n", ""), "pipelines/d.yaml")
    beside = project.run("run", "pipelines/d.yaml")
    assert beside.exit_code == 0, beside.stderr
    assert "[documents=1, quarantine=0]" in beside.stdout
    # The project's data/t (two transcripts), relative to the current folder.
    from_cwd = project.run("run", "pipelines/d.yaml", "--set", "ingest.paths=data/t")
    assert from_cwd.exit_code == 0, from_cwd.stderr
    assert "[documents=2, quarantine=0]" in from_cwd.stdout


# -- binding inputs -------------------------------------------------------------------


def _split_run(ctx: StageContext) -> None:
    for batch in ctx.batches("documents"):
        ctx.write("kept", batch)


SPLIT = StageType(
    name="test-split",
    description="Split documents in two (test).",
    mode="whole",
    consumes=["documents"],
    produces=[Output("kept", "documents"), Output("dropped", "documents")],
    run=_split_run,
)


def test_implicit_input_is_the_nearest_earlier_producer(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    stages = resolved(
        project,
        monkeypatch,
        """
        qualpipe: 1
        name: demo
        stages:
          - id: a
            uses: ingest
            with: {paths: data/t}
          - id: b
            uses: ingest
            with: {paths: data/t}
          - id: segment
            uses: segment
          - id: explicit
            uses: segment
            inputs: {documents: a}
        """,
    )
    assert stages["segment"].bindings["documents"].label == "b.documents"
    assert stages["segment"].upstream == ["b"]
    assert stages["explicit"].bindings["documents"].label == "a.documents"


def test_implicit_input_from_a_stage_with_two_outputs_of_the_kind_is_ambiguous(
    project: Project, qualpipe_plugin: Callable[..., str]
) -> None:
    class Plugin:
        @hookimpl
        def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
            register(SPLIT)

    qualpipe_plugin(Plugin(), "test-split")
    text = """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with: {paths: data/t}
          - id: split
            uses: test-split
          - id: segment
            uses: segment
        """
    assert_invalid(
        validate(project, text),
        "pipeline.yaml:9:5: stage 'segment': several inputs provide 'documents' "
        "(split.kept, split.dropped); choose one with inputs: {documents: STAGE.OUTPUT}",
    )
    chosen = validate(project, text + "    inputs: {documents: split.kept}\n")
    assert chosen.exit_code == 0, chosen.stderr


def test_input_can_be_a_dataset_path(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.pipeline(
        """
        qualpipe: 1
        name: first
        stages:
          - id: ingest
            uses: ingest
            with: {paths: data/t}
        """,
        "first.yaml",
    )
    assert project.run("run", "first.yaml").exit_code == 0
    stages = resolved(
        project,
        monkeypatch,
        """
        qualpipe: 1
        name: second
        stages:
          - id: segment
            uses: segment
            inputs: [.qualpipe/first/ingest/documents]
        """,
    )
    binding = stages["segment"].bindings["documents"]
    assert binding.stage is None
    assert binding.path == project.root.resolve() / ".qualpipe/first/ingest/documents"
    assert stages["segment"].sensitive == {"segments": True}


def test_missing_dataset_path_input(project: Project) -> None:
    result = validate(
        project,
        """
        qualpipe: 1
        name: demo
        stages:
          - id: segment
            uses: segment
            inputs: [./missing/documents]
        """,
    )
    missing = project.root.resolve() / "missing" / "documents"
    assert_invalid(
        result,
        f"pipeline.yaml:6:13: stage 'segment': input './missing/documents': {missing}: "
        "no such dataset; check the path (run the pipeline first?)",
    )


# -- sensitive exports ----------------------------------------------------------------


def _export_run(ctx: StageContext) -> None:
    ctx.note("exported", ctx.inputs["documents"].rows)


def _anonymise_batch(batch: pa.RecordBatch, ctx: BatchContext) -> dict[str, Any]:
    table = pa.Table.from_batches([batch])
    flags = pa.array([False] * table.num_rows)
    index = table.schema.get_field_index("sensitive")
    return {"documents": table.set_column(index, "sensitive", flags)}


EXPORT = StageType(
    name="test-export",
    description="Export documents somewhere (test).",
    mode="whole",
    consumes=["documents"],
    run=_export_run,
    export=True,
)
ANONYMISE = StageType(
    name="test-anonymise",
    description="Pretend to anonymise documents (test).",
    mode="batch",
    consumes=["documents"],
    produces=[Output("documents", "documents", sensitive=False)],
    process_batch=_anonymise_batch,
)


class SensitivityPlugin:
    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        register(EXPORT)
        register(ANONYMISE)


@pytest.fixture
def sensitivity_plugin(qualpipe_plugin: Callable[..., str]) -> str:
    return qualpipe_plugin(SensitivityPlugin(), "test-sensitivity")


EXPORT_RAW = """
qualpipe: 1
name: demo
stages:
  - id: ingest
    uses: ingest
    with:
      paths: data/t
  - id: export
    uses: test-export
"""
REFUSED = (
    "pipeline.yaml:8:5: stage 'export' would export sensitive (not anonymised) data from "
    "ingest.documents; anonymise first, or set allow_sensitive: true under with: "
    "if you really mean it"
)


def test_export_of_sensitive_data_is_refused_at_validate_time(
    project: Project, sensitivity_plugin: str
) -> None:
    assert_invalid(validate(project, EXPORT_RAW), REFUSED)


def test_run_refuses_before_running_anything(project: Project, sensitivity_plugin: str) -> None:
    project.pipeline(EXPORT_RAW)
    assert_invalid(project.run("run", "pipeline.yaml"), REFUSED)
    assert not project.workdir("demo").exists()


def test_allow_sensitive_in_the_file(project: Project, sensitivity_plugin: str) -> None:
    result = validate(project, EXPORT_RAW + "    with: {allow_sensitive: true}\n")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "pipeline.yaml: valid (2 stages: ingest, export)\n",
        "",
    )


def test_allow_sensitive_with_set(project: Project, sensitivity_plugin: str) -> None:
    result = validate(project, EXPORT_RAW, "--set", "export.allow_sensitive=true")
    assert result.exit_code == 0, result.stderr
    refused = validate(project, EXPORT_RAW, "--set", "export.allow_sensitive=false")
    assert_invalid(refused, REFUSED)


def test_sensitivity_is_inherited_and_cleared_by_anonymisation(
    project: Project, sensitivity_plugin: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = """
        qualpipe: 1
        name: demo
        stages:
          - id: ingest
            uses: ingest
            with: {paths: data/t}
          - id: anonymise
            uses: test-anonymise
          - id: segment
            uses: segment
          - id: export
            uses: test-export
        """
    stages = resolved(project, monkeypatch, text)
    assert stages["ingest"].sensitive == {"documents": True, "quarantine": True}
    assert stages["anonymise"].sensitive == {"documents": False}
    assert stages["segment"].sensitive == {"segments": False}
    assert stages["export"].bindings["documents"].label == "anonymise.documents"
    assert validate(project, text).exit_code == 0

    raw = validate(project, text + "    inputs: [ingest]\n")
    assert_invalid(
        raw,
        "pipeline.yaml:11:5: stage 'export' would export sensitive (not anonymised) data from "
        "ingest.documents; anonymise first, or set allow_sensitive: true under with: "
        "if you really mean it",
    )


def test_export_of_a_sensitive_dataset_path_is_refused(
    project: Project, sensitivity_plugin: str
) -> None:
    first = EXPORT_RAW.replace("name: demo", "name: first").split("  - id: export")[0]
    project.pipeline(first, "first.yaml")
    assert project.run("run", "first.yaml").exit_code == 0
    result = validate(
        project,
        """
        qualpipe: 1
        name: second
        stages:
          - id: export
            uses: test-export
            inputs: [.qualpipe/first/ingest/documents]
        """,
    )
    path = project.root.resolve() / ".qualpipe/first/ingest/documents"
    assert_invalid(
        result,
        f"pipeline.yaml:4:5: stage 'export' would export sensitive (not anonymised) data from "
        f"{path}; anonymise first, or set allow_sensitive: true under with: "
        "if you really mean it",
    )


def test_allowed_export_runs(project: Project, sensitivity_plugin: str) -> None:
    project.pipeline(EXPORT_RAW + "    with: {allow_sensitive: true}\n")
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.stderr
    assert project.manifest("demo", "export")["stats"] == {"exported": 2}
