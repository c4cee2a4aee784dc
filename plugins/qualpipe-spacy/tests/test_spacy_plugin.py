"""The spacy-ner recogniser, with a small rule-based spaCy pipeline built in the test.

No trained model is needed (or downloaded): ``spacy.blank("en")`` plus an
``entity_ruler`` stands in for one, saved to a directory and loaded through
``QUALPIPE_SPACY_MODEL`` exactly as a real pipeline would be.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import spacy
from qualpipe.anonymise.recognisers import RecogniserContext, Span
from qualpipe.testing import Project, invoke

import qualpipe_spacy.plugin as plugin
from qualpipe_spacy.plugin import ENV_VAR, NAME, chunks, find, setup

PATTERNS = [
    ("PERSON", "Karin Lindqvist"),
    ("PER", "Oskar"),
    ("PRS", "Gunilla"),
    ("GPE", "Sandviken"),
    ("LOC", "Storsjön"),
    ("FAC", "Arlanda"),
    ("ORG", "Brynäs Vårdcentral"),
    ("DATE", "last Tuesday"),
    ("NORP", "Finnish"),
    ("PRODUCT", "Volvo"),  # not mapped: ignored
    ("EVENT", "Midsummer"),  # not mapped: ignored
]
EXPECTED_TYPES = {
    "Karin Lindqvist": "PERSON",
    "Oskar": "PERSON",
    "Gunilla": "PERSON",
    "Sandviken": "PLACE",
    "Storsjön": "PLACE",
    "Arlanda": "PLACE",
    "Brynäs Vårdcentral": "ORG",
    "last Tuesday": "DATE",
    "Finnish": "DEM",
}


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    plugin.clear_model_cache()
    yield
    plugin.clear_model_cache()


@pytest.fixture
def model_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A saved rule-based pipeline, selected with QUALPIPE_SPACY_MODEL."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": label, "pattern": text} for label, text in PATTERNS])  # type: ignore[attr-defined]
    path = tmp_path / "model"
    nlp.to_disk(path)
    monkeypatch.setenv(ENV_VAR, str(path))
    return path


def spans_of(text: str, options: dict[str, Any] | None = None) -> list[Span]:
    state = setup(options or {})
    return sorted(find(text, RecogniserContext(doc_id="d1", state=state)))


def expected_spans(text: str) -> list[Span]:
    out = []
    for value, etype in EXPECTED_TYPES.items():
        for m in re.finditer(re.escape(value), text):
            out.append(Span(m.start(), m.end(), etype, NAME, 0.8))
    return sorted(out)


TEXT = (
    "P01: Karin Lindqvist works at Brynäs Vårdcentral in Sandviken. She is Finnish.\n"
    "Oskar and Gunilla flew from Arlanda last Tuesday and swam in Storsjön.\n"
    "We drove the Volvo home after Midsummer."
)


def test_spans_and_types(model_dir: Path) -> None:
    spans = spans_of(TEXT)
    assert spans == expected_spans(TEXT)
    assert {TEXT[s.start : s.end]: s.entity_type for s in spans} == EXPECTED_TYPES
    assert all(s.recogniser == "spacy-ner" and s.score == 0.8 for s in spans)
    assert not any(TEXT[s.start : s.end] in ("Volvo", "Midsummer") for s in spans)


def test_recogniser_metadata() -> None:
    r = plugin.SPACY_NER
    assert (r.name, r.priority, r.version) == ("spacy-ner", 65, "1")
    assert set(r.entity_types) == {"PERSON", "PLACE", "ORG", "DATE", "DEM"}
    assert r.setup is setup and r.find is find


def test_model_is_loaded_once_per_process_without_unneeded_parts(model_dir: Path) -> None:
    first = setup({})
    assert first.nlp is not None and first.name == str(model_dir)
    assert setup({}) is first
    assert first.nlp.pipe_names == ["entity_ruler"]


def test_option_wins_over_the_environment(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "elsewhere"))
    assert plugin.model_names({"spacy_model": str(model_dir)}) == (
        (str(model_dir),),
        "the anonymise option spacy_model",
    )
    assert spans_of(TEXT, {"spacy_model": str(model_dir)}) == expected_spans(TEXT)
    monkeypatch.delenv(ENV_VAR)
    assert plugin.model_names({}) == (plugin.DEFAULT_MODELS, "the default")
    assert plugin.DEFAULT_MODELS == ("sv_core_news_sm", "en_core_web_sm")


def test_unused_shared_embedding_is_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a pipeline shaped like the trained ones: a tok2vec only the (excluded) tagger uses
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec")
    nlp.add_pipe(
        "tagger",
        config={
            "model": {
                "@architectures": "spacy.Tagger.v2",
                "tok2vec": {"@architectures": "spacy.Tok2VecListener.v1", "width": 96},
            }
        },
    )
    nlp.get_pipe("tagger").add_label("NN")  # type: ignore[attr-defined]
    nlp.initialize()
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "Karin Lindqvist"}])  # type: ignore[attr-defined]
    assert nlp.get_pipe("tok2vec").listening_components == ["tagger"]  # type: ignore[attr-defined]
    nlp.to_disk(tmp_path / "m")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "m"))
    model = setup({})
    assert model.nlp is not None and model.nlp.pipe_names == ["entity_ruler"]
    assert spans_of("Hi Karin Lindqvist.") == [Span(3, 18, "PERSON", NAME, 0.8)]


@pytest.mark.parametrize("limit", [1, 7, 40, 1000])
def test_chunks_cover_the_text_at_paragraph_breaks(limit: int) -> None:
    text = "First para.\n\nSecond, longer paragraph\nwith two lines.\n \nThird." * 3
    pieces = list(chunks(text, limit))
    assert "".join(p for _, p in pieces) == text
    assert all(text[o : o + len(p)] == p and 0 < len(p) <= limit for o, p in pieces)
    if limit == 40:
        assert pieces[0] == (0, "First para.\n\n")
        assert all(p.endswith(("\n", " ")) for _, p in pieces[:-1])
    assert list(chunks("", 5)) == []
    assert list(chunks("abcdefgh", 3)) == [(0, "abc"), (3, "def"), (6, "gh")]


def test_offsets_are_right_across_chunk_boundaries(model_dir: Path) -> None:
    paragraphs = []
    for i in range(40):
        filler = "x " * (i % 7)
        paragraphs.append(f"{filler}P{i:02d}: Karin Lindqvist met Oskar in Sandviken.")
    # a paragraph longer than a chunk, cut at line breaks and spaces
    paragraphs.append(
        "Then\n" + " ".join(["Sandviken", "Storsjön", "Arlanda", "Gunilla", "Finnish"] * 8)
    )
    text = "\n\n".join(paragraphs) + "\n"
    model = setup({})
    assert model.nlp is not None
    model.nlp.max_length = 80  # tiny: forces many chunks; spaCy itself refuses longer texts
    pieces = list(chunks(text, 80))
    assert len(pieces) > 40
    spans = spans_of(text)
    assert spans == expected_spans(text)
    assert len(spans) == 40 * 3 + 40
    for s in spans:
        assert text[s.start : s.end] in EXPECTED_TYPES


def test_pipeline_run_replaces_the_names(
    model_dir: Path,
    qualpipe_project: Project,
    qualpipe_plugin: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the installed copy (if any) stays out, so this test sees exactly the module below
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "spacy")
    qualpipe_plugin(plugin)
    qualpipe_project.write(
        "data/a.txt",
        """
        Interviewer: Who helps you?

        P01: Karin Lindqvist, from Brynäs Vårdcentral in Sandviken. Karin is kind.
        We drove the Volvo there last Tuesday.
        """,
    )
    pipe = qualpipe_project.pipeline(
        """
        qualpipe: 1
        name: sp
        stages:
          - {id: ingest, uses: ingest, with: {paths: data}}
          - id: anonymise
            uses: anonymise
            with:
              key: ../keys/sp.key.json
              recognisers: [spacy-ner]
        """
    )
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 0, result.stderr
    (doc,) = qualpipe_project.dataset("sp", "anonymise", "documents").to_pylist()
    text = doc["text"]
    for original in ("Karin", "Lindqvist", "Brynäs", "Sandviken", "last Tuesday"):
        assert original not in text, original
    assert "Volvo" in text  # PRODUCT is not an identifier type here
    assert "[PERSON 1], from [ORG 1] in [PLACE 1]. [PERSON 1] is kind." in text
    # spacy-ner was the only recogniser: every value replaced was found by it (findings
    # name "propagation": at equal priority the corpus-wide pass scores higher, 1.0)
    findings = qualpipe_project.dataset("sp", "anonymise", "findings").to_pylist()
    assert {f["entity_type"] for f in findings} == {"PERSON", "ORG", "PLACE", "DATE"}
    comps = qualpipe_project.manifest("sp", "anonymise")["components"]["components"]
    assert comps["recogniser"]["spacy-ner"] == f"qualpipe_spacy.plugin@{plugin.__version__}/1"


def test_no_model_finds_nothing_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(plugin, "DEFAULT_MODELS", ("qualpipe_test_none_sm", "qualpipe_test_nil_sm"))
    with caplog.at_level(logging.WARNING, logger="qualpipe_spacy"):
        for _ in range(3):
            state = setup({})
            assert state.nlp is None
            for doc in ("Karin Lindqvist lives in Sandviken.", "Oskar too."):
                assert list(find(doc, RecogniserContext(state=state))) == []
    warnings = [r for r in caplog.records if r.name == "qualpipe_spacy"]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert warnings[0].levelno == logging.WARNING
    assert "spacy-ner finds nothing" in message
    assert "qualpipe_test_none_sm, qualpipe_test_nil_sm" in message
    assert ENV_VAR in message and "python -m spacy download qualpipe_test_none_sm" in message
    assert "Karin" not in message


def test_missing_configured_model_warns_without_falling_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "no-such-model"))
    with caplog.at_level(logging.WARNING, logger="qualpipe_spacy"):
        state = setup({})
        assert list(find("Karin Lindqvist.", RecogniserContext(state=state))) == []
        setup({})
    (record,) = [r for r in caplog.records if r.name == "qualpipe_spacy"]
    message = record.getMessage()
    assert "cannot load the spaCy pipeline" in message and "no-such-model" in message
    assert f"from the environment variable {ENV_VAR}" in message
    assert "python -m spacy download sv_core_news_sm" in message


def test_no_model_does_not_stop_a_run(
    qualpipe_project: Project, qualpipe_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "spacy")
    monkeypatch.setenv(ENV_VAR, str(qualpipe_project.root / "missing-model"))
    qualpipe_plugin(plugin)
    qualpipe_project.write("data/a.txt", "Interviewer: Hello.\n\nP01: Hello there.\n")
    pipe = qualpipe_project.pipeline(
        """
        qualpipe: 1
        name: sp
        stages:
          - {id: ingest, uses: ingest, with: {paths: data}}
          - id: anonymise
            uses: anonymise
            with: {key: ../keys/sp.key.json, recognisers: [spacy-ner]}
        """
    )
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 0, result.stderr


def test_listed_by_qualpipe_plugins_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        dist = importlib.metadata.distribution("qualpipe-spacy")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "qualpipe-spacy is not installed (pip install -e plugins/qualpipe-spacy): "
            "entry-point discovery cannot be tested"
        )
    monkeypatch.delenv("QUALPIPE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("QUALPIPE_LOAD_PLUGINS", raising=False)
    result = invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    by_name = {p["name"]: p for p in result.json()["plugins"]}
    assert by_name["spacy"] == {
        "name": "spacy",
        "version": dist.version,
        "source": "entrypoint",
        "distribution": "qualpipe-spacy",
        "hooks": ["qualpipe_register_recognisers"],
        "provides": {"recogniser": ["spacy-ner"]},
        "error": None,
    }
