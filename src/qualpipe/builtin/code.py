"""Built-in plugin: the ``code`` stage type (machine coding of segments).

A batch-wise stage: segments are streamed, the codebook is read whole (a side input),
and each configured coder suggests codes for each batch. Every coding row records the
coder's name, version and a hash of its settings, the codebook version and the
evidence, with status ``suggested``: machine codings are suggestions for people to
review; they never overwrite human codings (those come from an import stage and are
kept apart, with status ``human``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from qualpipe import BatchContext, Input, Param, PipelineError, StageType, hookimpl
from qualpipe.codebook import Codebook
from qualpipe.coding.coders import Coder, CoderContext, Suggestion
from qualpipe.errors import DatasetError
from qualpipe.fingerprint import canonical_json, sha256_text
from qualpipe.schemas import CODINGS

# per-process caches: codebooks by version, coder states by (coder, settings, codebook)
_BOOKS: dict[str, Codebook] = {}
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


def _codebook(table: pa.Table) -> Codebook:
    version = table.column("codebook_version")[0].as_py() if table.num_rows else ""
    if version not in _BOOKS:
        _BOOKS.clear()
        _BOOKS[version] = Codebook.from_table(table)
    return _BOOKS[version]


def process_batch(batch: pa.RecordBatch, ctx: BatchContext) -> dict[str, pa.Table]:
    book = _codebook(ctx.side["codebook"])
    known = book.by_id()
    version = book.version
    coders: Mapping[str, Coder] = ctx.components.get("coder", {})
    segments = batch.to_pylist()
    by_id = {s["segment_id"]: s for s in segments}
    top_k = ctx.params["top_k"]
    rows: list[dict[str, Any]] = []
    for name, options in coder_specs(ctx.params["coders"]):
        coder = coders.get(name)
        if coder is None:
            raise PipelineError(
                f"code: unknown coder {name!r} (installed: {', '.join(sorted(coders)) or 'none'})"
            )
        settings = settings_hash(options)
        key = (name, settings, version)
        if key not in _STATES:
            _STATES[key] = coder.setup(book, options) if coder.setup else None
        cctx = CoderContext(book, options, _STATES[key])
        per_segment: dict[str, list[Suggestion]] = defaultdict(list)
        for sug in coder.code(segments, cctx):
            if sug.code_id not in known:
                raise DatasetError(
                    f"coder {name!r} suggested code {sug.code_id!r}, which is not in the "
                    f"codebook (version {version})"
                )
            if sug.segment_id not in by_id:
                raise DatasetError(f"coder {name!r} coded an unknown segment {sug.segment_id!r}")
            if sug.score >= ctx.params["min_score"]:
                per_segment[sug.segment_id].append(sug)
        for seg_id, found in per_segment.items():
            found.sort(key=lambda s: -s.score)
            seg = by_id[seg_id]
            for sug in found[:top_k] if top_k else found:
                rows.append(
                    {
                        "coding_id": f"{seg_id}:{sug.code_id}:{name}",
                        "segment_id": seg_id,
                        "doc_id": seg["doc_id"],
                        "start": seg["start"] if sug.start is None else sug.start,
                        "end": seg["end"] if sug.end is None else sug.end,
                        "code_id": sug.code_id,
                        "coder": name,
                        "coder_version": coder.version,
                        "coder_settings": settings,
                        "score": float(sug.score),
                        "evidence": [{"term": t, "start": s, "end": e} for t, s, e in sug.evidence],
                        "codebook_version": version,
                        "status": "suggested",
                    }
                )
    return {"codings": pa.Table.from_pylist(rows, schema=CODINGS.schema)}


CODE = StageType(
    name="code",
    family="code",
    description="Suggest codes for segments with one or more coders (rules, semantic, ...).",
    mode="batch",
    consumes=[Input("segments", "segments"), Input("codebook", "codebook")],
    produces=["codings"],
    components=("coder",),
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
)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(CODE)
