"""The review loop end to end: decisions survive re-runs and deleting the run directory,
rejected suggestions stay rejected, only affected stages re-run, anonymisation decisions
change the output, and the decisions file stays private."""

from __future__ import annotations

import shutil
import stat
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qualpipe.decisions import Decision, DecisionStore
from qualpipe.testing import Project

TRANSCRIPTS = {
    "data/u1.txt": """\
        Interviewer: Tell me about the support.

        U1: Anna Berg comes every morning and we chat over coffee, she really listens to me. We go swimming at Lindvik hall on Fridays with my brother Erik.

        Interviewer: And the plan?

        U1: There is a plan, and Anna follows the plan but also listens when I want to go to the shop with the dog, who we call mister woofles.
        """,  # noqa: E501
    "data/u2.txt": """\
        Interviewer: How do you spend time together?

        U2: Mostly we go swimming and then we do the shopping together at the big market near the station. Bosse helps me with the plan from Hope, which gives the week some shape.
        """,  # noqa: E501
}

MANIFEST = """\
    file,participant,role
    data/u1.txt,U1,Service user
    data/u2.txt,U2,Service user
    """

CODEBOOK = """\
    codebook: 1
    name: Mini
    codes:
      - id: talking
        name: Talking
        level: theme
        children:
          - {id: listen, name: Listening, keywords: [listen]}
          - {id: chat, name: Chatting, keywords: [chat, coffee]}
      - id: places
        name: Places
        level: theme
        children:
          - {id: swim, name: Swimming, keywords: ["swim*"]}
          - {id: shop, name: Shopping, keywords: [shop]}
      - id: order
        name: Order
        level: theme
        children:
          - {id: plan, name: The plan, keywords: [plan]}
    """

PIPELINE = """\
qualpipe: 1
name: rl
stages:
  - {id: ingest, uses: ingest, with: {paths: data, manifest: participants.csv}}
  - id: anonymise
    uses: anonymise
    with: {key: keys/rl.key.json, replace: {"*": placeholder}}
  - {id: segment, uses: segment, with: {strategy: turn, participant_only: true}}
  - {id: codebook, uses: codebook, with: {path: codebook.yaml}}
  - {id: code, uses: code, with: {coders: [rules]}}
  - {id: theme, uses: theme}
  - {id: export, uses: export, with: {formats: [qdpx, html, csv], out: out}}
"""


@pytest.fixture
def study(qualpipe_project: Project) -> Project:
    for path, text in TRANSCRIPTS.items():
        qualpipe_project.write(path, text)
    qualpipe_project.write("participants.csv", MANIFEST)
    qualpipe_project.write("codebook.yaml", CODEBOOK)
    qualpipe_project.pipeline(PIPELINE)
    run(qualpipe_project)
    return qualpipe_project


def run(project: Project, *args: str) -> dict[str, str]:
    """Run the pipeline; return stage id -> "run" or "skip"."""
    result = project.run("run", "pipeline.yaml", *args)
    assert result.exit_code == 0, result.output
    return _ran(result.output)


def _ran(output: str) -> dict[str, str]:
    actions = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ("run", "skip"):
            actions[parts[0]] = parts[1]
    return actions


def store(project: Project) -> DecisionStore:
    return DecisionStore(project.root / "decisions" / "rl.jsonl")


def codings(project: Project) -> list[dict[str, Any]]:
    return project.dataset("rl", "code", "codings").to_pylist()


def pairs(project: Project, status: str | None = None) -> set[tuple[str, str]]:
    return {
        (c["segment_id"], c["code_id"])
        for c in codings(project)
        if status is None or c["status"] == status
    }


def segment_of(project: Project, words: str) -> str:
    """The id of the segment whose text contains ``words``."""
    rows = project.dataset("rl", "segment", "segments").to_pylist()
    (seg,) = [r["segment_id"] for r in rows if words in r["text"]]
    return str(seg)


def status_of(project: Project) -> dict[str, tuple[str, str]]:
    result = project.run("status", "pipeline.yaml", "--json")
    assert result.exit_code == 0, result.output
    return {d["stage"]: (d["action"], d["reason"]) for d in result.json()}


# -- codings ----------------------------------------------------------------------------


def test_rejected_suggestion_is_never_suggested_again(study: Project) -> None:
    seg = segment_of(study, "big market")
    assert (seg, "shop") in pairs(study, "suggested")
    store(study).append(
        Decision("coding", "reject", {"segment_id": seg, "code": "shop"}, who="ana", source="cli")
    )
    # only the code stage (and what reads its output) must re-run, and status says why
    plan = status_of(study)
    assert plan["code"] == ("run", "decisions changed (coding)")
    for sid in ("ingest", "anonymise", "segment", "codebook"):
        assert plan[sid] == ("skip", "unchanged"), sid
    assert plan["theme"] == ("run", "upstream 'code' will run")
    actions = run(study)
    assert [s for s, a in actions.items() if a == "run"] == ["code", "theme", "export"]
    assert (seg, "shop") not in pairs(study)
    assert (seg, "swim") in pairs(study, "suggested")  # the rest of the segment is kept
    # still rejected after --force ...
    run(study, "--force")
    assert (seg, "shop") not in pairs(study)
    # ... and after deleting the run directory: the decisions live outside it
    shutil.rmtree(study.workdir("rl"))
    assert store(study).path.exists()
    run(study)
    assert (seg, "shop") not in pairs(study)
    # nothing else changed: a second run skips everything
    assert set(run(study).values()) == {"skip"}


def test_accept_add_and_edit_become_accepted_and_human_codings(study: Project) -> None:
    u2 = segment_of(study, "big market")
    u1 = segment_of(study, "chat over coffee")
    assert (u2, "chat") not in pairs(study)
    store(study).extend(
        [
            Decision("coding", "accept", {"segment_id": u2, "code": "swim"}, who="ana"),
            Decision("coding", "add", {"segment_id": u2, "code": "chat"}, who="bo"),
            Decision("coding", "edit", {"segment_id": u1, "code": "swim"}, {"code": "places/shop"}),
            # a path name works too, and the span may be narrowed
            Decision(
                "coding",
                "add",
                {"segment_id": u1, "code": "Order / The plan"},
                {"start": 60, "end": 70},
                who="bo",
            ),
        ]
    )
    run(study)
    rows = {(c["segment_id"], c["code_id"]): c for c in codings(study)}
    assert rows[(u2, "swim")]["status"] == "accepted"
    added = rows[(u2, "chat")]
    assert (added["status"], added["coder"], added["score"]) == ("human", "human:bo", 1.0)
    seg_rows = {r["segment_id"]: r for r in study.dataset("rl", "segment").to_pylist()}
    assert (added["start"], added["end"]) == (seg_rows[u2]["start"], seg_rows[u2]["end"])
    assert (u1, "swim") not in rows  # edited away ...
    assert rows[(u1, "shop")]["status"] == "human"  # ... into a human coding of another code
    assert (rows[(u1, "plan")]["start"], rows[(u1, "plan")]["end"]) == (60, 70)
    # the theme stage counts human and accepted codings: u2 is now about talking too
    assigned = {
        (a["segment_id"], a["theme_id"])
        for a in study.dataset("rl", "theme", "theme_assignments").to_pylist()
    }
    assert (u2, "talking") in assigned
    # counts (never text) in the manifest, for the report's provenance
    counts = study.manifest("rl", "code")["stats"]["decisions"]
    assert counts["by_target"] == {"coding": {"accept": 1, "add": 2, "edit": 1}}
    assert counts["by_person"]["bo"] == {"add": 2}


def test_undo_brings_the_suggestion_back(study: Project) -> None:
    seg = segment_of(study, "big market")
    rejected = store(study).append(
        Decision("coding", "reject", {"segment_id": seg, "code": "plan"})
    )
    run(study)
    assert (seg, "plan") not in pairs(study)
    store(study).undo(rejected.id)
    assert status_of(study)["code"] == ("run", "decisions changed (coding)")
    run(study)
    assert (seg, "plan") in pairs(study, "suggested")


def test_decisions_about_unknown_codes_are_skipped(study: Project) -> None:
    seg = segment_of(study, "big market")
    store(study).append(Decision("coding", "add", {"segment_id": seg, "code": "gone"}))
    before = pairs(study)
    run(study)
    assert pairs(study) == before


# -- anonymisation ----------------------------------------------------------------------


def _doc_text(project: Project, words: str) -> tuple[str, str]:
    for row in project.dataset("rl", "anonymise", "documents").to_pylist():
        if words in row["text"]:
            return str(row["doc_id"]), str(row["text"])
    raise AssertionError(words)


def _finding(project: Project, doc_id: str, replacement: str) -> dict[str, Any]:
    for f in project.dataset("rl", "anonymise", "findings").to_pylist():
        if f["doc_id"] == doc_id and f["replacement"] == replacement:
            return {
                "document_id": doc_id,
                "start": f["start"],
                "end": f["end"],
                "type": f["entity_type"],
                "replacement": f["replacement"],
            }
    raise AssertionError(replacement)


def test_false_positive_and_missed_identifier_change_the_output(study: Project) -> None:
    u2, text2 = _doc_text(study, "big market")
    u1, text1 = _doc_text(study, "chat over coffee")
    assert "Hope" not in text2 and "[PLACE 3]" in text2  # "Hope" masked as a place: wrong
    assert "mister woofles" in text1  # the dog's name was missed
    n_findings = study.dataset("rl", "anonymise", "findings").num_rows
    hope = _finding(study, u2, "[PLACE 3]")
    start = text1.index("mister woofles")
    decisions = store(study)
    decisions.extend(
        [
            Decision("finding", "reject", hope, who="ana"),
            Decision(
                "finding",
                "add",
                {"document_id": u1, "start": start, "end": start + 14},
                {"text": "mister woofles", "type": "PERSON"},
                who="ana",
            ),
            Decision("finding", "accept", _finding(study, u1, "[PLACE 1]"), who="bo"),
        ]
    )
    plan = status_of(study)
    assert plan["ingest"] == ("skip", "unchanged")
    assert plan["anonymise"] == ("run", "decisions changed (finding)")
    run(study)
    _, text2 = _doc_text(study, "big market")
    _, text1 = _doc_text(study, "chat over coffee")
    assert "from Hope," in text2 and "[PLACE 3]" not in text2
    assert "mister woofles" not in text1 and "[PERSON 3]" in text1
    findings = study.dataset("rl", "anonymise", "findings").to_pylist()
    assert len(findings) == n_findings  # one fewer false positive, one more true finding
    assert not any(f["doc_id"] == u2 and f["replacement"] == "[PLACE 3]" for f in findings)
    stats = study.manifest("rl", "anonymise")["stats"]
    assert stats["decisions:false_positives"] == 1
    assert stats["decisions:missed_identifiers"] == 1
    assert stats["decisions:confirmed"] == 1
    assert stats["decisions:unresolved"] == 0
    # the original value of the false positive was never written into the decisions file
    raw = decisions.path.read_text(encoding="utf-8")
    assert "hope" not in raw.casefold()
    assert stat.S_IMODE(decisions.path.stat().st_mode) == 0o600
    # ... nor into the manifest
    manifest_text = (study.workdir("rl") / "anonymise" / "manifest.json").read_text()
    assert "hope" not in manifest_text.casefold()
    assert "woofles" not in manifest_text
    # the run directory is disposable: the decisions (and the key) live outside it
    shutil.rmtree(study.workdir("rl"))
    run(study)
    assert "from Hope," in _doc_text(study, "big market")[1]
    assert "mister woofles" not in _doc_text(study, "chat over coffee")[1]


def test_ambiguous_false_positive_is_reported_not_guessed(study: Project) -> None:
    u1, text1 = _doc_text(study, "chat over coffee")
    # "[PERSON 1]" stands for both "Anna" and "Anna Berg": the key cannot say which
    d = store(study).append(Decision("finding", "reject", _finding(study, u1, "[PERSON 1]")))
    result = study.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    assert d.id in result.output
    assert "anna" not in result.output.casefold()
    assert _doc_text(study, "chat over coffee")[1] == text1
    assert study.manifest("rl", "anonymise")["stats"]["decisions:unresolved"] == 1


def test_decisions_file_never_appears_in_exports(study: Project) -> None:
    u1, text1 = _doc_text(study, "chat over coffee")
    start = text1.index("mister woofles")
    store(study).append(
        Decision(
            "finding",
            "add",
            {"document_id": u1, "start": start, "end": start + 14},
            {"text": "mister woofles", "type": "PERSON"},
        )
    )
    run(study)
    out = study.root / "out"
    files = [p for p in out.rglob("*") if p.is_file()]
    assert files
    for p in files:
        assert not p.name.endswith(".jsonl")
        assert b"woofles" not in p.read_bytes()
    assert not any(p.name.endswith(".jsonl") for p in study.workdir("rl").rglob("*"))


def test_pipeline_file_can_move_the_decisions_file(study: Project) -> None:
    study.pipeline(PIPELINE + "decisions: review/mine.jsonl\n")
    seg = segment_of(study, "big market")
    DecisionStore(study.root / "review" / "mine.jsonl").append(
        Decision("coding", "reject", {"segment_id": seg, "code": "shop"})
    )
    run(study)
    assert (seg, "shop") not in pairs(study)


def test_corrupt_decisions_file_stops_the_run_with_its_line(study: Project) -> None:
    path = store(study).path
    path.parent.mkdir(exist_ok=True)
    path.write_text("{oops\n")
    result = study.run("run", "pipeline.yaml")
    assert result.exit_code == 2
    assert f"{path}:1: not a JSON decision" in result.output


# -- themes and quotes ------------------------------------------------------------------


def themes(project: Project) -> dict[str, dict[str, Any]]:
    return {t["theme_id"]: t for t in project.dataset("rl", "theme", "themes").to_pylist()}


def quotes(project: Project) -> list[tuple[str, str]]:
    rows = project.dataset("rl", "theme", "quotes").to_pylist()
    return [(q["theme_id"], q["segment_id"]) for q in sorted(rows, key=lambda q: q["rank"])]


def test_theme_rename_merge_and_reject(study: Project) -> None:
    before = themes(study)
    assert set(before) == {"talking", "places", "order"}
    plan_segments = before["order"]["segments"]
    assert plan_segments and before["talking"]["segments"] < 3
    store(study).extend(
        [
            Decision("theme", "rename", {"theme_id": "talking"}, {"name": "Being heard"}),
            Decision("theme", "merge", {"theme_id": "order"}, {"into": "talking"}),
            Decision("theme", "reject", {"theme_id": "places"}, who="bo"),
            Decision("theme", "accept", {"theme_id": "nope"}),  # unknown: reported, ignored
        ]
    )
    plan = status_of(study)
    assert plan["theme"] == ("run", "decisions changed (theme)")
    assert all(plan[s][0] == "skip" for s in ("ingest", "anonymise", "segment", "code"))
    actions = run(study)
    assert [s for s, a in actions.items() if a == "run"] == ["theme", "export"]
    after = themes(study)
    assert set(after) == {"talking"}
    assert after["talking"]["name"] == "Being heard"
    assert after["talking"]["segments"] == 3  # every segment mentions the plan or listening
    assert {t for t, _ in quotes(study)} <= {"talking"}
    stats = study.manifest("rl", "theme")["stats"]
    assert stats["decisions:theme_merge"] == 1 and stats["decisions:unresolved"] == 1
    # the report follows: the rejected theme is not reported, the new name is
    report = (study.root / "out" / "report.html").read_text(encoding="utf-8")
    assert "Being heard" in report and ">Places<" not in report


def test_quote_reject_and_pin(study: Project) -> None:
    study.pipeline(
        PIPELINE.replace(
            "{id: theme, uses: theme}", "{id: theme, uses: theme, with: {quotes_per_theme: 1}}"
        )
    )
    run(study)
    first = quotes(study)
    talking = [s for t, s in first if t == "talking"]
    assert len(talking) == 1
    rejected = talking[0]
    all_segments = {r["segment_id"] for r in study.dataset("rl", "segment").to_pylist()}
    pinned = sorted(all_segments - {s for t, s in first if t == "places"})[0]
    store(study).extend(
        [
            Decision("quote", "reject", {"theme_id": "talking", "segment_id": rejected}),
            Decision("quote", "accept", {"theme_id": "places", "segment_id": pinned}),
        ]
    )
    assert status_of(study)["theme"] == ("run", "decisions changed (quote)")
    run(study)
    after = quotes(study)
    assert ("talking", rejected) not in after
    assert len([s for t, s in after if t == "talking"]) == 1  # replaced by another quote
    places = [s for t, s in after if t == "places"]
    assert places[0] == pinned
    rows = study.dataset("rl", "theme", "quotes").to_pylist()
    pin = next(q for q in rows if q["theme_id"] == "places" and q["segment_id"] == pinned)
    assert pin["rank"] == 1 and pin["text"] and pin["label"]
    # still rejected after deleting the run directory
    shutil.rmtree(study.workdir("rl"))
    run(study)
    assert ("talking", rejected) not in quotes(study)


# -- the decisions command --------------------------------------------------------------


def test_decisions_command_lists_filters_and_undoes(study: Project) -> None:
    empty = study.run("decisions", "pipeline.yaml")
    assert empty.exit_code == 0 and "no decisions yet" in empty.stdout
    seg = segment_of(study, "big market")
    u1, text1 = _doc_text(study, "chat over coffee")
    start = text1.index("mister woofles")
    first = store(study).append(
        Decision("coding", "reject", {"segment_id": seg, "code": "shop"}, who="ana")
    )
    store(study).append(Decision("coding", "accept", {"segment_id": seg, "code": "shop"}, who="bo"))
    store(study).append(
        Decision(
            "finding",
            "add",
            {"document_id": u1, "start": start, "end": start + 14},
            {"text": "mister woofles", "type": "PERSON"},
            who="ana",
        )
    )
    table = study.run("decisions", "pipeline.yaml")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "3 of 3 decisions" in lines[0]
    assert lines[1].startswith("~ " + first.id[:8])  # superseded by bo's accept
    assert "woofles" not in table.stdout and "<14 characters>" in table.stdout
    only = study.run("decisions", "pipeline.yaml", "--who", "ana", "--target", "coding", "--json")
    assert [(d["action"], d["effective"]) for d in only.json()] == [("reject", False)]
    rows = study.run("decisions", "pipeline.yaml", "--effective", "--json").json()
    assert [d["action"] for d in rows] == ["accept", "add"]
    assert rows[1]["value"]["text"] is None
    undone = study.run("decisions", "pipeline.yaml", "--undo", rows[0]["id"][:10], "--by", "cy")
    assert undone.exit_code == 0, undone.output
    assert [d.action for d in store(study).effective("coding")] == []
    assert store(study).all()[-1].who == "cy"
    bad = study.run("decisions", "pipeline.yaml", "--undo", "zzzz")
    assert bad.exit_code == 2 and "no decision with id 'zzzz'" in bad.stderr


# -- desktop round trip -----------------------------------------------------------------

QDA = "{urn:QDA-XML:project:1.0}"


def _edit_qdpx(path: Path, edit: Callable[[ET.Element], None]) -> Path:
    """Rewrite project.qde of a .qdpx as a QDA program would after a review."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    ET.register_namespace("", QDA[1:-1])
    root = ET.fromstring(members["project.qde"])
    edit(root)
    members["project.qde"] = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    out = path.with_name(f"reviewed{len(list(path.parent.glob('reviewed*')))}.qdpx")
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def _code_guid(root: ET.Element, name: str) -> str:
    for code in root.iter(f"{QDA}Code"):
        if code.get("name") == name:
            return str(code.get("guid"))
    raise AssertionError(name)


def test_qdpx_round_trip_records_removed_and_added_codings(study: Project) -> None:
    u2 = segment_of(study, "big market")
    u1 = segment_of(study, "chat over coffee")
    seg_rows = {r["segment_id"]: r for r in study.dataset("rl", "segment").to_pylist()}
    assert (u2, "shop") in pairs(study) and (u1, "plan") not in pairs(study)
    exported = study.root / "out" / "rl.qdpx"

    def review(root: ET.Element) -> None:
        shop, plan = _code_guid(root, "Shopping"), _code_guid(root, "The plan")
        swim = _code_guid(root, "Swimming")
        user = next(root.iter(f"{QDA}User")).get("guid")
        for source in root.iter(f"{QDA}TextSource"):
            for sel in list(source.findall(f"{QDA}PlainTextSelection")):
                ref = sel.find(f"{QDA}Coding/{QDA}CodeRef")
                at = (int(sel.get("startPosition", -1)), int(sel.get("endPosition", -1)))
                u2_span = (seg_rows[u2]["start"], seg_rows[u2]["end"])
                if ref is not None and ref.get("targetGUID") == shop and at == u2_span:
                    source.remove(sel)  # the researcher removes a suggestion
                if ref is not None and ref.get("targetGUID") == swim and at == u2_span:
                    sel.set("startPosition", str(at[0] + 7))  # ... and narrows another
            if seg_rows[u1]["doc_id"] in (source.findtext(f"{QDA}Description") or ""):
                # ... and codes a few words of u1 with "The plan", as a QualCoder user would
                start = seg_rows[u1]["start"] + 5
                new = ET.Element(
                    f"{QDA}PlainTextSelection",
                    {"guid": "0b3c1c8e-6f1f-4c55-9a83-000000000001",
                     "startPosition": str(start), "endPosition": str(start + 20),
                     "creatingUser": str(user)},
                )  # fmt: skip
                coding = ET.SubElement(
                    new,
                    f"{QDA}Coding",
                    {"guid": "0b3c1c8e-6f1f-4c55-9a83-000000000002", "creatingUser": str(user)},
                )
                ET.SubElement(coding, f"{QDA}CodeRef", {"targetGUID": plan})
                source.insert(1, new)

    reviewed = _edit_qdpx(exported, review)
    dry = study.run("decisions", "import", "pipeline.yaml", reviewed, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "would record 1 rejection(s), 1 addition(s) and 1 edit(s)" in dry.stdout
    assert not store(study).path.exists()
    result = study.run("decisions", "import", "pipeline.yaml", reviewed, "--who", "dana")
    assert result.exit_code == 0, result.output
    recorded = store(study).all()
    assert {(d.action, d.ref["segment_id"], d.ref["code"], d.source, d.who) for d in recorded} == {
        ("reject", u2, "shop", "qdpx", "dana"),
        ("add", u1, "plan", "qdpx", "dana"),
        ("edit", u2, "swim", "qdpx", "dana"),
    }
    edit = next(d for d in recorded if d.action == "edit")
    assert edit.value == {"start": seg_rows[u2]["start"] + 7, "end": seg_rows[u2]["end"]}
    add = next(d for d in recorded if d.action == "add")
    start = seg_rows[u1]["start"] + 5
    assert add.value == {"start": start, "end": start + 20}
    # importing the same project again records nothing new
    again = study.run("decisions", "import", "pipeline.yaml", reviewed)
    assert "recorded 0 rejection(s), 0 addition(s) and 0 edit(s)" in again.stdout
    assert "3 already decided" in again.stdout
    # the next run follows the review
    run(study)
    rows = {(c["segment_id"], c["code_id"]): c for c in codings(study)}
    assert (u2, "shop") not in rows
    assert rows[(u1, "plan")]["coder"] == "human:dana"
    assert (rows[(u1, "plan")]["start"], rows[(u1, "plan")]["end"]) == (start, start + 20)
    assert rows[(u2, "swim")]["status"] == "human"
    assert rows[(u2, "swim")]["start"] == seg_rows[u2]["start"] + 7
    # a project exported before the coding stage last ran may lack newer suggestions,
    # which would look removed: importing it needs --force
    old = _edit_qdpx(reviewed, lambda root: root.set("creationDateTime", "2001-01-01T00:00:00Z"))
    stale = study.run("decisions", "import", "pipeline.yaml", old)
    assert stale.exit_code != 0 and "ran again after this project was exported" in stale.stderr
    forced = study.run("decisions", "import", "pipeline.yaml", old, "--force")
    assert forced.exit_code == 0 and "recorded 0 rejection(s)" in forced.stdout


def test_import_refuses_a_project_without_our_codings(study: Project) -> None:
    def strip(root: ET.Element) -> None:
        for source in root.iter(f"{QDA}TextSource"):
            for sel in list(source.findall(f"{QDA}PlainTextSelection")):
                source.remove(sel)

    bare = _edit_qdpx(study.root / "out" / "rl.qdpx", strip)
    result = study.run("decisions", "import", "pipeline.yaml", bare)
    assert result.exit_code != 0
    assert "holds none of the run's codings" in result.stderr
    assert not store(study).path.exists()


# -- audit ------------------------------------------------------------------------------


def test_report_provenance_counts_decisions_by_target_and_person(study: Project) -> None:
    seg = segment_of(study, "big market")
    u1, _ = _doc_text(study, "chat over coffee")
    store(study).extend(
        [
            Decision("coding", "reject", {"segment_id": seg, "code": "shop"}, who="ana"),
            Decision("coding", "accept", {"segment_id": seg, "code": "swim"}, who="bo"),
            Decision("coding", "add", {"segment_id": seg, "code": "chat"}, who="bo"),
            Decision("theme", "rename", {"theme_id": "order"}, {"name": "Plans"}, who="ana"),
        ]
    )
    run(study)
    report = (study.root / "out" / "report.html").read_text(encoding="utf-8")
    assert "Review decisions" in report
    assert "codings: 1 accepted, 1 rejected, 1 added; themes: 1 renamed (by ana, bo)" in report
    # a decision that changes no data still reaches the report: the export re-runs
    store(study).append(Decision("finding", "accept", _finding(study, u1, "[PLACE 1]"), who="cy"))
    actions = run(study)
    assert actions["anonymise"] == "run" and actions["export"] == "run"
    assert actions["segment"] == "skip" and actions["code"] == "skip"
    report = (study.root / "out" / "report.html").read_text(encoding="utf-8")
    assert "anonymisation findings: 1 accepted" in report and "by ana, bo, cy" in report


def test_decisions_reach_batch_workers_in_other_processes(study: Project) -> None:
    seg = segment_of(study, "big market")
    store(study).append(Decision("coding", "reject", {"segment_id": seg, "code": "plan"}))
    store(study).append(Decision("coding", "accept", {"segment_id": seg, "code": "swim"}))
    run(study, "--workers", "2")  # the code stage re-runs in a process pool
    assert (seg, "plan") not in pairs(study)
    assert (seg, "swim") in pairs(study, "accepted")


def _as_nvivo(path: Path) -> Path:
    """The project as NVivo for Windows writes it: Sources/ with BOM and CRLF, offsets in
    UTF-16 code units over that text (docs/interop.md)."""
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    texts = {
        n.split("/")[-1].removesuffix(".txt"): members.pop(n).decode("utf-8")
        for n in list(members)
        if n.startswith("sources/")
    }
    for guid, text in texts.items():
        members[f"Sources/{guid}.txt"] = b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode()
    ET.register_namespace("", QDA[1:-1])
    root = ET.fromstring(members["project.qde"])
    root.set("origin", "NVivo 12.6")

    def units(text: str, p: int) -> int:
        return len(text[:p].encode("utf-16-le")) // 2 + text[:p].count("\n")

    for source in root.iter(f"{QDA}TextSource"):
        text = texts[str(source.get("guid"))]
        for sel in source.iter(f"{QDA}PlainTextSelection"):
            for attr in ("startPosition", "endPosition"):
                sel.set(attr, str(units(text, int(sel.get(attr, 0)))))
    members["project.qde"] = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    out = path.with_name("nvivo.qdpx")
    with zipfile.ZipFile(out, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out


def test_qdpx_import_reads_nvivo_offsets(study: Project) -> None:
    # an emoji (two UTF-16 units) before a coded segment shifts NVivo's offsets
    study.write("data/u2.txt", TRANSCRIPTS["data/u2.txt"].replace("together?", "together? 🙂"))
    run(study)
    u2 = segment_of(study, "big market")
    assert (u2, "plan") in pairs(study)

    def drop_plan(root: ET.Element) -> None:
        plan = _code_guid(root, "The plan")
        for source in root.iter(f"{QDA}TextSource"):
            if "U2" not in str(source.get("name")):
                continue
            for sel in list(source.findall(f"{QDA}PlainTextSelection")):
                ref = sel.find(f"{QDA}Coding/{QDA}CodeRef")
                if ref is not None and ref.get("targetGUID") == plan:
                    source.remove(sel)

    reviewed = _as_nvivo(_edit_qdpx(study.root / "out" / "rl.qdpx", drop_plan))
    result = study.run("decisions", "import", "pipeline.yaml", reviewed, "--who", "eve")
    assert result.exit_code == 0, result.output
    # every other selection landed exactly on its coding: nothing else looks changed
    assert "recorded 1 rejection(s), 0 addition(s) and 0 edit(s)" in result.stdout
    (d,) = store(study).all()
    assert (d.action, d.ref) == ("reject", {"segment_id": u2, "code": "plan"})


def test_coding_decisions_survive_an_anonymisation_decision_in_the_same_segment(
    study: Project,
) -> None:
    u2_doc, _ = _doc_text(study, "big market")
    seg = segment_of(study, "big market")
    assert (seg, "plan") in pairs(study, "suggested")
    store(study).append(Decision("coding", "reject", {"segment_id": seg, "code": "plan"}))
    # un-masking "Hope" shortens the text inside the segment and moves every later
    # offset; segment ids are positions, so the coding decision still applies
    store(study).append(Decision("finding", "reject", _finding(study, u2_doc, "[PLACE 3]")))
    run(study)
    assert "Hope" in _doc_text(study, "big market")[1]
    assert segment_of(study, "big market") == seg
    assert (seg, "plan") not in pairs(study)
    listed = study.run("decisions", "pipeline.yaml", "--json").json()
    assert [(d["target"], d["unmatched"]) for d in listed] == [
        ("coding", False),
        ("finding", False),
    ]


def test_decisions_about_missing_segments_are_flagged(study: Project) -> None:
    seg = segment_of(study, "big market")
    gone = seg.rsplit(":", 1)[0] + ":t999"  # e.g. the transcript was edited and re-segmented
    coding = store(study).append(Decision("coding", "reject", {"segment_id": gone, "code": "plan"}))
    store(study).append(Decision("coding", "reject", {"segment_id": seg, "code": "plan"}))
    table = study.run("decisions", "pipeline.yaml")
    assert table.exit_code == 0
    line = next(ln for ln in table.stdout.splitlines() if coding.id[:8] in ln)
    assert line.startswith("? ")
    assert "1 decision(s) marked ? name a segment or document" in table.stderr
    listed = study.run("decisions", "pipeline.yaml", "--json").json()
    assert [d["unmatched"] for d in listed] == [True, False]


def test_decisions_add_from_a_script(study: Project) -> None:
    seg = segment_of(study, "big market")
    added = study.run(
        "decisions", "add", "pipeline.yaml", "coding", "add", f"segment_id={seg}", "code=chat",
        "--value", "start=60", "--value", "end=70", "--who", "fi", "--memo", "from a script",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    (d,) = store(study).all()
    assert (d.source, d.who, d.memo, d.value) == (
        "cli",
        "fi",
        "from a script",
        {"start": 60, "end": 70},
    )
    bad = study.run("decisions", "add", "pipeline.yaml", "coding", "reject", f"segment_id={seg}")
    assert bad.exit_code == 2 and "coding/reject decision ref lacks code" in bad.stderr
    assert len(store(study).all()) == 1
    run(study)
    assert (seg, "chat") in pairs(study, "human")
