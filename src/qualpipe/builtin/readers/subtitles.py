"""Timed transcripts: WebVTT (.vtt) and SubRip (.srt).

Cue timings become turn times. WebVTT voice tags (``<v Anna>``, ``<v.loud Anna>``) and
``Name: text`` prefixes become speakers; consecutive cues of one speaker merge into one
turn. The document text reads like a transcript (``Anna: ...`` lines) and each turn's
offsets cover the words after the label. Formatting tags are dropped, entities decoded.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qualpipe.readers import RawDocument, Reader, Turn, UnreadableFile
from qualpipe.transcripts import LABEL, SpeakerRules, decode_bytes, normalise

_TIME = r"(?:\d+:)?\d{1,2}:\d{2}[.,]\d{1,3}"
_TIMING = re.compile(rf"^\s*(?P<start>{_TIME})\s+-->\s+(?P<end>{_TIME})")
_VOICE = re.compile(r"<v(?:\.[\w.-]+)?(?:\s+(?P<name>[^>]*))?>", re.I)
_TAG = re.compile(r"<[^>]*>")
_PREFIX = re.compile(rf"^\s*(?:-\s*)?\[?(?P<speaker>{LABEL})\]?\s*:\s+")


@dataclass
class Cue:
    start: float
    end: float
    speaker: str | None
    text: str


def _seconds(ts: str) -> float:
    parts = ts.replace(",", ".").split(":")
    total = 0.0
    for p in parts:
        total = total * 60 + float(p)
    return total


def _clean(payload: str) -> str:
    text = html.unescape(_TAG.sub("", payload))
    return " ".join(text.split())


def _voiced(payload: str) -> list[tuple[str | None, str]]:
    """Split a WebVTT payload into (voice, text) parts."""
    parts: list[tuple[str | None, str]] = []
    matches = list(_VOICE.finditer(payload))
    if not matches:
        return [(None, payload)]
    if matches[0].start() > 0 and payload[: matches[0].start()].strip():
        parts.append((None, payload[: matches[0].start()]))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(payload)
        name = (m.group("name") or "").strip() or None
        parts.append((name, payload[m.end() : end]))
    return parts


def _blocks(text: str) -> Iterator[list[str]]:
    block: list[str] = []
    for line in text.split("\n"):
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def _cues(text: str, vtt: bool) -> list[Cue]:
    cues: list[Cue] = []
    for block in _blocks(text):
        if vtt and block[0].split(" ", 1)[0] in ("WEBVTT", "NOTE", "STYLE", "REGION"):
            continue
        timing_at = next((i for i, line in enumerate(block) if "-->" in line), None)
        if timing_at is None:
            continue
        m = _TIMING.match(block[timing_at])
        if not m:
            raise UnreadableFile(f"malformed cue timing line {block[timing_at].strip()[:60]!r}")
        start, end = _seconds(m.group("start")), _seconds(m.group("end"))
        payload = "\n".join(block[timing_at + 1 :])
        parts = _voiced(payload) if vtt else [(None, payload)]
        for voice, part in parts:
            words = _clean(part)
            if words:
                cues.append(Cue(start, end, voice, words))
    return cues


def _speakers_from_prefixes(cues: list[Cue], rules: SpeakerRules) -> None:
    found = [(c, _PREFIX.match(c.text)) for c in cues if c.speaker is None]
    counts = Counter(m.group("speaker") for _, m in found if m)
    for cue, m in found:
        if m and rules.accepted(m.group("speaker"), counts[m.group("speaker")]):
            cue.speaker = m.group("speaker")
            cue.text = cue.text[m.end() :]


def build_document(cues: list[Cue], rules: SpeakerRules) -> tuple[str, list[Turn]]:
    """Merge cues into speaker turns and lay them out as transcript text."""
    merged: list[Cue] = []
    for cue in cues:
        if merged and merged[-1].speaker == cue.speaker:
            merged[-1].text += " " + cue.text
            merged[-1].end = cue.end
        else:
            merged.append(Cue(cue.start, cue.end, cue.speaker, cue.text))
    pieces: list[str] = []
    turns: list[Turn] = []
    pos = 0
    for cue in merged:
        label = f"{cue.speaker}: " if cue.speaker else ""
        start = pos + len(label)
        pieces.append(label + cue.text)
        role = rules.role(cue.speaker) if cue.speaker else None
        turns.append(Turn(cue.speaker, start, start + len(cue.text), cue.start, cue.end, role))
        pos += len(label) + len(cue.text) + 1
    return "\n".join(pieces), turns


def _read(path: Path, options: Mapping[str, Any], vtt: bool) -> Iterator[RawDocument]:
    raw, encoding, notes = decode_bytes(path.read_bytes())
    text = normalise(raw)
    if vtt and not text.lstrip().startswith("WEBVTT"):
        raise UnreadableFile("not a WebVTT file: the first line must be WEBVTT")
    cues = _cues(text, vtt)
    if not cues:
        raise UnreadableFile("no subtitle cues with text found")
    rules = SpeakerRules.build(
        None, options.get("speakers") or (), options.get("interviewer_labels") or None
    )
    _speakers_from_prefixes(cues, rules)
    body, turns = build_document(cues, rules)
    yield RawDocument(text=body, turns=turns, encoding=encoding, notes=notes)


def read_vtt(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    return _read(path, options, vtt=True)


def read_srt(path: Path, options: Mapping[str, Any]) -> Iterator[RawDocument]:
    return _read(path, options, vtt=False)


VTT = Reader("vtt", (".vtt",), read_vtt, "WebVTT captions: cue times and <v Name> voices")
SRT = Reader("srt", (".srt",), read_srt, "SubRip subtitles: cue times, 'Name:' speakers")
