"""REFI-QDA exports (.qdpx project, .qdc codebook): schema, QDA-program guards, round trip."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pytest

import qualpipe
from qualpipe.codebook import Codebook
from qualpipe.coding.human import import_codings, read_qdpx
from qualpipe.errors import DatasetError, PipelineError
from qualpipe.export.refi import QDC, QDPX, build_qdpx, export_qdpx
from qualpipe.exporters import ExportBundle
from qualpipe.qdc import read_qdc
from qualpipe.schemas import CODEBOOK, CODINGS, DOCUMENTS, SEGMENTS
from qualpipe.store import DatasetReader, open_dataset
from qualpipe.testing import Project

etree = pytest.importorskip("lxml.etree")

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PROJECT_XSD = SHARED / "refi-qda" / "Project.xsd"
CODEBOOK_XSD = SHARED / "refi-qda" / "Codebook.xsd"
Q = "{urn:QDA-XML:project:1.0}"

P01 = """\
Intervjuare: Hur går det med stödet hemma?

IP: Det går bra 😀 jag heter Gunilla Ek och pratar med min assistent om allt. Vi åt smörgås på ön.

Intervjuare: Och maten?

IP: Maten är god, vi lagar mat tillsammans i köket och pratar mycket. 🍲 Det är skönt.
"""

W01 = """\
Interviewer: How is the support?

P02: I am Hans Berg. I talk to the people every day 🙂 and we cook together. The food is nice.
"""

PARTICIPANTS = """\
file,participant,role,pair,name
t/p01.txt,P01,Service user,A,Gunilla Ek
t/w01.txt,W01,Support worker,A,Hans Berg
"""

CODEBOOK_YAML = """\
codebook: 1
name: SIDL test
codes:
  - id: talking
    name: Talking
    level: theme
    colour: "#4e79a7"
    children:
      - id: being-heard
        name: Being heard
        level: subtheme
        keywords: [prata, talk]
      - id: other-talk
        name: Other
        level: subtheme
  - id: food
    name: Food
    level: theme
    keywords: [mat, smörgås, food, cook]
    children:
      - id: other-food
        name: Other
        level: subtheme
"""

STAGES = """\
  - id: segment
    uses: segment
    with: {drop_speakers: [Interviewer, Intervjuare]}
  - id: codebook
    uses: codebook
    with: {path: codebook.yaml}
  - id: code
    uses: code
    with: {coders: [rules]}
  - id: export
    uses: export
    with: {formats: [qdpx, qdc]}
"""

PIPELINE = (
    """\
qualpipe: 1
name: refi
stages:
  - id: ingest
    uses: ingest
    with: {paths: data/t, manifest: data/participants.csv}
  - id: anonymise
    uses: anonymise
    with: {key: ../keys/anon.key.json}
"""
    + STAGES
)

REAL_NAMES = ("Gunilla", "Hans Berg", "Berg")


def write_inputs(qp: Project) -> None:
    qp.write("data/t/p01.txt", P01)
    qp.write("data/t/w01.txt", W01)
    qp.write("data/participants.csv", PARTICIPANTS)
    qp.write("codebook.yaml", CODEBOOK_YAML)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """One real pipeline run (ingest .. export), shared by the tests of this module."""
    root = tmp_path_factory.mktemp("refi") / "project"
    root.mkdir()
    qp = Project(root)
    write_inputs(qp)
    qp.pipeline(PIPELINE)
    result = qp.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    yield qp


def qdpx_path(qp: Project) -> Path:
    return qp.root / "exports" / "refi" / "refi.qdpx"


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def project_root(path: Path) -> Any:
    return etree.fromstring(members(path)["project.qde"])


def datasets(qp: Project) -> dict[str, Any]:
    work = qp.workdir("refi")
    return {
        "documents": open_dataset(work / "anonymise", "documents"),
        "segments": open_dataset(work / "segment"),
        "codebook": open_dataset(work / "codebook"),
        "codings": open_dataset(work / "code"),
    }


def bundle(qp: Project, out: Path, **options: Any) -> ExportBundle:
    out.mkdir(parents=True, exist_ok=True)
    return ExportBundle(
        datasets=datasets(qp),
        out_dir=out,
        options=options,
        pipeline_name="refi",
        workdir=qp.workdir("refi"),
    )


# -- the files ------------------------------------------------------------------------------


def test_export_stage_writes_both_files(run: Project) -> None:
    rows = run.dataset("refi", "export").to_pylist()
    folder = run.root / "exports" / "refi"
    assert sorted((r["format"], Path(r["path"]).name) for r in rows) == [
        ("qdc", "codebook.qdc"),
        ("qdpx", "refi.qdpx"),
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["codebook.qdc", "refi.qdpx"]


def test_qdpx_validates_and_guards_against_qualcoder_failures(run: Project) -> None:
    files = members(qdpx_path(run))
    # layout: project.qde and a flat, lower-case sources/ folder of <GUID>.txt
    assert next(iter(files)) == "project.qde"
    guid_txt = r"sources/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.txt"
    assert all(re.fullmatch(guid_txt, n) for n in files if n != "project.qde"), list(files)
    # every file: UTF-8 without a BOM, LF only
    for name, data in files.items():
        assert not data.startswith(b"\xef\xbb\xbf"), name
        assert b"\r" not in data, name
        data.decode("utf-8")
    # the schema (which also fixes the order of the project's children)
    schema = etree.XMLSchema(etree.parse(str(PROJECT_XSD)))
    root = etree.fromstring(files["project.qde"])
    assert schema.validate(root), schema.error_log
    assert [etree.QName(c).localname for c in root] == [
        "Users", "CodeBook", "Variables", "Cases", "Sources", "Notes", "Sets", "Description",
        "NoteRef",
    ]  # fmt: skip
    # QualCoder fails without origin and basePath, and on an undated note
    assert root.get("origin") == f"qualpipe {qualpipe.__version__}"
    assert root.get("basePath") == ""
    notes = root.findall(f"{Q}Notes/{Q}Note")
    assert notes and all(n.get("creationDateTime") for n in notes)
    # ... on a missing source file: every internal path is in the archive, and no file
    # is left without a reference
    paths = [e.get("plainTextPath") for e in root.iter() if e.get("plainTextPath")]
    assert all(p.startswith("internal://") for p in paths)
    assert {"sources/" + p.removeprefix("internal://") for p in paths} == set(files) - {
        "project.qde"
    }
    # ... and drops the second of two codes with one name
    names = [c.get("name") for c in root.iter(f"{Q}Code")]
    assert len({n.casefold() for n in names}) == len(names) == 5
    assert "Talking / Other" in names and "Food / Other" in names
    # a selection's user and code exist
    users = {u.get("guid") for u in root.iter(f"{Q}User")}
    codes = {c.get("guid") for c in root.iter(f"{Q}Code")}
    for coding in root.iter(f"{Q}Coding"):
        assert coding.get("creatingUser") in users
        assert coding.find(f"{Q}CodeRef").get("targetGUID") in codes


def test_no_real_name_and_only_anonymised_text(run: Project) -> None:
    files = members(qdpx_path(run))
    anonymised = {d["doc_id"]: d["text"] for d in datasets(run)["documents"].read_all().to_pylist()}
    texts = {files[n].decode("utf-8") for n in files if n.startswith("sources/")}
    assert set(anonymised.values()) <= texts  # the exported texts are the anonymised ones
    blob = b"".join(files.values()) + (run.root / "exports/refi/codebook.qdc").read_bytes()
    for name in REAL_NAMES:
        assert name.encode() not in blob, name
    # sources are named by participant and doc id, never by file name (which may hold one)
    docs = datasets(run)["documents"].read_all().to_pylist()
    root = project_root(qdpx_path(run))
    assert sorted(s.get("name") for s in root.iter(f"{Q}TextSource")) == sorted(
        f"{d['participant_id']}_{d['doc_id']}" for d in docs
    )


def test_offsets_are_code_points_into_the_exported_text(run: Project) -> None:
    files = members(qdpx_path(run))
    root = etree.fromstring(files["project.qde"])
    segments = run.dataset("refi", "segment").to_pylist()
    seg_text = {(s["doc_id"], s["start"], s["end"]): s["text"] for s in segments}
    doc_of = {s.get("guid"): s.get("name").split("_", 1)[1] for s in root.iter(f"{Q}TextSource")}
    seen = 0
    for source in root.iter(f"{Q}TextSource"):
        text = files["sources/" + source.get("plainTextPath")[11:]].decode("utf-8")
        for sel in source.findall(f"{Q}PlainTextSelection"):
            start, end = int(sel.get("startPosition")), int(sel.get("endPosition"))
            assert 0 <= start < end <= len(text)
            # the rules coder codes whole segments: the slice is the segment's text
            assert text[start:end] == seg_text[(doc_of[source.get("guid")], start, end)]
            seen += 1
    codings = run.dataset("refi", "code").to_pylist()
    assert seen == len(codings) > 0
    # an emoji (one code point, two UTF-16 units) stands before a coded span
    maten = next(c for c in codings if "Maten" in [e["term"] for e in c["evidence"]])
    docs = {
        d["doc_id"]: d["text"] for d in run.dataset("refi", "anonymise", "documents").to_pylist()
    }
    assert 0 <= docs[maten["doc_id"]].index("😀") < maten["start"]


def test_coding_memos_users_cases_and_sets(run: Project) -> None:
    root = project_root(qdpx_path(run))
    assert [u.get("name") for u in root.iter(f"{Q}User")] == ["rules v1", "qualpipe"]
    memos = [s.findtext(f"{Q}Description") for s in root.iter(f"{Q}PlainTextSelection")]
    assert all(m.startswith("status: suggested") and "coder: rules v1" in m for m in memos)
    assert any("score: 0.75" in m and "evidence: cook, food" in m for m in memos)
    variables = {v.get("name"): v.get("guid") for v in root.iter(f"{Q}Variable")}
    assert set(variables) == {"pair", "role", "participant"}
    assert {v.get("typeOfVariable") for v in root.iter(f"{Q}Variable")} == {"Text"}
    sources = {s.get("guid"): s for s in root.iter(f"{Q}TextSource")}
    cases = {c.get("name"): c for c in root.iter(f"{Q}Case")}
    assert sorted(cases) == ["P01", "W01"]
    role = {
        name: next(
            vv.findtext(f"{Q}TextValue")
            for vv in case.findall(f"{Q}VariableValue")
            if vv.find(f"{Q}VariableRef").get("targetGUID") == variables["role"]
        )
        for name, case in cases.items()
    }
    assert role == {"P01": "Service user", "W01": "Support worker"}
    sets = {s.get("name"): s for s in root.iter(f"{Q}Set")}
    assert sorted(sets) == ["Participant P01", "Participant W01"]
    for pid, case in cases.items():
        refs = [r.get("targetGUID") for r in case.findall(f"{Q}SourceRef")]
        members_ = [m.get("targetGUID") for m in sets[f"Participant {pid}"]]
        assert refs and refs == [m for m in members_ if m]
        for guid in refs:  # the source names its participant (QualCoder ignores SourceRef)
            values = sources[guid].findall(f"{Q}VariableValue")
            assert [v.findtext(f"{Q}TextValue") for v in values] == [pid]
            assert sources[guid].get("name").startswith(pid + "_")
    memo_guid = root.find(f"{Q}NoteRef").get("targetGUID")
    memo = members(qdpx_path(run))[f"sources/{memo_guid}.txt"].decode("utf-8")
    assert "Stages of the run" in memo and "- code (uses code" in memo
    assert "anon.key" not in memo and str(run.root) not in memo  # never the parameters


def test_qdc_validates_and_agrees_with_the_qdpx_codebook(run: Project) -> None:
    path = run.root / "exports" / "refi" / "codebook.qdc"
    schema = etree.XMLSchema(etree.parse(str(CODEBOOK_XSD)))
    qdc = etree.parse(str(path))
    assert schema.validate(qdc), schema.error_log

    def codes(root: Any) -> list[tuple[str, str, str | None, str, int]]:
        return [
            (c.get("guid"), c.get("name"), c.get("color"), c.findtext("{*}Description"), depth)
            for c in root.iter("{*}Code")
            for depth in [len(list(c.iterancestors("{*}Code")))]
        ]

    assert codes(qdc.getroot()) == codes(project_root(qdpx_path(run)))
    book = read_qdc(path)
    assert book.name == "SIDL test"  # the codebook file's name, not "codebook"
    table = run.dataset("refi", "codebook")
    assert book.version == Codebook.from_table(table).version


# -- round trip and determinism -------------------------------------------------------------


def test_reimport_with_the_human_coding_importer_is_lossless(run: Project) -> None:
    data = datasets(run)
    documents = data["documents"].read_all().to_pylist()
    segments = data["segments"].read_all().to_pylist()
    book = Codebook.from_table(data["codebook"].read_all())
    result = import_codings(qdpx_path(run), documents, segments, book)
    assert result.report == [], result.report
    assert result.stats["reading"] == "codepoints"
    assert result.stats["sources_matched"] == {"text": 2}
    original = data["codings"].read_all().to_pylist()

    def key(r: dict[str, Any]) -> tuple[str, str, int, int, str]:
        return (r["segment_id"], r["doc_id"], r["start"], r["end"], r["code_id"])

    assert sorted(map(key, result.rows)) == sorted(map(key, original))
    assert {r["coder"] for r in result.rows} == {"rules v1"}
    project = read_qdpx(qdpx_path(run))
    assert project.origin.startswith("qualpipe")
    assert all(c.marker_id for c in project.codes.values())


def test_same_run_gives_the_same_bytes(run: Project, tmp_path: Path) -> None:
    first = {p.name: p.read_bytes() for p in (run.root / "exports" / "refi").iterdir()}
    # the stage again (its own earlier manifest must not change the project's date)
    result = run.run("run", "pipeline.yaml", "--force", "--only", "export")
    assert result.exit_code == 0, result.output
    again = {p.name: p.read_bytes() for p in (run.root / "exports" / "refi").iterdir()}
    assert again == first
    # and the exporters called directly, twice
    for out in (tmp_path / "a", tmp_path / "b"):
        b = bundle(run, out)
        paths = [*QDPX.export(b), *QDC.export(b)]
        assert {p.name: p.read_bytes() for p in paths} == first
    # the dates are the run's, not the clock's
    finished = max(
        json.loads(m.read_text())["finished_at"]
        for m in run.workdir("refi").glob("*/manifest.json")
        if json.loads(m.read_text())["stage_id"] != "export"
    )
    root = project_root(qdpx_path(run))
    # to the second (manifests record milliseconds)
    assert root.get("creationDateTime") == finished[:19] + "Z"


# -- options --------------------------------------------------------------------------------


def test_statuses_option(run: Project, tmp_path: Path) -> None:
    only_human = build_qdpx(bundle(run, tmp_path / "h", statuses=["human"]))
    assert only_human.stats["codings"] == 0
    assert only_human.stats["not_exported"] == {"suggested": 6}
    root = etree.fromstring(only_human.members["project.qde"])
    assert root.find(f".//{Q}PlainTextSelection") is None
    assert [u.get("name") for u in root.iter(f"{Q}User")] == ["qualpipe"]
    with pytest.raises(PipelineError, match="rejected codings are never exported"):
        build_qdpx(bundle(run, tmp_path / "r", statuses=["accepted", "rejected"]))
    with pytest.raises(PipelineError, match="unknown status"):
        build_qdpx(bundle(run, tmp_path / "u", statuses=["maybe"]))
    with pytest.raises(PipelineError, match="unknown option"):
        export_qdpx(bundle(run, tmp_path / "o", colour=True))


def test_segments_as_codes_option(run: Project, tmp_path: Path) -> None:
    content = build_qdpx(bundle(run, tmp_path / "s", include_segments_as_codes=True))
    root = etree.fromstring(content.members["project.qde"])
    schema = etree.XMLSchema(etree.parse(str(PROJECT_XSD)))
    assert schema.validate(root), schema.error_log
    names = [c.get("name") for c in root.iter(f"{Q}Code")]
    assert "Segments (qualpipe)" in names and len(set(names)) == len(names)
    assert content.stats["segments_as_codes"] == 3 and content.stats["codings"] == 6
    # codings of the segments code are not codes of the codebook: a re-import reports them
    path = tmp_path / "s.qdpx"
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in content.members.items():
            zf.writestr(name, blob)
    data = datasets(run)
    result = import_codings(
        path,
        data["documents"].read_all().to_pylist(),
        data["segments"].read_all().to_pylist(),
        Codebook.from_table(data["codebook"].read_all()),
    )
    assert {r.problem for r in result.report} == {"unknown_code"}
    assert len(result.rows) == 6


def test_codebook_name_option_changes_the_guids(run: Project, tmp_path: Path) -> None:
    b = bundle(run, tmp_path / "n", codebook_name="Other name")
    book = read_qdc(QDC.export(b)[0])
    assert book.name == "Other name"
    guids = {c.get("guid") for c in project_root(qdpx_path(run)).iter(f"{Q}Code")}
    again = etree.fromstring(build_qdpx(b).members["project.qde"])
    assert guids.isdisjoint(c.get("guid") for c in again.iter(f"{Q}Code"))


# -- checks on the datasets ---------------------------------------------------------------------


class _Reader:
    def __init__(self, table: pa.Table) -> None:
        self.table = table

    def read_all(self) -> pa.Table:
        return self.table


def synthetic(
    tmp_path: Path,
    text: str,
    codings: list[dict[str, Any]],
    segments: list[dict[str, Any]] | None = None,
    attributes: list[tuple[str, str]] | None = None,
) -> ExportBundle:
    doc: dict[str, Any] = {"doc_id": "d1", "source_path": "a.txt", "participant_id": "P1"}
    doc |= {"text": text, "attributes": attributes or [("role", "x")], "sensitive": False}
    book = Codebook.from_table(
        pa.Table.from_pylist(
            [{"code_id": "c", "name": "C", "level": "theme", "codebook_version": "v"}],
            schema=CODEBOOK.schema,
        )
    )
    rows = [
        {"coding_id": f"k{i}", "segment_id": "s", "doc_id": "d1", "code_id": "c"}
        | {"coder": "anna", "status": "human"}
        | c
        for i, c in enumerate(codings)
    ]
    tables = {
        "documents": pa.Table.from_pylist([doc], schema=DOCUMENTS.schema),
        "codebook": book.to_table(),
        "codings": pa.Table.from_pylist(rows, schema=CODINGS.schema),
        "segments": pa.Table.from_pylist(segments or [], schema=SEGMENTS.schema),
    }
    readers = {k: cast(DatasetReader, _Reader(v)) for k, v in tables.items()}
    return ExportBundle(readers, tmp_path)


def test_crlf_and_bom_text_is_written_lf_and_offsets_move(tmp_path: Path) -> None:
    text = "\ufeffHej\r\ndå 😀 gå\r\nslut"
    b = synthetic(tmp_path, text, [{"start": 6, "end": 8}, {"start": 11, "end": 13}])
    assert text[6:8] == "då" and text[11:13] == "gå"
    content = build_qdpx(b)
    root = etree.fromstring(content.members["project.qde"])
    source = root.find(f".//{Q}TextSource")
    exported = content.members["sources/" + source.get("plainTextPath")[11:]].decode("utf-8")
    assert exported == "Hej\ndå 😀 gå\nslut"
    sels = source.findall(f"{Q}PlainTextSelection")
    spans = [(int(s.get("startPosition")), int(s.get("endPosition"))) for s in sels]
    assert [exported[s:e] for s, e in spans] == ["då", "gå"]
    assert content.stats["time"] == "1980-01-01T00:00:00Z"  # no manifests: a fixed date
    assert [u.get("name") for u in root.iter(f"{Q}User")] == ["anna", "qualpipe"]


def test_human_sub_spans_after_emoji_round_trip(tmp_path: Path) -> None:
    text = "I: Hur går det? 😀\nIP: Bra 🙂 vi åt smörgås på ön. 🍲 Köket!\n"
    start = text.index("Bra")
    segment = {"segment_id": "d1:t1", "doc_id": "d1", "start": start, "end": len(text) - 1}
    segment |= {"text": text[start:-1], "sensitive": False}
    words = ["smörgås", "Köket"]
    spans = [(text.index(w), text.index(w) + len(w)) for w in words]
    codings = [
        {"start": s, "end": e, "segment_id": "d1:t1", "coder": coder}
        for (s, e), coder in zip(spans, ["anna", "bertil"], strict=True)
    ]
    content = build_qdpx(synthetic(tmp_path, text, codings, [segment]))
    path = tmp_path / "h.qdpx"
    with zipfile.ZipFile(path, "w") as zf:
        for name, blob in content.members.items():
            zf.writestr(name, blob)
    doc = {"doc_id": "d1", "source_path": "a.txt", "text": text}
    book = Codebook.from_table(synthetic(tmp_path, text, []).table("codebook"))
    result = import_codings(path, [doc], [segment], book)
    assert result.report == []
    assert sorted((text[r["start"] : r["end"]], r["coder"]) for r in result.rows) == [
        ("Köket", "bertil"),
        ("smörgås", "anna"),
    ]


@pytest.mark.parametrize(
    ("span", "doc", "message"),
    [
        ({"start": 3, "end": 99}, "d1", "outside document"),
        ({"start": 4, "end": 4}, "d1", "outside document"),
        ({"start": 0, "end": 2}, "d9", "not in the documents dataset"),
    ],
)
def test_bad_offsets_refuse_the_export(
    tmp_path: Path, span: dict[str, int], doc: str, message: str
) -> None:
    b = synthetic(tmp_path, "kort text", [span | {"doc_id": doc}])
    with pytest.raises(DatasetError, match=message):
        build_qdpx(b)
    assert not list(tmp_path.iterdir())


def test_names_that_collide_get_their_own_variable_and_set(tmp_path: Path) -> None:
    attributes = [("participant", "x"), ("Participant P1", "y")]
    content = build_qdpx(synthetic(tmp_path, "kort text", [], attributes=attributes))
    root = etree.fromstring(content.members["project.qde"])
    schema = etree.XMLSchema(etree.parse(str(PROJECT_XSD)))
    assert schema.validate(root), schema.error_log
    variables = [(v.get("name"), v.get("guid")) for v in root.iter(f"{Q}Variable")]
    assert [n for n, _ in variables] == ["participant", "Participant P1", "participant id"]
    assert len({g for _, g in variables}) == 3
    # QualCoder makes a variable of every set: its name must not be taken
    assert [s.get("name") for s in root.iter(f"{Q}Set")] == ["Participant P1 (set)"]


def test_duplicate_codings_are_written_once(tmp_path: Path) -> None:
    b = synthetic(tmp_path, "kort text", [{"start": 0, "end": 4}, {"start": 0, "end": 4}])
    content = build_qdpx(b)
    assert content.stats["codings"] == 1 and content.stats["not_exported"] == {"duplicate": 1}


# -- refusing sensitive data ------------------------------------------------------------------


def test_export_without_anonymise_is_refused(qualpipe_project: Project) -> None:
    write_inputs(qualpipe_project)
    qualpipe_project.pipeline(
        "qualpipe: 1\nname: raw\nstages:\n"
        "  - {id: ingest, uses: ingest, with: {paths: data/t, manifest: data/participants.csv}}\n"
        + STAGES
    )
    result = qualpipe_project.run("validate", "pipeline.yaml")
    assert result.exit_code == 2, result.output
    assert "stage 'export' would export sensitive" in result.stderr
    assert not (qualpipe_project.root / "exports").exists()


def test_exporters_are_registered() -> None:
    from qualpipe.plugins import create_manager

    assert QDPX.needs == ("documents",) and QDC.needs == ("codebook",)
    exporters = create_manager().registry.components["exporter"]
    assert exporters["qdpx"][0] is QDPX and exporters["qdc"][0] is QDC


def test_selection_and_coding_guids_share_the_key_encoding() -> None:
    from qualpipe.export.refi import _DUMPS, _guid_of_json, object_guid

    key = ('doc "1" ÅÄ\\', 3, 17, "code/ä", "0f-guid")
    tail = _DUMPS(key)[1:]
    assert _guid_of_json('["selection", ' + tail) == object_guid("selection", *key)
    assert _guid_of_json('["coding", ' + tail) == object_guid("coding", *key)


def test_coding_rows_take_the_evidence_terms_as_python_would() -> None:
    from qualpipe.export.refi import _coding_rows

    item = pa.struct([("term", pa.string()), ("start", pa.int64()), ("end", pa.int64())])
    schema = pa.schema([("coding_id", pa.string()), ("evidence", pa.list_(item))])
    evidence = [
        [{"term": "a", "start": 0, "end": 1}, None, {"term": None, "start": 1, "end": 2}],
        None,
        [],
        [{"term": "b", "start": 2, "end": 3}, {"term": "a", "start": 4, "end": 5}],
    ]
    chunk = pa.table({"coding_id": ["c1", "c2", "c3", "c4"], "evidence": evidence}, schema)
    table = pa.concat_tables([chunk, chunk.slice(1)])  # two chunks, one of them sliced
    expected = [
        {"coding_id": r["coding_id"], "evidence": [i and i["term"] for i in r["evidence"] or []]}
        for r in table.to_pylist()
    ]
    assert _coding_rows(table) == expected
    assert expected[0]["evidence"] == ["a", None, None] and expected[1]["evidence"] == []
    # another evidence type goes through Python, to the same rows
    plain = pa.table({"coding_id": ["c1"], "evidence": [["t"]]})
    assert _coding_rows(plain) == [{"coding_id": "c1", "evidence": [None]}]
    assert _coding_rows(None) == []
