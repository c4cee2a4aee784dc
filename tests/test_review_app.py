"""The review app (qualpipe review) through Flask's test client: pages render from a real
run, every action appends the right decision, and the app guards what it shows and who
may post (CSRF token, Host header, sensitive datasets, the key, the logs)."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask", reason="the review app needs flask (pip install 'qualpipe[review]')")

from flask.testing import FlaskClient

from qualpipe.decisions import DecisionStore
from qualpipe.logs import configure
from qualpipe.review.app import create_app
from qualpipe.review.server import ServerThread
from qualpipe.review.session import ReviewSession
from qualpipe.testing import Project

# A small generated study: names, a place, a TV show the heuristic wrongly masks
# (Melodifestivalen: a false positive) and a day centre it misses (Solgläntan).
TRANSCRIPTS = {
    "data/u01.txt": """\
        Interviewer: Tell me about the support you get. Do you chat?

        U01: We chat over coffee every morning and Karin really listens to me when I talk about my week and my worries, which matters a great deal.

        Interviewer: Where do you go together?

        U01: We go swimming at the hall in Uppsala on Fridays, and sometimes to the market near the station.
        """,  # noqa: E501
    "data/u02.txt": """\
        Interviewer: How do you spend time together?

        U02: Mostly we go shopping together and then we have a long chat, and she follows the plan from the municipality but also listens to me.

        Interviewer: Anything else?

        U02: My neighbour Bosse Tallbacken comes along sometimes, he is a retired baker and we watch Melodifestivalen together over coffee.
        """,  # noqa: E501
    "data/w01.txt": """\
        Interviewer: What do you do in a normal week?

        W01: I listen a lot, and we chat while we cook, because the conversation itself is the support. The plan says two hours, but we improvise and go swimming if he needs that more than cleaning.

        Interviewer: Where do you meet?

        W01: Solgläntan is the day centre where we meet on Mondays. Then we buy groceries at Coop and walk home along the river.
        """,  # noqa: E501
}

MANIFEST = """\
    file,participant,role
    data/u01.txt,U01,Service user
    data/u02.txt,U02,Service user
    data/w01.txt,W01,Support worker
    """

CODEBOOK = """\
    codebook: 1
    name: Support
    codes:
      - id: talking
        name: Talking
        level: theme
        description: Casual conversation; being heard.
        children:
          - {id: listen, name: Listening, description: Being listened to., keywords: [listen]}
          - {id: chat, name: Chatting, description: Small talk over coffee., keywords: [chat, coffee]}
      - id: places
        name: Places
        level: theme
        description: Where support happens.
        children:
          - {id: swim, name: Swimming, keywords: ["swim*"]}
          - {id: shop, name: Shopping, keywords: [shop*, market]}
      - id: order
        name: Plans and improvisation
        level: theme
        children:
          - {id: plan, name: The plan, keywords: [plan, improvise]}
    """  # noqa: E501

PIPELINE = """\
qualpipe: 1
name: rv
stages:
  - {id: ingest, uses: ingest, with: {paths: data, manifest: participants.csv}}
  - {id: anonymise, uses: anonymise, with: {key: ../keys/rv.key.json}}
  - {id: segment, uses: segment, with: {strategy: turn, participant_only: true}}
  - {id: codebook, uses: codebook, with: {path: codebook.yaml}}
  - {id: code, uses: code, with: {coders: [rules]}}
  - {id: theme, uses: theme, with: {quotes_per_theme: 2, min_words: 5}}
"""

#: Raw identifiers of the corpus: never in a page, a log or the decisions file
#: (Melodifestivalen only once a reviewer says it is not an identifier).
RAW = ["Karin", "Uppsala", "Bosse Tallbacken", "Melodifestivalen"]


def make_study(project: Project, pipeline: str = PIPELINE) -> Project:
    for path, text in TRANSCRIPTS.items():
        project.write(path, text)
    project.write("participants.csv", MANIFEST)
    project.write("codebook.yaml", CODEBOOK)
    project.pipeline(pipeline)
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    return project


@pytest.fixture
def study(qualpipe_project: Project) -> Project:
    return make_study(qualpipe_project)


@pytest.fixture
def session(study: Project) -> ReviewSession:
    return ReviewSession(study.root / "pipeline.yaml", who="tester")


@pytest.fixture
def client(session: ReviewSession) -> FlaskClient:
    return create_app(session).test_client()


def post(client: FlaskClient, session: ReviewSession, url: str, body: dict[str, Any]) -> Any:
    return client.post(url, json=body, headers={"X-CSRF-Token": session.csrf_token})


def findings(study: Project) -> list[dict[str, Any]]:
    return list(study.dataset("rv", "anonymise", "findings").to_pylist())


def finding_of(study: Project, replacement_prefix: str) -> dict[str, Any]:
    return next(f for f in findings(study) if f["replacement"].startswith(replacement_prefix))


def anonymised(study: Project) -> dict[str, str]:
    docs = study.dataset("rv", "anonymise", "documents").to_pylist()
    return {d["doc_id"]: d["text"] for d in docs}


def finding_ref(f: dict[str, Any]) -> dict[str, Any]:
    return {
        "document_id": f["doc_id"],
        "start": f["start"],
        "end": f["end"],
        "type": f["entity_type"],
        "replacement": f["replacement"],
    }


# -- pages ------------------------------------------------------------------------------------


def test_pages_render_the_anonymised_run(study: Project, client: FlaskClient) -> None:
    pages = {p: client.get(p) for p in ("/", "/findings", "/codings", "/themes", "/decisions")}
    for path, r in pages.items():
        assert r.status_code == 200, path
        html = r.get_data(as_text=True)
        for raw in RAW:
            assert raw not in html, (path, raw)
    overview = pages["/"].get_data(as_text=True)
    n_findings, n_codings = len(findings(study)), len(study.dataset("rv", "code").to_pylist())
    pairs = {(r["segment_id"], r["code_id"]) for r in study.dataset("rv", "code").to_pylist()}
    assert n_codings >= len(pairs) > 5
    row = re.search(r'href="/findings">[^<]+</a></th><td class="num">(\d+)</td>', overview)
    assert row is not None and int(row.group(1)) == n_findings
    row = re.search(r'href="/codings">[^<]+</a></th><td class="num">(\d+)</td>', overview)
    assert row is not None and int(row.group(1)) == len(pairs)

    page = pages["/findings"].get_data(as_text=True)
    fp = finding_of(study, "[NAME")
    # the placeholder highlighted in its anonymised context, with type, recogniser, score
    assert f'<mark class="frag this" data-s="{fp["start"]}">{fp["replacement"]}</mark>' in page
    assert "we watch " in page and "OTHER" in page and "propagation" in page
    assert page.count('class="item"') == n_findings

    page = pages["/codings"].get_data(as_text=True)
    assert "Talking › Chatting" in page and "Small talk over coffee." in page
    assert "Tell me about the support you get. Do you chat?" in page  # the question
    assert '<span class="frag evidence"' in page  # evidence highlighted
    assert page.count('class="item"') == len(pairs)

    page = pages["/themes"].get_data(as_text=True)
    themes = study.dataset("rv", "theme", "themes").to_pylist()
    for t in themes:
        if not t["proposal"]:
            assert f'id="t-{t["theme_id"]}"' in page
    talking = next(t for t in themes if t["theme_id"] == "talking")
    cells = re.search(r'id="t-talking".*?</tr>', page, re.S)
    assert cells is not None
    nums = [int(n) for n in re.findall(r'<td class="num">(\d+)', cells.group(0))]
    assert nums == [talking["segments"], talking["documents"], talking["participants"]]
    quotes = study.dataset("rv", "theme", "quotes").to_pylist()
    assert quotes and all(q["text"] in page for q in quotes)


def test_security_headers_on_pages_and_static_files(client: FlaskClient) -> None:
    for path in ("/", "/findings", "/static/review.js", "/static/review.css", "/api/rerun"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "no-store" in r.headers["Cache-Control"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    html = client.get("/").get_data(as_text=True)
    # no inline script or style (the CSP would block them) and nothing from elsewhere
    assert "<script>" not in html and "style=" not in html and "<style" not in html
    assert "http://" not in html and "https://" not in html


# -- actions append decisions --------------------------------------------------------------------


def test_actions_append_the_right_decisions(
    study: Project, session: ReviewSession, client: FlaskClient
) -> None:
    store = DecisionStore(study.root / "decisions" / "rv.jsonl")
    assert session.decisions.path == store.path
    fp = finding_of(study, "[NAME")
    r = post(
        client,
        session,
        "/api/decide",
        {"target": "finding", "action": "reject", "ref": finding_ref(fp), "memo": "a TV show"},
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["state"] == "false positive"

    # a missed identifier: the server takes the text from the anonymised document
    docs = anonymised(study)
    doc_id, text = next((d, t) for d, t in docs.items() if "Solgläntan" in t)
    start = text.index("Solgläntan")
    r = post(
        client,
        session,
        "/api/decide",
        {
            "target": "finding",
            "action": "add",
            "ref": {"document_id": doc_id, "start": start - 1, "end": start + 11},
            "value": {"type": "org"},
        },
    )
    assert r.status_code == 200, r.get_json()

    codings = study.dataset("rv", "code").to_pylist()
    chat = next(c for c in codings if c["code_id"] == "chat")
    ref = {"segment_id": chat["segment_id"], "code": "chat"}
    r = post(client, session, "/api/decide", {"target": "coding", "action": "reject", "ref": ref})
    assert r.status_code == 200 and r.get_json()["state"] == "rejected"
    segments = {s["segment_id"]: s for s in study.dataset("rv", "segment").to_pylist()}
    seg = segments[chat["segment_id"]]
    r = post(
        client,
        session,
        "/api/decide",
        {
            "target": "coding",
            "action": "add",
            "ref": {"segment_id": seg["segment_id"], "code": "plan"},
            "value": {"start": seg["start"] + 3, "end": seg["start"] + 7},
        },
    )
    assert r.status_code == 200, r.get_json()
    r = post(
        client,
        session,
        "/api/decide",
        {
            "target": "theme",
            "action": "rename",
            "ref": {"theme_id": "talking"},
            "value": {"name": "  Talking   and listening "},
        },
    )
    assert r.status_code == 200, r.get_json()
    quote = study.dataset("rv", "theme", "quotes").to_pylist()[0]
    qref = {"theme_id": quote["theme_id"], "segment_id": quote["segment_id"]}
    r = post(client, session, "/api/decide", {"target": "quote", "action": "reject", "ref": qref})
    assert r.status_code == 200, r.get_json()

    got = [(d.target, d.action, d.ref, d.value, d.who, d.source, d.memo) for d in store.all()]
    assert got == [
        ("finding", "reject", finding_ref(fp), {}, "tester", "review", "a TV show"),
        (
            "finding",
            "add",
            {"document_id": doc_id, "start": start, "end": start + 10},  # trimmed to the word
            {"text": "Solgläntan", "type": "ORG"},
            "tester",
            "review",
            "",
        ),
        ("coding", "reject", ref, {}, "tester", "review", ""),
        (
            "coding",
            "add",
            {"segment_id": seg["segment_id"], "code": "plan"},
            {"start": seg["start"] + 3, "end": seg["start"] + 7},
            "tester",
            "review",
            "",
        ),
        (
            "theme",
            "rename",
            {"theme_id": "talking"},
            {"name": "Talking and listening"},
            "tester",
            "review",
            "",
        ),
        ("quote", "reject", qref, {}, "tester", "review", ""),
    ]
    # the pages show them as decided; the human coding waits for a re-run
    page = client.get("/findings?state=decided").get_data(as_text=True)
    assert page.count('class="item"') == 1 and "false positive" in page
    page = client.get("/codings?state=decided").get_data(as_text=True)
    assert "rejected" in page and "added by you" in page and "The plan" in page
    assert "Talking and listening" in client.get("/themes").get_data(as_text=True)
    decided = client.get("/decisions").get_data(as_text=True)
    assert "Solgläntan" not in decided  # the missed identifier's text stays in the file

    # undo is a later decision; the item is open again
    r = post(client, session, "/api/undo", {"id": store.all()[2].id})
    assert r.status_code == 200 and r.get_json()["state"] == "open"
    assert store.all()[-1].action == "undo"
    assert ("coding", "reject") not in [(d.target, d.action) for d in store.effective()]
    assert client.get("/codings?state=decided").get_data(as_text=True).count('class="item"') == 1


def test_plain_forms_work_without_javascript(
    study: Project, session: ReviewSession, client: FlaskClient
) -> None:
    fp = finding_of(study, "[PERSON")
    r = client.post(
        "/api/decide",
        data={
            "csrf": session.csrf_token,
            "target": "finding",
            "action": "accept",
            "ref": json.dumps(finding_ref(fp)),
            "memo": "",
            "next": "/findings?state=all",
        },
    )
    assert r.status_code == 303 and r.headers["Location"].endswith("/findings?state=all")
    r = client.post(
        "/api/decide",
        data={
            "csrf": session.csrf_token,
            "target": "theme",
            "action": "merge",
            "ref": json.dumps({"theme_id": "order"}),
            "name": "",
            "into": "places",
            "next": "//evil.example/",
        },
    )
    assert r.status_code == 303 and r.headers["Location"] == "/"  # no open redirect
    assert [(d.action, d.value) for d in session.decisions.all()] == [
        ("accept", {}),
        ("merge", {"into": "places"}),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {
                "target": "finding",
                "action": "reject",
                "ref": {"document_id": "nope", "start": 0, "end": 3},
            },
            "no anonymised document",
        ),
        (
            {"target": "coding", "action": "accept", "ref": {"segment_id": "x", "code": "chat"}},
            "no segment",
        ),
        (
            {
                "target": "theme",
                "action": "merge",
                "ref": {"theme_id": "order"},
                "value": {"into": "order"},
            },
            "another theme",
        ),
        ({"target": "theme", "action": "delete", "ref": {"theme_id": "order"}}, "not 'delete'"),
        (
            {
                "target": "quote",
                "action": "accept",
                "ref": {"theme_id": "order", "segment_id": "x"},
            },
            "no such quote",
        ),
        ({"target": "people", "action": "accept", "ref": {}}, "unknown decision target"),
    ],
)
def test_impossible_decisions_are_refused(
    session: ReviewSession, client: FlaskClient, body: dict[str, Any], message: str
) -> None:
    r = post(client, session, "/api/decide", body)
    assert r.status_code == 400
    assert message in r.get_json()["error"]
    assert session.decisions.all() == []


def test_spans_are_checked(study: Project, session: ReviewSession, client: FlaskClient) -> None:
    fp = finding_of(study, "[PERSON")
    # a missed identifier must not overlap a replacement
    r = post(
        client,
        session,
        "/api/decide",
        {
            "target": "finding",
            "action": "add",
            "ref": {"document_id": fp["doc_id"], "start": fp["start"] - 4, "end": fp["end"]},
            "value": {"type": "PERSON"},
        },
    )
    assert r.status_code == 400 and "already replaced" in r.get_json()["error"]
    r = post(
        client,
        session,
        "/api/decide",
        {
            "target": "finding",
            "action": "add",
            "ref": {"document_id": fp["doc_id"], "start": 0, "end": 5},
            "value": {"type": "NICKNAME"},
        },
    )
    assert r.status_code == 400 and "unknown identifier type" in r.get_json()["error"]
    seg = study.dataset("rv", "segment").to_pylist()[0]
    r = post(
        client,
        session,
        "/api/decide",
        {
            "target": "coding",
            "action": "add",
            "ref": {"segment_id": seg["segment_id"], "code": "chat"},
            "value": {"start": seg["start"], "end": seg["end"] + 1},
        },
    )
    assert r.status_code == 400 and "inside the segment" in r.get_json()["error"]
    r = post(
        client,
        session,
        "/api/decide",
        {
            "target": "coding",
            "action": "add",
            "ref": {"segment_id": seg["segment_id"], "code": "no-such-code"},
        },
    )
    assert r.status_code == 400 and "no code" in r.get_json()["error"]
    assert session.decisions.all() == []


# -- guards -----------------------------------------------------------------------------------


def test_posts_need_the_session_csrf_token(
    study: Project, session: ReviewSession, client: FlaskClient
) -> None:
    body = {"target": "theme", "action": "accept", "ref": {"theme_id": "talking"}}
    assert client.post("/api/decide", json=body).status_code == 403
    r = client.post("/api/decide", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert r.status_code == 403 and "CSRF" in r.get_json()["error"]
    r = client.post("/api/decide", data={**body, "ref": '{"theme_id": "talking"}', "csrf": ""})
    assert r.status_code == 403
    assert client.post("/api/rerun").status_code == 403
    assert client.post("/api/undo", json={"id": "x"}).status_code == 403
    # another site's page cannot post even with a token it somehow learnt
    r = client.post(
        "/api/decide",
        json=body,
        headers={"X-CSRF-Token": session.csrf_token, "Origin": "http://evil.example"},
    )
    assert r.status_code == 403
    assert session.decisions.all() == []
    assert not session.rerun.running
    # the token is per session: a new session has a new one
    assert ReviewSession(study.root / "pipeline.yaml").csrf_token != session.csrf_token
    html = client.get("/").get_data(as_text=True)
    assert f'<meta name="csrf-token" content="{session.csrf_token}">' in html


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8080", "192.168.1.5", "[::2]"])
def test_host_header_must_be_local(session: ReviewSession, client: FlaskClient, host: str) -> None:
    r = client.get("/", headers={"Host": host})
    assert r.status_code == 400 and "Host" in r.get_data(as_text=True)
    r = client.post(
        "/api/decide",
        json={"target": "theme", "action": "accept", "ref": {"theme_id": "talking"}},
        headers={"Host": host, "X-CSRF-Token": session.csrf_token},
    )
    assert r.status_code == 400
    assert session.decisions.all() == []
    for ok in ("127.0.0.1:5000", "localhost", "localhost:61234"):
        assert client.get("/", headers={"Host": ok}).status_code == 200


def test_sensitive_datasets_are_refused(qualpipe_project: Project) -> None:
    # no anonymise stage: segments, codings and themes stay marked sensitive
    raw = PIPELINE.replace(
        "  - {id: anonymise, uses: anonymise, with: {key: ../keys/rv.key.json}}\n", ""
    )
    study = make_study(qualpipe_project, raw)
    session = ReviewSession(study.root / "pipeline.yaml")
    client = create_app(session).test_client()
    for path in ("/codings", "/themes"):
        r = client.get(path)
        assert r.status_code == 403, path
        page = r.get_data(as_text=True)
        assert "marked sensitive" in page
        for raw_text in RAW:
            assert raw_text not in page
    overview = client.get("/")
    assert overview.status_code == 200 and "marked sensitive" in overview.get_data(as_text=True)
    r = post(
        client,
        session,
        "/api/decide",
        {"target": "coding", "action": "reject", "ref": {"segment_id": "x", "code": "chat"}},
    )
    assert r.status_code == 403
    assert "no anonymise stage" in client.get("/findings").get_data(as_text=True)


def test_a_documents_dataset_marked_sensitive_is_refused(study: Project) -> None:
    manifest_path = study.workdir("rv") / "anonymise" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["outputs"]["documents"]["sensitive"] = True
    manifest_path.write_text(json.dumps(manifest))
    session = ReviewSession(study.root / "pipeline.yaml")
    client = create_app(session).test_client()
    r = client.get("/findings")
    assert r.status_code == 403
    page = r.get_data(as_text=True)
    assert "anonymise.documents" in page and "marked sensitive" in page
    assert "we watch" not in page


def test_the_key_is_never_opened(
    study: Project, session: ReviewSession, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = (study.root.parent / "keys" / "rv.key.json").resolve()
    assert key.is_file()
    opened: list[str] = []
    real_open = open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    import builtins
    import pathlib

    monkeypatch.setattr(builtins, "open", spy_open)
    real_read = pathlib.Path.read_bytes

    def spy_read(self: pathlib.Path) -> bytes:
        opened.append(str(self))
        return real_read(self)

    monkeypatch.setattr(pathlib.Path, "read_bytes", spy_read)
    for path in ("/", "/findings", "/codings", "/themes", "/decisions", "/api/plan"):
        assert client.get(path).status_code == 200
    fp = finding_of(study, "[NAME")
    post(
        client,
        session,
        "/api/decide",
        {"target": "finding", "action": "reject", "ref": finding_ref(fp)},
    )
    assert opened  # the spy saw the app's own reads
    assert not [p for p in opened if "key" in Path(p).name], opened


# -- re-runs, logs, the command ------------------------------------------------------------------


def test_rerun_applies_decisions_and_logs_no_text(
    study: Project, session: ReviewSession, capfd: pytest.CaptureFixture[str]
) -> None:
    log = io.StringIO()
    configure(stream=log, level="debug")
    with ServerThread(create_app(session)) as url:
        assert url.startswith("http://127.0.0.1:")

        def call(path: str, body: dict[str, Any] | None = None) -> Any:
            req = urllib.request.Request(
                url.rstrip("/") + path,
                data=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "X-CSRF-Token": session.csrf_token},
                method="GET" if body is None else "POST",
            )
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())

        fp = finding_of(study, "[NAME")
        call("/api/decide", {"target": "finding", "action": "reject", "ref": finding_ref(fp)})
        docs = anonymised(study)
        doc_id, text = next((d, t) for d, t in docs.items() if "Solgläntan" in t)
        start = text.index("Solgläntan")
        call(
            "/api/decide",
            {
                "target": "finding",
                "action": "add",
                "ref": {"document_id": doc_id, "start": start, "end": start + 10},
                "value": {"type": "ORG"},
            },
        )
        # codings of the other documents, so that a theme loses whole segments
        chat = [
            c
            for c in study.dataset("rv", "code").to_pylist()
            if c["code_id"] in ("chat", "listen") and c["doc_id"] != fp["doc_id"]
        ]
        assert len(chat) == 4
        for c in chat:
            call(
                "/api/decide",
                {
                    "target": "coding",
                    "action": "reject",
                    "ref": {"segment_id": c["segment_id"], "code": c["code_id"]},
                },
            )
        assert call("/api/plan")["stages"][1] == {
            "stage": "anonymise",
            "action": "run",
            "reason": "decisions changed (finding)",
        }
        before = {t["theme_id"]: t for t in study.dataset("rv", "theme", "themes").to_pylist()}
        started = call("/api/rerun", {})
        assert started["started"] is True
        status = session.rerun.wait(120)
        assert status.state == "finished", status.error
        progress = call("/api/rerun")
        assert progress["state"] == "finished"
        assert {s["stage"] for s in progress["stages"] if s["action"] == "run"} >= {
            "anonymise",
            "code",
            "theme",
        }
        themes_page = urllib.request.urlopen(url + "themes", timeout=30).read().decode()
    # the outputs changed: the false positive is back, the missed name is masked,
    # the rejected codings are gone and the theme counts went down
    after_docs = anonymised(study)
    assert "Melodifestivalen" in after_docs[fp["doc_id"]]
    assert "Solgläntan" not in after_docs[doc_id]
    assert not [f for f in findings(study) if f["replacement"].startswith("[NAME")]
    codings = study.dataset("rv", "code").to_pylist()
    rejected = {(c["segment_id"], c["code_id"]) for c in chat}
    assert codings and not [c for c in codings if (c["segment_id"], c["code_id"]) in rejected]
    after = {t["theme_id"]: t for t in study.dataset("rv", "theme", "themes").to_pylist()}
    assert after["talking"]["segments"] < before["talking"]["segments"]
    assert progress["before"]["themes"]["talking"][0] == before["talking"]["segments"]
    assert progress["after"]["themes"]["talking"][0] == after["talking"]["segments"]
    delta = after["talking"]["segments"] - before["talking"]["segments"]
    assert f"({delta:+d})" in themes_page  # the change is shown beside the count
    out, err = capfd.readouterr()
    logged = log.getvalue() + out + err
    assert "review decision" in logged and "review re-run done" in logged
    for text in ["Solgläntan", "Karin", "Uppsala", "we watch", "every morning", *RAW[2:]]:
        assert text not in logged, text


def test_rerun_refuses_a_second_one_and_reports_failures(
    study: Project, session: ReviewSession, client: FlaskClient
) -> None:
    # a run holding the workdir lock: the re-run fails with the runner's message
    session.store.open()
    try:
        r = post(client, session, "/api/rerun", {})
        assert r.status_code == 202
        status = session.rerun.wait(60)
    finally:
        session.store.close()
    assert status.state == "failed" and "in use by another qualpipe run" in (status.error or "")
    page = client.get("/").get_data(as_text=True)
    assert "Re-run failed" in page and "in use by another qualpipe run" in page
    event = threading.Event()
    session.rerun._work = event.wait  # type: ignore[method-assign]
    assert post(client, session, "/api/rerun", {}).status_code == 202
    r = post(client, session, "/api/rerun", {})
    assert r.status_code == 409 and r.get_json()["started"] is False
    event.set()
    session.rerun.wait(10)


def test_review_command_serves_and_opens_the_browser(
    study: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import webbrowser

    from werkzeug.serving import BaseWSGIServer

    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url))

    got: dict[str, int] = {}

    def fetch(port: int) -> None:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/findings", timeout=30) as r:
            got["status"] = r.status

    def serve(self: BaseWSGIServer, poll_interval: float = 0.5) -> None:
        client = threading.Thread(target=fetch, args=(self.port,))
        client.start()
        self.handle_request()  # one request, then the user presses Ctrl-C
        client.join(30)
        raise KeyboardInterrupt

    monkeypatch.setattr(BaseWSGIServer, "serve_forever", serve)
    result = study.run("review", "pipeline.yaml", "--who", "ana")
    assert result.exit_code == 0, result.output
    url = re.search(r"http://127\.0\.0\.1:(\d+)/", result.stdout)
    assert url is not None and int(url.group(1)) > 0
    assert opened == [url.group(0)]
    assert got == {"status": 200}
    assert "stopped" in result.stdout
    assert "decisions/rv.jsonl" in result.stdout


def test_review_command_without_flask(study: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "flask", None)
    result = study.run("review", "pipeline.yaml", "--no-browser")
    assert result.exit_code == 1
    assert result.stderr.strip() == "qualpipe: error: needs flask: pip install 'qualpipe[review]'"


@pytest.mark.slow
def test_review_command_in_a_subprocess(study: Project) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "qualpipe", "review", "pipeline.yaml", "--no-browser"],
        cwd=study.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert url is not None, line
        with urllib.request.urlopen(url.group(0) + "codings", timeout=30) as r:
            assert r.status == 200 and "Talking › Chatting" in r.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "GET /codings" not in err  # request lines are not logged


@pytest.fixture(autouse=True)
def _no_leftover_threads() -> Iterator[None]:
    yield
    for t in threading.enumerate():
        if t.name == "qualpipe-review":
            raise AssertionError("a review server thread was left running")
