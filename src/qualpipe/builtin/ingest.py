"""Built-in plugin: the ``ingest`` stage type.

Turns files, folders or globs of transcripts into the ``documents`` dataset (raw, so
marked sensitive). Each file is read by the reader registered for its suffix (see
``qualpipe_register_readers``); speaker turns come from the reader or from the
pipeline's speaker conventions; participant id and attributes come from an optional
manifest. A file that cannot be read goes to the ``quarantine`` dataset with the reason
and the reader, and the batch goes on. Files are read one at a time and documents are
written in small groups, so a corpus of any size is never held in memory at once.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import structlog

from qualpipe import Output, Param, PipelineError, StageContext, StageType, hookimpl
from qualpipe.builtin.participants import Participants, read_participants
from qualpipe.fingerprint import expand_paths
from qualpipe.readers import MissingDependency, RawDocument, Reader, UnreadableFile
from qualpipe.schemas import DOCUMENTS, QUARANTINE
from qualpipe.transcripts import INTERVIEWER_LABELS, SpeakerRules, find_turns, normalise

log = structlog.get_logger("qualpipe")
FLUSH_EVERY = 64


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


def iter_files(patterns: list[str]) -> Iterator[tuple[Path, str]]:
    """Each file once, with its path relative to the common root of all patterns."""
    if not patterns:
        raise PipelineError("ingest: paths: is empty; name the transcript files or folders")
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


def doc_id_for(rel: str, key: str | None = None) -> str:
    # File names can identify people ("Anna_Svensson.txt"): the id is a hash, not the name.
    ident = rel if key is None else f"{rel}#{key}"
    return "d" + hashlib.sha256(ident.encode()).hexdigest()[:12]


def suffix_table(
    readers: Mapping[str, Reader], chosen: Mapping[str, str]
) -> dict[str, Reader | None]:
    """Map file suffixes to readers (None: skip such files); clashes must be chosen."""
    table: dict[str, Reader | None] = {}
    for reader in readers.values():
        for suffix in reader.suffixes:
            s = suffix.lower()
            if s in chosen:
                continue
            other = table.get(s)
            if other is not None:
                a, b = sorted((other.name, reader.name))
                raise PipelineError(
                    f"ingest: readers {a!r} and {b!r} both read {s!r} "
                    f"files; choose one with readers: {{{s!r}: NAME}}"
                )
            table[s] = reader
    for suffix, name in chosen.items():
        s = suffix.lower() if suffix.startswith(".") else "." + suffix.lower()
        if name in ("skip", "ignore"):
            table[s] = None
            continue
        if name not in readers:
            raise PipelineError(
                f"ingest: readers: {suffix!r} names unknown reader {name!r} "
                f"(installed: {', '.join(sorted(readers))})"
            )
        table[s] = readers[name]
    return table


class _Batch:
    """Documents and quarantine rows waiting to be written."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self.docs: list[dict[str, Any]] = []
        self.bad: list[dict[str, Any]] = []
        self.stats: Counter[str] = Counter()

    def quarantine(self, rel: str, reader: str | None, reason: str, digest: str | None) -> None:
        self.bad.append({"source_path": rel, "reader": reader, "reason": reason, "sha256": digest})
        self.stats["quarantined"] += 1

    def flush(self, force: bool = False) -> None:
        if self.docs and (force or len(self.docs) >= FLUSH_EVERY):
            self.ctx.write("documents", pa.Table.from_pylist(self.docs, schema=DOCUMENTS.schema))
            self.docs.clear()
        if self.bad and (force or len(self.bad) >= FLUSH_EVERY):
            self.ctx.write("quarantine", pa.Table.from_pylist(self.bad, schema=QUARANTINE.schema))
            self.bad.clear()


def _read_all(reader: Reader, path: Path, params: Mapping[str, Any]) -> list[RawDocument]:
    docs = list(reader.read(path, params))
    for doc in docs:
        if not isinstance(doc, RawDocument):
            raise TypeError(f"reader yielded {type(doc).__name__}, not RawDocument")
    return docs


def run(ctx: StageContext) -> None:
    params = ctx.params
    try:
        rules = SpeakerRules.build(
            params["speaker_patterns"], params["speakers"], params["interviewer_labels"]
        )
    except (ValueError, re.error) as exc:
        raise PipelineError(f"ingest: speaker_patterns: {exc}") from None
    readers = suffix_table(ctx.components.get("reader", {}), params["readers"])
    manifest: Participants | None = None
    if params["manifest"]:
        manifest = read_participants(Path(params["manifest"]))
    matched: set[str] = set()
    no_row: list[str] = []
    batch = _Batch(ctx)
    warned: set[str] = set()

    for path, rel in iter_files(params["paths"]):
        if manifest is not None and path.resolve() == manifest.path.resolve():
            continue
        suffix = path.suffix.lower()
        if suffix in readers and readers[suffix] is None:
            continue  # the pipeline asked to skip such files
        reader = readers.get(suffix)
        if reader is None:
            known = ", ".join(sorted(s for s, r in readers.items() if r is not None))
            batch.quarantine(
                rel,
                None,
                f"no reader for {path.suffix or 'files without a suffix'!r} "
                f"(readers: {known}); convert the file or add a reader plugin",
                None,
            )
            continue
        try:
            data = path.read_bytes()
        except OSError as exc:
            batch.quarantine(rel, reader.name, f"cannot read: {exc.strerror}", None)
            continue
        digest = hashlib.sha256(data).hexdigest()
        del data
        try:
            raw_docs = _read_all(reader, path, params)
        except MissingDependency as exc:
            if reader.name not in warned:
                warned.add(reader.name)
                log.warning("reader unavailable", reader=reader.name, reason=str(exc))
            batch.quarantine(rel, reader.name, str(exc), digest)
            continue
        except UnreadableFile as exc:
            batch.quarantine(rel, reader.name, str(exc) or "unreadable", digest)
            continue
        except Exception as exc:
            # A reader bug or a file that trips the library: quarantine, never crash.
            batch.quarantine(
                rel, reader.name, f"reader {reader.name!r} failed: {type(exc).__name__}", digest
            )
            continue
        if not raw_docs:
            batch.quarantine(rel, reader.name, "no text found", digest)
            continue
        person = manifest.lookup(path) if manifest is not None else None
        if manifest is not None:
            if person is None:
                no_row.append(rel)
            else:
                matched.add(str(path.resolve()))
        for raw in raw_docs:
            row = _document(raw, rel, path, reader, digest, person, rules, params)
            if row is None:
                batch.quarantine(rel, reader.name, "no text found", digest)
                continue
            if raw.encoding not in (None, "utf-8", "utf-8-sig"):
                batch.stats[f"encoding:{raw.encoding}"] += 1
            if raw.notes:
                batch.stats["documents_with_notes"] += 1
                log.warning("read with notes", doc_id=row["doc_id"], notes=raw.notes)
            batch.docs.append(row)
            batch.stats["documents"] += 1
            batch.stats[f"format:{row['format']}"] += 1
            batch.stats["turns"] += len(row["turns"])
            ctx.advance()
        batch.flush()
    batch.flush(force=True)
    _check_manifest(ctx, manifest, matched, no_row, batch.stats)
    for key, value in sorted(batch.stats.items()):
        ctx.note(key, value)
    ctx.note("documents", batch.stats["documents"])
    ctx.note("quarantined", batch.stats["quarantined"])


def _document(
    raw: RawDocument,
    rel: str,
    path: Path,
    reader: Reader,
    digest: str,
    person: Mapping[str, str] | None,
    rules: SpeakerRules,
    params: Mapping[str, Any],
) -> dict[str, Any] | None:
    if raw.turns is None:
        text = normalise(raw.text)
        turns = find_turns(text, rules)
    else:
        text, turns = raw.text, raw.turns
    if not text.strip():
        return None
    attrs = dict(person or {})
    participant = raw.participant_id or attrs.pop("participant", None) or None
    attrs.pop("participant", None)
    attrs.update(raw.attributes)
    language = raw.language or attrs.get("language") or params.get("language")
    return {
        "doc_id": doc_id_for(rel, raw.key),
        "source_path": rel if raw.key is None else f"{rel}#{raw.key}",
        "format": path.suffix.lower().lstrip(".") or None,
        "reader": reader.name,
        "encoding": raw.encoding,
        "language": language or None,
        "participant_id": participant,
        "attributes": sorted((str(k), str(v)) for k, v in attrs.items()),
        "text": text,
        "turns": [t.as_dict() for t in turns],
        "sha256": digest,
        "sensitive": True,
    }


def _check_manifest(
    ctx: StageContext,
    manifest: Participants | None,
    matched: set[str],
    no_row: list[str],
    stats: Counter[str],
) -> None:
    if manifest is None:
        return
    no_file = manifest.unmatched(matched)
    stats["manifest_rows_without_file"] = len(no_file)
    stats["files_without_manifest_row"] = len(no_row)
    if not no_file and not no_row:
        return
    problems = []
    if no_file:
        problems.append(f"{len(no_file)} manifest row(s) match no file: {', '.join(no_file[:10])}")
    if no_row:
        problems.append(f"{len(no_row)} file(s) have no manifest row: {', '.join(no_row[:10])}")
    if ctx.params["strict"]:
        raise PipelineError(
            f"ingest: participants manifest {manifest.path.name!r}: {'; '.join(problems)}. "
            "Fix the 'file' column, or set strict: false to go on with a warning"
        )
    log.warning("manifest mismatch", rows_without_file=len(no_file), files_without_row=len(no_row))


INGEST = StageType(
    name="ingest",
    family="ingest",
    description=(
        "Read transcripts (txt, md, docx, odt, rtf, pdf, vtt, srt, csv/xlsx surveys) into "
        "the documents dataset (raw, sensitive), with speaker turns and participants."
    ),
    mode="whole",
    produces=[
        Output("documents", "documents", sensitive=True),
        Output("quarantine", "quarantine", sensitive=True),
    ],
    components=("reader",),
    params=[
        Param("paths", "paths", help="transcript files, folders or globs"),
        Param("manifest", "path", None, "participants CSV/XLSX: file, participant, attributes"),
        Param(
            "strict",
            "bool",
            True,
            "manifest rows without a file, or files without a row, are an error",
        ),
        Param("language", "str", None, "default language code (en, sv)"),
        Param(
            "speaker_patterns",
            "list",
            [],
            "regexes with a (?P<speaker>...) and optional (?P<time>...) group; replace the "
            "built-in speaker conventions",
        ),
        Param("speakers", "list", [], "extra speaker labels to accept (e.g. [Mamma, Handläggare])"),
        Param(
            "interviewer_labels",
            "list",
            sorted(INTERVIEWER_LABELS),
            "speaker labels (lower case) whose turns are the interviewer's",
        ),
        Param("readers", "dict", {}, "choose a reader per suffix: {'.csv': survey, '.md': skip}"),
        Param(
            "survey",
            "dict",
            {},
            "survey exports (csv/xlsx): text_columns (required), id_column, "
            "participant_column, attribute_columns, sheet, skip_rows, skip_after_header",
        ),
    ],
    run=run,
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(INGEST)
