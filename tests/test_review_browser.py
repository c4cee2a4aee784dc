"""The review app end to end in headless Chromium (the Debian chromium package, driven by
Playwright; no browser download): review a finding, a missed identifier and codings with
the keyboard, press "Re-run pipeline", and see the change in the run store and on the
page. Screenshots of the review pages go to /tmp/review-shots/ (1280x800)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask", reason="the review app needs flask (pip install 'qualpipe[review]')")
pytest.importorskip("playwright", reason="playwright is not installed (pip install -e '.[test]')")

from playwright import sync_api

from qualpipe.review.app import create_app
from qualpipe.review.server import ServerThread
from qualpipe.review.session import ReviewSession
from qualpipe.testing import Project
from test_review_app import RAW, anonymised, findings, make_study

CHROMIUM = Path(os.environ.get("QUALPIPE_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("QUALPIPE_REVIEW_SHOTS", "/tmp/review-shots"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"{CHROMIUM} not found: install the Debian package chromium to run browser tests",
    ),
]

Page = Any


@pytest.fixture
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        except Exception as exc:  # a broken install: say so rather than fail obscurely
            pytest.skip(f"{CHROMIUM} does not start under Playwright: {exc}")
        yield b
        b.close()


@pytest.fixture
def served(qualpipe_project: Project) -> Iterator[tuple[Project, ReviewSession, str]]:
    study = make_study(qualpipe_project)
    session = ReviewSession(study.root / "pipeline.yaml", who="browser")
    with ServerThread(create_app(session)) as url:
        yield study, session, url


def focused(page: Page, attr: str) -> str:
    return str(page.evaluate(f"document.activeElement.getAttribute('{attr}') || ''"))


def focused_ref(page: Page) -> dict[str, Any]:
    ref = focused(page, "data-ref")
    return dict(json.loads(ref)) if ref else {}


def step_to(page: Page, predicate: Any, limit: int = 40) -> None:
    """Press j until the focused item satisfies ``predicate(page)``."""
    for _ in range(limit):
        if predicate(page):
            return
        page.keyboard.press("j")
    raise AssertionError("no such item in the queue")


def select_text(page: Page, item_selector: str, needle: str) -> None:
    """Select ``needle`` inside an item's text, as a mouse drag would."""
    page.evaluate(
        """([sel, needle]) => {
            const box = document.querySelector(sel + ' .text');
            const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
            for (let n = walker.nextNode(); n; n = walker.nextNode()) {
                const i = n.data.indexOf(needle);
                if (i >= 0) {
                    const r = document.createRange();
                    r.setStart(n, i); r.setEnd(n, i + needle.length);
                    const s = window.getSelection(); s.removeAllRanges(); s.addRange(r);
                    return;
                }
            }
            throw new Error('text not found');
        }""",
        [item_selector, needle],
    )


def shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.evaluate("document.getElementById('toast').hidden = true")
    page.screenshot(path=str(path))
    return path


def test_review_a_finding_and_codings_rerun_and_see_the_change(
    served: tuple[Project, ReviewSession, str], browser: Any
) -> None:
    study, session, url = served
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))

    before_docs = anonymised(study)
    before_themes = {
        t["theme_id"]: t["segments"] for t in study.dataset("rv", "theme", "themes").to_pylist()
    }
    false_positive = next(f for f in findings(study) if f["replacement"].startswith("[NAME"))

    # -- the findings queue: reject a false positive with the keyboard ----------------------
    page.goto(url + "findings")
    assert page.locator(".item").count() == len(findings(study))
    step_to(page, lambda p: focused_ref(p).get("replacement", "").startswith("[NAME"))
    assert focused(page, "class").startswith("item")
    page.keyboard.press("m")  # a memo, then back to the item with Escape
    page.keyboard.type("a TV show, not a person")
    page.keyboard.press("Escape")
    page.keyboard.press("r")
    key = f"f:{false_positive['doc_id']}:{false_positive['start']}:{false_positive['end']}"
    badge = page.locator(f'[id="{key}"] .badge')
    sync_api.expect(badge).to_have_text("false positive")
    shot(page, "findings")

    # -- a whole document: add the day centre the anonymiser missed --------------------------
    doc_id = next(d for d, t in before_docs.items() if "Solgläntan" in t)
    page.goto(url + f"document/{doc_id}")
    select_text(page, ".item", "Solgläntan")
    sync_api.expect(page.locator(".selection")).to_contain_text("Solgläntan")
    page.select_option(".add-type", "ORG")
    page.locator(".item").focus()
    page.keyboard.press("i")
    sync_api.expect(page.locator(".selection")).to_contain_text("Added as ORG")

    # -- the codings queue: reject the talking codes of W01's first answer ----------------------
    codings = study.dataset("rv", "code").to_pylist()
    w01 = next(c["segment_id"] for c in codings if c["doc_id"] == doc_id)
    talking = {c["code_id"] for c in codings if c["segment_id"] == w01} & {"chat", "listen"}
    assert talking == {"chat", "listen"}
    page.goto(url + "codings")
    for _ in talking:
        step_to(
            page,
            lambda p: (
                focused_ref(p).get("segment_id") == w01
                and focused_ref(p).get("code") in talking
                and focused(p, "data-decided") == "no"
            ),
        )
        page.keyboard.press("r")
        page.wait_for_function("document.activeElement.dataset.decided !== 'yes'")
    sync_api.expect(page.locator(".badge", has_text="rejected")).to_have_count(2)

    # add a human coding to a span selected in the same answer, picking the code by search
    item = f'[id="c:{w01}:plan"]'
    page.locator(item).focus()
    select_text(page, item, "two hours")
    page.locator(item).focus()
    page.keyboard.press("c")
    page.keyboard.type("plan")
    page.keyboard.press("Enter")
    sync_api.expect(page.locator(item + " .selection")).to_contain_text("Added")
    page.locator(".item").first.focus()
    shot(page, "codings")

    # -- the decisions, as the app appended them ---------------------------------------------
    decisions = session.decisions.all()
    assert [(d.target, d.action, d.who, d.source) for d in decisions] == [
        ("finding", "reject", "browser", "review"),
        ("finding", "add", "browser", "review"),
        ("coding", "reject", "browser", "review"),
        ("coding", "reject", "browser", "review"),
        ("coding", "add", "browser", "review"),
    ]
    assert decisions[0].memo == "a TV show, not a person"
    text = before_docs[doc_id]
    assert decisions[1].value == {"text": "Solgläntan", "type": "ORG"}
    assert decisions[1].ref["start"] == text.index("Solgläntan")
    start = text.index("two hours")
    assert decisions[4].ref == {"segment_id": w01, "code": "plan"}
    assert decisions[4].value == {"start": start, "end": start + len("two hours")}

    # -- re-run from the page and see the numbers change -----------------------------------
    page.goto(url + "themes")
    shot(page, "themes-before")
    page.locator("#rerun-button").focus()
    page.keyboard.press("Enter")
    sync_api.expect(page.locator("#rerun-status")).to_contain_text("finished", timeout=120_000)
    page.wait_for_load_state("load")
    status = session.rerun.wait(120)
    assert status.state == "finished", status.error
    ran = {s["stage"] for s in status.stages if s["action"] == "run"}
    assert {"anonymise", "segment", "code", "theme"} <= ran
    page.wait_for_selector(".delta", timeout=30_000)
    row = page.locator("#t-talking").inner_text()
    assert re.search(r"\(-1\)", row), row
    shot(page, "themes")

    # the run store: the false positive is back, the missed name masked, codings gone
    after_docs = anonymised(study)
    assert "Melodifestivalen" in after_docs[false_positive["doc_id"]]
    assert "Solgläntan" not in after_docs[doc_id]
    assert "Solgläntan" not in " ".join(after_docs.values())
    after_codings = study.dataset("rv", "code").to_pylist()
    rejected = [c for c in after_codings if c["segment_id"] == w01 and c["code_id"] in talking]
    assert rejected == []
    after_themes = {
        t["theme_id"]: t["segments"] for t in study.dataset("rv", "theme", "themes").to_pylist()
    }
    assert after_themes["talking"] == before_themes["talking"] - 1

    page.goto(url)
    sync_api.expect(page.locator("table.counts")).to_be_visible()
    shot(page, "overview")
    page.goto(url + "decisions")
    body = page.inner_text("body")
    assert "Solgläntan" not in body and all(raw not in body for raw in RAW[:3])
    assert problems == [], problems  # no script errors, no CSP violations


def test_pages_are_legible_and_keyboard_only(
    served: tuple[Project, ReviewSession, str], browser: Any
) -> None:
    _, _, url = served
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    for path in ("", "findings", "codings", "themes"):
        page.goto(url + path)
        # body text at least 15px; headings and buttons labelled
        size = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
        assert size >= 15
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(e => !e.labels || e.labels.length === 0).map(e => e.outerHTML)"""
        )
        assert unlabelled == []
    page.goto(url + "findings")
    page.keyboard.press("j")
    first = page.evaluate("document.activeElement.id")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.id") == first
    # the focused item has a visible outline
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"
    page.keyboard.press("a")
    sync_api.expect(page.locator(f'[id="{first}"] .badge')).to_have_text("confirmed")
    page.locator(f'[id="{first}"]').focus()
    page.keyboard.press("u")
    sync_api.expect(page.locator(f'[id="{first}"] .badge')).to_have_text("open")


@pytest.fixture(autouse=True, scope="module")
def _fresh_shots() -> Iterator[None]:
    shutil.rmtree(SHOTS, ignore_errors=True)
    yield
