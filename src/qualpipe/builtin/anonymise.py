"""Built-in plugin: the ``anonymise`` stage type and the built-in recognisers.

Two streaming passes over the documents. Pass 1 runs the recognisers on every document
and collects the distinct values found (plus names from the participants manifest,
speaker labels that are names, deny lists and the values already in the key). Pass 2
finds every mention of every collected value in every document, merges those with the
recognisers' spans, replaces them, re-computes turn offsets, and checks the result with
the leak guard before anything is written. Memory holds one batch of documents, the
spans of pass 1 (a few integers per finding) and the set of distinct values.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import IO, Any, TypeVar

import pyarrow as pa
import structlog

from qualpipe import Output, Param, PipelineError, StageContext, StageError, StageType, hookimpl
from qualpipe.anonymise.api import collect_values
from qualpipe.anonymise.context import CONTEXT, DEMONYMS, PROPER_NOUNS, _is_role
from qualpipe.anonymise.decisions import reviewed_lists
from qualpipe.anonymise.engine import DocContext, Engine, Propagator, merge, person_tokens
from qualpipe.anonymise.gazetteer import GAZETTEER
from qualpipe.anonymise.keyfile import KeyStore
from qualpipe.anonymise.lexicon import guess_language
from qualpipe.anonymise.recognisers import ENTITY_TYPES, Recogniser, Span
from qualpipe.anonymise.replace import MODES, Remapper, Replaced, Replacer
from qualpipe.anonymise.review import ReviewPage
from qualpipe.executors.base import picklable, process_pool
from qualpipe.schemas import DOCUMENTS, FINDINGS
from qualpipe.store import STAGING

log = structlog.get_logger("qualpipe")
BATCH = 64
#: pass 2 goes to worker processes only above this much text: starting them costs
#: about as much as pass 2 of 15 MB takes in one process
PASS2_POOL_CHARS = 15_000_000
_T = TypeVar("_T")
_R = TypeVar("_R")
NAME_ATTRIBUTES = [
    "name", "full_name", "first_name", "last_name", "surname", "namn", "förnamn", "efternamn",
]  # fmt: skip


def _patterns() -> list[Recogniser]:
    try:
        from qualpipe.anonymise.patterns import PATTERNS
    except ImportError:  # pragma: no cover - patterns ships with qualpipe
        return []
    return [PATTERNS]


def default_key_path(pipeline: str, stage_id: str) -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "qualpipe" / "keys" / pipeline / f"{stage_id}.key.json"


def _read_list(path: str | None, with_type: bool) -> list[Any]:
    if not path:
        return []
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise PipelineError(f"anonymise: cannot read list {path!r}: {exc.strerror}") from None
    out: list[Any] = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if with_type:
            value, _, etype = line.partition("\t")
            out.append((value.strip(), (etype.strip() or "OTHER").upper()))
        else:
            out.append(line)
    return out


def _options(params: Mapping[str, Any]) -> dict[str, Any]:
    """Stage parameters -> engine options (deny/allow lists merged with their files)."""
    deny: list[tuple[str, str]] = []
    for item in params["deny"]:
        if isinstance(item, dict):
            deny.append((str(item.get("value", "")), str(item.get("type", "OTHER")).upper()))
        else:
            deny.append((str(item), "OTHER"))
    deny += _read_list(params.get("deny_file"), with_type=True)
    allow = [str(a) for a in params["allow"]] + _read_list(
        params.get("allow_file"), with_type=False
    )
    entities = [e.upper() for e in params["entities"]]
    keep = {k.upper() for k in params["keep"]}
    unknown = sorted(set(entities) - set(ENTITY_TYPES) - {"*"})
    return {
        **params["options"],
        "deny_values": [(v, t) for v, t in deny if v],
        "allow": allow,
        "entities": [e for e in (ENTITY_TYPES if "*" in entities else entities) if e not in keep]
        + unknown,
        "min_score": params["min_score"],
        "language": params.get("language"),
        "years": params["years"],
    }


def _select(ctx: StageContext) -> list[Recogniser]:
    available: dict[str, Recogniser] = dict(ctx.components.get("recogniser", {}))
    wanted = ctx.params["recognisers"] or sorted(available)
    missing = [n for n in wanted if n not in available]
    if missing:
        raise PipelineError(
            f"anonymise: unknown recogniser(s) {', '.join(missing)} "
            f"(installed: {', '.join(sorted(available))})"
        )
    chosen = [available[n] for n in wanted]
    if not ctx.params["heuristics"]:
        chosen = [r for r in chosen if r.name != PROPER_NOUNS.name]
    return chosen


def _key_path(ctx: StageContext) -> Path:
    raw = ctx.params.get("key")
    path = Path(raw) if raw else default_key_path(ctx.pipeline_name or "pipeline", ctx.stage_id)
    path = path.expanduser().resolve()
    if ctx.workdir is not None and path.is_relative_to(ctx.workdir.resolve()):
        raise PipelineError(
            f"anonymise: key {str(path)!r} is inside the run directory; the key must be kept "
            "apart from the outputs (choose a path outside --workdir)"
        )
    return path


def _doc_context(row: Mapping[str, Any], default_language: str | None) -> DocContext:
    turns = row.get("turns") or []
    return DocContext(
        doc_id=row["doc_id"],
        language=row.get("language") or default_language or guess_language(row["text"]),
        speakers=sorted({t["speaker"] for t in turns if t.get("speaker")}),
        attributes=dict(row.get("attributes") or []),
    )


def _pack(spans: Sequence[Span], recognisers: list[str], types: list[str]) -> array[int]:
    packed = array("i")
    for s in spans:
        if s.recogniser not in recognisers:
            recognisers.append(s.recogniser)
        if s.entity_type not in types:
            types.append(s.entity_type)
        packed.extend(
            (
                s.start,
                s.end,
                types.index(s.entity_type),
                recognisers.index(s.recogniser),
                int(s.score * 1000),
            )
        )
    return packed


def _unpack(packed: array[int], recognisers: list[str], types: list[str]) -> Iterator[Span]:
    for i in range(0, len(packed), 5):
        s, e, t, r, score = packed[i : i + 5]
        yield Span(s, e, types[t], recognisers[r], score / 1000)


class _SpanSpill:
    """Packed spans of each document, written in pass 1 and read back in order in pass 2.

    An anonymous temporary file (in the run store's staging folder when there is one):
    it has no name, so nothing is left behind even when the run is killed.
    """

    def __init__(self, workdir: Path | None) -> None:
        folder = workdir / STAGING if workdir is not None else None
        # open across both passes; run() closes it in its finally clause
        self._file: IO[bytes] = tempfile.TemporaryFile(  # noqa: SIM115
            prefix="anonymise-spans-", dir=folder if folder and folder.is_dir() else None
        )

    def append(self, packed: array[int]) -> None:
        self._file.write(array("i", [len(packed)]).tobytes())
        self._file.write(packed.tobytes())

    def rewind(self) -> None:
        self._file.flush()
        self._file.seek(0)

    def next(self) -> array[int]:
        head = array("i")
        head.frombytes(self._file.read(head.itemsize))
        packed = array("i")
        packed.frombytes(self._file.read(head[0] * packed.itemsize))
        return packed

    def close(self) -> None:
        self._file.close()


Detected = list[tuple[DocContext, list[Span]]]

#: the recogniser engine of a pass-1 worker process (built once by ``_init_worker``)
_worker_engine: Engine | None = None


def _init_worker(recognisers: list[Recogniser], options: Mapping[str, Any]) -> None:
    global _worker_engine
    _worker_engine = Engine(recognisers, options)


def _detect_rows(
    engine: Engine, rows: list[dict[str, Any]], language: str | None
) -> tuple[Detected, set[str]]:
    """Run the recognisers on ``rows``; also return the names seen used as words."""
    out: Detected = []
    for row in rows:
        doc = _doc_context(row, language)
        out.append((doc, engine.detect(row["text"], doc)))
    seen = set(engine.lowercase_seen)
    engine.lowercase_seen.clear()
    return out, seen


def _worker_detect(rows: list[dict[str, Any]], language: str | None) -> tuple[Detected, set[str]]:
    assert _worker_engine is not None, "worker not initialised"
    return _detect_rows(_worker_engine, rows, language)


#: pass 2 in a worker process: the propagator of the whole corpus's values
_worker_propagator: Propagator | None = None
_worker_priorities: dict[str, int] = {}


def _init_pass2(values: list[tuple[str, str]], seen: set[str], priorities: dict[str, int]) -> None:
    global _worker_propagator, _worker_priorities
    _worker_propagator = Propagator(values, lowercase_seen=seen)
    _worker_priorities = priorities


def _propagate_rows(
    propagator: Propagator,
    priorities: Mapping[str, int],
    texts: list[str],
    packed: list[array[int]],
    names: tuple[list[str], list[str]],
) -> list[list[Span]]:
    """Pass 1's spans of each text plus every mention of a known value, merged."""
    out = []
    for text, found in zip(texts, packed, strict=True):
        spans = merge(list(_unpack(found, *names)) + propagator.find(text), priorities)
        out.append([s for s in spans if text[s.start : s.end].strip()])
    return out


def _worker_propagate(
    texts: list[str], packed: list[array[int]], names: tuple[list[str], list[str]]
) -> list[list[Span]]:
    assert _worker_propagator is not None, "worker not initialised"
    return _propagate_rows(_worker_propagator, _worker_priorities, texts, packed, names)


def _worker_guard(items: list[tuple[str, str, list[tuple[int, int]]]]) -> str | None:
    assert _worker_propagator is not None, "worker not initialised"
    for doc_id, new_text, covered in items:
        problem = _leak(doc_id, new_text, covered, _worker_propagator)
        if problem:
            return problem
    return None


class _Pass2:
    """Pass 2's propagation and leak guard, in this process or in a pool of workers.

    Replacement stays here (pseudonyms are numbered in document order); finding every
    mention of a known value before it and the leak guard after it are pure functions of
    a text and go to the workers. Leak-guard results are collected before the stage
    ends, so a leak still fails the stage before anything is committed.
    """

    def __init__(
        self,
        workers: int,
        propagator: Propagator,
        values: dict[str, str],
        engine: Engine,
        names: tuple[list[str], list[str]],
    ) -> None:
        self.propagator = propagator
        self.priorities = dict(engine.priorities)
        self.names = names
        self.workers = workers
        self.pool: Executor | None = None
        if workers > 1:
            args = (list(values.items()), set(engine.lowercase_seen), self.priorities)
            self.pool = process_pool(workers, _init_pass2, args)
        self.guards: deque[Future[str | None]] = deque()

    def __enter__(self) -> _Pass2:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            for fut in self.guards:
                fut.cancel()
            self.pool.shutdown(cancel_futures=True)

    def propagated(
        self, batches: Iterable[list[dict[str, Any]]], cache: _SpanSpill
    ) -> Iterator[tuple[list[dict[str, Any]], list[list[Span]], bool]]:
        """(rows, their merged spans, last chunk of its batch?) in document order."""

        def chunks() -> Iterator[tuple[tuple[list[dict[str, Any]], bool], tuple[Any, ...]]]:
            size = 16 if self.pool is not None else BATCH
            for rows in batches:
                for i in range(0, max(len(rows), 1), size):
                    part = rows[i : i + size]
                    texts = [r["text"] for r in part]
                    packed = [cache.next() for _ in part]
                    yield (part, i + size >= len(rows)), (texts, packed, self.names)

        if self.pool is None:
            for (part, last), args in chunks():
                yield part, _propagate_rows(self.propagator, self.priorities, *args), last
            return
        depth = 2 * self.workers
        for (part, last), spans in _in_order(self.pool, _worker_propagate, chunks(), depth):
            yield part, spans, last

    def guard(self, items: list[tuple[str, str, list[Replaced]]]) -> None:
        """Check the replaced texts (here, or queued for a worker)."""
        checks = [(d, t, [(r.start, r.end) for r in done]) for d, t, done in items]
        if self.pool is None:
            for doc_id, new_text, covered in checks:
                _raise_leak(_leak(doc_id, new_text, covered, self.propagator))
            return
        self.guards.append(self.pool.submit(_worker_guard, checks))
        while len(self.guards) > 2 * self.workers:
            _raise_leak(self.guards.popleft().result())

    def finish(self) -> None:
        while self.guards:
            _raise_leak(self.guards.popleft().result())


def _detect_batches(
    ctx: StageContext, engine: Engine, options: Mapping[str, Any], workers: int
) -> Iterator[tuple[list[dict[str, Any]], Detected]]:
    """Pass 1's recogniser work, batch by batch and in document order.

    With ``workers`` > 1 the batches go to a pool of spawned processes, each with its own
    engine (recogniser ``setup`` runs once per process); at most ``2 * workers`` batches
    are in flight and results are taken in submission order, so the output does not
    depend on ``workers``. The names seen as ordinary words are merged into ``engine``.
    """
    language = options["language"]
    recognisers = engine.recognisers
    if workers > 1 and not picklable(recognisers, options):
        log.warning("anonymise: recognisers cannot be sent to worker processes; using one")
        workers = 1
    if workers <= 1:
        for batch in ctx.batches("documents", BATCH):
            rows = batch.to_pylist()
            detected, seen = _detect_rows(engine, rows, language)
            engine.lowercase_seen |= seen
            yield rows, detected
        return
    with process_pool(workers, _init_worker, (recognisers, options)) as pool:
        # smaller tasks than BATCH, so that the workers finish together
        tasks = (
            (rows, (rows, language))
            for rows in (b.to_pylist() for b in ctx.batches("documents", min(BATCH, 16)))
        )
        for rows, (detected, seen) in _in_order(pool, _worker_detect, tasks, 2 * workers):
            engine.lowercase_seen |= seen
            yield rows, detected


def _in_order(
    pool: Executor,
    fn: Callable[..., _R],
    tasks: Iterable[tuple[_T, tuple[Any, ...]]],
    depth: int,
) -> Iterator[tuple[_T, _R]]:
    """``(tag, fn(*args))`` for every ``(tag, args)`` of ``tasks``, computed in ``pool``
    and yielded in the order of ``tasks``, with at most ``depth`` tasks in flight."""
    pending: deque[tuple[_T, Future[_R]]] = deque()
    try:
        for tag, args in tasks:
            if len(pending) >= depth:
                first, fut = pending.popleft()
                yield first, fut.result()
            pending.append((tag, pool.submit(fn, *args)))
        while pending:
            first, fut = pending.popleft()
            yield first, fut.result()
    finally:
        for _, fut in pending:
            fut.cancel()


def run(ctx: StageContext) -> None:
    params = ctx.params
    options = _options(params)
    modes = {k.upper() if k != "*" else "*": v for k, v in params["replace"].items()}
    for etype, mode in modes.items():
        if mode not in MODES:
            raise PipelineError(
                f"anonymise: replace: {etype}: unknown mode {mode!r} (modes: {', '.join(MODES)})"
            )
    key_path = _key_path(ctx)
    key = KeyStore.load(key_path)
    # researchers' decisions (docs/review.md): missed identifiers -> deny, false positives
    # -> allow (resolved through the key; in memory only)
    reviewed = reviewed_lists(ctx.decisions, key)
    options["deny_values"] = options["deny_values"] + reviewed.deny
    options["allow"] = options["allow"] + reviewed.allow
    engine = Engine(_select(ctx), options)
    name_attrs = {a.lower() for a in params["name_attributes"]}

    # -- pass 1: find, and collect every distinct value -------------------------------
    values: dict[str, str] = dict(key.originals())
    for value, etype in options["deny_values"]:
        values.setdefault(value, etype)
    # pass 1's spans wait on disk for pass 2 (offsets and types only, never text), so
    # memory does not grow with the corpus
    cache = _SpanSpill(ctx.workdir)
    rec_names: list[str] = []
    type_names: list[str] = []
    workers = params["workers"] or ctx.workers
    chars = 0
    for rows, detected in _detect_batches(ctx, engine, options, workers):
        for row, (doc, spans) in zip(rows, detected, strict=True):
            chars += len(row["text"])
            cache.append(_pack(spans, rec_names, type_names))
            collect_values(row["text"], spans, values)
            for name, value in doc.attributes.items():
                if name.lower() in name_attrs and value.strip():
                    values.setdefault(" ".join(value.split()), "PERSON")
            for speaker in doc.speakers:
                if not _is_role(speaker):
                    values.setdefault(speaker, "PERSON")
    cache.rewind()
    allow = {a.lower() for a in engine.allow}
    for value, etype in list(values.items()):
        if etype == "PERSON":
            for token in person_tokens(value):
                values.setdefault(token, "PERSON")
    values = {
        v: t
        for v, t in values.items()
        if v.lower() not in allow and (not engine.entities or t in engine.entities or t == "PERSON")
    }
    propagator = Propagator(values.items(), lowercase_seen=engine.lowercase_seen)
    replacer = Replacer(key, modes, set(values))

    # -- pass 2: propagate, replace, check, write ----------------------------------------
    review = (
        ReviewPage(ctx.artifact("review.html"), f"Anonymisation review: {ctx.pipeline_name}")
        if params["review"]
        else None
    )
    stats: Counter[str] = Counter()
    index = 0
    docs_out: list[dict[str, Any]] = []
    findings = _Findings()
    batches = (b.to_pylist() for b in ctx.batches("documents", BATCH))
    try:
        pool2 = workers if chars >= PASS2_POOL_CHARS else 1
        with _Pass2(pool2, propagator, values, engine, (rec_names, type_names)) as pass2:
            for rows, merged, last in pass2.propagated(batches, cache):
                checks = []
                for row, spans in zip(rows, merged, strict=True):
                    doc = _doc_context(row, options["language"])
                    index += 1
                    new_text, done = replacer.apply(row["text"], spans, doc.language)
                    checks.append((row["doc_id"], new_text, done))
                    docs_out.append(
                        _anonymised_row(
                            row, new_text, done, replacer, propagator, name_attrs, doc.language
                        )
                    )
                    findings.add(row["doc_id"], done, stats)
                    if review is not None:
                        review.add(row["doc_id"], new_text, done, row.get("participant_id") or "")
                    ctx.advance()
                pass2.guard(checks)
                if last:
                    ctx.write("documents", pa.Table.from_pylist(docs_out, schema=DOCUMENTS.schema))
                    if findings.rows:
                        ctx.write("findings", findings.table())
                    docs_out, findings = [], _Findings()
            pass2.finish()
    finally:
        cache.close()
        if review is not None:
            review.close()
    key.save()
    for etype, n in sorted(stats.items()):
        ctx.note(f"replaced:{etype}", n)
    ctx.note("documents", index)
    ctx.note("distinct_values", len(values))
    ctx.note("key_entries_added", key.added)
    if ctx.decisions:
        for name, n in reviewed.stats().items():
            ctx.note(name, n)
    log.info("anonymised", documents=index, replacements=sum(stats.values()), key_added=key.added)


class _Findings:
    """The findings rows of a batch of documents, gathered column by column (a dict per
    row costs more than the replacement that made it)."""

    NAMES = ("doc_id", "start", "end", "entity_type", "recogniser", "score", "replacement")

    def __init__(self) -> None:
        self.rows = 0
        self.columns: tuple[list[Any], ...] = tuple([] for _ in self.NAMES)

    def add(self, doc_id: str, done: Sequence[Replaced], stats: Counter[str]) -> None:
        doc, start, end, etype, recogniser, score, replacement = self.columns
        for r in done:
            stats[r.entity_type] += 1
            start.append(r.start)
            end.append(r.end)
            etype.append(r.entity_type)
            recogniser.append(r.recogniser)
            score.append(r.score)
            replacement.append(r.replacement)
        doc.extend([doc_id] * len(done))
        self.rows += len(done)

    def table(self) -> pa.Table:
        columns = dict(zip(self.NAMES, self.columns, strict=True))
        schema = FINDINGS.schema
        return pa.Table.from_arrays(
            [pa.array(columns[f.name], f.type) for f in schema], schema=schema
        )


def _replace_label(
    value: str | None, replacer: Replacer, propagator: Propagator, language: str | None
) -> str | None:
    """Replace identifiers inside a short string (a speaker label, a file path)."""
    if not value:
        return value
    spans = merge(propagator.find(value), {})
    if not spans:
        return value
    new, _ = replacer.apply(value, spans, language)
    return new


def _anonymised_row(
    row: Mapping[str, Any],
    new_text: str,
    done: list[Replaced],
    replacer: Replacer,
    propagator: Propagator,
    name_attrs: set[str],
    language: str | None,
) -> dict[str, Any]:
    turns = []
    remap = Remapper(done)
    labels: dict[str | None, str | None] = {}
    for t in row.get("turns") or []:
        start, end = remap(t["start"], "start"), remap(t["end"], "end")
        speaker = t.get("speaker")
        if speaker not in labels:
            labels[speaker] = _replace_label(speaker, replacer, propagator, language)
        turns.append(
            {
                **t,
                "start": start,
                "end": max(start, end),
                "speaker": labels[speaker],
            }
        )
    attrs = [(k, v) for k, v in (row.get("attributes") or []) if k.lower() not in name_attrs]
    source = row["source_path"]
    return {
        **row,
        "text": new_text,
        "turns": turns,
        "attributes": attrs,
        "source_path": _replace_label(source, replacer, propagator, language),
        "sensitive": False,
    }


def _leak(
    doc_id: str, new_text: str, covered: list[tuple[int, int]], propagator: Propagator
) -> str | None:
    """Leak guard: a message if an original value survives outside the replacements."""
    for span in propagator.find(new_text):
        if not any(s <= span.start and span.end <= e for s, e in covered):
            return (
                f"leak guard: an original {span.entity_type} value is still in document "
                f"{doc_id} at offset {span.start} after replacement; nothing was written. "
                "Please report this; as a workaround add the value to the deny list"
            )
    return None


def _raise_leak(problem: str | None) -> None:
    if problem:
        raise StageError("anonymise", problem)


BUILTIN_RECOGNISERS = (CONTEXT, GAZETTEER, PROPER_NOUNS, DEMONYMS)

ANONYMISE = StageType(
    name="anonymise",
    family="anonymise",
    description=(
        "Replace identifiers (names, places, institutions, dates, phone numbers, e-mail, "
        "personnummer, ...) consistently across the corpus; key kept apart; leak guard."
    ),
    mode="whole",
    consumes=["documents"],
    produces=[
        Output("documents", "documents", sensitive=False),
        Output("findings", "findings", sensitive=False),
    ],
    components=("recogniser",),
    params=[
        Param(
            "key",
            "output_path",
            None,
            "pseudonym key file, outside the run directory "
            "(default ~/.local/share/qualpipe/keys/<pipeline>/<stage>.key.json)",
        ),
        Param(
            "replace",
            "dict",
            {"*": "placeholder"},
            "mode per entity type: placeholder, pseudonym or description; '*' for the rest",
        ),
        Param("entities", "list", ["*"], "entity types to mask ('*' = all)"),
        Param("keep", "list", [], "entity types never masked (e.g. [DEM, MONEY])"),
        Param("recognisers", "list", [], "recognisers to use (default: all installed)"),
        Param(
            "heuristics",
            "bool",
            True,
            "also mask capitalised words mid-sentence that are "
            "not common words (proper-nouns recogniser)",
        ),
        Param("deny", "list", [], "values always masked: strings or {value, type}"),
        Param("deny_file", "path", None, "file: one value per line, optional TAB TYPE"),
        Param("allow", "list", [], "words never masked (e.g. names of national services)"),
        Param("allow_file", "path", None, "file: one word or phrase per line"),
        Param(
            "name_attributes",
            "list",
            NAME_ATTRIBUTES,
            "manifest columns holding real "
            "names: masked everywhere and dropped from the anonymised documents",
        ),
        Param("min_score", "float", 0.0, "ignore findings scored below this"),
        Param("years", "bool", True, "mask years and decades on their own (1998, the 1990s)"),
        Param("language", "str", None, "default language of documents without one"),
        Param("review", "bool", True, "write review.html beside the outputs"),
        Param(
            "workers",
            "int",
            None,
            "processes for pass 1 (running the recognisers; default: the run's "
            "--workers); the output is the same whatever the number",
        ),
        Param(
            "options",
            "dict",
            {},
            "options for recogniser plugins, e.g. {spacy_model: sv_core_news_sm}",
        ),
    ],
    run=run,
    version="1",
    decisions=("finding",),
)


@hookimpl
def qualpipe_register_recognisers(register: Callable[[Recogniser], None]) -> None:
    for recogniser in (*_patterns(), *BUILTIN_RECOGNISERS):
        register(recogniser)


@hookimpl
def qualpipe_register_stages(register: Callable[[StageType], None]) -> None:
    register(ANONYMISE)
