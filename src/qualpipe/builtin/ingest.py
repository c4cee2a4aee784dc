"""Built-in plugin: the ``ingest`` stage type (plain-text transcripts).

Turns files, folders or globs of ``.txt``/``.md`` transcripts into the ``documents``
dataset, with speaker turns and participant attributes from an optional manifest.
Files that cannot be read go to the ``quarantine`` dataset with a reason; one bad file
never stops the batch. Documents are written in small groups, so a corpus of any size
is never held in memory at once.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from qualpipe import Output, Param, PipelineError, StageContext, StageType, hookimpl
from qualpipe.fingerprint import expand_paths
from qualpipe.schemas import DOCUMENTS

TEXT_SUFFIXES = (".txt", ".md", ".text")
#: "Interviewer:", "I:", "P01:", "Anna:", optionally after a [00:12:31] timestamp
DEFAULT_SPEAKER = (
    r"^[ \t]*(?:[\[(]\d{1,2}:\d{2}(?::\d{2})?[\])][ \t]*)?"
    r"(?P<speaker>[A-ZÅÄÖ][\w.'-]*(?:[ \t][A-ZÅÄÖ][\w.'-]*){0,2})[ \t]*:[ \t]+"
)
FLUSH_EVERY = 64


def decode(data: bytes) -> tuple[str, str]:
    """Decode transcript bytes; return (text, encoding). Raise ValueError if unreadable."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8"), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    if b"\x00" in data[:4096]:
        raise ValueError("binary file (NUL bytes), not a text transcript")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        raise ValueError(
            "not UTF-8, UTF-16 or Windows-1252 text; re-save the file as UTF-8"
        ) from None


def normalise(text: str) -> str:
    """LF line ends (REFI-QDA importers expect them); offsets then point into this text."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def find_turns(text: str, pattern: re.Pattern[str]) -> list[dict[str, Any]]:
    """Speaker turns: each label starts a turn that runs to the next label."""
    marks = [(m.start(), m.end(), m.group("speaker")) for m in pattern.finditer(text)]
    turns = []
    for i, (_start, body, speaker) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        while end > body and text[end - 1].isspace():
            end -= 1
        turns.append(
            {"speaker": speaker, "start": body, "end": end, "start_time": None, "end_time": None}
        )
    return turns


def doc_id_for(rel: str) -> str:
    # File names can identify people ("Anna_Svensson.txt"): the id is a hash, not the name.
    return "d" + hashlib.sha256(rel.encode()).hexdigest()[:12]


def read_manifest(path: Path) -> dict[str, dict[str, str]]:
    """Participants manifest (CSV): ``file``, ``participant`` and attribute columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except FileNotFoundError:
        raise PipelineError(
            f"participants manifest {str(path)!r} not found; check manifest:"
        ) from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PipelineError(
            f"participants manifest {str(path)!r} is not a readable UTF-8 CSV: {exc}"
        ) from None
    if not rows or "file" not in rows[0]:
        raise PipelineError(
            f"participants manifest {str(path)!r} needs a 'file' column (and 'participant')"
        )
    out = {}
    for row in rows:
        rel = (row.pop("file") or "").strip()
        if rel:
            out[str((path.parent / rel).resolve())] = {
                k: (v or "").strip() for k, v in row.items() if k
            }
    return out


def _static_root(pattern: str) -> Path:
    """The folder a pattern starts from: itself, its parent, or the glob's fixed prefix."""
    p = Path(pattern)
    if glob.has_magic(pattern):
        parts = []
        for part in p.parts:
            if glob.has_magic(part):
                break
            parts.append(part)
        return Path(*parts) if parts else Path()
    return p if p.is_dir() else p.parent


def _iter_files(patterns: list[str]) -> Iterator[tuple[Path, str]]:
    """Each file once, with its path relative to the common root of all patterns."""
    for pattern in patterns:
        if not Path(pattern).exists() and not glob.has_magic(pattern):
            raise PipelineError(f"ingest: path {pattern!r} does not exist; check paths:")
    root = Path(os.path.commonpath([_static_root(p).resolve() for p in patterns]))
    seen: set[Path] = set()
    for f in expand_paths(patterns):
        resolved = f.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        rel = resolved.relative_to(root) if resolved.is_relative_to(root) else Path(f.name)
        yield f, rel.as_posix()


def run(ctx: StageContext) -> None:
    pattern = re.compile(ctx.params["speaker_pattern"], re.MULTILINE)
    manifest_path = ctx.params.get("manifest")
    people = read_manifest(Path(manifest_path)) if manifest_path else {}
    matched: set[str] = set()
    docs: list[dict[str, Any]] = []
    bad: list[dict[str, Any]] = []
    n_docs = n_bad = 0

    def flush() -> None:
        if docs:
            ctx.write("documents", pa.Table.from_pylist(docs, schema=DOCUMENTS.schema))
            docs.clear()
        if bad:
            ctx.write("quarantine", pa.Table.from_pylist(bad))
            bad.clear()

    for path, rel in _iter_files(ctx.params["paths"]):
        if path.suffix.lower() not in TEXT_SUFFIXES:
            continue
        key = str(path.resolve())
        try:
            data = path.read_bytes()
        except OSError as exc:
            bad.append(
                {"source_path": rel, "reader": "text", "reason": f"cannot read: {exc.strerror}"}
            )
            n_bad += 1
            continue
        digest = hashlib.sha256(data).hexdigest()
        try:
            text, encoding = decode(data)
        except ValueError as exc:
            bad.append({"source_path": rel, "reader": "text", "reason": str(exc), "sha256": digest})
            n_bad += 1
            continue
        text = normalise(text)
        if not text.strip():
            bad.append(
                {"source_path": rel, "reader": "text", "reason": "empty file", "sha256": digest}
            )
            n_bad += 1
            continue
        person = people.get(key)
        if person is not None:
            matched.add(key)
        attrs = dict(person or {})
        participant = attrs.pop("participant", None) or None
        docs.append(
            {
                "doc_id": doc_id_for(rel),
                "source_path": rel,
                "format": path.suffix.lower().lstrip("."),
                "reader": "text",
                "encoding": encoding,
                "language": attrs.get("language") or ctx.params.get("language"),
                "participant_id": participant,
                "attributes": list(attrs.items()),
                "text": text,
                "turns": find_turns(text, pattern),
                "sha256": digest,
                "sensitive": True,
            }
        )
        n_docs += 1
        ctx.advance()
        if len(docs) >= FLUSH_EVERY:
            flush()
    flush()
    missing = sorted(set(people) - matched)
    if missing and ctx.params["strict"]:
        raise PipelineError(
            f"ingest: {len(missing)} manifest row(s) match no transcript, e.g. {missing[0]!r}; "
            "fix the file column or set strict: false"
        )
    ctx.note("documents", n_docs)
    ctx.note("quarantined", n_bad)
    ctx.note("manifest_rows_unmatched", len(missing))


INGEST = StageType(
    name="ingest",
    family="ingest",
    description="Read plain-text transcripts into the documents dataset (raw, sensitive).",
    mode="whole",
    produces=[
        Output("documents", "documents", sensitive=True),
        Output("quarantine", "quarantine", sensitive=True),
    ],
    params=[
        Param("paths", "paths", help="transcript files, folders or globs"),
        Param("manifest", "path", None, "participants CSV: file, participant, attributes"),
        Param("speaker_pattern", "str", DEFAULT_SPEAKER, "regex with a (?P<speaker>...) group"),
        Param("language", "str", None, "default language code (en, sv)"),
        Param("strict", "bool", True, "manifest rows without a transcript are an error"),
    ],
    run=run,
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(INGEST)
