"""Codebooks: the YAML format, its errors, versions, the dataset, REFI-QDA .qdc files."""

from __future__ import annotations

import dataclasses
import re
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qualpipe
from qualpipe import qdc
from qualpipe.codebook import (
    Code,
    Codebook,
    codebook_to_yaml,
    infer_level,
    iter_tree,
    level_problem,
    load_codebook,
    load_yaml_codebook,
)
from qualpipe.errors import PipelineError
from qualpipe.qdc import code_guid, parse_qdc, qdc_bytes, qdc_to_yaml, read_qdc, write_qdc
from qualpipe.schemas import CODEBOOK
from qualpipe.testing import Project

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
XSD = SHARED / "refi-qda" / "Codebook.xsd"

FULL = r"""
codebook: 1
name: SIDL test book
description: Every field, at least once.
codes:
  - id: spc
    name: Spontaneous planned complexity
    level: overarching
    description: Plans and spontaneity held together.
    colour: "#59A14F"
    children:
      - id: talking
        name: Talking
        description: |
          Conversation as support.

          A second paragraph.
        inclusion: Talk valued for itself.
        exclusion: Formal assessment talk.
        examples: ["we just chat while we cook", "vi pratar om allt"]
        keywords: [talk, chat, prata, lyssna]
        patterns: ['\bsmall ?talk\b', '\bprata(r|de)?\b']
        color: "#4e79a7"
        children:
          - id: being-heard
            name: Being heard
            examples: she listens
            children:
              - id: listening
                name: Listening
          - id: talking-other
            name: Other
      - id: har-och-dar
        name: Här och där
        level: theme
        keywords: [hemma, ute, affär]
        children:
          - id: place-other
            name: Other
            level: code
"""


def write(tmp_path: Path, text: str, name: str = "book.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture
def full(tmp_path: Path) -> Codebook:
    return load_yaml_codebook(write(tmp_path, FULL))


@pytest.fixture(params=["lxml", "stdlib"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a test with lxml and again with the standard-library fallback."""
    if request.param == "lxml":
        pytest.importorskip("lxml.etree")
    else:
        monkeypatch.setattr(qdc, "_USE_LXML", False)
    yield request.param


# ---------------------------------------------------------------------------- YAML


def test_yaml_loads_every_field(full: Codebook) -> None:
    assert full.name == "SIDL test book"
    assert full.description == "Every field, at least once."
    ids = [c.id for c in full.codes]
    assert ids == [
        "spc", "talking", "being-heard", "listening", "talking-other", "har-och-dar",
        "place-other",
    ]  # fmt: skip
    talking = full.by_id()["talking"]
    assert talking == Code(
        id="talking",
        name="Talking",
        level="theme",
        parent_id="spc",
        description="Conversation as support.\n\nA second paragraph.",
        inclusion="Talk valued for itself.",
        exclusion="Formal assessment talk.",
        examples=["we just chat while we cook", "vi pratar om allt"],
        keywords=["talk", "chat", "prata", "lyssna"],
        patterns=[r"\bsmall ?talk\b", r"\bprata(r|de)?\b"],
        colour="#4e79a7",
        position=0,
    )
    assert full.by_id()["spc"].colour == "#59a14f"  # colours are stored in lower case
    assert full.by_id()["being-heard"].examples == ["she listens"]  # one text is a list
    levels = {c.id: c.level for c in full.codes}
    assert levels == {
        "spc": "overarching", "talking": "theme", "being-heard": "subtheme",
        "listening": "code", "talking-other": "code", "har-och-dar": "theme",
        "place-other": "code",
    }  # fmt: skip
    assert [c.position for c in full.children("talking")] == [0, 1]
    assert full.path_name("listening") == "Spontaneous planned complexity / Talking / " + (
        "Being heard / Listening"
    )
    assert [d for d, _ in iter_tree(full)] == [0, 1, 2, 3, 2, 1, 2]
    full.validate()


def test_name_defaults_to_the_file_name(tmp_path: Path) -> None:
    book = load_codebook(write(tmp_path, "codes: [{id: a, name: A}]", "my-book.yml"))
    assert book.name == "my-book"
    assert book.codes[0].level == "code"


ERRORS: list[tuple[str, str, str]] = [
    (
        "duplicate id",
        """
        codes:
          - {id: talking, name: Talking}
          - {id: talking, name: Talking again}
        """,
        r"book\.yaml:3:\d+: duplicate code id 'talking' \(first at .*book\.yaml:2:\d+\); "
        r"ids must be unique",
    ),
    (
        "duplicate id in a child",
        """
        codes:
          - id: talking
            name: Talking
            children: [{id: talking, name: Inner}]
        """,
        r"duplicate code id 'talking'",
    ),
    (
        "bad colour",
        """
        codes:
          - {id: a, name: A, colour: blue}
        """,
        r"book\.yaml:2:\d+: code 'a': colour must be #RRGGBB, e\.g\. '#4e79a7' \(got 'blue'\)",
    ),
    (
        "short colour",
        """
        codes:
          - {id: a, name: A, color: "#fff"}
        """,
        r"colour must be #RRGGBB.*got '#fff'",
    ),
    (
        "bad regex pattern",
        r"""
        codes:
          - id: a
            name: A
            patterns: ['\bok\b', '\bsmall (talk']
        """,
        r"book\.yaml:4:\d+: code 'a': invalid pattern '\\\\bsmall \(talk': missing \)",
    ),
    (
        "empty pattern",
        """
        codes:
          - {id: a, name: A, patterns: [""]}
        """,
        r"code 'a': a pattern is empty \(it would match everywhere\)",
    ),
    (
        "unknown key",
        """
        codes:
          - id: a
            name: A
            colr: "#ffffff"
        """,
        r"book\.yaml:4:5: code 'a': unknown key 'colr'; did you mean 'colo(u)?r'\?",
    ),
    (
        "unknown top-level key",
        """
        name: x
        cods: []
        codes: [{id: a, name: A}]
        """,
        r"book\.yaml:2:1: unknown key 'cods' in codebook",
    ),
    (
        "missing name",
        """
        codes:
          - id: a
            name: A
            children:
              - id: b
                description: no name here
        """,
        r"book\.yaml:5:\d+: code 'b': name: is required",
    ),
    (
        "missing id",
        """
        codes:
          - name: A
        """,
        r"code #1: id: is required",
    ),
    (
        "id with spaces or non-ASCII letters",
        """
        codes:
          - {id: här och där, name: Här}
        """,
        r"book\.yaml:2:\d+: code 'här och där': id must start with a letter or digit and hold "
        r"only ASCII letters.*"
        r"\(got 'här och där'\)",
    ),
    (
        "duplicate names under a parent",
        """
        codes:
          - id: t
            name: Talking
            children:
              - {id: a, name: Other}
              - {id: b, name: other}
        """,
        r"book\.yaml:6:\d+: codes 'a' and 'b' have the same name path 'Talking / other' "
        r"\(case is ignored\); QDA programs such as QualCoder keep only one",
    ),
    (
        "duplicate top-level names",
        """
        codes:
          - {id: a, name: Talking}
          - {id: b, name: Talking}
        """,
        r"codes 'a' and 'b' have the same name path 'Talking'",
    ),
    (
        "a name that spells another code's path",
        """
        codes:
          - id: t
            name: Talking
            children: [{id: a, name: Other}]
          - {id: b, name: Talking / Other}
        """,
        r"codes 'a' and 'b' have the same name path 'Talking / Other'",
    ),
    (
        "unknown level",
        """
        codes:
          - {id: a, name: A, level: category}
        """,
        r"code 'a': level must be one of overarching, theme, subtheme, code "
        r"\(got 'category'\)",
    ),
    (
        "theme under a theme",
        """
        codes:
          - id: a
            name: A
            level: theme
            children: [{id: b, name: B, level: theme}]
        """,
        r"book\.yaml:5:\d+: code 'b': a theme sits at the top or directly under an "
        r"overarching theme, not under a theme; use level: subtheme or code",
    ),
    (
        "sub-theme at the top",
        """
        codes:
          - {id: a, name: A, level: subtheme}
        """,
        r"code 'a': a sub-theme sits directly under a theme, not at the top of the codebook",
    ),
    (
        "overarching under a theme",
        """
        codes:
          - id: a
            name: A
            children: [{id: b, name: B, level: overarching}]
        """,
        r"code 'b': an overarching theme must be at the top of the codebook, not under a theme",
    ),
    (
        "children not a list",
        """
        codes:
          - {id: a, name: A, children: {id: b, name: B}}
        """,
        r"codes: and children: must be lists of codes",
    ),
    (
        "a code that is not a mapping",
        """
        codes:
          - talking
        """,
        r"code #1: each code is a mapping with id: and name: \(got 'talking'\)",
    ),
    (
        "a name YAML reads as a boolean",
        """
        codes:
          - {id: a, name: no}
        """,
        r"code 'a': expected text, got False; put the value in quotes",
    ),
    (
        "both colour and color",
        """
        codes:
          - {id: a, name: A, colour: "#ffffff", color: "#000000"}
        """,
        r"give colour: or color:, not both",
    ),
    (
        "unsupported format",
        """
        codebook: 2
        codes: [{id: a, name: A}]
        """,
        r"book\.yaml:1:\d+: unsupported codebook format codebook: 2",
    ),
    ("no codes", "codes: []\n", r"book\.yaml' has no codes"),
    ("no codes key", "name: x\n", r"book\.yaml': expected a mapping with codes:"),
    ("empty file", "\n\n", r"book\.yaml' is empty"),
    ("invalid YAML", "codes: [\n  - {id: a\n", r"book\.yaml:\d+:\d+: invalid YAML"),
]


@pytest.mark.parametrize(("text", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_yaml_errors_are_clear(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PipelineError) as info:
        load_codebook(path)
    assert re.search(message, str(info.value)), str(info.value)
    assert str(path) in str(info.value)  # every message names the file
    assert "\n" not in str(info.value)


def test_the_same_name_in_different_branches_is_fine(full: Codebook) -> None:
    others = [c for c in full.codes if c.name == "Other"]
    assert len(others) == 2
    assert {full.path_name(c.id) for c in others} == {
        "Spontaneous planned complexity / Talking / Other",
        "Spontaneous planned complexity / Här och där / Other",
    }


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found; check the path"):
        load_codebook(tmp_path / "nope.yaml")
    other = tmp_path / "book.csv"
    other.write_text("id,name\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"use a \.yaml or a REFI-QDA \.qdc file"):
        load_codebook(other)
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("codes: [{id: a, name: Här}]\n".encode("latin-1"))
    with pytest.raises(PipelineError, match="codebook file is not UTF-8"):
        load_codebook(latin1)


# ---------------------------------------------------------------------------- levels


@pytest.mark.parametrize(
    ("parent", "height", "codable", "level"),
    [
        (None, 0, True, "code"),  # a flat list of codes
        (None, 0, False, "theme"),  # a QualCoder category with no codes yet
        (None, 1, True, "theme"),
        (None, 2, True, "theme"),
        (None, 3, True, "overarching"),
        (None, 7, True, "overarching"),
        ("overarching", 2, True, "theme"),
        ("overarching", 0, True, "code"),
        ("theme", 1, True, "subtheme"),
        ("theme", 4, True, "subtheme"),
        ("subtheme", 1, True, "code"),
        ("code", 2, True, "code"),
        ("code", 0, False, "code"),
    ],
)
def test_infer_level(parent: str | None, height: int, codable: bool, level: str) -> None:
    assert infer_level(parent, height, codable) == level
    assert level_problem(level, parent) is None


def test_levels_are_inferred_from_the_tree_and_nest(tmp_path: Path) -> None:
    deep = """
    codes:
      - id: a
        name: A
        children:
          - id: b
            name: B
            children:
              - id: c
                name: C
                children:
                  - id: d
                    name: D
                    children: [{id: e, name: E}]
      - id: f
        name: F
        children: [{id: g, name: G}]
      - {id: h, name: H}
    """
    book = load_yaml_codebook(write(tmp_path, deep))
    assert [c.level for c in book.codes] == [
        "overarching", "theme", "subtheme", "code", "code", "theme", "code", "code",
    ]  # fmt: skip
    explicit = """
    codes:
      - id: a
        name: A
        level: overarching
        children:
          - id: b
            name: B
            children: [{id: c, name: C}]
    """
    book = load_yaml_codebook(write(tmp_path, explicit))
    assert [c.level for c in book.codes] == ["overarching", "theme", "code"]


def test_validate_checks_programmatic_codebooks() -> None:
    ok = Codebook("b", [Code("a", "A", level="theme"), Code("b", "B", parent_id="a")])
    ok.validate()
    bad = [
        (Codebook("b", [Code("a", "A"), Code("a", "B")]), "duplicate code id 'a'"),
        (Codebook("b", [Code("b", "B", parent_id="a"), Code("a", "A")]), "not an earlier code"),
        (Codebook("b", [Code("a b", "A")]), "id must start"),
        (Codebook("b", [Code("a", " ")]), "name is empty"),
        (Codebook("b", [Code("a", "A", colour="#ABC")]), "colour must be"),
        (Codebook("b", [Code("a", "A", patterns=["("])]), "invalid pattern"),
        (Codebook("b", [Code("a", "A"), Code("b", "a")]), "same name path"),
        (Codebook("b", [Code("a", "A", level="subtheme")]), "sub-theme"),
    ]
    for book, message in bad:
        with pytest.raises(PipelineError, match=message):
            book.validate("here")
        with pytest.raises(PipelineError):
            qdc_bytes(book)  # nothing invalid is exported


# ---------------------------------------------------------------------------- versions


def test_version_is_stable_for_the_same_content(tmp_path: Path, full: Codebook) -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", full.version)
    again = load_yaml_codebook(write(tmp_path, FULL, "again.yaml"))
    assert again.version == full.version
    # the same codes written differently: flow style, comments, colour case, spacing
    reformatted = (
        "# a comment\n"
        + FULL.replace('"#59A14F"', '"#59a14f"')
        .replace("name: SIDL test book", "name: Another label")
        .replace("description: Every field, at least once.", "description: Other words.")
        .replace("keywords: [hemma, ute, affär]", "keywords:\n          - hemma\n"
                 "          - ute\n          - affär")
    )  # fmt: skip
    other = load_yaml_codebook(write(tmp_path, reformatted, "other.yaml"))
    assert other.name == "Another label"
    assert other.version == full.version  # names and descriptions of the book are labels
    assert qdc.read_qdc(write_qdc(full, tmp_path / "b.qdc")).version == full.version
    assert Codebook.from_table(full.to_table()).version == full.version


CHANGES: list[tuple[str, dict[str, Any]]] = [
    ("id", {"id": "talk"}),
    ("name", {"name": "Talk"}),
    ("level", {"level": "code"}),
    ("parent", {"parent_id": None}),
    ("description", {"description": "Conversation as support"}),
    ("inclusion", {"inclusion": "Talk valued."}),
    ("exclusion", {"exclusion": ""}),
    ("examples", {"examples": ["we just chat while we cook"]}),
    ("keywords", {"keywords": ["talk", "chat", "prata", "lyssna", "snacka"]}),
    ("patterns", {"patterns": [r"\bsmall ?talk\b"]}),
    ("colour", {"colour": "#4e79a8"}),
    ("no colour", {"colour": None}),
    ("position", {"position": 3}),
]


@pytest.mark.parametrize("change", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_any_change_to_the_codes_gives_a_new_version(
    full: Codebook, change: dict[str, Any]
) -> None:
    codes = [dataclasses.replace(c, **change) if c.id == "talking" else c for c in full.codes]
    assert Codebook(full.name, codes).version != full.version


def test_order_of_codes_and_added_codes_change_the_version(full: Codebook) -> None:
    swapped = [full.codes[0], full.codes[5], full.codes[6], *full.codes[1:5]]
    assert Codebook(full.name, swapped).version != full.version
    more = [*full.codes, Code("new", "New")]
    assert Codebook(full.name, more).version != full.version
    assert Codebook(full.name, full.codes[:-1]).version != full.version


# ---------------------------------------------------------------------------- dataset


def test_table_round_trip(full: Codebook) -> None:
    table = full.to_table()
    assert table.schema.equals(CODEBOOK.schema)
    assert table.num_rows == len(full.codes)
    assert set(table.column("codebook_version").to_pylist()) == {full.version}
    assert table.column("parent_id").to_pylist()[:2] == [None, "spc"]
    back = Codebook.from_table(table, name=full.name, description=full.description)
    assert back == full
    assert back.version == table.column("codebook_version")[0].as_py()


# ---------------------------------------------------------------------------- YAML writer


def test_codebook_to_yaml_round_trip(tmp_path: Path, full: Codebook) -> None:
    text = codebook_to_yaml(full)
    assert text.startswith("codebook: 1\nname: SIDL test book\n")
    assert "description: |-\n" in text  # multi-line text stays readable
    assert "Här och där" in text  # not escaped
    assert load_yaml_codebook(write(tmp_path, text, "out.yaml")) == full
    assert codebook_to_yaml(load_yaml_codebook(tmp_path / "out.yaml")) == text


def test_the_docs_example_loads_and_round_trips(tmp_path: Path) -> None:
    page = (REPO / "docs" / "codebook.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", page, re.S)
    example = next(b for b in blocks if b.startswith("codebook: 1"))
    book = load_yaml_codebook(write(tmp_path, example, "sidl.yaml"))
    themes = [c.name for c in book.codes if c.level == "theme"]
    assert themes == [
        "Here, there and everywhere", "Doing, being, becoming", "Talking",
        "Order, planning and improvisation",
    ]  # fmt: skip
    assert [c.name for c in book.codes if c.level == "overarching"] == [
        "Spontaneous planned complexity"
    ]
    assert load_yaml_codebook(write(tmp_path, codebook_to_yaml(book), "again.yaml")) == book
    assert read_qdc(write_qdc(book, tmp_path / "sidl.qdc")) == book


# ---------------------------------------------------------------------------- QDC export


def test_qdc_export_validates_against_the_refi_schema(tmp_path: Path, full: Codebook) -> None:
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    path = write_qdc(full, tmp_path / "book.qdc")
    doc = etree.parse(str(path))
    assert schema.validate(doc), schema.error_log
    root = doc.getroot()
    assert root.tag == "{urn:QDA-XML:codebook:1.0}CodeBook"
    assert root.get("origin") == f"qualpipe {qualpipe.__version__}"
    codes = root.findall(".//{urn:QDA-XML:codebook:1.0}Code")
    assert len(codes) == len(full.codes)
    assert {c.get("isCodable") for c in codes} == {"true"}
    colours = [c.get("color") for c in codes if c.get("color")]
    assert colours == ["#59A14F", "#4E79A7"]
    assert all(re.fullmatch(r"#[0-9A-F]{6}", c) for c in colours)
    # nesting follows the tree
    spc = root.find("{*}Codes/{*}Code")
    assert spc is not None and spc.get("name") == "Spontaneous planned complexity"
    assert [c.get("name") for c in spc.findall("{*}Code")] == ["Talking", "Här och där"]


def test_qdc_export_of_awkward_text_still_validates(tmp_path: Path) -> None:
    etree = pytest.importorskip("lxml.etree")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    book = Codebook(
        name='Book -- with "quotes" & <tags>',
        description="A comment may not hold -- or end in -",
        codes=[
            Code("a", 'A & B <c> "d"', level="theme", description="x\x00y\x1b -- ]]> &amp;"),
            Code("b", "Tab\there", parent_id="a", keywords=["a, b", ""], examples=["1\n2"]),
        ],
    )
    data = qdc_bytes(book)
    assert schema.validate(etree.fromstring(data)), schema.error_log
    back = parse_qdc(data, "awkward.qdc")
    assert back.name == book.name and back.description == book.description
    # characters XML cannot hold are left out of the readable text, kept in the marker
    assert "\x00" not in data.decode("utf-8")
    assert back.codes == book.codes


def test_qdc_export_is_deterministic_and_guids_are_stable(tmp_path: Path, full: Codebook) -> None:
    data = qdc_bytes(full)
    assert data == qdc_bytes(full)
    assert write_qdc(full, tmp_path / "a.qdc").read_bytes() == data
    assert data.startswith(b'<?xml version="1.0" encoding="utf-8"?>\n<CodeBook')
    assert b"\r" not in data and not data.startswith(b"\xef\xbb\xbf")
    text = data.decode("utf-8")
    guids = re.findall(r'guid="([^"]+)"', text)
    assert guids == [code_guid(full.name, c.id) for c in full.codes]
    assert all(uuid.UUID(g).version == 5 for g in guids)
    assert len(set(guids)) == len(guids)
    renamed = dataclasses.replace(full, name="Another book")
    assert re.findall(r'guid="([^"]+)"', qdc_bytes(renamed).decode())[0] != guids[0]
    # a changed description keeps every GUID
    codes = [dataclasses.replace(c, description="changed") for c in full.codes]
    assert re.findall(r'guid="([^"]+)"', qdc_bytes(Codebook(full.name, codes)).decode()) == guids


def test_qdc_descriptions_are_readable(full: Codebook) -> None:
    text = qdc_bytes(full).decode("utf-8")
    talking = text[text.index('name="Talking"') :]
    description = talking[talking.index("<Description>") + 13 : talking.index("</Description>")]
    assert description == textwrap.dedent(
        """\
        Conversation as support.

        A second paragraph.

        Inclusion: Talk valued for itself.

        Exclusion: Formal assessment talk.

        Examples:
        - we just chat while we cook
        - vi pratar om allt

        Keywords: talk, chat, prata, lyssna

        Patterns:
        - \\bsmall ?talk\\b
        - \\bprata(r|de)?\\b

        qualpipe: {"id": "talking", "level": "theme"}"""
    )


def test_repeated_names_are_written_as_path_tails(full: Codebook) -> None:
    text = qdc_bytes(full).decode("utf-8")
    names = re.findall(r'<Code guid="[^"]+" name="([^"]+)"', text)
    assert "Talking / Other" in names and "Här och där / Other" in names
    assert "Other" not in names
    assert len({n.casefold() for n in names}) == len(names)  # QualCoder keeps them all
    assert '"name": "Other"' in text


def test_path_tails_grow_until_unique() -> None:
    book = Codebook(
        "b",
        [
            Code("a", "A", level="theme"),
            Code("x", "X", parent_id="a"),
            Code("x-other", "Other", parent_id="x"),
            Code("b", "B", level="theme", position=1),
            Code("x2", "X", parent_id="b"),
            Code("x2-other", "Other", parent_id="x2"),
            Code("root-x-other", "X / Other", position=2),
        ],
    )
    names = re.findall(r'<Code guid="[^"]+" name="([^"]+)"', qdc_bytes(book).decode())
    assert names == ["A", "A / X", "A / X / Other", "B", "B / X", "B / X / Other", "X / Other"]
    assert parse_qdc(qdc_bytes(book), "b.qdc") == book


# ---------------------------------------------------------------------------- QDC round trip


def test_qdc_round_trip(tmp_path: Path, full: Codebook, parser: str) -> None:
    first = write_qdc(full, tmp_path / "first.qdc")
    back = read_qdc(first)
    assert back == full
    assert back.version == full.version
    second = write_qdc(back, tmp_path / "second.qdc")
    assert second.read_bytes() == first.read_bytes()
    assert load_codebook(second) == full
    yaml_text = qdc_to_yaml(second)
    assert load_yaml_codebook(write(tmp_path, yaml_text, "from-qdc.yaml")) == full


TEXT = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "Inclusion: ",
                "Exclusion: ",
                "Examples:",
                "Keywords: ",
                "Patterns:",
                "qualpipe: ",
                '{"id": "x"}',
                "- ",
                "-",
                "  ",
                "\n",
                "\n\n",
                ", ",
                ",",
                "å",
                "ö",
                "Ä",
                "&",
                "<",
                "]]>",
                "--",
                "\t",
                "\u2028",
                "😀",
            ]
        ),
        st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=5),
    ),
    max_size=12,
).map("".join)
STRIPPED = TEXT.map(str.strip)
ITEMS = st.lists(TEXT, max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    description=STRIPPED,
    inclusion=STRIPPED,
    exclusion=TEXT,
    examples=ITEMS,
    keywords=ITEMS,
    patterns=st.lists(st.sampled_from([r"\bok\b", " ok ", "a,b", r"x\n", "-"]), max_size=3),
)
def test_any_text_survives_the_qdc_round_trip(
    description: str,
    inclusion: str,
    exclusion: str,
    examples: list[str],
    keywords: list[str],
    patterns: list[str],
) -> None:
    code = Code(
        "c", "Code", "theme", None, description, inclusion, exclusion, examples, keywords,
        patterns,
    )  # fmt: skip
    book = Codebook("b", [code, Code("d", "Child", parent_id="c", description=description)])
    data = qdc_bytes(book)
    assert parse_qdc(data, "b.qdc") == book
    assert qdc_bytes(parse_qdc(data, "b.qdc")) == data


# ---------------------------------------------------------------------------- QDC import

NVIVO = (
    "\ufeff"
    + textwrap.dedent(
        """\
        <?xml version="1.0" encoding="utf-8"?>
        <CodeBook origin="NVivo 12.6.0.959" xmlns="urn:QDA-XML:codebook:1.0">
          <Codes>
            <Code guid="{6F1B1D70-8E66-4D4D-9A2D-1C57A1B7E001}" name="Här, där och överallt"
                  isCodable="true">
              <Description>Stöd som följer personen
        mellan platser.</Description>
              <Code guid="6f1b1d70-8e66-4d4d-9a2d-1c57a1b7e002" name="Hemma" isCodable="true" />
              <Code guid="6f1b1d70-8e66-4d4d-9a2d-1c57a1b7e003" name="Ute på stan" isCodable="true">
                <Description>Affärer, bussen, promenader.</Description>
              </Code>
            </Code>
            <Code guid="6f1b1d70-8e66-4d4d-9a2d-1c57a1b7e004" name="Att prata" isCodable="true">
              <Description />
              <Code guid="6f1b1d70-8e66-4d4d-9a2d-1c57a1b7e005" name="Bli hörd" isCodable="true">
                <Code guid="6f1b1d70-8e66-4d4d-9a2d-1c57a1b7e006" name="Lyssna" isCodable="true" />
              </Code>
              <Code guid="6f1b1d70-8e66-4d4d-9a2d-1c57a1b7e007" name="Hemma" isCodable="true" />
            </Code>
            <Code guid="6f1b1d70-8e66-4d4d-9a2d-1c57a1b7e008" name="Övrigt" isCodable="true" />
          </Codes>
        </CodeBook>
        """
    ).replace("\n", "\r\n")
).encode("utf-8")

QUALCODER = b"""<?xml version="1.0" encoding="utf-8"?>
<CodeBook xmlns="urn:QDA-XML:codebook:1.0"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
 xsi:schemaLocation="urn:QDA-XML:codebook:1.0 Codebook.xsd" origin="QualCoder 3.5">
<Codes>
<Code guid="00000000-0000-4000-8000-000000000001" name="Doing, being, becoming" isCodable="false">
<Description>Support as doing, being with and becoming.</Description>
<Code guid="00000000-0000-4000-8000-000000000002" name="Doing together" isCodable="false">
<Code guid="00000000-0000-4000-8000-000000000003" name="Baking" isCodable="true" color="#F0A0F0">
<Description>Baking together on Fridays.</Description>
</Code>
<Code guid="00000000-0000-4000-8000-000000000004" name="Cleaning" isCodable="true" color="#9B9B9B"/>
</Code>
</Code>
<Code guid="00000000-0000-4000-8000-000000000005" name="Empty category" isCodable="false"/>
<Code guid="00000000-0000-4000-8000-000000000006" name="Talking" isCodable="true" color="#4E79A7"/>
</Codes>
<Sets>
<Set guid="00000000-0000-4000-8000-000000000007" name="Daily life">
<MemberCode guid="00000000-0000-4000-8000-000000000003"/>
</Set>
</Sets>
</CodeBook>
"""

# no declaration, 3-digit and unreadable colours, unknown elements, a prefixed namespace
MAXQDA_LIKE = b"""<qdc:CodeBook xmlns:qdc="urn:QDA-XML:codebook:1.0" origin="MAXQDA 2022">
<qdc:Codes>
<qdc:Code guid="00000000-0000-4000-8000-0000000000a1" name="Order" isCodable="true" color="#F80">
<qdc:Extension vendor="x"><qdc:Whatever/></qdc:Extension>
<qdc:Code guid="00000000-0000-4000-8000-0000000000a2" name="Plans" isCodable="true" color="red"/>
<qdc:Code guid="00000000-0000-4000-8000-0000000000a3" name="Plans" isCodable="true"/>
</qdc:Code>
</qdc:Codes>
</qdc:CodeBook>
"""

PROJECT = b"""<?xml version="1.0" encoding="utf-8"?>
<Project xmlns="urn:QDA-XML:project:1.0" name="SIDL project" origin="NVivo 14">
<Users><User guid="00000000-0000-4000-8000-0000000000b1" name="A"/></Users>
<CodeBook><Codes>
<Code guid="00000000-0000-4000-8000-0000000000b2" name="Talking" isCodable="true"/>
</Codes></CodeBook>
<Sources/>
</Project>
"""


def write_bytes(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_import_nvivo_style(tmp_path: Path, parser: str) -> None:
    book = read_qdc(write_bytes(tmp_path, "nvivo-export.qdc", NVIVO))
    assert book.name == "nvivo-export"
    assert [(c.id, c.name, c.level, c.parent_id) for c in book.codes] == [
        ("har-dar-och-overallt", "Här, där och överallt", "theme", None),
        ("hemma", "Hemma", "code", "har-dar-och-overallt"),
        ("ute-pa-stan", "Ute på stan", "code", "har-dar-och-overallt"),
        ("att-prata", "Att prata", "theme", None),
        ("bli-hord", "Bli hörd", "subtheme", "att-prata"),
        ("lyssna", "Lyssna", "code", "bli-hord"),
        ("hemma-2", "Hemma", "code", "att-prata"),
        ("ovrigt", "Övrigt", "code", None),
    ]
    first = book.codes[0]
    assert first.description == "Stöd som följer personen\nmellan platser."  # CRLF gone
    assert all(c.colour is None for c in book.codes)
    assert book.codes[3].description == ""
    # and it goes back out as a valid, importable file that keeps ids and levels
    again = read_qdc(write_qdc(book, tmp_path / "again.qdc"))
    assert again == dataclasses.replace(book, name="nvivo-export")


def test_import_qualcoder_style(tmp_path: Path, parser: str) -> None:
    book = read_qdc(write_bytes(tmp_path, "qualcoder.qdc", QUALCODER))
    got = [(c.id, c.level, c.parent_id, c.colour) for c in book.codes]
    assert got == [
        ("doing-being-becoming", "theme", None, None),
        ("doing-together", "subtheme", "doing-being-becoming", None),
        ("baking", "code", "doing-together", "#f0a0f0"),
        ("cleaning", "code", "doing-together", "#9b9b9b"),
        ("empty-category", "theme", None, None),  # a category, even with no codes yet
        ("talking", "code", None, "#4e79a7"),
    ]
    assert book.by_id()["baking"].description == "Baking together on Fridays."
    assert [c.position for c in book.codes] == [0, 0, 0, 1, 1, 2]


def test_import_maxqda_like_file(tmp_path: Path, parser: str) -> None:
    book = read_qdc(write_bytes(tmp_path, "maxqda.qdc", MAXQDA_LIKE))
    assert [(c.id, c.name, c.level, c.colour) for c in book.codes] == [
        ("order", "Order", "theme", "#ff8800"),
        ("plans", "Plans", "code", None),
        ("plans-2", "Plans (2)", "code", None),  # kept, where QualCoder would drop it
    ]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Här och där", "har-och-dar"),
        ("Doing, being, becoming", "doing-being-becoming"),
        ("Straße / Øl & Æble", "strasse-ol-aeble"),
        ("  --  ", "code"),
        ("会話", "code"),
    ],
)
def test_slugs_are_ascii_ids(name: str, expected: str) -> None:
    assert qdc.slug(name) == expected


def test_import_a_project_file(tmp_path: Path, parser: str) -> None:
    book = read_qdc(write_bytes(tmp_path, "project.qde.qdc", PROJECT))
    assert book.name == "SIDL project"
    assert [(c.id, c.level) for c in book.codes] == [("talking", "code")]


def test_import_keeps_marker_ids_but_not_stale_levels(tmp_path: Path, full: Codebook) -> None:
    text = qdc_bytes(full).decode("utf-8")
    # the marker of "Här och där" no longer fits where it sits (as after a move in a QDA
    # program), and Talking's description, marker and all, was copied onto a new code
    moved = text.replace(
        '"id": "har-och-dar", "level": "theme"', '"id": "har-och-dar", "level": "overarching"'
    )
    copied = moved.replace(
        "</Codes>",
        '  <Code guid="00000000-0000-4000-8000-0000000000c1" name="Copy" isCodable="true">'
        '<Description>qualpipe: {"id": "talking", "level": "theme"}</Description></Code>\n'
        "  </Codes>",
    )
    book = parse_qdc(copied.encode(), "edited.qdc")
    assert book.by_id()["har-och-dar"].level == "theme"  # overarching no longer fits
    assert book.codes[-1].id == "copy"  # "talking" was taken first
    assert book.codes[-1].level == "theme"  # its marker level still fits at the top


BAD_FILES: list[tuple[str, bytes, str]] = [
    ("plain text", b"Talking\nBeing heard\n", "is not a readable XML file"),
    ("binary", bytes(range(256)), "is not a readable XML file"),
    ("empty", b"", "is empty"),
    ("truncated", QUALCODER[: len(QUALCODER) // 2], "is not a readable XML file"),
    ("html", b"<html><body><p>codes</p></body></html>", "root element is <html>"),
    (
        "another namespace",
        b'<CodeBook xmlns="urn:example:other"><Codes/></CodeBook>',
        "not a REFI-QDA codebook",
    ),
    ("no Codes", b'<CodeBook xmlns="urn:QDA-XML:codebook:1.0"/>', "has no <Codes> element"),
    ("no codes", b'<CodeBook xmlns="urn:QDA-XML:codebook:1.0"><Codes/></CodeBook>', "no codes"),
    (
        "a code without a name",
        b'<CodeBook xmlns="urn:QDA-XML:codebook:1.0"><Codes><Code guid="x" isCodable="true"/>'
        b"</Codes></CodeBook>",
        "code #1 (guid 'x') has no name",
    ),
    (
        "project without a codebook",
        b'<Project xmlns="urn:QDA-XML:project:1.0" name="p"><Sources/></Project>',
        "project without a codebook",
    ),
]


@pytest.mark.parametrize(
    ("data", "message"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES]
)
def test_garbage_files_are_refused_naming_the_file(
    tmp_path: Path, parser: str, data: bytes, message: str
) -> None:
    path = write_bytes(tmp_path, "broken.qdc", data)
    with pytest.raises(PipelineError) as info:
        load_codebook(path)
    assert message in str(info.value)
    assert str(path) in str(info.value)


def test_swedish_names_survive_every_route(tmp_path: Path, parser: str) -> None:
    text = """
    name: Stöd i vardagen
    description: Kodbok på svenska – å ä ö Å Ä Ö
    codes:
      - id: har-och-dar
        name: Här och där
        description: Stöd som följer personen överallt.
        inclusion: När stödet sker på olika ställen.
        examples: ["vi åker till affären", "ärligt talat"]
        keywords: [hemma, ute, åka, köpa]
        children:
          - id: oversikt
            name: Översikt, ordning och åtaganden
    """
    book = load_yaml_codebook(write(tmp_path, text))
    data = write_qdc(book, tmp_path / "svenska.qdc").read_bytes()
    assert "Översikt, ordning och åtaganden".encode() in data  # real UTF-8, not escapes
    back = read_qdc(tmp_path / "svenska.qdc")
    assert back == book
    assert back.name == "Stöd i vardagen" and back.description.endswith("å ä ö Å Ä Ö")
    assert load_yaml_codebook(write(tmp_path, codebook_to_yaml(back), "tillbaka.yaml")) == book
    assert Codebook.from_table(book.to_table(), book.name, book.description) == book


# ---------------------------------------------------------------------------- the stage


def test_codebook_stage_end_to_end(qualpipe_project: Project, full: Codebook) -> None:
    qp = qualpipe_project
    yaml_path = qp.write("codebooks/sidl.yaml", FULL)
    write_qdc(full, qp.root / "codebooks" / "sidl.qdc")
    qp.write("codebooks/nvivo.qdc", NVIVO)
    pipe = qp.pipeline(
        """
        qualpipe: 1
        name: books
        stages:
          - id: from_yaml
            uses: codebook
            with: {path: codebooks/sidl.yaml}
          - id: from_qdc
            uses: codebook
            with: {path: codebooks/sidl.qdc}
          - id: from_nvivo
            uses: codebook
            with: {path: codebooks/nvivo.qdc}
        """
    )
    result = qp.run("run", pipe)
    assert result.exit_code == 0, result.output
    expected = load_codebook(yaml_path).version
    assert expected == full.version
    for stage in ("from_yaml", "from_qdc"):
        table = qp.dataset("books", stage, "codebook")
        assert table.schema.equals(CODEBOOK.schema)
        assert table.num_rows == len(full.codes)
        assert set(table.column("codebook_version").to_pylist()) == {expected}
        assert table.column("code_id").to_pylist() == [c.id for c in full.codes]
        assert Codebook.from_table(table, full.name, full.description) == full
        assert qp.manifest("books", stage)["stats"] == {
            "codes": 7,
            "codebook_version": expected,
            "codebook_name": full.name,
            "codebook_description": full.description,
        }
    nvivo = qp.dataset("books", "from_nvivo", "codebook")
    assert nvivo.column("name").to_pylist()[0] == "Här, där och överallt"
    nvivo_version = read_qdc(qp.root / "codebooks" / "nvivo.qdc").version
    assert set(nvivo.column("codebook_version").to_pylist()) == {nvivo_version}
    # unchanged files: nothing re-runs; an edited codebook re-runs with a new version
    again = qp.run("run", pipe)
    assert again.exit_code == 0 and "0 ran" in again.output, again.output
    qp.write("codebooks/sidl.yaml", FULL.replace("Talk valued for itself.", "Talk for itself."))
    assert qp.run("run", pipe).exit_code == 0
    table = qp.dataset("books", "from_yaml", "codebook")
    assert set(table.column("codebook_version").to_pylist()) != {expected}


def test_codebook_stage_reports_a_broken_file(qualpipe_project: Project) -> None:
    qp = qualpipe_project
    qp.write("book.qdc", b"not xml")
    pipe = qp.pipeline(
        """
        qualpipe: 1
        name: broken
        stages:
          - id: book
            uses: codebook
            with: {path: book.qdc}
        """
    )
    result = qp.run("run", pipe)
    assert result.exit_code != 0
    assert "book.qdc" in result.output and "is not a readable XML file" in result.output
