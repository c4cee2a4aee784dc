"""Built-in plugin: the ``code`` stage type (machine coding of segments).

A batch-wise stage: segments are streamed, the codebook is read whole (a side input),
and each configured coder suggests codes for each batch. Every coding row records the
coder's name, version and a hash of its settings, the codebook version and the
evidence, with status ``suggested``: machine codings are suggestions for people to
review; they never overwrite human codings (those come from an import stage and are
kept apart, with status ``human``).

Researchers' ``coding`` decisions (docs/review.md) are applied to every batch: a
rejected (segment, code) is dropped and never suggested again, an accepted one gets
status ``accepted``, and added or edited codings become human codings (status
``human``, coder ``human:<who>``), which the theme stage counts like imported ones.

Coders that also give their suggestions as columns (``Coder.columns``: the built-in
``rules`` and ``semantic``) are taken that way when the batch has no decisions to apply
and distinct segment ids: the table is then built from arrays, without an object per
suggestion; it is the same table as the suggestion by suggestion way gives.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import structlog

from qualpipe import BatchContext, Input, Param, PipelineError, StageType, hookimpl
from qualpipe.codebook import Codebook
from qualpipe.coding.coders import Coder, CoderContext, Suggestion
from qualpipe.coding.stems import forget_words
from qualpipe.decisions import Decision
from qualpipe.errors import DatasetError
from qualpipe.fingerprint import canonical_json, sha256_text
from qualpipe.schemas import CODINGS, EVIDENCE

log = structlog.get_logger("qualpipe")

# per-process caches: codebooks by version, coder states by (coder, settings, codebook)
_BOOKS: dict[str, tuple[Codebook, str]] = {}
_STATES: dict[tuple[str, str, str], Any] = {}


def coder_specs(raw: list[Any]) -> list[tuple[str, dict[str, Any]]]:
    """``[rules, {name: semantic, threshold: 0.3}]`` -> [(name, options)]."""
    specs: list[tuple[str, dict[str, Any]]] = []
    for item in raw:
        if isinstance(item, str):
            specs.append((item, {}))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            specs.append((item["name"], {k: v for k, v in item.items() if k != "name"}))
        else:
            raise PipelineError(
                f"code: coders: each entry is a coder name or a mapping with name:, got {item!r}"
            )
    if not specs:
        raise PipelineError("code: coders: name at least one coder (see 'qualpipe plugins')")
    return specs


def settings_hash(options: Mapping[str, Any]) -> str:
    return sha256_text(canonical_json(options))[:12]


def _codebook(table: pa.Table) -> tuple[Codebook, str]:
    """The codebook of the ``codebook`` dataset, and its version (hashed once: the
    codebook is kept per process, and its version is part of every coding row)."""
    version = table.column("codebook_version")[0].as_py() if table.num_rows else ""
    if version not in _BOOKS:
        _BOOKS.clear()
        book = Codebook.from_table(table)
        _BOOKS[version] = (book, book.version)
    return _BOOKS[version]


def process_batch(batch: pa.RecordBatch, ctx: BatchContext) -> dict[str, pa.Table]:
    book, version = _codebook(ctx.side["codebook"])
    known = book.by_id()
    coders: Mapping[str, Coder] = ctx.components.get("coder", {})
    specs = coder_specs(ctx.params["coders"])
    if (
        not ctx.decisions
        and all(getattr(coders.get(name), "columns", None) is not None for name, _ in specs)
        and len(set(batch.column("segment_id").to_pylist())) == batch.num_rows
    ):
        return {"codings": _columns_table(batch, ctx, book, version, specs)}
    segments = batch.to_pylist()
    by_id = {s["segment_id"]: s for s in segments}
    top_k = ctx.params["top_k"]
    min_score = ctx.params["min_score"]
    # the codings, column by column: (segment, code, coder, settings, suggestion)
    found_rows: list[tuple[Mapping[str, Any], str, Coder, str, Suggestion]] = []
    forget_words()  # the coders of this batch share its segments' words
    try:
        for name, options in specs:
            coder = coders.get(name)
            if coder is None:
                raise PipelineError(
                    f"code: unknown coder {name!r} "
                    f"(installed: {', '.join(sorted(coders)) or 'none'})"
                )
            settings = settings_hash(options)
            cctx = _state(coder, options, settings, book, version)
            per_segment: dict[str, list[Suggestion]] = defaultdict(list)
            for sug in coder.code(segments, cctx):
                if sug.code_id not in known:
                    raise DatasetError(
                        f"coder {name!r} suggested code {sug.code_id!r}, which is not in the "
                        f"codebook (version {version})"
                    )
                if sug.segment_id not in by_id:
                    raise DatasetError(
                        f"coder {name!r} coded an unknown segment {sug.segment_id!r}"
                    )
                if sug.score >= min_score:
                    per_segment[sug.segment_id].append(sug)
            for seg_id, suggestions in per_segment.items():
                suggestions.sort(key=lambda s: -s.score)
                seg = by_id[seg_id]
                for sug in suggestions[:top_k] if top_k else suggestions:
                    found_rows.append((seg, sug.code_id, coder, settings, sug))
    finally:
        forget_words()
    if ctx.decisions:
        rows = _rows(found_rows, version)
        rows = apply_coding_decisions(rows, by_id, ctx.decisions, book, version)
        return {"codings": pa.Table.from_pylist(rows, schema=CODINGS.schema)}
    return {"codings": _table(found_rows, version)}


def _state(
    coder: Coder, options: dict[str, Any], settings: str, book: Codebook, version: str
) -> CoderContext:
    """The coder's context, its ``setup`` run once per process for each settings hash
    (``settings``) and codebook version."""
    key = (coder.name, settings, version)
    if key not in _STATES:
        _STATES[key] = coder.setup(book, options) if coder.setup else None
    return CoderContext(book, options, _STATES[key])


def _columns_table(
    batch: pa.RecordBatch,
    ctx: BatchContext,
    book: Codebook,
    version: str,
    specs: list[tuple[str, dict[str, Any]]],
) -> pa.Table:
    """The codings of coders that give :class:`Columns` (the built-in ones), built from
    columns: the same table as the suggestion by suggestion way, without an object per
    suggestion (segment ids must be distinct within the batch)."""
    top_k, min_score = ctx.params["top_k"], ctx.params["min_score"]
    known = book.by_id()
    texts = batch.column("text").to_pylist()
    bases = batch.column("start").to_pylist()
    # the rows of all coders: their segments, codes, coders, scores and evidence rows
    segments: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    picked: list[np.ndarray] = []  # rows of the evidence lists below, once all are joined
    codes: list[str] = []
    names: list[str] = []
    versions: list[str | None] = []
    settings: list[str] = []
    offsets: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    terms: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    listed = 0  # evidence lists so far
    forget_words()  # the coders of this batch share its segments' words
    try:
        for name, options in specs:
            coder = ctx.components["coder"][name]
            assert coder.columns is not None
            settings_of = settings_hash(options)
            found = coder.columns(texts, bases, _state(coder, options, settings_of, book, version))
            if not found.segment:
                continue
            for code_id in {found.codes[c] for c in set(found.code)}:
                if code_id not in known:
                    raise DatasetError(
                        f"coder {name!r} suggested code {code_id!r}, which is not in the "
                        f"codebook (version {version})"
                    )
            segment = np.array(found.segment, dtype=np.int64)
            score = np.array(found.score, dtype=np.float64)
            rows = np.flatnonzero(score >= min_score)
            # per segment (in batch order), best first; lexsort is stable
            rows = rows[np.lexsort((-score[rows], segment[rows]))]
            if top_k and len(rows):
                seg = segment[rows]
                head = np.r_[True, seg[1:] != seg[:-1]]
                first = np.maximum.accumulate(np.where(head, np.arange(len(rows)), 0))
                rows = rows[np.arange(len(rows)) - first < top_k]
            if not len(rows):
                continue
            n = len(rows)
            segments.append(segment[rows])
            scores.append(score[rows])
            picked.append(rows + listed)
            code_ids = found.codes
            codes += [code_ids[c] for c in np.array(found.code)[rows].tolist()]
            names += [coder.name] * n
            versions += [coder.version] * n
            settings += [settings_of] * n
            offsets.append(np.array(found.evidence[1:], dtype=np.int64) + len(terms))
            terms += found.term
            starts += found.start
            ends += found.end
            listed += len(found.segment)
    finally:
        forget_words()
    if not segments:
        return _table([], version)
    n = len(codes)
    take = np.concatenate(segments).tolist()
    seg_ids = batch.column("segment_id").to_pylist()
    seg_ids = [seg_ids[j] for j in take]
    doc_ids = batch.column("doc_id").to_pylist()
    seg_starts = batch.column("start").to_pylist()
    seg_ends = batch.column("end").to_pylist()
    # the evidence lists in the order of the rows (without pyarrow.compute: its import
    # alone costs ~10 MiB of memory per process)
    bounds = np.concatenate(offsets)
    rows = np.concatenate(picked)
    sizes = bounds[rows + 1] - bounds[rows]
    heads = np.cumsum(sizes) - sizes
    items = np.repeat(bounds[rows] - heads, sizes) + np.arange(int(sizes.sum()))
    lists = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(sizes, out=lists[1:])
    at = items.tolist()
    evidence = pa.ListArray.from_arrays(
        pa.array(lists, pa.int32()),
        pa.StructArray.from_arrays(
            [
                pa.array([terms[i] for i in at], pa.string()),
                pa.array(np.array(starts, dtype=np.int64)[items], pa.int64()),
                pa.array(np.array(ends, dtype=np.int64)[items], pa.int64()),
            ],
            fields=list(EVIDENCE),
        ),
        type=CODINGS.schema.field("evidence").type,
    )
    columns = {
        "coding_id": [f"{s}:{c}:{name}" for s, c, name in zip(seg_ids, codes, names, strict=True)],
        "segment_id": seg_ids,
        "doc_id": [doc_ids[j] for j in take],
        "start": [seg_starts[j] for j in take],
        "end": [seg_ends[j] for j in take],
        "code_id": codes,
        "coder": names,
        "coder_version": versions,
        "coder_settings": settings,
        "score": np.concatenate(scores),
        "evidence": evidence,
        "codebook_version": [version] * n,
        "status": ["suggested"] * n,
    }
    return pa.Table.from_arrays(
        [pa.array(columns[f.name], f.type) for f in CODINGS.schema], schema=CODINGS.schema
    )


_Found = Sequence[tuple[Mapping[str, Any], str, Coder, str, Suggestion]]


def _rows(found: _Found, version: str) -> list[dict[str, Any]]:
    """The ``codings`` rows of the suggestions (as dicts, for the decisions)."""
    return [
        {
            "coding_id": f"{seg['segment_id']}:{code_id}:{coder.name}",
            "segment_id": seg["segment_id"],
            "doc_id": seg["doc_id"],
            "start": seg["start"] if sug.start is None else sug.start,
            "end": seg["end"] if sug.end is None else sug.end,
            "code_id": code_id,
            "coder": coder.name,
            "coder_version": coder.version,
            "coder_settings": settings,
            "score": float(sug.score),
            "evidence": [{"term": t, "start": s, "end": e} for t, s, e in sug.evidence],
            "codebook_version": version,
            "status": "suggested",
        }
        for seg, code_id, coder, settings, sug in found
    ]


def _table(found: _Found, version: str) -> pa.Table:
    """The ``codings`` table of the suggestions, built column by column (the same
    table as ``pa.Table.from_pylist(_rows(found, version))``, without a dict per row)."""
    seg_ids = [seg["segment_id"] for seg, _, _, _, _ in found]
    codes = [code_id for _, code_id, _, _, _ in found]
    names = [coder.name for _, _, coder, _, _ in found]
    n = len(found)
    columns = {
        "coding_id": [f"{s}:{c}:{name}" for s, c, name in zip(seg_ids, codes, names, strict=True)],
        "segment_id": seg_ids,
        "doc_id": [seg["doc_id"] for seg, _, _, _, _ in found],
        "start": [seg["start"] if sug.start is None else sug.start for seg, _, _, _, sug in found],
        "end": [seg["end"] if sug.end is None else sug.end for seg, _, _, _, sug in found],
        "code_id": codes,
        "coder": names,
        "coder_version": [coder.version for _, _, coder, _, _ in found],
        "coder_settings": [settings for _, _, _, settings, _ in found],
        "score": [float(sug.score) for _, _, _, _, sug in found],
        # a struct value may be a tuple: (term, start, end)
        "evidence": [[(t, s, e) for t, s, e in sug.evidence] for _, _, _, _, sug in found],
        "codebook_version": [version] * n,
        "status": ["suggested"] * n,
    }
    return pa.Table.from_pydict(columns, schema=CODINGS.schema)


def _code_resolver(book: Codebook) -> Callable[[str], str | None]:
    """A decision names a code by id, id path (``talking/chat``) or path name
    (``Talking / Chatting``, any case)."""
    known = book.by_id()

    def norm(path: str) -> str:
        return " / ".join(part.strip() for part in path.split("/")).casefold()

    by_path = {norm(path): cid for cid, path in book.path_names().items()}
    for cid in known:  # and by its id path: talking/chat
        ids = [a.id for a in reversed(book.ancestors(cid))] + [cid]
        by_path.setdefault(norm("/".join(ids)), cid)

    def resolve(code: str) -> str | None:
        return code if code in known else by_path.get(norm(code))

    return resolve


# per-process cache: the decisions of the job indexed by segment (built once, not per batch)
_INDEX: dict[tuple[Any, ...], tuple[Callable[[str], str | None], dict[str, list[Any]]]] = {}


def _decision_index(
    decisions: Sequence[Decision], book: Codebook, version: str
) -> tuple[Callable[[str], str | None], dict[str, list[tuple[str, Decision]]]]:
    """(code resolver, segment id -> [(code id, decision)]) for one job's decisions."""
    key = (id(decisions), version, len(decisions), decisions[0].id, decisions[-1].id)
    if key not in _INDEX:
        _INDEX.clear()
        resolve = _code_resolver(book)
        by_segment: dict[str, list[tuple[str, Decision]]] = defaultdict(list)
        for d in decisions:
            if d.target != "coding":
                continue
            code = resolve(str(d.ref["code"]))
            if code is None:
                log.warning("coding decision names a code not in the codebook", decision=d.id)
                continue
            by_segment[str(d.ref["segment_id"])].append((code, d))
        _INDEX[key] = (resolve, dict(by_segment))
    return _INDEX[key]


def human_coding_row(
    decision: Decision, segment: Mapping[str, Any], code_id: str, version: str, span: Any = None
) -> dict[str, Any]:
    """The ``codings`` row of a researcher's added or edited coding."""
    who = decision.who or "unknown"
    start, end = span if span is not None else (segment["start"], segment["end"])
    start = int(decision.value.get("start", start))
    end = int(decision.value.get("end", end))
    return {
        "coding_id": f"{segment['segment_id']}:{code_id}:human:{who}",
        "segment_id": segment["segment_id"],
        "doc_id": segment["doc_id"],
        "start": start,
        "end": end,
        "code_id": code_id,
        "coder": f"human:{who}",
        "coder_version": None,
        "coder_settings": None,
        "score": 1.0,
        "evidence": [],
        "codebook_version": version,
        "status": "human",
    }


def apply_coding_decisions(
    rows: list[dict[str, Any]],
    segments: Mapping[str, Mapping[str, Any]],
    decisions: Sequence[Decision],
    book: Codebook,
    version: str | None = None,
) -> list[dict[str, Any]]:
    """Apply the effective ``coding`` decisions to one batch's suggested codings.

    reject: the (segment, code) suggestion is dropped (by every coder); accept: its
    status becomes ``accepted``; add: a human coding of the segment (or of the span in
    ``value``) replaces any suggestion of that code; edit: the suggestion is replaced by
    a human coding with ``value``'s code and/or span. Decisions about segments outside
    this batch are left to their batch; ones naming a code no longer in the codebook
    are skipped with a warning naming the decision (never text).
    """
    if version is None:  # the codebook's version, when the caller has not hashed it
        version = book.version
    resolve, by_segment = _decision_index(decisions, book, version)
    decided = {(seg_id, code): d for seg_id in segments for code, d in by_segment.get(seg_id, ())}
    if not decided:
        return rows
    out: list[dict[str, Any]] = []
    suggested_span: dict[tuple[str, str], tuple[int, int]] = {}
    for row in rows:
        key = (row["segment_id"], row["code_id"])
        found = decided.get(key)
        if found is None:
            out.append(row)
        elif found.action == "accept":
            out.append({**row, "status": "accepted"})
        else:  # reject, add, edit: the suggestion itself is not kept
            suggested_span.setdefault(key, (row["start"], row["end"]))
    emitted: set[tuple[str, str]] = set()
    human: list[dict[str, Any]] = []
    for (seg_id, code), d in decided.items():
        if d.action not in ("add", "edit"):
            continue
        new_code = code
        if d.action == "edit" and "code" in d.value:
            resolved = resolve(str(d.value["code"]))
            if resolved is None:
                log.warning("coding decision names a code not in the codebook", decision=d.id)
                continue
            new_code = resolved
        target = decided.get((seg_id, new_code))
        if (seg_id, new_code) in emitted or (target is not None and target.action == "reject"):
            continue  # once per code; and a rejected code stays off the segment
        emitted.add((seg_id, new_code))
        span = suggested_span.get((seg_id, code)) if d.action == "edit" else None
        human.append(human_coding_row(d, segments[seg_id], new_code, version, span))
    # a person's coding stands in for any machine suggestion of the same code
    return [r for r in out if (r["segment_id"], r["code_id"]) not in emitted] + human


CODE = StageType(
    name="code",
    family="code",
    description="Suggest codes for segments with one or more coders (rules, semantic, ...).",
    mode="batch",
    consumes=[Input("segments", "segments"), Input("codebook", "codebook")],
    produces=["codings"],
    components=("coder",),
    # segments are small rows and the coders work a batch at a time: 2,048 per batch
    # takes ~16 % less CPU than 256 at 100 MB and writes an eighth of the part files
    batch_size=2048,
    params=[
        Param(
            "coders",
            "list",
            ["rules"],
            "coders to run: names, or mappings with name: and the coder's options",
        ),
        Param("min_score", "float", 0.0, "drop suggestions scored below this"),
        Param("top_k", "int", 0, "keep at most this many codes per segment and coder (0: all)"),
    ],
    process_batch=process_batch,
    decisions=("coding",),
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(CODE)
