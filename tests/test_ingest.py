"""Ingest: encodings, speaker turns, timed transcripts, the reader hook, quarantine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from qualpipe import hookimpl
from qualpipe.readers import RawDocument, Reader, UnreadableFile
from qualpipe.testing import Project
from qualpipe.transcripts import SpeakerRules, decode_bytes, find_turns, normalise

PIPELINE = """\
qualpipe: 1
name: ing
stages:
  - id: ingest
    uses: ingest
    with:
      paths: data
"""

SWEDISH = "Intervjuare: Hur mår du?\n\nIP: Jag mår bra, tack. Vi åt smörgås på ön.\n"


def ingest(project: Project, extra: str = "", expect: int = 0) -> list[dict[str, Any]]:
    pipe = project.pipeline(PIPELINE + extra)
    result = project.run("run", pipe)
    assert result.exit_code == expect, result.stderr
    return project.dataset("ing", "ingest", "documents").to_pylist() if expect == 0 else []


def quarantine(project: Project) -> dict[str, tuple[str | None, str]]:
    rows = project.dataset("ing", "ingest", "quarantine").to_pylist()
    return {r["source_path"]: (r["reader"], r["reason"]) for r in rows}


def turn_texts(doc: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    return [(t["speaker"], t["role"], doc["text"][t["start"] : t["end"]]) for t in doc["turns"]]


# -- encodings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (SWEDISH.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + SWEDISH.encode("utf-8"), "utf-8-sig"),
        (SWEDISH.encode("utf-16"), "utf-16"),
        (SWEDISH.encode("utf-16-le"), "utf-16-le"),
        (SWEDISH.encode("utf-32"), "utf-32"),
        (SWEDISH.encode("cp1252"), "cp1252"),
        (SWEDISH.replace("\n", "\r\n").encode("utf-8"), "utf-8"),
    ],
)
def test_encodings_decode_to_the_same_text(
    qualpipe_project: Project, encoded: bytes, encoding: str
) -> None:
    qualpipe_project.write("data/a.txt", encoded)
    (doc,) = ingest(qualpipe_project)
    assert doc["text"] == SWEDISH
    assert doc["encoding"] == encoding
    assert turn_texts(doc) == [
        ("Intervjuare", "interviewer", "Hur mår du?"),
        ("IP", "participant", "Jag mår bra, tack. Vi åt smörgås på ön."),
    ]


def test_cp1252_fallback_is_reported_not_silent(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/a.txt", SWEDISH.encode("cp1252"))
    pipe = qualpipe_project.pipeline(PIPELINE)
    result = qualpipe_project.run("--log-json", "run", pipe)
    assert result.exit_code == 0
    warnings = [
        json.loads(line) for line in result.stderr.splitlines() if '"read with notes"' in line
    ]
    assert len(warnings) == 1
    assert "decoded as cp1252" in warnings[0]["notes"][0]
    stats = qualpipe_project.manifest("ing", "ingest")["stats"]
    assert stats["encoding:cp1252"] == 1
    assert stats["documents_with_notes"] == 1


def test_decode_rejects_binary_and_empty() -> None:
    with pytest.raises(UnreadableFile, match="binary"):
        decode_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(UnreadableFile, match="empty"):
        decode_bytes(b"\xef\xbb\xbf  \n")
    with pytest.raises(UnreadableFile, match="binary"):
        decode_bytes(bytes(range(1, 32)) * 20)


def test_normalise_composes_swedish_letters() -> None:
    decomposed = "Go\u0308ran i A\u030angermanland\r\n"
    assert normalise(decomposed) == "Göran i Ångermanland\n"


# -- speaker conventions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Interviewer: How are you?\nRespondent: Fine (laughs).\n",
            [
                ("Interviewer", "interviewer", "How are you?"),
                ("Respondent", "participant", "Fine (laughs)."),
            ],
        ),
        (
            "I: Tell me.\nR: Well [inaudible] yes.\n",
            [("I", "interviewer", "Tell me."), ("R", "participant", "Well [inaudible] yes.")],
        ),
        (
            "Q: Why?\nA: Because.\nQ: And then?\nA: Nothing.\n",
            [
                ("Q", "interviewer", "Why?"),
                ("A", "participant", "Because."),
                ("Q", "interviewer", "And then?"),
                ("A", "participant", "Nothing."),
            ],
        ),
        (
            "P01: I went to the shop.\nIt was fine.\n\nP02: Me too.\n",
            [
                ("P01", "participant", "I went to the shop.\nIt was fine."),
                ("P02", "participant", "Me too."),
            ],
        ),
        (
            "Anna: Hello.\nBo: Hi.\nAnna: Bye.\nBo: Bye now.\n",
            [
                ("Anna", "participant", "Hello."),
                ("Bo", "participant", "Hi."),
                ("Anna", "participant", "Bye."),
                ("Bo", "participant", "Bye now."),
            ],
        ),
        (
            "Speaker 1: Hej.\nSpeaker 2: Hej hej.\n",
            [("Speaker 1", "participant", "Hej."), ("Speaker 2", "participant", "Hej hej.")],
        ),
        (
            "Dr Smith: Come in.\nMr Jones: Thanks.\nDr Smith: Sit.\nMr Jones: Ok.\n",
            [
                ("Dr Smith", "participant", "Come in."),
                ("Mr Jones", "participant", "Thanks."),
                ("Dr Smith", "participant", "Sit."),
                ("Mr Jones", "participant", "Ok."),
            ],
        ),
    ],
)
def test_speaker_conventions(text: str, expected: list[tuple[str, str, str]]) -> None:
    turns = find_turns(text)
    assert [(t.speaker, t.role, text[t.start : t.end]) for t in turns] == expected


def test_timestamps_before_or_after_labels_become_times() -> None:
    text = (
        "[00:00:05] Interviewer: First question?\n"
        "[00:01:10] IP: An answer.\n"
        "I (12:31): Next?\n"
        "00:13:02 IP: Yes.\n"
    )
    turns = find_turns(text)
    assert [(t.speaker, t.start_time, text[t.start : t.end]) for t in turns] == [
        ("Interviewer", 5.0, "First question?"),
        ("IP", 70.0, "An answer."),
        ("I", 751.0, "Next?"),
        ("IP", 782.0, "Yes."),
    ]


def test_header_style_transcripts_from_meeting_software() -> None:
    text = "Anna Berg  0:03\nHello and welcome.\n\nKalle  0:09\nThanks, glad to be here.\n"
    turns = find_turns(text)
    assert [(t.speaker, t.start_time, text[t.start : t.end]) for t in turns] == [
        ("Anna Berg", 3.0, "Hello and welcome."),
        ("Kalle", 9.0, "Thanks, glad to be here."),
    ]


def test_a_stray_word_with_a_colon_is_not_a_speaker() -> None:
    text = "Interviewer: What happened?\nP01: Well.\nNote: this line is part of the answer.\n"
    turns = find_turns(text)
    assert [t.speaker for t in turns] == ["Interviewer", "P01"]
    assert text[turns[1].start : turns[1].end] == "Well.\nNote: this line is part of the answer."


def test_custom_patterns_and_speakers() -> None:
    text = "<<Mamma>> Hej.\n<<Handläggare>> Hej.\n"
    rules = SpeakerRules.build([r"^<<(?P<speaker>[^>]+)>>\s*"], (), ["handläggare"])
    turns = find_turns(text, rules)
    assert [(t.speaker, t.role, text[t.start : t.end]) for t in turns] == [
        ("Mamma", "participant", "Hej."),
        ("Handläggare", "interviewer", "Hej."),
    ]
    assert [
        t.speaker for t in find_turns("Mamma: once only\n", SpeakerRules.build(speakers=["Mamma"]))
    ] == ["Mamma"]


def test_speaker_patterns_param_end_to_end(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/a.txt", "--Moderator-- Welcome.\n--Deltagare 1-- Tack.\n")
    (doc,) = ingest(
        qualpipe_project,
        "      speaker_patterns: ['^--(?P<speaker>[^-]+)--\\s*']\n"
        "      interviewer_labels: [moderator]\n",
    )
    assert turn_texts(doc) == [
        ("Moderator", "interviewer", "Welcome."),
        ("Deltagare 1", "participant", "Tack."),
    ]


def test_invalid_speaker_pattern_is_a_clear_error(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/a.txt", "I: hi\n")
    pipe = qualpipe_project.pipeline(PIPELINE + "      speaker_patterns: ['^(?P<who>x)']\n")
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 2
    assert "speaker_patterns" in result.stderr and "(?P<speaker>...)" in result.stderr


# -- timed transcripts ---------------------------------------------------------------

VTT = """\
WEBVTT

NOTE recorded at the day centre

1
00:00:01.000 --> 00:00:04.500
<v Interviewer>How did you &amp; Karin meet?</v>

2
00:00:05.000 --> 00:00:08.000
<v.loud Anna>At the <i>swim hall</i>,
on a Friday.

00:00:08.000 --> 00:00:10.000
<v Anna>She helps me a lot.

00:00:10.000 --> 00:00:12.250
<v Interviewer>Mm.</v> <v Anna>Yes.</v>
"""


def test_webvtt_voices_become_timed_turns(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/a.vtt", VTT)
    (doc,) = ingest(qualpipe_project)
    assert doc["reader"] == "vtt" and doc["format"] == "vtt"
    assert doc["text"] == (
        "Interviewer: How did you & Karin meet?\n"
        "Anna: At the swim hall, on a Friday. She helps me a lot.\n"
        "Interviewer: Mm.\n"
        "Anna: Yes."
    )
    got = [
        (
            t["speaker"],
            t["role"],
            t["start_time"],
            t["end_time"],
            doc["text"][t["start"] : t["end"]],
        )
        for t in doc["turns"]
    ]
    assert got == [
        ("Interviewer", "interviewer", 1.0, 4.5, "How did you & Karin meet?"),
        ("Anna", "participant", 5.0, 10.0, "At the swim hall, on a Friday. She helps me a lot."),
        ("Interviewer", "interviewer", 10.0, 12.25, "Mm."),
        ("Anna", "participant", 10.0, 12.25, "Yes."),
    ]


SRT = """\
1
00:00:01,000 --> 00:00:03,000
I: Hur gick det?

2
00:00:03,500 --> 00:00:06,000
IP: Det gick bra,
vi åkte buss.

3
00:00:06,000 --> 00:01:02,000
IP: Sen gick vi hem.
"""


def test_srt_with_speaker_prefixes(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/a.srt", SRT.encode("utf-8-sig"))
    (doc,) = ingest(qualpipe_project)
    assert doc["text"] == "I: Hur gick det?\nIP: Det gick bra, vi åkte buss. Sen gick vi hem."
    assert [(t["speaker"], t["start_time"], t["end_time"]) for t in doc["turns"]] == [
        ("I", 1.0, 3.0),
        ("IP", 3.5, 62.0),
    ]
    assert turn_texts(doc)[1] == (
        "IP",
        "participant",
        "Det gick bra, vi åkte buss. Sen gick vi hem.",
    )


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad.vtt", "not a caption file\n", "not a WebVTT file: the first line must be WEBVTT"),
        ("empty.vtt", "WEBVTT\n\n", "no subtitle cues with text found"),
        (
            "bad.srt",
            "1\n00:00:01 --> 00:00:02\nhi\n",
            "malformed cue timing line '00:00:01 --> 00:00:02'",
        ),
        ("none.srt", "just some words\n", "no subtitle cues with text found"),
        ("blank.txt", "\n\n  \n", "empty file"),
        ("bin.txt", b"\x00\x01\x02\x03binary", "binary file (NUL bytes), not a text transcript"),
    ],
)
def test_bad_files_are_quarantined_and_the_batch_goes_on(
    qualpipe_project: Project, name: str, content: str | bytes, reason: str
) -> None:
    qualpipe_project.write("data/good.txt", "I: hi\nP01: hello\n")
    qualpipe_project.write(f"data/{name}", content)
    docs = ingest(qualpipe_project)
    assert [d["source_path"] for d in docs] == ["good.txt"]
    got = quarantine(qualpipe_project)
    assert got[name][1] == reason
    assert got[name][0] in ("text", "vtt", "srt")


def test_unknown_formats_are_quarantined_with_advice(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/good.txt", "I: hi\n")
    qualpipe_project.write("data/interview.m4a", b"\x00\x00\x00 ftypM4A ")
    ingest(qualpipe_project)
    reader, reason = quarantine(qualpipe_project)["interview.m4a"]
    assert reader is None
    assert reason.startswith("no reader for '.m4a' (readers: ")
    assert reason.endswith("convert the file or add a reader plugin")


def test_readers_param_can_skip_a_suffix(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/good.txt", "I: hi\n")
    qualpipe_project.write("data/README.md", "# notes\n")
    docs = ingest(qualpipe_project, "      readers: {.md: skip}\n")
    assert [d["source_path"] for d in docs] == ["good.txt"]
    assert quarantine(qualpipe_project) == {}


def test_unreadable_file_is_quarantined(qualpipe_project: Project) -> None:
    qualpipe_project.write("data/good.txt", "I: hi\n")
    locked = qualpipe_project.write("data/locked.txt", "I: secret\n")
    locked.chmod(0)
    try:
        if _can_read(locked):
            pytest.skip("running as a user who can read mode-000 files")
        ingest(qualpipe_project)
        assert quarantine(qualpipe_project)["locked.txt"] == (
            "text",
            "cannot read: Permission denied",
        )
    finally:
        locked.chmod(0o644)


def _can_read(path: Path) -> bool:
    try:
        path.read_bytes()
    except PermissionError:
        return False
    return True


# -- the reader hook ----------------------------------------------------------------


def read_foo(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    data = path.read_bytes()
    if not data.startswith(b"FOO\n"):
        raise UnreadableFile("not a FOO file (bad header)")
    for i, part in enumerate(data[4:].decode().split("---\n")):
        yield RawDocument(text=part, key=str(i), participant_id=f"F{i}", attributes={"src": "foo"})


def read_crash(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    raise KeyError("secret transcript words")


class FooPlugin:
    @hookimpl
    def qualpipe_register_readers(self, register: Any) -> None:
        register(Reader("foo", (".foo",), read_foo, "FOO transcripts", version="2"))
        register(Reader("crash", (".crash",), read_crash))


def test_hook_qualpipe_register_readers_adds_a_format(
    qualpipe_project: Project, qualpipe_plugin: Any
) -> None:
    qualpipe_plugin(FooPlugin(), "foo-plugin")
    qualpipe_project.write("data/a.foo", "FOO\nI: one\nP1: first\n---\nI: two\nP2: second\n")
    qualpipe_project.write("data/b.foo", "BAR\n")
    qualpipe_project.write("data/c.crash", "x")
    docs = ingest(qualpipe_project)
    assert [(d["source_path"], d["participant_id"], d["reader"]) for d in docs] == [
        ("a.foo#0", "F0", "foo"),
        ("a.foo#1", "F1", "foo"),
    ]
    assert len({d["doc_id"] for d in docs}) == 2
    assert dict(docs[1]["attributes"]) == {"src": "foo"}
    assert turn_texts(docs[1]) == [("I", "interviewer", "two"), ("P2", "participant", "second")]
    q = quarantine(qualpipe_project)
    assert q["b.foo"] == ("foo", "not a FOO file (bad header)")
    # an unexpected reader error is quarantined, naming the reader, never the file text
    assert q["c.crash"] == ("crash", "reader 'crash' failed: KeyError")
    result = qualpipe_project.run("plugins", "--json")
    foo = next(p for p in result.json()["plugins"] if p["name"] == "foo-plugin")
    assert foo["provides"] == {"reader": ["crash", "foo"]}
    # the reader's plugin version is part of ingest's fingerprint
    comps = qualpipe_project.manifest("ing", "ingest")["components"]["components"]["reader"]
    assert comps["foo"] == "foo-plugin@0/2"


def test_two_readers_for_one_suffix_must_be_chosen(
    qualpipe_project: Project, qualpipe_plugin: Any
) -> None:
    class TxtPlugin:
        @hookimpl
        def qualpipe_register_readers(self, register: Any) -> None:
            register(Reader("mytext", (".TXT",), read_foo))

    qualpipe_plugin(TxtPlugin(), "txt-plugin")
    qualpipe_project.write("data/a.txt", "FOO\nP1: hi\n")
    pipe = qualpipe_project.pipeline(PIPELINE)
    result = qualpipe_project.run("run", pipe)
    assert result.exit_code == 2
    assert "readers 'mytext' and 'text' both read '.txt' files" in result.stderr
    (doc,) = ingest(qualpipe_project, "      readers: {.txt: mytext}\n")
    assert doc["reader"] == "mytext"


def test_logs_never_contain_transcript_text(qualpipe_project: Project) -> None:
    qualpipe_project.write(
        "data/a.txt", "I: Zanzibarquux?\nP01: Zanzibarquux indeed.\n".encode("cp1252")
    )
    qualpipe_project.write("data/b.crash", "Zanzibarquux")
    pipe = qualpipe_project.pipeline(PIPELINE)
    result = qualpipe_project.run("--log-level", "debug", "run", pipe)
    assert "Zanzibarquux" not in result.stdout + result.stderr


# -- fuzzing -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.vtt", "a.srt", "a.txt"])
def test_truncated_and_garbage_timed_files_never_crash(
    qualpipe_project: Project, name: str
) -> None:
    import random

    source = {"a.vtt": VTT, "a.srt": SRT, "a.txt": SWEDISH}[name].encode("utf-8")
    rng = random.Random(7)
    qualpipe_project.write("data/good.txt", "I: hi\nP01: hello\n")
    variants = [source[:cut] for cut in (0, 3, 9, len(source) // 2, len(source) - 5)]
    variants += [bytes(rng.randrange(256) for _ in range(200)) for _ in range(4)]
    stem, suffix = name.split(".")
    for i, data in enumerate(variants):
        qualpipe_project.write(f"data/{stem}{i}.{suffix}", data)
    docs = ingest(qualpipe_project)
    q = quarantine(qualpipe_project)
    names = {d["source_path"] for d in docs} | set(q)
    assert names == {"good.txt"} | {f"{stem}{i}.{suffix}" for i in range(len(variants))}
    assert all(reason for _, reason in q.values())
    for doc in docs:
        for t in doc["turns"]:
            assert 0 <= t["start"] <= t["end"] <= len(doc["text"])


def test_turn_offsets_are_always_inside_the_text() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    labels = st.sampled_from(["I", "IP", "P01", "Interviewer", "Anna", "Q", "A", "[00:01] I", "x"])
    lines = st.lists(
        st.tuples(labels, st.text(alphabet="abc åäö:()[]\n\t0123", max_size=30)), max_size=12
    )

    @settings(max_examples=200, deadline=None)
    @given(lines)
    def check(parts: list[tuple[str, str]]) -> None:
        text = normalise("".join(f"{label}: {words}\n" for label, words in parts))
        previous_end = -1
        for t in find_turns(text):
            assert 0 <= t.start <= t.end <= len(text)
            assert t.start >= previous_end
            previous_end = t.end
            assert text[t.start : t.end] == text[t.start : t.end].strip()

    check()
