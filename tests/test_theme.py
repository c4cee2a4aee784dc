"""The theme stage: roll-up, prevalence, co-occurrence, quotes and proposals."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from qualpipe import Output, StageContext, StageType, hookimpl
from qualpipe.codebook import Code, Codebook
from qualpipe.errors import PipelineError
from qualpipe.schemas import CODINGS
from qualpipe.testing import Project
from qualpipe.themes.cooccurrence import by_participant, cooccurrence_rows, pair_counts
from qualpipe.themes.proposals import proposal_rows, propose
from qualpipe.themes.quotes import (
    QuoteOptions,
    is_interviewer,
    label_for,
    participant_numbers,
    roman,
    select_quotes,
    shorten,
)
from qualpipe.themes.rollup import (
    Prevalence,
    Segment,
    assignment_rows,
    roll_up,
    theme_rows,
    theme_targets,
)
from qualpipe.themes.text import TfidfMatrix, tokens

# -- a small paired study, end to end ---------------------------------------------------------

TRANSCRIPTS = {
    "data/u07.txt": """\
        Interviewer: Tell me about the support. Do you chat?

        U07: We chat over coffee every morning and she really listens to me when I talk about my week and my worries, which matters a great deal to me.

        Interviewer: Anything else?

        U07: We go swimming at the hall.
        """,  # noqa: E501
    "data/u12.txt": """\
        Interviewer: How do you spend time together?

        U12: Mostly we go swimming on Fridays and then we do the shopping together at the big market near the station, it gives the week some shape.

        Interviewer: And the plan?

        U12: There is a plan from the municipality, and she follows the plan but also listens when I want something different that day.
        """,  # noqa: E501
    "data/w13a.txt": """\
        Interviewer: What do you do?

        W13: I listen a lot, and we chat while we cook, because the conversation itself is the support for many of the people I meet in their homes.
        """,  # noqa: E501
    "data/w13b.txt": """\
        W13: The plan says two hours a week, but sometimes we improvise and go to the shop or take a long walk if he needs that more than cleaning.
        """,  # noqa: E501
    "data/u40.txt": """\
        Interviewer: How are your days?

        U40: I mostly stay at home and watch television in the evenings, and the days feel long and grey during the winter months up here in the north.
        """,  # noqa: E501
}

# W13 is one support worker interviewed twice, once per pair (docs/ingest.md)
MANIFEST = """\
    file,participant,role,pair,gender
    data/u07.txt,U07,Service user,P1,woman
    data/u12.txt,U12,Service user,P2,man
    data/w13a.txt,W13,Support worker,P1,woman
    data/w13b.txt,W13,Support worker,P2,woman
    data/u40.txt,U40,Service user,P3,woman
    """

CODEBOOK = """\
    codebook: 1
    name: SIDL
    codes:
      - id: spc
        name: Spontaneous planned complexity
        level: overarching
        children:
          - id: talking
            name: Talking
            level: theme
            description: Casual conversation; being heard.
            children:
              - id: being-heard
                name: Being heard
                level: subtheme
                children:
                  - {id: listen, name: Listening, keywords: [listen]}
              - {id: chat, name: Chatting, keywords: [chat, coffee]}
          - id: places
            name: Here there and everywhere
            level: theme
            children:
              - {id: swim, name: Swimming, keywords: ["swim*"]}
              - {id: shop, name: Shopping, keywords: [shop]}
      - id: order
        name: Order planning and improvisation
        level: theme
        children:
          - {id: plan, name: The plan, keywords: [plan]}
      - {id: becoming, name: Becoming, level: theme}
    """

PIPELINE = """\
qualpipe: 1
name: th
stages:
  - {id: ingest, uses: ingest, with: {paths: data, manifest: participants.csv}}
  - {id: segment, uses: segment}
  - {id: codebook, uses: codebook, with: {path: codebook.yaml}}
  - {id: code, uses: code, with: {coders: [rules]}}
"""

THEME = """\
  - id: theme
    uses: theme
    with:
      label_by_role: {Service user: number, Support worker: roman}
"""


def _setup(project: Project, extra: str = "", theme: str = THEME) -> None:
    for path, text in TRANSCRIPTS.items():
        project.write(path, text)
    project.write("participants.csv", MANIFEST)
    project.write("codebook.yaml", CODEBOOK)
    project.pipeline(PIPELINE + extra + theme)


def _run(project: Project, *args: str) -> None:
    result = project.run("run", "pipeline.yaml", *args)
    assert result.exit_code == 0, result.output


def _segments_by_prefix(project: Project) -> dict[str, str]:
    """First three words of each segment -> its id."""
    rows = project.dataset("th", "segment").to_pylist()
    return {" ".join(r["text"].split()[:3]): r["segment_id"] for r in rows}


@pytest.fixture
def study(qualpipe_project: Project) -> Project:
    _setup(qualpipe_project)
    _run(qualpipe_project)
    return qualpipe_project


def test_themes_counts_and_prevalence(study: Project) -> None:
    themes = study.dataset("th", "theme", "themes").to_pylist()
    got = {
        t["theme_id"]: (
            t["level"],
            t["parent_id"],
            t["segments"],
            t["documents"],
            t["participants"],
        )
        for t in themes
    }
    assert list(got) == ["spc", "talking", "being-heard", "places", "order", "becoming"]
    assert got == {
        # every coded segment but the interviewer turns without codes
        "spc": ("overarching", None, 7, 4, 3),
        # "Do you chat?" (interviewer), U07's long answer, U12 on the plan, W13 in pair P1
        "talking": ("theme", "spc", 4, 3, 3),
        "being-heard": ("subtheme", "talking", 3, 3, 3),
        "places": ("theme", "spc", 3, 3, 3),
        # "And the plan?" (interviewer, in U12's transcript), U12, W13 in pair P2
        "order": ("theme", None, 3, 2, 2),
        "becoming": ("theme", None, 0, 0, 0),  # listed although nothing was coded
    }
    assert all(t["proposal"] is False for t in themes)
    by_id = {t["theme_id"]: t for t in themes}
    assert by_id["talking"]["description"] == "Casual conversation; being heard."
    order = json.loads(by_id["order"]["prevalence"])
    assert order == {
        "gender": {"man": 1, "woman": 1, "_total": {"man": 1, "woman": 3}},
        # W13 spoke of the plan in the P2 interview only: attributes of the interview count
        "pair": {"P1": 0, "P2": 2, "P3": 0, "_total": {"P1": 2, "P2": 2, "P3": 1}},
        "role": {
            "Service user": 1,
            "Support worker": 1,
            "_total": {"Service user": 3, "Support worker": 1},
        },
    }
    talking = json.loads(by_id["talking"]["prevalence"])
    assert talking["pair"] == {"P1": 2, "P2": 1, "P3": 0, "_total": {"P1": 2, "P2": 2, "P3": 1}}
    assert talking["role"]["Service user"] / talking["role"]["_total"]["Service user"] == 2 / 3
    empty = json.loads(by_id["becoming"]["prevalence"])
    assert empty["role"] == {
        "Service user": 0,
        "Support worker": 0,
        "_total": {"Service user": 3, "Support worker": 1},
    }


def test_assignments_roll_up_through_ancestors(study: Project) -> None:
    seg = _segments_by_prefix(study)
    rows = study.dataset("th", "theme", "theme_assignments").to_pylist()
    got: dict[str, dict[str, tuple[float, list[str], list[str]]]] = {}
    for r in rows:
        got.setdefault(r["segment_id"], {})[r["theme_id"]] = (
            r["score"],
            r["code_ids"],
            r["coders"],
        )
    assert len(rows) == 20
    # chat (0.75: chat and coffee) and listen (0.5): listen also reaches the sub-theme
    assert got[seg["We chat over"]] == {
        "spc": (0.75, ["chat", "listen"], ["rules"]),
        "talking": (0.75, ["chat", "listen"], ["rules"]),
        "being-heard": (0.5, ["listen"], ["rules"]),
    }
    assert got[seg["Mostly we go"]] == {
        "spc": (0.5, ["shop", "swim"], ["rules"]),
        "places": (0.5, ["shop", "swim"], ["rules"]),
    }
    # order is a root theme: a plan coding does not reach the overarching theme
    assert got[seg["The plan says"]] == {
        "spc": (0.5, ["shop"], ["rules"]),
        "places": (0.5, ["shop"], ["rules"]),
        "order": (0.5, ["plan"], ["rules"]),
    }
    assert got[seg["And the plan?"]] == {"order": (0.5, ["plan"], ["rules"])}
    assert seg["I mostly stay"] not in got
    segments = study.dataset("th", "segment").to_pylist()
    docs = {s["segment_id"]: s["doc_id"] for s in segments}
    assert all(r["doc_id"] == docs[r["segment_id"]] for r in rows)
    # grouped by segment in dataset order, then codebook order
    order = [s["segment_id"] for s in segments]
    keys = [order.index(r["segment_id"]) for r in rows]
    assert keys == sorted(keys)


def test_cooccurrence_counts_and_jaccard(study: Project) -> None:
    rows = study.dataset("th", "theme", "cooccurrence").to_pylist()
    table = {(r["kind"], r["level"], r["a"], r["b"]): (r["count"], r["jaccard"]) for r in rows}
    assert all(r["a"] <= r["b"] for r in rows)
    # codes per segment: {chat} {chat, listen} {swim} {swim, shop} {plan} {plan, listen}
    # {listen, chat} {plan, shop}
    assert table[("code", "segment", "chat", "chat")] == (3, 1.0)
    assert table[("code", "segment", "chat", "listen")] == (2, 2 / 4)
    assert table[("code", "segment", "shop", "swim")] == (1, 1 / 3)
    assert table[("code", "segment", "listen", "plan")] == (1, 1 / 5)
    assert table[("code", "segment", "plan", "shop")] == (1, 1 / 4)
    assert ("code", "segment", "chat", "plan") not in table  # never together: left out
    # per participant: U07 {chat, listen, swim}, U12 {swim, shop, plan, listen},
    # W13 {listen, chat, plan, shop} (both interviews)
    assert table[("code", "participant", "chat", "listen")] == (2, 2 / 3)
    assert table[("code", "participant", "plan", "shop")] == (2, 1.0)
    assert table[("code", "participant", "listen", "listen")] == (3, 1.0)
    assert table[("theme", "segment", "spc", "spc")] == (7, 1.0)
    assert table[("theme", "segment", "spc", "talking")] == (4, 4 / 7)
    assert table[("theme", "segment", "order", "spc")] == (2, 2 / 8)
    assert table[("theme", "participant", "order", "talking")] == (2, 2 / 3)
    assert {r["kind"] for r in rows} == {"code", "theme"}
    assert {r["level"] for r in rows} == {"segment", "participant"}
    assert len(rows) == 52


def test_quotes_spread_length_and_labels(study: Project) -> None:
    seg = _segments_by_prefix(study)
    rows = study.dataset("th", "theme", "quotes").to_pylist()
    by_theme: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_theme.setdefault(r["theme_id"], []).append(r)
    assert set(by_theme) == {"spc", "talking", "being-heard", "places", "order"}
    for quotes in by_theme.values():
        assert [q["rank"] for q in quotes] == list(range(1, len(quotes) + 1))
        # never an interviewer, never the same participant twice while others wait
        assert all(not q["text"].startswith(("Tell me", "And the")) for q in quotes)
        assert len({q["participant_id"] for q in quotes}) == len(quotes)
        # a service user is followed by the support worker, whatever the scores
        if len(quotes) > 1:
            roles = [dict(q["attributes"])["role"] for q in quotes[:2]]
            assert roles[0] != roles[1]
    # "We go swimming at the hall." (6 words) is too short while longer quotes exist
    assert [q["segment_id"] for q in by_theme["places"]] == [
        seg["Mostly we go"],
        seg["The plan says"],
    ]
    labels = {q["participant_id"]: q["label"] for q in rows}
    assert labels == {"U07": "(7)", "U12": "(12)", "W13": "(XIII)"}
    talking = by_theme["talking"]
    assert talking[0]["score"] == max(q["score"] for q in talking)  # every candidate quoted
    assert all(0 < q["score"] <= 1 for q in rows)
    texts = {s["segment_id"]: s["text"] for s in study.dataset("th", "segment").to_pylist()}
    assert all(q["text"] == texts[q["segment_id"]] for q in rows)  # all within 80 words


@pytest.mark.parametrize(
    ("settings", "labels"),
    [
        ([], {"U07": "(Service user)", "U12": "(Service user)", "W13": "(Support worker)"}),
        (["--set", "theme.label=participant"], {"U07": "(U07)", "U12": "(U12)", "W13": "(W13)"}),
        (["--set", "theme.label=number"], {"U07": "(7)", "U12": "(12)", "W13": "(13)"}),
        (["--set", "theme.label=roman"], {"U07": "(VII)", "U12": "(XII)", "W13": "(XIII)"}),
    ],
)
def test_label_styles_in_a_run(
    qualpipe_project: Project, settings: list[str], labels: dict[str, str]
) -> None:
    theme = "  - {id: theme, uses: theme, with: {max_words: 12}}\n"
    _setup(qualpipe_project, theme=theme)
    _run(qualpipe_project, *settings)
    rows = qualpipe_project.dataset("th", "theme", "quotes").to_pylist()
    assert {q["participant_id"]: q["label"] for q in rows} == labels
    for q in rows:  # shortened to 12 words: at a sentence end if one fits, else a word
        assert q["text"].endswith(" …")
        assert len(q["text"].split()) <= 13


def test_proposals_are_separate_and_deterministic(study: Project) -> None:
    proposals = study.dataset("th", "theme", "proposals").to_pylist()
    themes = study.dataset("th", "theme", "themes").to_pylist()
    # 7 participant segments: at most one proposal per two segments
    clusters = [p["theme_id"] for p in proposals if p["theme_id"].startswith("proposal-")]
    assert clusters == ["proposal-1", "proposal-2", "proposal-3"]
    groups = [p for p in proposals if p["theme_id"].startswith("code-group-")]
    assert all(p["proposal"] and "occur together" in p["description"] for p in groups)
    assert all(p["proposal"] is True for p in proposals)
    assert not any(t["theme_id"].startswith("proposal-") for t in themes)
    clustered = [p for p in proposals if p["theme_id"].startswith("proposal-")]
    assert sum(p["segments"] for p in clustered) == 7
    sizes = [p["segments"] for p in clustered]
    assert sizes == sorted(sizes, reverse=True)
    segments = {s["segment_id"] for s in study.dataset("th", "segment").to_pylist()}
    for p in clustered:
        assert len(p["name"].split(" / ")) == 3
        assert p["description"].startswith("Machine proposal for researchers to review")
        reps = re.search(r"Representative segments: (.*)\.$", p["description"])
        assert reps is not None
        assert set(reps.group(1).split(", ")) <= segments
        terms = re.search(r"Top terms: (.*?)\. ", p["description"])
        assert terms is not None
        assert terms.group(1).split(", ")[:3] == p["name"].split(" / ")
        assert json.loads(p["prevalence"])["role"]["_total"] == {
            "Service user": 3,
            "Support worker": 1,
        }
    manifest = study.manifest("th", "theme")
    assert manifest["stats"]["themes_with_segments"] == 5
    assert manifest["stats"]["proposals"] == len(clustered) + len(groups) == 3 + len(groups)
    assert manifest["stats"]["quotes"] == 13
    _run(study, "--only", "theme", "--force")
    assert study.dataset("th", "theme", "proposals").to_pylist() == proposals
    _run(study, "--set", "theme.proposals=false")
    assert study.dataset("th", "theme", "proposals").num_rows == 0
    assert study.dataset("th", "theme", "themes").to_pylist() == themes


class _Reviewer:
    """A test plugin: a person rejects every 'plan' coding of an interviewer turn."""

    @staticmethod
    def run(ctx: StageContext) -> None:
        rows = []
        for batch in ctx.batches("codings"):
            for r in batch.to_pylist():
                if r["code_id"] == "plan" and r["segment_id"].endswith(ctx.params["segment"]):
                    r = {**r, "status": "rejected", "coder": "anna"}
                rows.append(r)
        ctx.write("codings", pa.Table.from_pylist(rows, schema=CODINGS.schema))

    @hookimpl
    def qualpipe_register_stages(self, register: Callable[[StageType], None]) -> None:
        from qualpipe import Param

        register(
            StageType(
                name="test-review",
                description="reject some codings",
                mode="whole",
                consumes=["codings"],
                produces=[Output("codings", "codings")],
                params=[Param("segment", "str")],
                run=self.run,
            )
        )


def test_rejected_codings_do_not_count(
    qualpipe_project: Project, qualpipe_plugin: Callable[..., str]
) -> None:
    qualpipe_plugin(_Reviewer(), "test-review")
    _setup(qualpipe_project)
    _run(qualpipe_project, "--until", "code")
    question = _segments_by_prefix(qualpipe_project)["And the plan?"]
    review = f"  - {{id: review, uses: test-review, with: {{segment: '{question[-9:]}'}}}}\n"
    _setup(qualpipe_project, extra=review)
    _run(qualpipe_project)
    themes = {
        t["theme_id"]: t for t in qualpipe_project.dataset("th", "theme", "themes").to_pylist()
    }
    assert (themes["order"]["segments"], themes["order"]["documents"]) == (2, 2)
    assigned = qualpipe_project.dataset("th", "theme", "theme_assignments").to_pylist()
    assert question not in {a["segment_id"] for a in assigned}
    stats = qualpipe_project.manifest("th", "theme")["stats"]
    assert stats["codings_skipped:status"] == 1
    assert stats["codings_used"] == 12
    # only human codings count: there are none
    _run(qualpipe_project, "--set", "theme.statuses=[human]")
    themes_h = qualpipe_project.dataset("th", "theme", "themes").to_pylist()
    assert all(t["segments"] == 0 for t in themes_h)
    assert qualpipe_project.dataset("th", "theme", "quotes").num_rows == 0


def test_counting_rejected_codings_is_refused(qualpipe_project: Project) -> None:
    _setup(qualpipe_project)
    result = qualpipe_project.run(
        "run", "pipeline.yaml", "--set", "theme.statuses=[suggested, rejected]"
    )
    assert result.exit_code != 0
    assert "'rejected' codings never count" in result.output


# -- roll-up on plain rows --------------------------------------------------------------------

BOOK = Codebook(
    "t",
    [
        Code("over", "Over", level="overarching"),
        Code("t1", "Theme one", level="theme", parent_id="over"),
        Code("s1", "Sub one", level="subtheme", parent_id="t1"),
        Code("c1", "Code one", parent_id="s1"),
        Code("c1a", "Sub-code", parent_id="c1"),
        Code("c2", "Code two", parent_id="t1"),
        Code("t2", "Theme two", level="theme"),
        Code("c3", "Code three", parent_id="t2"),
        Code("loose", "Loose code"),
    ],
)


def _seg(
    seg_id: str, pid: str | None, text: str = "x", speaker: str | None = None, **attrs: str
) -> Segment:
    doc = f"d-{pid or seg_id}"
    return Segment(seg_id, doc, text, speaker or pid, pid, dict(attrs))


def _coding(
    seg_id: str,
    code: str,
    status: str = "suggested",
    score: float | None = 0.5,
    coder: str = "rules",
) -> dict[str, Any]:
    return {
        "segment_id": seg_id,
        "doc_id": f"d-{seg_id}",
        "code_id": code,
        "coder": coder,
        "score": score,
        "status": status,
    }


def test_theme_targets_follow_ancestors() -> None:
    targets = theme_targets(BOOK)
    assert targets["c1a"] == ["s1", "t1", "over"]
    assert targets["c1"] == ["s1", "t1", "over"]
    assert targets["c2"] == ["t1", "over"]
    assert targets["s1"] == ["s1", "t1", "over"]  # a theme node coded directly
    assert targets["c3"] == ["t2"]
    assert targets["loose"] == []


def test_roll_up_statuses_scores_and_coders() -> None:
    codings = [
        _coding("a", "c1a", score=0.5),
        _coding("a", "c2", "human", None, coder="anna"),
        _coding("a", "c1", "accepted", 0.9, coder="semantic"),
        _coding("b", "c3", "rejected", 0.99),
        _coding("b", "c2", "rejected", 0.99),
        _coding("c", "nope"),
        _coding("zz", "c3"),
    ]
    segments = {s.segment_id: s for s in (_seg("a", "P1"), _seg("b", "P2"), _seg("c", "P3"))}
    result = roll_up(codings, BOOK, segments=segments)
    got = {
        k: (a.score, sorted(a.code_ids), sorted(a.coders)) for k, a in result.assignments.items()
    }
    assert got == {
        ("a", "s1"): (0.9, ["c1", "c1a"], ["rules", "semantic"]),
        ("a", "t1"): (0.9, ["c1", "c1a", "c2"], ["anna", "rules", "semantic"]),
        ("a", "over"): (0.9, ["c1", "c1a", "c2"], ["anna", "rules", "semantic"]),
    }
    assert result.skipped == {"status": 2, "unknown_code": 1, "unknown_segment": 1}
    assert result.used == 3
    assert dict(result.codes) == {"a": {"c1a", "c2", "c1"}}
    # a human coding without a score keeps the score empty
    only_human = roll_up([_coding("a", "c2", "human", None)], BOOK)
    assert only_human.assignments[("a", "t1")].score is None
    # rejected never counts, whatever the parameter says
    with pytest.raises(PipelineError, match="'rejected' codings never count"):
        roll_up(codings, BOOK, statuses=["rejected"])
    with pytest.raises(PipelineError, match="unknown status"):
        roll_up(codings, BOOK, statuses=["maybe"])
    rows = assignment_rows(result, BOOK, segments)
    assert [(r["segment_id"], r["theme_id"]) for r in rows] == [
        ("a", "over"),
        ("a", "t1"),
        ("a", "s1"),
    ]


def test_theme_rows_and_prevalence_on_plain_rows() -> None:
    segments = {
        s.segment_id: s
        for s in (
            _seg("a", "P1", role="user", pair="1"),
            _seg("b", "P1", role="user", pair="1"),
            _seg("c", "P2", role="worker", pair="1"),
            _seg("d", "P2", role="worker", pair="2"),
            _seg("e", None),  # no participant: its document is the case
        )
    }
    codings = [_coding(s, "c3") for s in ("a", "b", "d", "e")]
    result = roll_up(codings, BOOK, segments=segments)
    rows = {r["theme_id"]: r for r in theme_rows(BOOK, result, segments)}
    assert list(rows) == ["over", "t1", "s1", "t2"]
    t2 = rows["t2"]
    assert (t2["segments"], t2["documents"], t2["participants"]) == (4, 3, 3)
    assert json.loads(t2["prevalence"]) == {
        "pair": {"1": 1, "2": 1, "_total": {"1": 2, "2": 1}},
        "role": {"user": 1, "worker": 1, "_total": {"user": 1, "worker": 1}},
    }
    assert (rows["t1"]["segments"], rows["t1"]["participants"]) == (0, 0)
    assert Prevalence({}).json(["a"]) == "{}"


def test_cooccurrence_on_plain_rows() -> None:
    units = {"s1": {"a", "b"}, "s2": {"a"}, "s3": {"b", "c"}, "s4": set()}
    assert pair_counts(units.values()) == {
        ("a", "a"): 2,
        ("a", "b"): 1,
        ("b", "b"): 2,
        ("b", "c"): 1,
        ("c", "c"): 1,
    }
    rows = cooccurrence_rows("code", "segment", units)
    assert [(r["a"], r["b"], r["count"], r["jaccard"]) for r in rows] == [
        ("a", "a", 2, 1.0),
        ("a", "b", 1, 1 / 3),
        ("b", "b", 2, 1.0),
        ("b", "c", 1, 1 / 2),
        ("c", "c", 1, 1.0),
    ]
    merged = by_participant(units, {"s1": "P1", "s2": "P1", "s3": "P2"})
    assert merged == {"P1": {"a", "b"}, "P2": {"b", "c"}}


# -- quotes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "numeral"),
    [(1, "I"), (4, "IV"), (9, "IX"), (13, "XIII"), (14, "XIV"), (40, "XL"), (1994, "MCMXCIV")],
)
def test_roman(n: int, numeral: str) -> None:
    assert roman(n) == numeral


def test_participant_numbers_and_labels() -> None:
    segs = [
        _seg("1", "U07", role="Service user"),
        _seg("2", "anna", role="Service user"),
        _seg("3", "PR13", role="Professional"),
        _seg("4", "bertil", role="Professional"),
        _seg("5", "cecilia", role="Service user"),
        _seg("6", None, role="Professional"),
    ]
    numbers = participant_numbers(segs, "role")
    # numbers from ids; the others numbered within their role, skipping numbers in use
    assert numbers == {"U07": 7, "anna": 1, "cecilia": 2, "PR13": 13, "bertil": 1, "doc:d-6": 2}
    options = QuoteOptions(label="role", label_by_role={"Service user": "number"})
    options.check()
    got = [label_for(s, options.style(s.attributes["role"]), "role", numbers) for s in segs]
    assert got == ["(7)", "(1)", "(Professional)", "(Professional)", "(2)", "(Professional)"]
    assert label_for(segs[2], "roman", "role", numbers) == "(XIII)"
    assert label_for(segs[0], "participant", "role", numbers) == "(U07)"
    assert label_for(segs[5], "participant", "role", numbers) == "(Participant)"
    assert label_for(_seg("7", "P1"), "role", "role", {}) == "(Participant)"
    with pytest.raises(PipelineError, match="label_by_role: Professional: unknown label style"):
        QuoteOptions(label_by_role={"Professional": "greek"}).check()
    with pytest.raises(PipelineError, match="max_words at least 1"):
        QuoteOptions(max_words=0).check()


def test_is_interviewer() -> None:
    labels = ["Interviewer", "I", "Int", "Q", "Intervjuare"]
    for speaker in ("Interviewer", "interviewer", "I", "Interviewer 2", "I1", "Q:", "INTERVJUARE"):
        assert is_interviewer(speaker, labels), speaker
    for other in ("Ida", "P1", "Intern", None, ""):
        assert not is_interviewer(other, labels), other


def test_shorten_at_sentence_ends() -> None:
    text = "One two three four. Five six seven. Eight nine ten eleven twelve."
    assert shorten(text, 20) == text
    assert shorten(text, 12) == text
    assert shorten(text, 8) == "One two three four. Five six seven. …"
    assert shorten(text, 5) == "One two three four. …"
    # the first sentence alone is too long: cut at a word, dropping a trailing comma
    assert shorten("Well, we went to, the shop and more words here.", 4) == "Well, we went to …"
    assert shorten("Vi gick t.ex. till affären. Sen åkte vi hem igen.", 6) == (
        "Vi gick t.ex. till affären. …"
    )


def _quote_setup(segs: list[Segment]) -> tuple[dict[str, Segment], TfidfMatrix, dict[str, int]]:
    for i, s in enumerate(segs):
        s.order = i
    segments = {s.segment_id: s for s in segs}
    matrix = TfidfMatrix.fit([s.text for s in segs])
    return segments, matrix, {s.segment_id: i for i, s in enumerate(segs)}


LONG = "we talk about the week and she listens to me over coffee in the kitchen every day"


def test_select_quotes_spread_and_length() -> None:
    segs = [
        _seg("u1a", "U1", LONG + " talk talk", role="user"),
        _seg("u1b", "U1", LONG + " listens", role="user"),
        _seg("u2", "U2", LONG + " garden", role="user"),
        _seg("w1", "W1", LONG + " cars and roads and bridges", role="worker"),
        _seg("i1", "U1", LONG + " talk talk talk", speaker="Interviewer", role="user"),
        _seg("short", "U3", "we talk", role="user"),
        _seg("dup", "U4", LONG + " talk talk", role="user"),  # same words as u1a
    ]
    segments, matrix, row_of = _quote_setup(segs)
    numbers = participant_numbers(segs, "role")
    ids = list(segments)
    rows = select_quotes("t", ids, segments, matrix, row_of, QuoteOptions(per_theme=5), numbers)
    picked = [r["segment_id"] for r in rows]
    # best first; then the other role before more users; then unused participants; then
    # the second quote of U1; never the interviewer, the duplicate or the short segment
    assert picked[0] in ("u1a", "u1b", "u2")
    assert picked[1] == "w1"
    assert len(picked) == 4
    assert set(picked) == {"u1a", "u1b", "u2", "w1"}
    assert picked.index("u2") < max(picked.index("u1a"), picked.index("u1b"))
    assert [r["rank"] for r in rows] == [1, 2, 3, 4]
    assert rows[1]["label"] == "(worker)"
    assert rows[0]["score"] == max(r["score"] for r in rows)
    # nothing of readable length: short segments are used
    short = select_quotes("t", ["short"], segments, matrix, row_of, QuoteOptions(), numbers)
    assert [r["segment_id"] for r in short] == ["short"]
    assert select_quotes("t", ["i1"], segments, matrix, row_of, QuoteOptions(), numbers) == []
    assert select_quotes("t", [], segments, matrix, row_of, QuoteOptions(), numbers) == []


def test_quote_scores_prefer_the_centre_of_the_theme() -> None:
    segs = [
        _seg("a", "P1", "swimming hall swimming pool swimming on fridays with my worker"),
        _seg("b", "P2", "the swimming hall and the pool on fridays, swimming is good"),
        _seg("c", "P3", "we went swimming once but mostly we talk about money and bills"),
    ]
    segments, matrix, row_of = _quote_setup(segs)
    rows = select_quotes(
        "t", list(segments), segments, matrix, row_of, QuoteOptions(min_words=0), {}
    )
    scores = {r["segment_id"]: r["score"] for r in rows}
    assert scores["c"] < min(scores["a"], scores["b"])
    assert rows[-1]["segment_id"] == "c"


# -- proposals --------------------------------------------------------------------------------

TOPICS = {
    "swim": "we go swimming at the swimming hall and swim in the pool on fridays",
    "plan": "the intervention plan from the municipality says two hours of planned support",
    "talk": "we talk and chat over coffee and she listens to me, just talking together",
}


def _corpus() -> list[Segment]:
    segs = []
    for i in range(4):
        for name, text in TOPICS.items():
            words = text.split()
            random.Random(i).shuffle(words)
            segs.append(_seg(f"{name}-{i}", f"P{i}", " ".join(words), role="user"))
    segs.append(_seg("empty", "P9", "um yeah"))  # no counted words: left out
    return segs


def test_proposals_find_the_topics_deterministically() -> None:
    segs = _corpus()
    found = propose(segs, 3, seed=0)
    groups = sorted(sorted({s.split("-")[0] for s in p.segment_ids}) for p in found)
    assert groups == [["plan"], ["swim"], ["talk"]]
    assert all(len(p.segment_ids) == 4 for p in found)
    shuffled = list(segs)
    random.Random(7).shuffle(shuffled)
    assert propose(shuffled, 3, seed=0) == found
    assert propose(segs, 3, seed=0) == found
    swim = next(p for p in found if p.segment_ids[0].startswith("swim"))
    assert swim.terms[0] == "swimming"
    assert len(swim.representatives) == 3
    rows = proposal_rows(found, {s.segment_id: s for s in segs})
    assert [r["theme_id"] for r in rows] == ["proposal-1", "proposal-2", "proposal-3"]
    assert all(r["proposal"] for r in rows)
    assert all(r["segments"] == 4 and r["participants"] == 4 for r in rows)


def test_fewer_proposals_for_few_segments() -> None:
    segs = _corpus()
    assert len(propose(segs[:3], 5)) == 1  # three segments: one proposal
    assert len(propose(segs[:5], 5)) == 2
    assert propose(segs[:1], 5)[0].segment_ids == [segs[0].segment_id]
    assert propose([_seg("e", "P1", "um yeah")], 5) == []
    same = [_seg(f"s{i}", f"P{i}", "swimming pool") for i in range(6)]
    assert len(propose(same, 3)) == 1  # identical vectors: one cluster
    assert len(propose(segs, 20)) == 3  # 12 segments but only three different vectors


def test_tokens() -> None:
    words = tokens("We DON'T talk, 3 times: prata! Über-café i")
    assert words == ["talk", "times", "prata", "über", "café"]
    # placeholders and notes say who was replaced or what happened, not what was said
    text = "Min mamma i [PLACE 1] (skrattar) at (name of the institution) [laughs]"
    assert tokens(text) == ["mamma"]
    assert tokens("(we went to the big old city)") == ["went", "big", "old", "city"]  # speech


# -- docs -------------------------------------------------------------------------------------


def test_docs_list_every_parameter() -> None:
    from qualpipe.builtin.theme import THEME

    page = (Path(__file__).resolve().parents[1] / "docs" / "themes.md").read_text("utf-8")
    for param in THEME.params:
        assert f"| `{param.name}` |" in page, param.name
    for output in THEME.outputs:
        assert f"`{output.name}`" in page, output.name
