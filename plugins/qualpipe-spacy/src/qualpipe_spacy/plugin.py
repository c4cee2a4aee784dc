"""The ``spacy-ner`` recogniser: a trained spaCy pipeline's named entities as qualpipe spans.

Which pipeline is used (the first rule that applies):

1. the anonymise stage's ``spacy_model`` option, if the stage passes one;
2. the environment variable ``QUALPIPE_SPACY_MODEL``: an installed pipeline's name
   (``sv_core_news_sm``) or a directory written by ``nlp.to_disk()``;
3. ``sv_core_news_sm``, then ``en_core_web_sm``: the first one installed.

The pipeline is loaded once per process (in ``setup``), without the components that
named-entity recognition does not need. If none can be loaded the run goes on: the
recogniser finds nothing and says so once, in a warning naming ``QUALPIPE_SPACY_MODEL``
and ``python -m spacy download``. Texts longer than a chunk are processed in pieces cut
at paragraph breaks; span offsets always point into the whole text.

Like every recogniser, this one never logs or returns the text it found.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qualpipe import hookimpl
from qualpipe.anonymise.recognisers import Recogniser, RecogniserContext, Span

from qualpipe_spacy import __version__

if TYPE_CHECKING:
    from spacy.language import Language

__all__ = [
    "DEFAULT_MODELS",
    "ENV_VAR",
    "LABELS",
    "SPACY_NER",
    "Model",
    "__version__",
    "chunks",
    "clear_model_cache",
    "find",
    "model_names",
    "qualpipe_register_recognisers",
    "setup",
]

log = logging.getLogger("qualpipe_spacy")

NAME = "spacy-ner"
#: Environment variable naming the pipeline to load (a package name or a directory).
ENV_VAR = "QUALPIPE_SPACY_MODEL"
#: Option of the anonymise stage naming the pipeline (wins over the environment).
OPTION = "spacy_model"
#: Tried in this order when nothing is configured; the first one installed is used.
DEFAULT_MODELS = ("sv_core_news_sm", "en_core_web_sm")
DEFAULT_SOURCE = "the default"
SCORE = 0.8
PRIORITY = 65  # above corpus propagation (60): findings credit the model

#: spaCy entity label -> qualpipe entity type. Other labels are ignored.
LABELS: dict[str, str] = {
    "PERSON": "PERSON",  # OntoNotes (en_core_web_*)
    "PER": "PERSON",  # WikiNER and most other European pipelines
    "PRS": "PERSON",  # SUC 3.0 (sv_core_news_*)
    "GPE": "PLACE",
    "LOC": "PLACE",
    "FAC": "PLACE",
    "ORG": "ORG",
    "DATE": "DATE",
    "NORP": "DEM",
}
ENTITY_TYPES = tuple(dict.fromkeys(LABELS.values()))

#: Components of the trained pipelines that entity recognition never needs: not loaded.
NOT_NEEDED = (
    "tagger", "morphologizer", "parser", "senter", "sentencizer", "lemmatizer",
    "trainable_lemmatizer", "attribute_ruler", "textcat", "textcat_multilabel", "spancat",
    "span_finder", "entity_linker",
)  # fmt: skip
#: Shared embedding components, dropped after loading when no kept component listens.
EMBEDDINGS = ("tok2vec", "transformer", "curated_transformer")
#: Factories that set ``doc.ents``; a pipeline with none of them probably finds nothing.
ENTITY_FACTORIES = ("ner", "beam_ner", "entity_ruler", "span_ruler")

#: Longest piece of text given to spaCy at once (also never above ``nlp.max_length``):
#: spaCy needs about 1 GB of temporary memory per 100,000 characters for NER.
CHUNK_CHARS = 100_000


@dataclass(frozen=True)
class Model:
    """The outcome of ``setup``: a loaded pipeline, or ``None`` if none could be loaded."""

    nlp: Language | None
    name: str | None = None


_CACHE: dict[tuple[str, ...], Model] = {}


def model_names(options: Mapping[str, Any]) -> tuple[tuple[str, ...], str]:
    """The pipeline name(s) to try, in order, and where that choice came from."""
    chosen = str(options.get(OPTION) or "").strip()
    if chosen:
        return (chosen,), f"the anonymise option {OPTION}"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return (env,), f"the environment variable {ENV_VAR}"
    return DEFAULT_MODELS, DEFAULT_SOURCE


def clear_model_cache() -> None:
    """Forget loaded pipelines and reported failures: the next ``setup`` loads again."""
    _CACHE.clear()


def setup(options: Mapping[str, Any]) -> Model:
    """Load the configured pipeline, once per process (never raises)."""
    names, source = model_names(options)
    model = _CACHE.get(names)
    if model is None:
        model = _CACHE[names] = _load(names, source)
    return model


def _load(names: tuple[str, ...], source: str) -> Model:
    import spacy

    explicit = source != DEFAULT_SOURCE
    problems: list[str] = []
    for name in names:
        if not explicit and not spacy.util.is_package(name):
            continue
        try:
            nlp = spacy.load(name, exclude=list(NOT_NEEDED))
        except Exception as exc:  # missing, broken or incompatible: the run goes on
            problems.append(f"{name!r}: {type(exc).__name__}: {exc}")
            continue
        _drop_unused_embeddings(nlp)
        factories = [nlp.get_pipe_meta(p).factory for p in nlp.pipe_names]
        if not any(f in ENTITY_FACTORIES for f in factories):
            log.warning(
                "%s: the spaCy pipeline %r has no entity component (%s); it may find nothing",
                NAME,
                name,
                ", ".join(ENTITY_FACTORIES),
            )
        log.info("%s: loaded spaCy pipeline %r (%s)", NAME, name, ", ".join(nlp.pipe_names))
        return Model(nlp, name)
    log.warning(_unavailable(names, source, problems))
    return Model(None)


def _unavailable(names: tuple[str, ...], source: str, problems: list[str]) -> str:
    if len(names) == 1:
        what = f"cannot load the spaCy pipeline {names[0]!r} (from {source})"
    else:
        what = f"no spaCy pipeline could be loaded (tried {', '.join(names)})"
    detail = f": {'; '.join(problems)}" if problems else ""
    download = next((n for n in names if re.fullmatch(r"[a-z]{2,3}_\w+", n)), DEFAULT_MODELS[0])
    return (
        f"{NAME} finds nothing: {what}{detail}. Install a pipeline with "
        f"`python -m spacy download {download}`, or set {ENV_VAR} to an installed "
        "pipeline's name or to a pipeline directory (written by nlp.to_disk())"
    )


def _drop_unused_embeddings(nlp: Language) -> None:
    """Remove shared embedding layers that only the excluded components listened to."""
    for name in list(nlp.pipe_names):
        if nlp.get_pipe_meta(name).factory not in EMBEDDINGS:
            continue
        listening = getattr(nlp.get_pipe(name), "listening_components", None)
        if listening is not None and not list(listening):
            nlp.remove_pipe(name)


_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")


def chunks(text: str, limit: int) -> Iterator[tuple[int, str]]:
    """``(offset, piece)`` pairs covering ``text``, each piece at most ``limit`` long.

    Pieces end after a blank line where possible, else after a line break, else after
    any whitespace; only text without any of those is cut mid-word.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    start, n = 0, len(text)
    while n - start > limit:
        cut = _cut(text, start, start + limit)
        yield start, text[start:cut]
        start = cut
    if start < n:
        yield start, text[start:]


def _cut(text: str, start: int, stop: int) -> int:
    """Where the piece starting at ``start`` ends (``start < cut <= stop``)."""
    cut = 0
    for m in _PARAGRAPH.finditer(text, start, stop):
        cut = m.end()
    if cut > start:
        return cut
    newline = text.rfind("\n", start, stop)
    if newline >= start:
        return newline + 1
    for i in range(stop - 1, start, -1):
        if text[i].isspace():
            return i + 1
    return stop


def find(text: str, ctx: RecogniserContext) -> Iterator[Span]:
    """The entities spaCy finds in ``text``, typed with :data:`LABELS`."""
    model = ctx.state if isinstance(ctx.state, Model) else setup(ctx.options)
    nlp = model.nlp
    if nlp is None or not text.strip():
        return
    limit = max(1, min(nlp.max_length, CHUNK_CHARS))
    pieces = [(offset, piece) for offset, piece in chunks(text, limit) if piece.strip()]
    docs = nlp.pipe(piece for _, piece in pieces)
    for (offset, piece), doc in zip(pieces, docs, strict=True):
        for ent in doc.ents:
            etype = LABELS.get(ent.label_)
            if etype is None:
                continue
            start, end = ent.start_char, ent.end_char
            while start < end and piece[start].isspace():
                start += 1
            while end > start and piece[end - 1].isspace():
                end -= 1
            if start < end:
                yield Span(offset + start, offset + end, etype, NAME, SCORE)


SPACY_NER = Recogniser(
    name=NAME,
    entity_types=ENTITY_TYPES,
    find=find,
    setup=setup,
    priority=PRIORITY,
    version="1",
    description=(
        "spaCy named entities (people, places, organisations, dates, nationalities) from "
        f"a trained pipeline: {ENV_VAR}, else {' or '.join(DEFAULT_MODELS)}"
    ),
)


@hookimpl
def qualpipe_register_recognisers(register: Callable[[Recogniser], None]) -> None:
    register(SPACY_NER)
