"""The core dataset kinds and their Arrow schemas (version 1).

docs/datasets.md is generated from these definitions. Offsets are always Unicode code
points into the ``text`` of the dataset they came from, start inclusive, end exclusive,
so ``text[start:end]`` in Python is the span.
"""

from __future__ import annotations

import pyarrow as pa

from qualpipe.datasets import DatasetKind

ATTRIBUTES = pa.map_(pa.string(), pa.string())

TURN = pa.struct(
    [
        pa.field("speaker", pa.string()),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("end", pa.int64(), nullable=False),
        pa.field("start_time", pa.float64()),
        pa.field("end_time", pa.float64()),
        pa.field("role", pa.string()),
    ]
)

EVIDENCE = pa.struct(
    [
        pa.field("term", pa.string()),
        pa.field("start", pa.int64()),
        pa.field("end", pa.int64()),
    ]
)

DOCUMENTS = DatasetKind(
    name="documents",
    version=1,
    description="One row per transcript: its full text, speaker turns and participant.",
    schema=pa.schema(
        [
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("source_path", pa.string(), nullable=False),
            pa.field("format", pa.string()),
            pa.field("reader", pa.string()),
            pa.field("encoding", pa.string()),
            pa.field("language", pa.string()),
            pa.field("participant_id", pa.string()),
            pa.field("attributes", ATTRIBUTES),
            pa.field("text", pa.large_string(), nullable=False),
            pa.field("turns", pa.list_(TURN)),
            pa.field("sha256", pa.string()),
            pa.field("sensitive", pa.bool_(), nullable=False),
        ]
    ),
    fields={
        "doc_id": "stable id derived from the source path (unchanged across re-runs)",
        "source_path": "path of the source file, relative to the ingest root",
        "format": "file format (txt, docx, vtt, ...)",
        "reader": "name of the reader that parsed the file",
        "encoding": "text encoding detected (utf-8, utf-16, cp1252, ...)",
        "language": "ISO 639-1 language code if known (en, sv)",
        "participant_id": "participant id from the manifest",
        "attributes": "participant attributes (role, gender, pair, ...) as strings",
        "text": "full text; every offset of every later dataset points into it",
        "turns": "speaker turns: label, start/end offsets of the words after the label, "
        "optional times (s), role (interviewer or participant)",
        "sha256": "sha256 of the source file's bytes",
        "sensitive": "true until anonymised: exports refuse sensitive rows",
    },
)

QUARANTINE = DatasetKind(
    name="quarantine",
    version=1,
    description="Inputs that could not be read, with the reason; never stops a batch.",
    schema=pa.schema(
        [
            pa.field("source_path", pa.string(), nullable=False),
            pa.field("reader", pa.string()),
            pa.field("reason", pa.string(), nullable=False),
            pa.field("sha256", pa.string()),
        ]
    ),
    fields={
        "source_path": "the file that was set aside",
        "reader": "reader that failed (or none matched)",
        "reason": "one line: what was wrong and how to fix it",
        "sha256": "sha256 of the file's bytes if it could be read",
    },
)

SEGMENTS = DatasetKind(
    name="segments",
    version=1,
    description="Units of analysis cut from documents (turns, paragraphs, sentences, ...).",
    schema=pa.schema(
        [
            pa.field("segment_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("start", pa.int64(), nullable=False),
            pa.field("end", pa.int64(), nullable=False),
            pa.field("text", pa.large_string(), nullable=False),
            pa.field("speaker", pa.string()),
            pa.field("participant_id", pa.string()),
            pa.field("attributes", ATTRIBUTES),
            pa.field("context", pa.large_string()),
            pa.field("strategy", pa.string()),
            pa.field("sensitive", pa.bool_(), nullable=False),
        ]
    ),
    fields={
        "segment_id": "stable id: doc_id, strategy letter and position in the document (d1:t3)",
        "doc_id": "document the segment was cut from",
        "start": "start offset into the document text (code points, inclusive)",
        "end": "end offset into the document text (code points, exclusive)",
        "text": "the segment text, equal to document text[start:end]",
        "speaker": "speaker label of the turn the segment belongs to",
        "participant_id": "participant id carried from the document",
        "attributes": "participant attributes carried from the document",
        "context": "preceding interviewer question, when kept as context",
        "strategy": "segmentation strategy that produced it",
        "sensitive": "carried from the document",
    },
)

CODEBOOK = DatasetKind(
    name="codebook",
    version=1,
    description="The codebook tree (overarching theme -> theme -> sub-theme -> code).",
    schema=pa.schema(
        [
            pa.field("code_id", pa.string(), nullable=False),
            pa.field("parent_id", pa.string()),
            pa.field("name", pa.string(), nullable=False),
            pa.field("level", pa.string()),
            pa.field("description", pa.large_string()),
            pa.field("inclusion", pa.large_string()),
            pa.field("exclusion", pa.large_string()),
            pa.field("examples", pa.list_(pa.string())),
            pa.field("keywords", pa.list_(pa.string())),
            pa.field("patterns", pa.list_(pa.string())),
            pa.field("colour", pa.string()),
            pa.field("position", pa.int32()),
            pa.field("codebook_version", pa.string(), nullable=False),
        ]
    ),
    fields={
        "code_id": "stable code id",
        "parent_id": "parent node id (null for roots)",
        "name": "display name, unique in the codebook",
        "level": "overarching | theme | subtheme | code",
        "description": "what the code means",
        "inclusion": "when to apply it",
        "exclusion": "when not to apply it",
        "examples": "example phrases",
        "keywords": "keywords and stems (English and Swedish)",
        "patterns": "regular expressions",
        "colour": "#RRGGBB",
        "position": "order among siblings",
        "codebook_version": "content hash of the codebook",
    },
)

CODINGS = DatasetKind(
    name="codings",
    version=1,
    description="A code applied to a span of a segment, by a machine coder or a person.",
    schema=pa.schema(
        [
            pa.field("coding_id", pa.string(), nullable=False),
            pa.field("segment_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("start", pa.int64(), nullable=False),
            pa.field("end", pa.int64(), nullable=False),
            pa.field("code_id", pa.string(), nullable=False),
            pa.field("coder", pa.string(), nullable=False),
            pa.field("coder_version", pa.string()),
            pa.field("coder_settings", pa.string()),
            pa.field("score", pa.float64()),
            pa.field("evidence", pa.list_(EVIDENCE)),
            pa.field("codebook_version", pa.string()),
            pa.field("status", pa.string(), nullable=False),
        ]
    ),
    fields={
        "coding_id": "stable id: segment, code and coder",
        "segment_id": "coded segment",
        "doc_id": "document of the segment",
        "start": "start offset into the document text",
        "end": "end offset into the document text",
        "code_id": "code applied",
        "coder": "coder name (machine coder or person)",
        "coder_version": "coder version",
        "coder_settings": "hash of the coder's settings",
        "score": "confidence or similarity, if any",
        "evidence": "matched terms with their offsets into the document text",
        "codebook_version": "codebook content hash the coding was made with",
        "status": "suggested | accepted | rejected | human",
    },
)

FINDINGS = DatasetKind(
    name="findings",
    version=1,
    description="Identifiers replaced by anonymisation; never the original value.",
    schema=pa.schema(
        [
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("start", pa.int64(), nullable=False),
            pa.field("end", pa.int64(), nullable=False),
            pa.field("entity_type", pa.string(), nullable=False),
            pa.field("recogniser", pa.string()),
            pa.field("score", pa.float64()),
            pa.field("replacement", pa.string()),
        ]
    ),
    fields={
        "doc_id": "document",
        "start": "start offset of the replacement in the anonymised text",
        "end": "end offset of the replacement in the anonymised text",
        "entity_type": "PERSON, PLACE, ORG, PHONE, EMAIL, ID, DATE, ...",
        "recogniser": "recogniser that found it",
        "score": "confidence",
        "replacement": "the text written in place of the identifier",
    },
)

THEMES = DatasetKind(
    name="themes",
    version=1,
    description="Themes with counts and prevalence by participant attribute.",
    schema=pa.schema(
        [
            pa.field("theme_id", pa.string(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("level", pa.string()),
            pa.field("parent_id", pa.string()),
            pa.field("description", pa.large_string()),
            pa.field("segments", pa.int64()),
            pa.field("documents", pa.int64()),
            pa.field("participants", pa.int64()),
            pa.field("prevalence", pa.string()),
            pa.field("proposal", pa.bool_()),
        ]
    ),
    fields={
        "theme_id": "theme id (a codebook node id for deductive themes)",
        "name": "theme name",
        "level": "overarching | theme | subtheme",
        "parent_id": "parent theme",
        "description": "definition",
        "segments": "segments assigned",
        "documents": "documents with at least one assigned segment",
        "participants": "participants with at least one assigned segment",
        "prevalence": "JSON: attribute -> value -> participant count",
        "proposal": "true for machine proposals awaiting review",
    },
)

THEME_ASSIGNMENTS = DatasetKind(
    name="theme_assignments",
    version=1,
    description="Which segments carry which theme, and through which codes and coders.",
    schema=pa.schema(
        [
            pa.field("segment_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("theme_id", pa.string(), nullable=False),
            pa.field("score", pa.float64()),
            pa.field("code_ids", pa.list_(pa.string())),
            pa.field("coders", pa.list_(pa.string())),
        ]
    ),
    fields={
        "segment_id": "segment",
        "doc_id": "document",
        "theme_id": "theme",
        "score": "highest coding score among the codes",
        "code_ids": "codes the assignment came through",
        "coders": "coders of those codes",
    },
)

QUOTES = DatasetKind(
    name="quotes",
    version=1,
    description="Illustrative quotes per theme, labelled the way papers label them.",
    schema=pa.schema(
        [
            pa.field("theme_id", pa.string(), nullable=False),
            pa.field("rank", pa.int32(), nullable=False),
            pa.field("segment_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("participant_id", pa.string()),
            pa.field("label", pa.string()),
            pa.field("text", pa.large_string(), nullable=False),
            pa.field("score", pa.float64()),
            pa.field("attributes", ATTRIBUTES),
        ]
    ),
    fields={
        "theme_id": "theme the quote illustrates",
        "rank": "1 = best quote for the theme",
        "segment_id": "segment quoted",
        "doc_id": "document",
        "participant_id": "participant",
        "label": "attribution as printed: (Service user), (7), (XIII)",
        "text": "the quote (anonymised segment text, possibly shortened with …)",
        "score": "representativeness (similarity to the theme's centre)",
        "attributes": "participant attributes",
    },
)

COOCCURRENCE = DatasetKind(
    name="cooccurrence",
    version=1,
    description="How often two codes or two themes occur together.",
    schema=pa.schema(
        [
            pa.field("kind", pa.string(), nullable=False),
            pa.field("level", pa.string(), nullable=False),
            pa.field("a", pa.string(), nullable=False),
            pa.field("b", pa.string(), nullable=False),
            pa.field("count", pa.int64(), nullable=False),
            pa.field("jaccard", pa.float64()),
        ]
    ),
    fields={
        "kind": "code or theme",
        "level": "segment (same segment) or participant (same participant)",
        "a": "first code or theme id",
        "b": "second code or theme id (a == b: how often a occurs at all)",
        "count": "segments or participants with both",
        "jaccard": "count / (segments or participants with a or b)",
    },
)

EXPORTS = DatasetKind(
    name="exports",
    version=1,
    description="Files an export stage wrote (outside the run store), with their hashes.",
    schema=pa.schema(
        [
            pa.field("format", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("bytes", pa.int64()),
            pa.field("sha256", pa.string()),
        ]
    ),
    fields={
        "format": "exporter that wrote it (qdpx, html, docx, ...)",
        "path": "file path",
        "bytes": "size",
        "sha256": "content hash",
    },
)

CORE_KINDS = (
    DOCUMENTS,
    QUARANTINE,
    SEGMENTS,
    CODEBOOK,
    CODINGS,
    FINDINGS,
    THEMES,
    THEME_ASSIGNMENTS,
    QUOTES,
    COOCCURRENCE,
    EXPORTS,
)
