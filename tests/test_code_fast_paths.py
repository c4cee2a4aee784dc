"""The code stage's fast paths give what the plain, word-by-word way gives.

The coders tokenise a text once (:func:`qualpipe.coding.stems.words_of`, which
lower-cases the whole text at once), the ``rules`` coder looks only at the words that
satisfy some keyword, and the stage builds its table column by column. Each test here
compares one of those with the straightforward computation on inputs chosen to break
them; tests/test_code_vector.py compares the batch-at-once coders with the coders as
they were written segment by segment.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pyarrow as pa
import pytest

from qualpipe.builtin.code import _rows, _table
from qualpipe.codebook import Code, Codebook
from qualpipe.coding import stems as stems_module
from qualpipe.coding.coders import Coder, CoderContext, Suggestion
from qualpipe.coding.rules import RULES, setup_rules
from qualpipe.coding.semantic import SEMANTIC
from qualpipe.coding.stems import WORD, forget_words, tokens, words_of
from qualpipe.schemas import CODINGS

TRICKY = [
    "We TALKED about Small-Talk, small talk and smalltalk; then we talked again.",
    "Jag pratade inte med dem. Då PRATAR han inte! Men vi pratade ändå.",
    "ÅSA's and Åsa’s friend didn't talk; she's Swimming, swims, SWAM.",
    "İstanbul talk: the İ lengthens the lower-cased text, TALK after it.",
    "ΟΔΟΣ.ΑΘΗΝΑ talk ΟΔΟΣ talk: a final sigma before a full stop and a letter.",
    "snake_case_talk talk_ _talk 42talk talk42 — emoji 🙂 :-) talk",
    "No, we talked a lot. Not that we never talked. I don't walk but I talk.",
    "inte prata utan promenera; varken promenader eller stöd, stödet, stödjande",
    "Managed to manage; manager managing MANAGES. small  talk, SMALLTALK",
    "",
    "   ",
    "ß STRASSE straße ẞ Ǆungla ǅ ǆ",
]


@pytest.mark.parametrize("text", TRICKY)
def test_words_of_gives_the_tokens(text: str) -> None:
    forget_words()
    expected = list(tokens(text))
    for _ in range(2):  # computed, then remembered
        words, starts, ends = words_of(text)
        assert list(zip(words, starts, ends, strict=True)) == expected
    forget_words()
    assert list(zip(*words_of(text), strict=True)) == expected


def test_lower_casing_keeps_every_characters_class() -> None:
    """What words_of relies on to lower-case a whole text: a character that lower-cases
    to one character is a word character exactly when its lower case is one."""
    word_char = re.compile(r"[^\W_]|['’]")
    changed = [
        hex(i)
        for i in range(sys.maxunicode + 1)
        if not 0xD800 <= i < 0xE000
        and len(low := chr(i).lower()) == 1
        and bool(word_char.fullmatch(chr(i))) != bool(word_char.fullmatch(low))
    ]
    assert changed == []


def test_words_of_falls_back_where_lower_casing_moves_offsets() -> None:
    text = "İİİ TALK ΟΔΟΣ.Α"
    assert len(text.lower()) != len(text)
    words, starts, ends = words_of(text)
    assert words == [m.group().lower() for m in WORD.finditer(text)]
    assert [text[s:e].lower() for s, e in zip(starts, ends, strict=True)] == words


def test_words_of_forgets_beyond_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stems_module, "_WORDS_MAX", 3)
    forget_words()
    texts = [f"text number {n}" for n in range(10)]
    for text in texts:
        assert words_of(text)[0] == ["text", "number", str(texts.index(text))]
    assert len(stems_module._WORDS) <= 3


BOOK = Codebook(
    "tricky",
    [
        Code("talk", "Talk", keywords=["talk", "small talk", "talking"]),
        Code("small-talk", "Small talk", keywords=["small talk"], patterns=[r"\bsmall ?talk\b"]),
        Code("prata", "Prata", keywords=["prata", "promenad", "stöd*"]),
        Code("swim", "Swim", keywords=["swim", "Åsa's friend"]),
        Code("manage", "Manage", patterns=[r"\bmanag(e|es|ed|ing)\b"]),
        Code("smile", "Smile", keywords=["🙂", ":-)"]),
        Code("walk", "Walk", keywords=["walk", "promenera", "talk"]),
        Code("greek", "Greek", keywords=["οδος"]),
        Code("strasse", "Street", keywords=["straße", "ǆungla"]),
    ],
)


def _segments(texts: list[str]) -> list[dict[str, Any]]:
    doc, out = "", []
    for n, text in enumerate(texts):
        out.append({"segment_id": f"s{n}", "start": len(doc), "end": len(doc) + len(text)})
        out[-1]["text"] = text
        doc += text + "\n"
    return out


@pytest.mark.parametrize(
    "options",
    [{}, {"negation": False}, {"negation_window": 1}, {"min_matches": 2}, {"language": "sv"}],
    ids=["default", "no-negation", "window-1", "min-2", "sv"],
)
def test_rules_for_all_codes_at_once_equal_each_code_alone(options: dict[str, Any]) -> None:
    """The rules coder scans a segment once for every code: the result is what each code
    gives on its own (its own compiled state and word caches), offsets and all."""
    segs = _segments(TRICKY * 2)  # twice: the second time from the caches
    together = list(RULES.code(segs, CoderContext(BOOK, options, setup_rules(BOOK, options))))
    alone = []
    for code in BOOK.codes:
        single = Codebook("one", [code])
        forget_words()
        state = setup_rules(single, options)
        alone += list(RULES.code(segs, CoderContext(single, options, state)))
    order = {c.id: n for n, c in enumerate(BOOK.codes)}
    alone.sort(key=lambda s: (int(s.segment_id[1:]), order[s.code_id]))
    assert together == alone
    if not options:
        coded = {s.code_id for s in together}
        assert coded >= {"talk", "small-talk", "prata", "manage", "smile", "greek", "strasse"}
    for sug in together:
        text = next(s for s in segs if s["segment_id"] == sug.segment_id)
        for term, start, end in sug.evidence:
            assert text["text"][start - text["start"] : end - text["start"]] == term


def test_rules_overlapping_keywords_and_negation_offsets() -> None:
    text = "We never talked small talk. But small talk, yes."
    state = setup_rules(BOOK, {})
    found = {s.code_id: s for s in RULES.code(_segments([text]), CoderContext(BOOK, {}, state))}
    # "never" negates "talked" and "small talk" in the first clause only
    starts = [e[1] for e in found["talk"].evidence]
    assert [text[s:e] for _, s, e in found["talk"].evidence] == ["small talk", "talk"]
    assert starts == [text.index("small talk", 20), text.index("small talk", 20) + 6]
    assert found["small-talk"].score == 0.75  # the keyword and the pattern
    off = RULES.code(_segments([text]), CoderContext(BOOK, {"negation": False}, None))
    assert len(next(s for s in off if s.code_id == "talk").evidence) == 5


def test_semantic_ties_keep_code_order_and_stop_words_give_nothing() -> None:
    twins = Codebook(
        "twins", [Code("a", "A", keywords=["swim"]), Code("b", "B", keywords=["swim"])]
    )
    found = list(SEMANTIC.code(_segments(["swim", "the and och"]), CoderContext(twins, {})))
    assert [(s.segment_id, s.code_id) for s in found] == [("s0", "a"), ("s0", "b")]
    assert found[0].score == found[1].score > 0
    top1 = list(SEMANTIC.code(_segments(["swim"]), CoderContext(twins, {"top_k": 1})))
    assert [s.code_id for s in top1] == ["a"]


def test_codings_table_column_by_column_equals_the_rows() -> None:
    coder = Coder("x", lambda segs, ctx: [], version="7")
    bare = Coder("y", lambda segs, ctx: [], version=None)  # type: ignore[arg-type]
    seg = {"segment_id": "s1", "doc_id": "d1", "start": 10, "end": 40}
    found = [
        (seg, "a", coder, "abc", Suggestion("s1", "a", 0.5, [("talk", 12, 16), ("ok", 20, 22)])),
        (seg, "b", coder, "abc", Suggestion("s1", "b", 1, (), start=15, end=18)),
        (seg, "a", bare, "def", Suggestion("s1", "a", 0.25, [["list", 30, 34]])),  # type: ignore[list-item]
    ]
    table = _table(found, "v1")
    assert table.equals(pa.Table.from_pylist(_rows(found, "v1"), schema=CODINGS.schema))
    assert table.column("score").to_pylist() == [0.5, 1.0, 0.25]
    assert table.column("start").to_pylist() == [10, 15, 10]
    assert _table([], "v1").num_rows == 0


def test_code_stage_hashes_the_codebook_once_and_matches_the_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qualpipe.builtin import code as code_stage
    from qualpipe.stage import BatchContext

    table = BOOK.to_table()
    calls = []
    real = Codebook.version.fget
    assert real is not None
    monkeypatch.setattr(Codebook, "version", property(lambda b: calls.append(1) or real(b)))
    monkeypatch.setattr(code_stage, "_BOOKS", {})
    texts = TRICKY[:4]
    segs = [{**s, "doc_id": "d", "speaker": None, "participant_id": None} for s in _segments(texts)]
    params = {"coders": ["rules", {"name": "semantic", "top_k": 0}], "min_score": 0.0, "top_k": 0}
    ctx = BatchContext(
        "code",
        params,
        side={"codebook": table},
        components={"coder": {"rules": RULES, "semantic": SEMANTIC}},
    )
    batch = pa.RecordBatch.from_pylist(segs)
    first = code_stage.process_batch(batch, ctx)["codings"]
    again = code_stage.process_batch(batch, ctx)["codings"]
    assert len(calls) == 1  # not once per batch
    assert first.equals(again) and first.num_rows > 0
    assert set(first.column("codebook_version").to_pylist()) == {real(BOOK)}
    assert set(first.column("coder").to_pylist()) == {"rules", "semantic"}
