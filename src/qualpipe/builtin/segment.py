"""Built-in plugin: the ``segment`` stage type (speaker turns or paragraphs).

A batch-wise stage: each batch of documents becomes a batch of segments, so it streams
in bounded memory and runs in parallel. Every segment's ``text`` equals
``document.text[start:end]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from qualpipe import BatchContext, Param, StageType, hookimpl
from qualpipe.schemas import SEGMENTS

_PARA = re.compile(r"\n[ \t]*\n")


def _paragraphs(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    for m in _PARA.finditer(text):
        yield pos, m.start()
        pos = m.end()
    yield pos, len(text)


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _spans(doc: Mapping[str, Any], strategy: str) -> Iterator[tuple[int, int, str | None]]:
    text = doc["text"]
    turns = doc.get("turns") or []
    if strategy == "turn" and turns:
        for t in turns:
            yield t["start"], t["end"], t["speaker"]
        return
    for s, e in _paragraphs(text):
        speaker = next(
            (
                t["speaker"]
                for t in turns
                if t["start"] <= s < t["end"] or t["start"] <= e - 1 < t["end"]
            ),
            None,
        )
        yield s, e, speaker


def process_batch(batch: pa.RecordBatch, ctx: BatchContext) -> dict[str, pa.Table]:
    strategy = ctx.params["strategy"]
    skip = {s.lower() for s in ctx.params["drop_speakers"]}
    min_chars = ctx.params["min_chars"]
    rows = []
    for doc in batch.to_pylist():
        text = doc["text"]
        attrs = doc.get("attributes") or []
        for start, end, speaker in _spans(doc, strategy):
            start, end = _trim(text, start, end)
            if end - start < min_chars or (speaker and speaker.lower() in skip):
                continue
            rows.append(
                {
                    "segment_id": f"{doc['doc_id']}:{strategy[0]}{start}-{end}",
                    "doc_id": doc["doc_id"],
                    "start": start,
                    "end": end,
                    "text": text[start:end],
                    "speaker": speaker,
                    "participant_id": doc.get("participant_id"),
                    "attributes": attrs,
                    "context": None,
                    "strategy": strategy,
                    "sensitive": doc["sensitive"],
                }
            )
    return {"segments": pa.Table.from_pylist(rows, schema=SEGMENTS.schema)}


SEGMENT = StageType(
    name="segment",
    family="segment",
    description="Cut documents into segments: speaker turns or paragraphs.",
    mode="batch",
    consumes=["documents"],
    produces=["segments"],
    params=[
        Param("strategy", "str", "turn", "turn or paragraph", choices=("turn", "paragraph")),
        Param(
            "drop_speakers",
            "list",
            [],
            "speaker labels whose turns are dropped (e.g. [I, Interviewer])",
        ),
        Param("min_chars", "int", 1, "drop segments shorter than this"),
    ],
    process_batch=process_batch,
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(SEGMENT)
