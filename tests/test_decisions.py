"""The decisions store: validation, append-only JSON Lines, effective decisions, fingerprints."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from qualpipe.decisions import (
    ACTIONS,
    TARGETS,
    Decision,
    DecisionError,
    DecisionStore,
)

FINDING = {"document_id": "d1", "start": 10, "end": 18, "type": "PERSON", "replacement": "Person 3"}


def coding(
    action: str, seg: str = "s1", code: str = "support/practical", **value: object
) -> Decision:
    return Decision("coding", action, {"segment_id": seg, "code": code}, dict(value), who="ana")


def test_contract_names() -> None:
    assert TARGETS == ("finding", "coding", "theme", "quote")
    assert ACTIONS == ("accept", "reject", "edit", "add", "merge", "rename")


def test_append_fills_id_time_and_user_and_round_trips(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "d" / "p.jsonl")
    assert store.all() == [] and not store.path.exists()
    d = store.append(Decision("finding", "reject", dict(FINDING)))
    assert len(d.id) == 32 and d.at.endswith("Z") and d.who
    assert store.path.exists()
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    # the folder made for it is private and ignored by git
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    assert (store.path.parent / ".gitignore").read_text().splitlines()[-1] == "*"
    (back,) = store.all()
    assert back == d
    assert Decision.from_json(d.to_json()) == d
    line = store.path.read_text().splitlines()[0]
    assert json.loads(line)["ref"] == FINDING


def test_existing_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text("")
    path.chmod(0o644)
    DecisionStore(path).append(coding("accept"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_append_only_keeps_every_line(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    store.append(coding("reject"))
    store.extend([coding("accept"), coding("add", seg="s2", start=3, end=9)])
    assert [d.action for d in store.all()] == ["reject", "accept", "add"]
    assert len(store.path.read_text().splitlines()) == 3


@pytest.mark.parametrize(
    ("decision", "message"),
    [
        (Decision("segment", "accept", {}), "unknown decision target 'segment'"),
        (
            Decision("coding", "approve", {"segment_id": "s", "code": "c"}),
            "unknown decision action 'approve'",
        ),
        (
            Decision("quote", "rename", {"theme_id": "t", "segment_id": "s"}),
            "a quote decision cannot be 'rename'",
        ),
        (
            Decision("coding", "reject", {"segment_id": "s"}),
            "coding/reject decision ref lacks code",
        ),
        (
            Decision("coding", "reject", {"segment_id": "s", "code": "c", "text": "x"}),
            "unknown keys text",
        ),
        (Decision("finding", "reject", {**FINDING, "start": -1}), "start must be a whole number"),
        (
            Decision("finding", "reject", {**FINDING, "start": 30}),
            "start (30) must be before end (18)",
        ),
        (
            Decision(
                "finding", "add", {"document_id": "d", "start": 1, "end": 4}, {"text": "Hope"}
            ),
            "value lacks type",
        ),
        (Decision("theme", "rename", {"theme_id": "t1"}), "value lacks name"),
        (Decision("theme", "merge", {"theme_id": "t1"}, {"name": "x"}), "value lacks into"),
        (coding("edit"), "needs code and/or start and end"),
        (coding("add", start=4), "give both start and end"),
        (
            Decision("coding", "accept", {"segment_id": "s", "code": ""}),
            "code must be a non-empty string",
        ),
        (
            Decision("theme", "accept", {"theme_id": "t"}, source="web"),
            "unknown decision source 'web'",
        ),
    ],
)
def test_invalid_decisions_are_one_line_errors(
    tmp_path: Path, decision: Decision, message: str
) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    with pytest.raises(DecisionError) as err:
        store.append(decision)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert not store.path.exists()


def test_corrupt_line_names_file_and_line(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    store.append(coding("accept"))
    with store.path.open("a") as fh:
        fh.write("{not json\n")
    with pytest.raises(DecisionError, match=r"p\.jsonl:2: not a JSON decision"):
        store.all()
    store.path.write_text(json.dumps({"target": "coding", "action": "zap", "ref": {}}) + "\n")
    with pytest.raises(DecisionError, match=r"p\.jsonl:1: unknown decision action 'zap'"):
        store.all()


def test_effective_latest_per_reference_wins(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    store.append(coding("reject", seg="s1"))
    store.append(coding("accept", seg="s2"))
    store.append(coding("accept", seg="s1"))  # changes its mind about s1
    store.append(Decision("theme", "rename", {"theme_id": "t1"}, {"name": "Being seen"}))
    eff = store.effective("coding")
    assert [(d.ref["segment_id"], d.action) for d in eff] == [("s2", "accept"), ("s1", "accept")]
    assert len(store.effective()) == 3
    assert [d.target for d in store.effective("theme")] == ["theme"]
    with pytest.raises(DecisionError, match="unknown decision target"):
        store.effective("segment")


def test_finding_key_is_the_span(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    store.append(Decision("finding", "reject", dict(FINDING)))
    store.append(Decision("finding", "accept", dict(FINDING)))
    store.append(
        Decision(
            "finding",
            "add",
            {"document_id": "d1", "start": 40, "end": 44},
            {"text": "Hope", "type": "PLACE"},
        )
    )
    assert [d.action for d in store.effective("finding")] == ["accept", "add"]


def test_undo_returns_the_reference_to_undecided(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    first = store.append(coding("accept", seg="s1"))
    rejected = store.append(coding("reject", seg="s1"))
    before = store.fingerprint(["coding"])
    store.undo(rejected.id, who="bo")
    assert store.effective("coding") == []
    assert store.fingerprint(["coding"]) == DecisionStore(tmp_path / "none.jsonl").fingerprint(
        ["coding"]
    )
    assert store.fingerprint(["coding"]) != before
    assert len(store.all()) == 3 and store.all()[0] == first  # nothing removed from the file
    with pytest.raises(DecisionError, match="no decision with id 'nope'"):
        store.undo("nope")


def test_fingerprint_covers_only_its_targets_and_what_stages_act_on(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    empty_coding = store.fingerprint(["coding"])
    empty_theme = store.fingerprint(["theme", "quote"])
    store.append(coding("reject"))
    assert store.fingerprint(["coding"]) != empty_coding
    assert store.fingerprint(["theme", "quote"]) == empty_theme
    fp = store.fingerprint(["coding"])
    # the same decision taken again (new id, time, memo) changes nothing stages act on
    store.append(
        Decision(
            "coding",
            "reject",
            {"segment_id": "s1", "code": "support/practical"},
            memo="again",
            who="ana",
        )
    )
    assert store.fingerprint(["coding"]) == fp
    store.append(Decision("theme", "reject", {"theme_id": "t9"}))
    assert store.fingerprint(["theme"]) != empty_theme
    assert store.fingerprint(["coding"]) == fp
    with pytest.raises(DecisionError):
        store.fingerprint(["segment"])


def test_for_pipeline_locations(tmp_path: Path) -> None:
    pipeline = tmp_path / "pipes" / "study.yaml"
    assert (
        DecisionStore.for_pipeline(pipeline, "study").path
        == (tmp_path / "pipes" / "decisions" / "study.jsonl").resolve()
    )
    assert (
        DecisionStore.for_pipeline(pipeline, "study", Path("my/d.jsonl")).path
        == (tmp_path / "pipes" / "my" / "d.jsonl").resolve()
    )
    absolute = tmp_path / "elsewhere.jsonl"
    assert DecisionStore.for_pipeline(pipeline, "study", absolute).path == absolute


def test_pipeline_file_decisions_key(tmp_path: Path) -> None:
    from qualpipe.errors import PipelineError
    from qualpipe.pipeline.model import load_pipeline

    base = "qualpipe: 1\nname: study\nstages:\n  - id: ingest\n    uses: ingest\n"
    (tmp_path / "a.yaml").write_text(base)
    assert (
        load_pipeline(tmp_path / "a.yaml").decision_store().path
        == tmp_path.resolve() / "decisions" / "study.jsonl"
    )
    (tmp_path / "b.yaml").write_text(base + "decisions: review/d.jsonl\n")
    assert (
        load_pipeline(tmp_path / "b.yaml").decision_store().path
        == tmp_path.resolve() / "review" / "d.jsonl"
    )
    (tmp_path / "c.yaml").write_text(base + "decisions: [x]\n")
    with pytest.raises(PipelineError, match=r"c\.yaml:6:\d+: decisions: must be the path"):
        load_pipeline(tmp_path / "c.yaml")


def test_json_schema_knows_the_decisions_key() -> None:
    from qualpipe.pipeline.jsonschema import pipeline_schema
    from qualpipe.plugins import create_manager

    schema = pipeline_schema(create_manager().registry)
    assert schema["properties"]["decisions"]["type"] == "string"


def test_stage_types_name_known_targets() -> None:
    from qualpipe.stage import StageType

    def run(ctx: object) -> None:
        return None

    assert StageType("x", "x", "whole", run=run, decisions=["coding"]).decisions == ("coding",)
    with pytest.raises(ValueError, match="reads decisions about 'segment'"):
        StageType("x", "x", "whole", run=run, decisions=["segment"])


def test_explain_change_names_the_decision_targets() -> None:
    from qualpipe.fingerprint import explain_change

    old = {"format": 1, "params": "p", "inputs": {"a": "1"}}
    assert (
        explain_change(old, {**old, "decisions": {"coding": "f"}}) == "decisions changed (coding)"
    )
    both = {**old, "decisions": {"theme": "1", "quote": "2"}}
    assert explain_change(both, {**old, "decisions": {"theme": "1"}}) == "decisions changed (quote)"


def test_batch_jobs_with_decisions_pickle() -> None:
    import pickle

    from qualpipe.builtin.code import CODE
    from qualpipe.executors.base import BatchJob

    job = BatchJob("code", CODE, {}, {}, {}, "who", 10, decisions=[coding("reject")])
    assert pickle.loads(pickle.dumps(job)).decisions == [coding("reject")]


def test_summarise_counts_only() -> None:
    from qualpipe.decisions import summarise

    ds = [
        coding("reject"),
        coding("add", seg="s2"),
        Decision("theme", "reject", {"theme_id": "t"}, who="bo"),
    ]
    assert summarise(ds) == {
        "total": 3,
        "by_target": {"coding": {"reject": 1, "add": 1}, "theme": {"reject": 1}},
        "by_person": {"ana": {"reject": 1, "add": 1}, "bo": {"reject": 1}},
        "counts": [
            ["coding", "add", "ana", 1],
            ["coding", "reject", "ana", 1],
            ["theme", "reject", "bo", 1],
        ],
    }


def test_review_themes_follows_merges_and_moves_children_up() -> None:
    from qualpipe.codebook import Code, Codebook
    from qualpipe.themes.decisions import review_themes

    book = Codebook(
        "b",
        [
            Code("top", "Top", "overarching"),
            Code("a", "A", "theme", "top"),
            Code("a1", "A one", "code", "a"),
            Code("b", "B", "theme", "top"),
            Code("b1", "B one", "code", "b"),
            Code("c", "C", "theme", "top"),
            Code("c1", "C one", "code", "c"),
        ],
    )
    review = review_themes(
        book,
        [
            Decision("theme", "merge", {"theme_id": "a"}, {"into": "b"}, id="1"),
            Decision("theme", "merge", {"theme_id": "b"}, {"into": "c"}, id="2"),
            Decision("theme", "reject", {"theme_id": "top"}, id="3"),
            Decision("theme", "rename", {"theme_id": "c"}, {"name": "Sea"}, id="4"),
            Decision("quote", "reject", {"theme_id": "a", "segment_id": "s1"}, id="5"),
            Decision("quote", "accept", {"theme_id": "top", "segment_id": "s2"}, id="6"),
        ],
    )
    parents = {c.id: (c.parent_id, c.name) for c in review.book.codes}
    assert parents == {
        "c": (None, "Sea"),
        "a1": ("c", "A one"),
        "b1": ("c", "B one"),
        "c1": ("c", "C one"),
    }
    assert review.book.codes[0].id == "c"  # parents before children
    assert review.code_map == {"a": "c", "b": "c", "top": None}
    assert review.rejected_quotes == {("c", "s1")}  # a quote of a merged theme follows it
    assert review.unresolved == ["6"]  # a quote of a rejected theme
    assert review.stats()["decisions:theme_merge"] == 2


def test_a_torn_last_line_is_not_read_and_never_glued_to(tmp_path: Path) -> None:
    store = DecisionStore(tmp_path / "p.jsonl")
    store.append(coding("accept"))
    with store.path.open("a") as fh:
        fh.write('{"target": "coding", "act')  # a writer mid-line, or a crash
    assert [d.action for d in store.all()] == ["accept"]
    store.append(coding("reject", seg="s2"))
    # the torn line stays (append-only) on a line of its own: reported, not merged
    with pytest.raises(DecisionError, match=r"p\.jsonl:2: not a JSON decision"):
        store.all()
    assert store.path.read_text().splitlines()[2].startswith('{"action": "reject"')


def test_coding_decisions_on_one_batch() -> None:
    from qualpipe.builtin.code import apply_coding_decisions
    from qualpipe.codebook import Code, Codebook

    book = Codebook("b", [Code("t", "Talk", "theme"), Code("a", "A", "code", "t"), Code("b", "B")])
    segs = {s: {"segment_id": s, "doc_id": "d", "start": i * 10, "end": i * 10 + 9}
            for i, s in enumerate(("s0", "s1", "s2"))}  # fmt: skip

    def row(seg: str, code: str, coder: str = "rules") -> dict[str, object]:
        span = segs[seg]
        return {"segment_id": seg, "code_id": code, "coder": coder, "status": "suggested",
                "start": span["start"], "end": span["end"]}  # fmt: skip

    rows = [
        row("s0", "a"),
        row("s0", "a", "semantic"),
        row("s1", "a"),
        row("s1", "b"),
        row("s2", "b"),
    ]
    decisions = [
        Decision("coding", "reject", {"segment_id": "s0", "code": "a"}, id="1"),  # every coder
        Decision("coding", "accept", {"segment_id": "s1", "code": "Talk / A"}, id="2"),
        Decision(
            "coding", "edit", {"segment_id": "s2", "code": "b"}, {"code": "t/a"}, who="x", id="3"
        ),
        Decision("coding", "edit", {"segment_id": "s1", "code": "b"}, {"code": "a"}, id="4"),
        Decision("coding", "add", {"segment_id": "s9", "code": "a"}, id="5"),  # another batch
        Decision("coding", "reject", {"segment_id": "s2", "code": "b"}, id="6"),
    ]
    out = apply_coding_decisions(rows, segs, decisions, book)
    got = sorted((r["segment_id"], r["code_id"], r["status"], r["coder"]) for r in out)
    # s0/a rejected for every coder; s2/b: the later reject replaces the edit (same key);
    # s1: the person's coding of "a" (the edit) stands in for the accepted suggestion
    assert got == [("s1", "a", "human", "human:unknown")]
    without_reject = decisions[:5]
    out = apply_coding_decisions(rows, segs, without_reject, book)
    got = sorted((r["segment_id"], r["code_id"], r["status"], r["coder"]) for r in out)
    assert got == [("s1", "a", "human", "human:unknown"), ("s2", "a", "human", "human:x")]
    # a rejected code stays off the segment, even when an edit would move a coding there
    veto = [*without_reject, Decision("coding", "reject", {"segment_id": "s2", "code": "a"})]
    out = apply_coding_decisions(rows, segs, veto, book)
    assert sorted((r["segment_id"], r["code_id"]) for r in out) == [("s1", "a")]
