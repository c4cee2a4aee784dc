"""Report and table exporters: HTML, DOCX, XLSX, CSV and Parquet.

The exporters are called directly on an ExportBundle over small Parquet datasets written
here (a realistic sample: one overarching theme, 4 themes with sub-themes, a machine
proposal, 12 participants who are service users or support workers), plus one run of a
real pipeline that ends in ``export``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from qualpipe.errors import QualpipeError
from qualpipe.export.report import DOCX, HTML, parse_prevalence
from qualpipe.export.tables import CSV, PARQUET, XLSX
from qualpipe.exporters import ExportBundle
from qualpipe.schemas import (
    CODEBOOK,
    CODINGS,
    COOCCURRENCE,
    DOCUMENTS,
    FINDINGS,
    QUOTES,
    SEGMENTS,
    THEME_ASSIGNMENTS,
    THEMES,
)
from qualpipe.store import DatasetReader, write_part
from qualpipe.testing import Project

REPO = Path(__file__).resolve().parents[1]

# -- a realistic sample ----------------------------------------------------------------------

USER, WORKER = "Service user", "Support worker"
OVERARCHING = ("spc", "Spontaneous planned complexity", "Support is planned and improvised.")
THEME_TREE = [
    ("here", "Here, there and everywhere", "Where support happens.", [
        ("home", "In the home", "Support at home"),
        ("errands", "Errands outside the home", "Shopping and errands"),
        ("pleasure", "Places of shared pleasure", "Swimming, walks and cafés"),
    ]),
    ("doing", "Doing, being, becoming", "What support workers and users do together.", [
        ("together", "Doing together", "Chores together"),
        ("being", "Just being there", "Presence"),
        ("becoming", "Becoming someone else", "Seeing oneself differently"),
    ]),
    ("talking", "Talking", "Conversation as support.", [
        ("casual", "Casual conversation", "Small talk"),
        ("heard", "Being heard and seen", "Being listened to"),
    ]),
    ("order", "Order, planning and improvisation", "Plans, rules and departures from them.", [
        ("plan", "The intervention plan", "Intervention plan"),
        ("rules", "Rules and restrictions", "Rules"),
        ("improv", "Improvising", "Departing from the plan"),
    ]),
]  # fmt: skip
PROPOSAL = ("lonely", "Loneliness between visits", "Proposed from uncoded segments.")
QUOTE_TEXT = {
    ("home", USER): "She comes on Tuesdays and we sort the post together at the kitchen table. "
    "Otherwise it just piles up.",
    ("home", WORKER): "In the home you see how things really are, whether the fridge is empty.",
    ("errands", USER): "Going to the pharmacy on my own is too much, but with her it is just an "
    "ordinary errand.",
    ("errands", WORKER): "We take the bus to the shop. It is not about the milk, it is about "
    "getting out of the flat.",
    ("pleasure", USER): "Vi går till simhallen på fredagar. Det är det bästa i veckan, faktiskt.",
    ("pleasure", WORKER): "Sometimes we just walk by the lake. Those are the moments when "
    "[PERSON 2] talks the most.",
    ("together", USER): "We clean together, I do the dishes and he hoovers. Then it doesn't feel "
    "like someone is doing it for me.",
    ("together", WORKER): "I try never to take over. If I do the laundry for her, she loses "
    "something.",
    ("being", USER): "Just knowing someone is coming makes the whole week different.",
    (
        "being",
        WORKER,
    ): "Some days we don't do anything at all. I am there, and that is the support.",
    ("becoming", USER): "Last spring I phoned the housing office myself. A year ago I could not "
    "have done that.",
    ("becoming", WORKER): "När han själv föreslog att vi skulle åka till stan, då förstod jag att "
    "något hade hänt.",
    ("casual", USER): "We talk about everything, the weather, football, my daughter. It is not "
    "like talking to a doctor.",
    ("casual", WORKER): "The important conversations often start while we are doing something "
    "else.",
    ("heard", USER): "She listens. She doesn't write anything down while I talk.",
    ("heard", WORKER): "I want him to feel that he is a person to me, not a case.",
    ("plan", USER): "There is a plan somewhere from the municipality, but we never look at it.",
    ("plan", WORKER): "The plan says two hours a week of practical support. Real life doesn't fit "
    "in two hours.",
    ("rules", USER): "Before, she could drive me to the hospital. Now she is not allowed to, and "
    "I don't go.",
    ("rules", WORKER): "Vi får inte längre skjutsa brukarna i bilen, så allt tar dubbelt så lång "
    "tid.",
    ("improv", USER): "= if I have a bad day we just have coffee instead. She never complains.",
    ("improv", WORKER): "You have to follow the person, not the paper. Sometimes that means "
    "throwing the plan away for the day.",
    ("lonely", USER): "The worst is the evenings after she has left. Then it is very quiet.",
    ("lonely", WORKER): "Several of them say the days between our visits are long.",
}
PARTICIPANTS = [(f"P{i:02d}", USER) for i in range(1, 7)] + [
    (f"W{i:02d}", WORKER) for i in range(1, 7)
]
LABEL = {USER: "(Service user)", WORKER: "(Support worker)"}
#: Values that must never reach a report: replacements and the anonymise deny list.
SECRETS = ["Zorbulon Qwertyson", "Skönviksgården", "Brynäsvägen 12"]
SUBTHEMES = [s for _, _, _, subs in THEME_TREE for s in subs]
SUB_PARENT = {sid: tid for tid, _, _, subs in THEME_TREE for sid, _, _ in subs}
THEME_NAME = {tid: name for tid, name, _, _ in THEME_TREE}
SUB_NAME = {sid: name for sid, name, _ in SUBTHEMES}
SUB_DESC = {
    "home": "Practical help and company in the person's own home.",
    "errands": "Shops, the pharmacy, public transport: errands done together.",
    "pleasure": "The swim hall, walks, a café: places enjoyed together.",
    "together": "Chores done side by side or split between worker and user.",
    "being": "The worker's presence as support in itself.",
    "becoming": "Moments that change how the person sees themselves.",
    "casual": "Spontaneous everyday talk about anything.",
    "heard": "Being listened to and seen as a person, not a case.",
    "plan": "The formal intervention plan and its hours.",
    "rules": "Rules that limit what support may include.",
    "improv": "Departures from the plan to follow the person.",
}
#: How likely a participant of each role is to talk about each theme (varied prevalence).
LIKELY = {
    "here": {USER: 0.8, WORKER: 0.3},
    "doing": {USER: 0.5, WORKER: 0.6},
    "talking": {USER: 0.7, WORKER: 0.15},
    "order": {USER: 0.1, WORKER: 0.7},
}


def sample_tables() -> dict[str, pa.Table]:
    docs, segments, codings, assignments = [], [], [], []
    for i, (pid, role) in enumerate(PARTICIPANTS):
        attrs = [("role", role), ("municipality", "ABC"[i % 3])]
        doc_id = f"d-{pid.lower()}"
        text_parts: list[str] = []
        for j, (sid, _, _) in enumerate(SUBTHEMES):
            owner = PARTICIPANTS[(j % 6) + (0 if role == USER else 6)][0]
            chance = random.Random(f"{pid}-{sid}").random()
            if owner != pid and chance > LIKELY[SUB_PARENT[sid]][role]:
                continue  # not everyone talks about everything
            if owner == pid:
                text = QUOTE_TEXT[(sid, role)]
            else:
                text = f"Ja, {SUB_NAME[sid].lower()} är viktigt för mig ({pid}, {j})."
            start = sum(len(t) + 1 for t in text_parts)
            text_parts.append(text)
            seg_id = f"{doc_id}:{j}"
            segments.append(
                {
                    "segment_id": seg_id,
                    "doc_id": doc_id,
                    "start": start,
                    "end": start + len(text),
                    "text": text,
                    "speaker": pid,
                    "participant_id": pid,
                    "attributes": attrs,
                    "strategy": "turn",
                    "sensitive": False,
                }
            )
            subs = [sid]
            if (i + j) % 4 == 0:
                subs.append(SUBTHEMES[(j + 1) % len(SUBTHEMES)][0])
            for sub in subs:
                codings.append(
                    {
                        "coding_id": f"{seg_id}:{sub}",
                        "segment_id": seg_id,
                        "doc_id": doc_id,
                        "start": start,
                        "end": start + len(text),
                        "code_id": f"c-{sub}",
                        "coder": "rules",
                        "coder_version": "1",
                        "score": 0.8,
                        "evidence": [{"term": "plan", "start": start, "end": start + 4}],
                        "status": "suggested",
                    }
                )
                for theme_id in (sub, SUB_PARENT[sub]):
                    assignments.append(
                        {
                            "segment_id": seg_id,
                            "doc_id": doc_id,
                            "theme_id": theme_id,
                            "score": 0.8,
                            "code_ids": [f"c-{sub}"],
                            "coders": ["rules"],
                        }
                    )
        if i in (0, 6):  # two participants also mention loneliness (a machine proposal)
            seg_id = f"{doc_id}:lonely"
            text = QUOTE_TEXT[("lonely", role)]
            start = sum(len(t) + 1 for t in text_parts)
            text_parts.append(text)
            segments.append(
                {
                    "segment_id": seg_id,
                    "doc_id": doc_id,
                    "start": start,
                    "end": start + len(text),
                    "text": text,
                    "speaker": pid,
                    "participant_id": pid,
                    "attributes": attrs,
                    "strategy": "turn",
                    "sensitive": False,
                }
            )
            assignments.append(
                {
                    "segment_id": seg_id,
                    "doc_id": doc_id,
                    "theme_id": "lonely",
                    "score": 0.5,
                    "code_ids": [],
                    "coders": ["cluster"],
                }
            )
        docs.append(
            {
                "doc_id": doc_id,
                "source_path": f"{pid}.txt",
                "format": "txt",
                "reader": "text",
                "language": "sv",
                "participant_id": pid,
                "attributes": attrs,
                "text": "\n".join(text_parts),
                "sensitive": False,
            }
        )

    # themes with prevalence computed from the assignments
    role_of = dict(PARTICIPANTS)
    seg_participant = {s["segment_id"]: s["participant_id"] for s in segments}
    per_theme: dict[str, set[str]] = defaultdict(set)
    seg_count: Counter[str] = Counter()
    for a in assignments:
        per_theme[a["theme_id"]].add(seg_participant[a["segment_id"]])
        seg_count[a["theme_id"]] += 1
    per_theme["spc"] = set().union(*(per_theme[t] for t, _, _, _ in THEME_TREE))
    totals = dict(Counter(role_of.values()))

    def theme_row(tid: str, name: str, level: str, parent: str | None, desc: str) -> dict[str, Any]:
        people = per_theme[tid]
        by_role = Counter(role_of[p] for p in people)
        prevalence = {"role": {**{r: by_role.get(r, 0) for r in totals}, "_total": totals}}
        return {
            "theme_id": tid,
            "name": name,
            "level": level,
            "parent_id": parent,
            "description": desc,
            "segments": seg_count[tid],
            "documents": len(people),
            "participants": len(people),
            "prevalence": json.dumps(prevalence),
            "proposal": tid == "lonely",
        }

    themes = [theme_row(OVERARCHING[0], OVERARCHING[1], "overarching", None, OVERARCHING[2])]
    codebook = [
        {
            "code_id": "spc",
            "name": OVERARCHING[1],
            "level": "overarching",
            "position": 0,
            "codebook_version": "v1",
        }
    ]
    for ti, (tid, name, desc, subs) in enumerate(THEME_TREE):
        themes.append(theme_row(tid, name, "theme", "spc", desc))
        codebook.append(
            {
                "code_id": tid,
                "parent_id": "spc",
                "name": name,
                "level": "theme",
                "position": ti,
                "codebook_version": "v1",
            }
        )
        for si, (sid, sname, code) in enumerate(subs):
            themes.append(theme_row(sid, sname, "subtheme", tid, SUB_DESC[sid]))
            codebook.append(
                {
                    "code_id": sid,
                    "parent_id": tid,
                    "name": sname,
                    "level": "subtheme",
                    "position": si,
                    "codebook_version": "v1",
                }
            )
            codebook.append(
                {
                    "code_id": f"c-{sid}",
                    "parent_id": sid,
                    "name": code,
                    "level": "code",
                    "position": 0,
                    "keywords": ["plan", "prata"],
                    "codebook_version": "v1",
                }
            )
    themes.append(theme_row(PROPOSAL[0], PROPOSAL[1], "theme", None, PROPOSAL[2]))
    # theme rows in an order unlike the codebook: the report follows the codebook
    themes = [themes[0], *reversed(themes[1:])]

    quotes = []
    seg_by_text = {s["text"]: s for s in segments}
    for (sid, role), text in QUOTE_TEXT.items():
        seg = seg_by_text.get(text)
        if seg is None:
            continue
        quotes.append(
            {
                "theme_id": sid,
                "rank": 1 if role == USER else 2,
                "segment_id": seg["segment_id"],
                "doc_id": seg["doc_id"],
                "participant_id": seg["participant_id"],
                "label": LABEL[role],
                "text": text,
                "score": 0.9,
                "attributes": seg["attributes"],
            }
        )

    # theme co-occurrence within segments
    seg_themes: dict[str, set[str]] = defaultdict(set)
    for a in assignments:
        seg_themes[a["segment_id"]].add(a["theme_id"])
    ids = [t["theme_id"] for t in themes if t["level"] != "overarching"]
    cooc = []
    for x, a in enumerate(ids):
        for b in ids[x:]:
            both = sum(1 for ts in seg_themes.values() if a in ts and b in ts)
            either = sum(1 for ts in seg_themes.values() if a in ts or b in ts)
            if both:
                cooc.append(
                    {
                        "kind": "theme",
                        "level": "segment",
                        "a": a,
                        "b": b,
                        "count": both,
                        "jaccard": both / either,
                    }
                )

    findings = []
    for d, doc in enumerate(docs):
        for k, etype in enumerate(["PERSON", "PERSON", "PLACE", "ORG", "DATE"][: 3 + d % 3]):
            findings.append(
                {
                    "doc_id": doc["doc_id"],
                    "start": k * 10,
                    "end": k * 10 + 8,
                    "entity_type": etype,
                    "recogniser": "gazetteer" if etype != "DATE" else "patterns",
                    "score": 0.9,
                    "replacement": SECRETS[k % 3],
                }
            )
    kinds = {
        "documents": DOCUMENTS,
        "segments": SEGMENTS,
        "codings": CODINGS,
        "codebook": CODEBOOK,
        "themes": THEMES,
        "theme_assignments": THEME_ASSIGNMENTS,
        "quotes": QUOTES,
        "cooccurrence": COOCCURRENCE,
        "findings": FINDINGS,
    }
    rows = {
        "documents": docs,
        "segments": segments,
        "codings": codings,
        "codebook": codebook,
        "themes": themes,
        "theme_assignments": assignments,
        "quotes": quotes,
        "cooccurrence": cooc,
        "findings": findings,
    }
    return {
        n: kinds[n].conform(pa.Table.from_pylist(r, schema=kinds[n].schema))
        for n, r in rows.items()
    }


MANIFESTS = [
    ("ingest", "ingest", {"paths": ["data/t"], "speakers": ["Gunilla"]}, {"documents": 12}),
    ("anonymise", "anonymise", {"key": "/keys/sidl.key.json", "deny": [SECRETS[1]],
                                "allow": ["Försäkringskassan"]}, {"findings": 48}),
    ("segment", "segment", {"strategy": "turn"}, {"segments": 130}),
    ("code", "code", {"coders": ["rules"]}, {"codings": 150}),
]  # fmt: skip


def make_bundle(
    tmp_path: Path,
    only: tuple[str, ...] | None = None,
    options: dict[str, Any] | None = None,
    tables: dict[str, pa.Table] | None = None,
) -> ExportBundle:
    tables = tables or sample_tables()
    kinds = {"proposals": THEMES} | {
        k.name: k
        for k in (
            DOCUMENTS,
            SEGMENTS,
            CODINGS,
            CODEBOOK,
            THEMES,
            THEME_ASSIGNMENTS,
            QUOTES,
            COOCCURRENCE,
            FINDINGS,
        )
    }
    datasets = {}
    for name, table in tables.items():
        if only is not None and name not in only:
            continue
        folder = tmp_path / "data" / name
        if not folder.exists():
            write_part(folder, kinds[name], table, "part-000000.parquet", "test")
        datasets[name] = DatasetReader(folder)
    work = tmp_path / "work"
    for n, (stage, uses, params, rows) in enumerate(MANIFESTS):
        (work / stage).mkdir(parents=True, exist_ok=True)
        (work / stage / "manifest.json").write_text(
            json.dumps(
                {
                    "stage_id": stage,
                    "uses": uses,
                    "params": params,
                    "plugin": {"name": "builtin", "version": "0.1.0"},
                    "outputs": {k: {"rows": v} for k, v in rows.items()},
                    "finished_at": f"2025-03-0{n + 1}T10:00:00+00:00",
                    "seconds": 1.5,
                    "qualpipe_version": "0.1.0",
                    "git_sha": "0123456789abcdef",
                }
            ),
            encoding="utf-8",
        )
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    return ExportBundle(
        datasets=datasets, out_dir=out, options=options or {}, pipeline_name="sidl", workdir=work
    )


@pytest.fixture(scope="module")
def sample() -> dict[str, pa.Table]:
    return sample_tables()


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory, sample: dict[str, pa.Table]) -> str:
    tmp = tmp_path_factory.mktemp("html")
    paths = HTML.export(make_bundle(tmp, tables=sample))
    assert [p.name for p in paths] == ["report.html"]
    return paths[0].read_text(encoding="utf-8")


def expected_table1() -> list[tuple[str, str, list[str]]]:
    """(theme, sub-theme, quotes with labels) in codebook order."""
    rows = []
    quotes: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for q in sample_tables()["quotes"].to_pylist():
        quotes[q["theme_id"]].append((q["rank"], f"“{q['text']}” {q['label']}"))
    for _tid, name, _, subs in THEME_TREE:
        for sid, sname, _ in subs:
            rows.append((name, sname, [t for _, t in sorted(quotes[sid])]))
    return rows


# -- HTML --------------------------------------------------------------------------------------


def test_html_is_self_contained(report_html: str) -> None:
    assert report_html.startswith("<!DOCTYPE html>")
    assert "http://" not in report_html and "https://" not in report_html
    assert "<script" not in report_html.lower()
    assert "<link" not in report_html.lower()
    assert "@import" not in report_html
    for src in re.findall(r"""\bsrc\s*=\s*["']?([^"'\s>]*)""", report_html, re.I):
        assert src.startswith("data:")
    assert not re.search(r"url\((?!\s*['\"]?data:)", report_html)
    assert "@media print" in report_html


def _text(el: Any) -> str:
    return " ".join(el.text_content().split())


def test_html_table1_rows_quotes_and_labels(report_html: str) -> None:
    from lxml import html as lh

    page = lh.fromstring(report_html)
    (table,) = page.xpath('//table[@id="table-1"]')
    assert _text(table.xpath("caption")[0]) == "Table 1. Themes and illustrative quotes"
    assert [_text(th) for th in table.xpath("thead/tr/th")] == [
        "Theme",
        "Sub-theme",
        "Illustrative quotes",
    ]
    over = table.xpath('tbody/tr[@class="over"]')
    assert len(over) == 1 and "Overarching theme: Spontaneous planned complexity" in _text(over[0])
    got = []
    theme = ""
    for tr in table.xpath("tbody/tr[not(@class)]"):
        cells = tr.xpath("td")
        if "theme" in (cells[0].get("class") or ""):
            theme = _text(cells[0].xpath('span[@class="name"]')[0])
            cells = cells[1:]
        sub = _text(cells[0].xpath('span[@class="name"]')[0])
        quotes = [_text(li) for li in cells[1].xpath(".//li")]
        got.append((theme, sub, quotes))
    assert got == expected_table1()
    # the theme cell spans its sub-themes
    spans = [int(td.get("rowspan", "1")) for td in table.xpath('.//td[@class="theme"]')]
    assert spans == [3, 3, 2, 3]
    # the proposal is not in Table 1
    assert "Loneliness" not in _text(table)


def test_html_prevalence_chart_has_a_bar_per_theme_and_role(report_html: str) -> None:
    from lxml import html as lh

    page = lh.fromstring(report_html)
    (chart,) = page.xpath('//figure[@id="figure-prevalence"]//svg')
    bars = chart.xpath('.//rect[@class="bar"]')
    pairs = [(b.get("data-category"), b.get("data-series")) for b in bars]
    themes = [name for _, name, _, _ in THEME_TREE]
    assert pairs == [(t, r) for t in themes for r in (USER, WORKER)]
    assert not chart.xpath(".//*[@href]")
    texts = [_text(t) for t in chart.xpath(".//text")]
    assert f"{USER} (n = 6)" in texts and f"{WORKER} (n = 6)" in texts  # legend
    assert "Participants in each role group with the theme (%)" in texts  # axis label
    assert {"0%", "40%", "100%"} <= set(texts)  # ticks
    # values: share of the group, with counts
    themes_rows = {t["theme_id"]: t for t in sample_tables()["themes"].to_pylist()}
    prev = json.loads(themes_rows["talking"]["prevalence"])["role"]
    n = prev[USER]
    assert f"{n / 6 * 100:.0f}% ({n}/6)" in texts
    widths = {(b.get("data-category"), b.get("data-series")): float(b.get("width")) for b in bars}
    assert widths[("Talking", USER)] > 0


def test_html_prevalence_table_heatmap_and_cooccurrence(report_html: str) -> None:
    from lxml import html as lh

    page = lh.fromstring(report_html)
    (prev,) = page.xpath('//table[@id="table-prevalence"]')
    head = [_text(th) for th in prev.xpath("thead/tr/th")]
    assert head == ["Theme", f"{USER} (n = 6)", f"{WORKER} (n = 6)", "All (n = 12)"]
    assert len(prev.xpath("tbody/tr")) == 4 + len(SUBTHEMES)
    (heat,) = page.xpath('//figure[@id="figure-heatmap"]//svg')
    cells = heat.xpath('.//rect[@class="cell"]')
    assert len(cells) == len(SUBTHEMES) * len(PARTICIPANTS)
    codings = sample_tables()["codings"].to_pylist()
    n_p01_home = sum(1 for c in codings if c["doc_id"] == "d-p01" and c["code_id"] == "c-home")
    cell = [
        c for c in cells if c.get("data-row") == "Support at home" and c.get("data-column") == "P01"
    ]
    assert cell[0].get("data-value") == str(n_p01_home)
    assert "coded segments:" in [_text(t) for t in heat.xpath(".//text")]  # legend
    (cooc,) = page.xpath('//table[@id="table-cooccurrence"]')
    names = [_text(th) for th in cooc.xpath("tbody/tr/th")]
    assert names[0] == "1. Here, there and everywhere"
    assert names[-1] == f"{4 + len(SUBTHEMES) + 1}. Loneliness between visits [proposal]"
    shaded = cooc.xpath(".//td[@style]")
    assert shaded and all("background:#" in td.get("style") for td in shaded)


def test_html_proposals_are_separate_and_marked(report_html: str) -> None:
    from lxml import html as lh

    page = lh.fromstring(report_html)
    (section,) = page.xpath('//section[@id="proposals"]')
    assert "review" in section.get("class")
    text = _text(section)
    assert "for review" in text.lower()
    assert "Loneliness between visits" in text
    assert f"“{QUOTE_TEXT[('lonely', USER)]}” (Service user)" in text


def test_html_shows_counts_never_identifiers(report_html: str) -> None:
    from lxml import html as lh

    for secret in [*SECRETS, "Gunilla", "sidl.key.json", "Försäkringskassan"]:
        assert secret not in report_html
    page = lh.fromstring(report_html)
    (section,) = page.xpath('//section[@id="anonymisation"]')
    rows = {
        _text(tr.xpath("td")[0]): [_text(td) for td in tr.xpath("td")[1:]]
        for tr in section.xpath(".//tbody/tr")
    }
    findings = sample_tables()["findings"].to_pylist()
    per_type = Counter(f["entity_type"] for f in findings)
    assert rows["PERSON"] == [str(per_type["PERSON"]), "12"]
    assert rows["gazetteer"] == [str(sum(1 for f in findings if f["recogniser"] == "gazetteer"))]
    # provenance: stages, versions, parameters (redacted where they may name people)
    (prov,) = page.xpath('//section[@id="provenance"]')
    text = _text(prov)
    assert "0123456789abcdef" in text and "builtin 0.1.0" in text
    assert '"deny": "(1 value, not shown)"' in text and '"strategy": "turn"' in text


def test_html_escapes_everything(tmp_path: Path, sample: dict[str, pa.Table]) -> None:
    themes = sample["themes"].to_pylist()
    themes[1]["name"] = "<script>alert(1)</script> & “co”"
    quotes = sample["quotes"].to_pylist()
    quotes[0]["text"] = 'He said "<b>no</b>" & left'
    quotes[0]["label"] = "(<i>7</i>)"
    tables = dict(sample)
    tables["themes"] = pa.Table.from_pylist(themes, schema=THEMES.schema)
    tables["quotes"] = pa.Table.from_pylist(quotes, schema=QUOTES.schema)
    page = HTML.export(make_bundle(tmp_path, tables=tables))[0].read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>no</b>" not in page and "<i>7</i>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; “co”" in page
    assert "He said &quot;&lt;b&gt;no&lt;/b&gt;&quot; &amp; left" in page


def test_html_without_themes_or_findings(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path, only=("segments", "codings", "codebook"))
    page = HTML.export(bundle)[0].read_text(encoding="utf-8")
    assert "Table 1: no themes in this run" in page.replace(
        "Table 1. Themes and illustrative quotes", "Table 1"
    )
    assert 'class="cell"' in page  # the heatmap still works
    assert "No findings dataset" in page


def test_proposals_from_their_own_dataset(tmp_path: Path, sample: dict[str, pa.Table]) -> None:
    """The theme stage writes proposals to a ``proposals`` dataset (kind themes)."""
    import openpyxl
    from lxml import html as lh

    themes = sample["themes"].to_pylist()
    tables = dict(sample)
    tables["themes"] = pa.Table.from_pylist(
        [t for t in themes if not t["proposal"]], schema=THEMES.schema
    )
    proposal = next(t for t in themes if t["proposal"])
    tables["proposals"] = pa.Table.from_pylist(
        [{**proposal, "theme_id": "proposal-1", "name": "evening / quiet / left"}],
        schema=THEMES.schema,
    )
    bundle = make_bundle(tmp_path, tables=tables)
    page = lh.fromstring(HTML.export(bundle)[0].read_text(encoding="utf-8"))
    (section,) = page.xpath('//section[@id="proposals"]')
    assert "evening / quiet / left" in _text(section)
    assert "evening" not in _text(page.xpath('//table[@id="table-1"]')[0])
    (path,) = XLSX.export(bundle)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames[:3] == ["themes", "proposals", "quotes"]
    assert wb["proposals"]["B2"].value == "evening / quiet / left"


def test_report_counts_stream_and_equal_counting_every_row(
    tmp_path: Path, sample: dict[str, pa.Table]
) -> None:
    """The report counts codings and findings a part file at a time; the counts equal
    those of every row held at once, with a second coder, rejected suggestions, a focus
    group (two participants in one document) and the datasets split over many parts."""
    from qualpipe.export.report import build_report

    segments = sample["segments"].to_pylist()
    focus = dict(
        segments[0],
        segment_id="d-fg:0",
        doc_id="d-fg",
        participant_id=segments[0]["participant_id"],
    )
    other = dict(
        segments[-1],
        segment_id="d-fg:1",
        doc_id="d-fg",
        participant_id=segments[-1]["participant_id"],
    )
    segments += [focus, other]
    codings = sample["codings"].to_pylist()
    for seg in (focus, other):
        codings.append(
            dict(
                codings[0],
                coding_id=f"{seg['segment_id']}:x",
                segment_id=seg["segment_id"],
                doc_id="d-fg",
            )
        )
    parts: list[list[dict[str, Any]]] = []
    for i in range(0, len(codings), 7):  # a second coder's codings of a batch: same part
        chunk = codings[i : i + 7]
        chunk += [dict(c, coding_id=c["coding_id"] + ":s", coder="semantic") for c in chunk[:3]]
        chunk[-1] = dict(chunk[-1], status="rejected")
        parts.append(chunk)
    findings = [
        {
            "doc_id": f"d{i % 5}",
            "start": i,
            "end": i + 1,
            "entity_type": "PERSON PLACE".split()[i % 2],
            "recogniser": None if i % 7 == 0 else "gazetteer",
            "score": 1.0,
            "replacement": "[x]",
        }
        for i in range(40)
    ]
    tables = dict(sample, segments=pa.Table.from_pylist(segments, schema=SEGMENTS.schema))
    tables.pop("codings")
    bundle = make_bundle(tmp_path, tables=tables)
    for name, kind, rows in (
        ("codings", CODINGS, parts),
        ("findings", FINDINGS, [findings[i : i + 9] for i in range(0, 40, 9)]),
    ):
        folder = tmp_path / "data" / name
        shutil.rmtree(folder, ignore_errors=True)
        for n, chunk in enumerate(rows):
            write_part(
                folder,
                kind,
                pa.Table.from_pylist(chunk, schema=kind.schema),
                f"part-{n:06d}.parquet",
                "t",
            )
        assert len(DatasetReader(folder).files) == len(rows) > 1
        bundle.datasets = {**bundle.datasets, name: DatasetReader(folder)}  # type: ignore[misc]
    report = build_report(bundle)

    every = [c for part in parts for c in part]
    who = {s["segment_id"]: str(s["participant_id"]) for s in segments}
    cells: dict[tuple[str, str], set[str]] = defaultdict(set)
    for c in every:
        if c["status"] != "rejected":
            cells[(c["code_id"], who[c["segment_id"]])].add(c["segment_id"])
    got = report.codings
    assert got.total == len(every)
    assert got.status == Counter(c["status"] for c in every)
    assert set(got.coders) == {"rules", "semantic"}
    assert got.used == {c["code_id"] for c in every if c["status"] != "rejected"}
    assert dict(got.cells) == {k: len(v) for k, v in cells.items()}
    assert (codings[0]["code_id"], str(other["participant_id"])) in got.cells  # focus group
    assert report.findings is not None and report.findings.total == 40
    assert report.findings.per_type == Counter(f["entity_type"] for f in findings)
    assert report.findings.per_recogniser["?"] == sum(
        1 for f in findings if f["recogniser"] is None
    )
    assert report.findings.documents == {f"d{i}" for i in range(5)}
    assert ("Segments", str(len(segments))) in report.summary


def test_parse_prevalence_accepts_both_total_layouts() -> None:
    inner = '{"role": {"Service user": 5, "Support worker": 2, "_total": {"Service user": 6}}}'
    top = '{"role": {"Service user": 5}, "_total": {"role": {"Service user": 6}}}'
    assert parse_prevalence(inner) == (
        {"role": {"Service user": 5, "Support worker": 2}},
        {"role": {"Service user": 6}},
    )
    assert parse_prevalence(top) == ({"role": {"Service user": 5}}, {"role": {"Service user": 6}})
    assert parse_prevalence(None) == ({}, {})
    assert parse_prevalence("not json") == ({}, {})


# -- DOCX --------------------------------------------------------------------------------------


def test_docx_table1_as_in_a_journal(tmp_path: Path, sample: dict[str, pa.Table]) -> None:
    import docx

    paths = DOCX.export(make_bundle(tmp_path, tables=sample))
    assert [p.name for p in paths] == ["report.docx"]
    doc = docx.Document(str(paths[0]))
    texts = [p.text for p in doc.paragraphs]
    assert "Table 1. Themes and illustrative quotes" in texts
    caption = doc.paragraphs[texts.index("Table 1. Themes and illustrative quotes")]
    assert caption.style.name == "Caption" and caption.runs[0].bold
    table = doc.tables[0]
    assert [c.text for c in table.rows[0].cells] == ["Theme", "Sub-theme", "Illustrative quotes"]
    tr_pr = table.rows[0]._tr.trPr
    assert tr_pr is not None and any(el.tag.endswith("tblHeader") for el in tr_pr)
    borders = table._tbl.tblPr.xpath("./w:tblBorders/*")
    assert {b.tag.split("}")[1]: b.get(b.tag.split("}")[0] + "}val") for b in borders} == {
        "top": "single",
        "bottom": "single",
        "insideH": "single",
        "left": "nil",
        "right": "nil",
        "insideV": "nil",
    }
    # overarching theme row spans the table
    assert table.rows[1].cells[0]._tc is table.rows[1].cells[2]._tc
    assert table.rows[1].cells[0].text == "Overarching theme: Spontaneous planned complexity"
    got = []
    for r in range(2, len(table.rows)):
        cells = table.rows[r].cells
        quotes = [p.text for p in cells[2].paragraphs]
        got.append((cells[0].text, cells[1].text, quotes))
    assert got == expected_table1()
    # theme cells are merged vertically across their sub-themes
    first = {}
    for r in range(2, len(table.rows)):
        first.setdefault(table.cell(r, 0)._tc, []).append(r)
    assert [len(rows) for rows in first.values()] == [3, 3, 2, 3]
    v_merge = table._tbl.xpath(".//w:tc/w:tcPr/w:vMerge")
    assert len(v_merge) == 11  # one restart + continues per theme
    # the prevalence table and the methods paragraph
    prev = doc.tables[1]
    assert [c.text for c in prev.rows[0].cells] == [
        "Theme",
        f"{USER} (n = 6)",
        f"{WORKER} (n = 6)",
        "All (n = 12)",
    ]
    assert "Table 2. Participants with each theme by role, n (%)" in texts
    methods = texts[texts.index("Methods and provenance") + 1]
    assert "qualpipe 0.1.0" in methods and "commit 0123456789ab" in methods
    assert "1 machine-proposed theme(s) await review" in methods
    body = "\n".join(texts) + "".join(
        c.text for t in doc.tables for row in t.rows for c in row.cells
    )
    for secret in SECRETS:
        assert secret not in body


def test_docx_without_python_docx_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "docx" or m.startswith("docx.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "docx", None)
    with pytest.raises(QualpipeError, match=re.escape("pip install 'qualpipe[docx]'")):
        DOCX.export(make_bundle(tmp_path, only=("themes",)))


# -- tables ------------------------------------------------------------------------------------


def test_xlsx_sheets_headers_and_rows(tmp_path: Path, sample: dict[str, pa.Table]) -> None:
    import openpyxl

    (path,) = XLSX.export(make_bundle(tmp_path, tables=sample))
    assert path.name == "sidl.xlsx"
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [
        "themes",
        "quotes",
        "theme_assignments",
        "codings",
        "segments",
        "documents",
        "cooccurrence",
        "codebook",
        "findings",
        "about",
    ]
    for name in wb.sheetnames:
        ws = wb[name]
        assert ws.freeze_panes == "A2"
        assert all(c.font.bold for c in ws[1])
        if name not in ("findings", "about"):
            assert ws.max_row - 1 == sample[name].num_rows, name
    header = [c.value for c in wb["themes"][1]]
    assert header[:6] == ["theme_id", "name", "level", "parent_id", "parent", "description"]
    assert "role: Service user (n = 6)" in header and header[-1] == "prevalence"
    seg = wb["segments"]
    seg_header = [c.value for c in seg[1]]
    texts = [r[seg_header.index("text")] for r in seg.iter_rows(min_row=2, values_only=True)]
    assert texts == sample["segments"].column("text").to_pylist()  # å ä ö and "= ..." kept
    formula_like = [c for c in seg["E"] if isinstance(c.value, str) and c.value.startswith("=")]
    assert formula_like and all(c.data_type == "s" for c in formula_like)
    attrs = seg.cell(row=2, column=seg_header.index("attributes") + 1).value
    assert attrs == "role=Service user; municipality=A"
    cod_header = [c.value for c in wb["codings"][1]]
    row = next(wb["codings"].iter_rows(min_row=2, values_only=True))
    first_code = sample["codings"].column("code_id")[0].as_py()
    assert (
        row[cod_header.index("code")]
        == {f"c-{sid}": code for sid, _, code in SUBTHEMES}[first_code]
    )
    assert row[cod_header.index("evidence")].startswith("plan (")
    assert wb["segments"].column_dimensions["E"].width >= 40  # the text column is wide
    doc_header = [c.value for c in wb["documents"][1]]
    assert "text" not in doc_header and "characters" in doc_header
    findings = {r[0]: r for r in wb["findings"].iter_rows(min_row=2, values_only=True)}
    assert set(findings) == {"PERSON", "PLACE", "ORG", "DATE"}
    all_values = {
        str(v) for ws in wb for row in ws.iter_rows(values_only=True) for v in row if v is not None
    }
    assert not any(s in v for s in SECRETS for v in all_values)


def test_csv_round_trip_with_swedish_letters(tmp_path: Path, sample: dict[str, pa.Table]) -> None:
    paths = CSV.export(make_bundle(tmp_path, tables=sample))
    assert sorted(p.name for p in paths) == sorted(f"{n}.csv" for n in sample)
    assert all(p.parent.name == "csv" for p in paths)
    path = tmp_path / "out" / "csv" / "quotes.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    expected = sample["quotes"].to_pylist()
    assert [r["text"] for r in rows] == [q["text"] for q in expected]
    assert any("å" in r["text"] and "ä" in r["text"] and "ö" in r["text"] for r in rows)
    assert [json.loads(r["attributes"]) for r in rows] == [dict(q["attributes"]) for q in expected]
    assert [int(r["rank"]) for r in rows] == [q["rank"] for q in expected]
    with (tmp_path / "out" / "csv" / "codings.csv").open(encoding="utf-8-sig") as fh:
        coding = next(csv.DictReader(fh))
    assert json.loads(coding["evidence"])[0]["term"] == "plan"
    with (tmp_path / "out" / "csv" / "themes.csv").open(encoding="utf-8-sig") as fh:
        theme_rows = list(csv.DictReader(fh))
    assert {r["proposal"] for r in theme_rows} == {"true", "false"}
    assert theme_rows[0]["parent_id"] == ""  # null


def test_parquet_equals_the_dataset(tmp_path: Path, sample: dict[str, pa.Table]) -> None:
    bundle = make_bundle(tmp_path, tables=sample)
    paths = PARQUET.export(bundle)
    assert sorted(p.name for p in paths) == sorted(f"{n}.parquet" for n in sample)
    for path in paths:
        name = path.stem
        table = pq.read_table(path)
        assert table.equals(bundle.datasets[name].read_all())
        assert table.schema.metadata[b"qualpipe.kind"] == name.encode()


# -- end to end --------------------------------------------------------------------------------

PIPELINE = """\
qualpipe: 1
name: e2e
stages:
  - {id: ingest, uses: ingest, with: {paths: data/t, manifest: data/participants.csv}}
  - {id: anonymise, uses: anonymise, with: {key: ../keys/e2e.key.json}}
  - {id: segment, uses: segment, with: {drop_speakers: [Interviewer]}}
  - {id: codebook, uses: codebook, with: {path: codebook.yaml}}
  - {id: code, uses: code, with: {coders: [rules]}}
  - {id: export, uses: export, with: {formats: [csv, parquet, xlsx]}}
"""
CODEBOOK_YAML = """\
codebook: 1
name: SIDL
codes:
  - {id: talking, name: Talking, keywords: [talk, prata, lyssna]}
  - {id: places, name: Places, keywords: [shop, swim*, simhall*]}
"""


def test_end_to_end_pipeline_exports_tables(qualpipe_project: Project) -> None:
    import openpyxl

    qp = qualpipe_project
    qp.write(
        "data/t/u1.txt",
        "Interviewer: Hur är det?\n\nP01: Vi pratar och går till "
        "simhallen. Karin Lindqvist är snäll.\n",
    )
    qp.write(
        "data/t/w1.txt",
        "Interviewer: And the work?\n\nW01: We talk, and we go to the shop in Sandviken.\n",
    )
    qp.write(
        "data/participants.csv",
        "file,participant,role\nt/u1.txt,P01,Service user\nt/w1.txt,W01,Support worker\n",
    )
    qp.write("codebook.yaml", CODEBOOK_YAML)
    qp.pipeline(PIPELINE)
    result = qp.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    out = qp.root / "exports" / "e2e"
    names = ["documents", "segments", "codings", "codebook", "findings"]
    for name in names:
        assert (out / "csv" / f"{name}.csv").is_file()
        assert (out / "parquet" / f"{name}.parquet").is_file()
    codings = qp.dataset("e2e", "code", "codings")
    assert pq.read_table(out / "parquet" / "codings.parquet").equals(codings)
    with (out / "csv" / "segments.csv").open(encoding="utf-8-sig") as fh:
        segs = list(csv.DictReader(fh))
    assert any("simhallen" in s["text"] for s in segs)
    wb = openpyxl.load_workbook(out / "e2e.xlsx")
    assert wb.sheetnames == [
        "codings",
        "segments",
        "documents",
        "codebook",
        "findings",
        "about",
    ]
    assert wb["codings"].max_row - 1 == codings.num_rows > 0
    everything = " ".join(
        str(v) for ws in wb for row in ws.iter_rows(values_only=True) for v in row if v
    )
    everything += (out / "csv" / "findings.csv").read_text(encoding="utf-8-sig")
    assert "Lindqvist" not in everything and "Sandviken" not in everything
    exports = qp.dataset("e2e", "export", "exports").to_pylist()
    assert {r["format"] for r in exports} == {"csv", "parquet", "xlsx"}


# -- rendering check (chromium) ----------------------------------------------------------------

CHROMIUM = next(
    (c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None
)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_chromium(tmp_path: Path, report_html: str) -> None:
    """Renders the sample report with scripts/screenshot_report.sh. Set
    QUALPIPE_REPORT_SHOTS=DIR to keep report.html and report.png for a look."""
    keep = os.environ.get("QUALPIPE_REPORT_SHOTS")
    folder = Path(keep) if keep else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "report.html"
    page.write_text(report_html, encoding="utf-8")
    png = folder / "report.png"
    subprocess.run(
        ["bash", str(REPO / "scripts" / "screenshot_report.sh"), str(page), str(png), "1280,2400"],
        check=True,
        timeout=120,
        capture_output=True,
    )
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000
