"""Transcript text: decoding bytes safely and finding speaker turns.

Decoding never guesses silently: UTF-8 (with or without BOM), UTF-16/32 with a BOM,
and UTF-16 without BOM (recognised by its NUL pattern) are exact; anything else that is
not valid UTF-8 is decoded as Windows-1252 and *reported* (the document's ``encoding``
says ``cp1252`` and a note asks to check the letters). Binary data is refused.

Speaker turns follow the conventions of interview transcripts::

    Interviewer: ...        I: ...      IP: ...     R: ...     Q: ... / A: ...
    P01: ...                Anna: ...   Dr Smith: ...          Speaker 2: ...
    [00:12:31] I: ...       I (00:12): ...          00:12:31 Anna: ...
    Anna Svensson  00:03    (a header line; the turn is on the following lines)

A label is accepted when it is a known convention (``Interviewer``, ``I``, ``P01``,
``Speaker 2``, ...), listed in the pipeline's ``speakers``, or starts at least two
lines of the document (a name), so a stray ``Note:`` does not start a turn. Annotations
such as ``(laughs)`` or ``[inaudible]`` stay in the text as written.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qualpipe.readers import Turn, UnreadableFile

TS = r"\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d{1,3})?"
_WORD = r"[A-ZÅÄÖÆØÉÜ][\w.'\u2019-]*"  # \u2019: typographic apostrophe
LABEL = rf"{_WORD}(?:[ \t](?:{_WORD}|\d{{1,3}})){{0,2}}"
# the colon may be ASCII or full-width (\uff1a)
_INLINE = re.compile(
    rf"^[ \t]*(?:(?:[\[(](?P<t1>{TS})[\])]|(?P<t0>{TS}))[ \t]*)?"
    rf"(?P<speaker>{LABEL})[ \t]*(?:[\[(](?P<t2>{TS})[\])][ \t]*)?[:\uff1a][ \t]*",
    re.MULTILINE,
)
_HEADER = re.compile(
    rf"^[ \t]*\[?(?P<speaker>{LABEL})\]?[ \t]+[\[(]?(?P<t1>{TS})[\])]?[ \t]*$", re.MULTILINE
)
_NOT_SPEAKERS = frozenset({"at", "kl", "klockan", "time", "tid", "ca", "about"})
_CODE = re.compile(r"^[A-ZÅÄÖ]{1,4}\d{1,3}$")
_NUMBERED = re.compile(
    r"^(speaker|talare|person|participant|respondent|interviewer|deltagare)\s*\d{1,3}$", re.I
)

KNOWN_LABELS = frozenset(
    {
        "interviewer", "interviewee", "respondent", "participant", "moderator", "facilitator",
        "researcher", "informant", "int", "resp", "i", "ip", "iv", "r", "q", "a", "p",
        "intervjuare", "intervjuaren", "deltagare", "intervjuperson",
    }
)  # fmt: skip
INTERVIEWER_LABELS = frozenset(
    {
        "interviewer", "int", "i", "iv", "q", "moderator", "facilitator", "researcher",
        "intervjuare", "intervjuaren",
    }
)  # fmt: skip

_BOMS = (
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def decode_bytes(data: bytes) -> tuple[str, str, list[str]]:
    """Decode transcript bytes; return (text, encoding, notes) or raise UnreadableFile."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise UnreadableFile("empty file")
    notes: list[str] = []
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding, notes
            except UnicodeDecodeError as exc:
                raise UnreadableFile(
                    f"has a {encoding} byte-order mark but invalid {encoding} data: {exc.reason}"
                ) from None
    head = data[:2048]
    if len(head) >= 4 and head.count(b"\x00") * 3 >= len(head):
        # UTF-16 without a BOM: every other byte of ASCII-range text is NUL.
        evens = head[0::2].count(b"\x00")
        odds = head[1::2].count(b"\x00")
        encoding = "utf-16-le" if odds > evens else "utf-16-be"
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            raise UnreadableFile("binary file (NUL bytes), not a text transcript") from None
        if _looks_binary(text):
            raise UnreadableFile("binary file (NUL bytes), not a text transcript")
        notes.append(f"no byte-order mark: decoded as {encoding}")
        return text, encoding, notes
    if b"\x00" in head:
        raise UnreadableFile("binary file (NUL bytes), not a text transcript")
    try:
        text, encoding = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        try:
            text, encoding = data.decode("cp1252"), "cp1252"
        except UnicodeDecodeError:
            text, encoding = data.decode("latin-1"), "latin-1"
        notes.append(
            f"not valid UTF-8: decoded as {encoding}; check letters such as å, ä, ö "
            "and re-save the file as UTF-8"
        )
    if _looks_binary(text):
        raise UnreadableFile("binary file (control characters), not a text transcript")
    return text, encoding, notes


def _looks_binary(text: str) -> bool:
    sample = text[:4096]
    if not sample:
        return False
    bad = sum(1 for ch in sample if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v")
    return bad > max(2, len(sample) // 100)


def normalise(text: str) -> str:
    """NFC, LF line ends, no BOM: every later offset points into this text."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def seconds(ts: str | None) -> float | None:
    if not ts:
        return None
    parts = ts.replace(",", ".").split(":")
    total = 0.0
    for p in parts:
        total = total * 60 + float(p)
    return total


@dataclass(frozen=True)
class SpeakerRules:
    """How to find speaker turns; built from the ingest stage's parameters."""

    patterns: tuple[re.Pattern[str], ...] = ()
    speakers: frozenset[str] = frozenset()
    interviewer_labels: frozenset[str] = INTERVIEWER_LABELS

    @classmethod
    def build(
        cls,
        patterns: Sequence[str] | None = None,
        speakers: Iterable[str] = (),
        interviewer_labels: Iterable[str] | None = None,
    ) -> SpeakerRules:
        compiled = []
        for p in patterns or ():
            rx = re.compile(p, re.MULTILINE)
            if "speaker" not in rx.groupindex:
                raise ValueError(f"speaker pattern {p!r} needs a (?P<speaker>...) group")
            compiled.append(rx)
        return cls(
            tuple(compiled),
            frozenset(s.lower() for s in speakers),
            frozenset(s.lower() for s in interviewer_labels)
            if interviewer_labels is not None
            else INTERVIEWER_LABELS,
        )

    def role(self, speaker: str) -> str:
        key = speaker.lower().rstrip(".")
        base = re.sub(r"\s*\d+$", "", key)
        return (
            "interviewer"
            if key in self.interviewer_labels or base in self.interviewer_labels
            else "participant"
        )

    def accepted(self, label: str, count: int) -> bool:
        key = label.lower().rstrip(".")
        return (
            key in self.speakers
            or key in KNOWN_LABELS
            or bool(_CODE.match(label) or _NUMBERED.match(label))
            or count >= 2
        )


def find_turns(text: str, rules: SpeakerRules | None = None) -> list[Turn]:
    """Speaker turns of ``text``: each label starts a turn that runs to the next label."""
    rules = rules or SpeakerRules()
    # (label start, content start, speaker, time)
    marks: list[tuple[int, int, str, float | None]] = []
    if rules.patterns:
        for rx in rules.patterns:
            for m in rx.finditer(text):
                t = m.groupdict().get("time")
                marks.append((m.start(), m.end(), m.group("speaker").strip(), seconds(t)))
    else:
        inline = list(_INLINE.finditer(text))
        header = list(_HEADER.finditer(text))
        counts = Counter(m.group("speaker") for m in (*inline, *header))
        for m in inline:
            label = m.group("speaker")
            if rules.accepted(label, counts[label]):
                t = m.group("t0") or m.group("t1") or m.group("t2")
                marks.append((m.start(), m.end(), label, seconds(t)))
        for m in header:
            # a label alone on a line with a time stamp is a strong signal: always a turn
            label = m.group("speaker")
            if label.lower() not in _NOT_SPEAKERS:
                body = m.end() + 1 if m.end() < len(text) else m.end()
                marks.append((m.start(), body, label, seconds(m.group("t1"))))
    marks.sort()
    turns: list[Turn] = []
    for i, (_, body, speaker, t) in enumerate(marks):
        if turns and body <= turns[-1].start:
            continue  # overlapping matches of two patterns: keep the first
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        while end > body and text[end - 1].isspace():
            end -= 1
        while body < end and text[body].isspace():
            body += 1  # a label alone on its line: the words start on the next line
        turns.append(Turn(speaker, body, max(body, end), t, None, rules.role(speaker)))
    return turns
