"""Words and "lemma-ish" stems for English and Swedish, shared by the built-in coders.

Tokens are runs of letters and digits; an apostrophe inside a word keeps it whole
(``don't``, ``she’s``), anything else (space, hyphen, punctuation) separates words, so
``small-talk`` is the two words ``small talk``.

A stem is what lets ``talk`` find ``talks``/``talked``/``talking`` and ``prata`` find
``pratar``/``pratade``/``pratat``. It comes from the Snowball stemmers (the
``snowballstemmer`` package, pure Python: Porter2 for English, Snowball's Swedish
stemmer) with three small, documented additions:

* **English irregular verbs**: a short table maps common irregular forms to their base
  form before stemming (``went``/``gone`` -> ``go``, ``felt`` -> ``feel``, ``heard`` ->
  ``hear``, ``swam`` -> ``swim``). Ambiguous forms (``left``, ``saw``, ``lay``) are not
  in it.
* **Swedish strong and irregular verbs**: likewise (``gick``/``gått`` -> ``gå``,
  ``sade`` -> ``säga``, ``fick`` -> ``få``, ``gjorde`` -> ``göra``). Forms that are
  ambiguous in Swedish (``var``, ``åt``, ``mått``) or that are also English words
  (``bad``, ``dog``, ``vet``, ``tar``) are not in it: with both languages on, a table
  entry applies to every word of a text.
* **Swedish past tense in -te / participle in -t after p, k, s, x**: Snowball leaves
  ``hjälpte`` as ``hjälpt``; the final ``t`` is dropped when the word ended in
  ``pte``/``kte``/``ste``/``xte`` or in ``pt``, so ``hjälpa``, ``hjälper``,
  ``hjälpte`` and ``hjälpt`` share the stem ``hjälp`` (and ``köpte``, ``tänkte``,
  ``läste`` theirs).

Stems are cached (a word is stemmed once per process), so stemming costs a dictionary
look-up per token after the first few thousand distinct words.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from qualpipe.errors import PipelineError

#: Languages with a stemmer, by ISO 639-1 code.
LANGUAGES = ("en", "sv")
_SNOWBALL = {"en": "english", "sv": "swedish"}

#: A word: letters and digits, with inner apostrophes (don't, she’s).
WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")

_EN_IRREGULAR = {
    "am": "be", "is": "be", "are": "be", "was": "be", "were": "be", "been": "be",
    "went": "go", "gone": "go", "goes": "go", "does": "do", "did": "do", "done": "do",
    "felt": "feel", "heard": "hear", "said": "say", "told": "tell", "thought": "think",
    "took": "take", "taken": "take", "came": "come", "seen": "see", "made": "make",
    "got": "get", "gotten": "get", "spoke": "speak", "spoken": "speak", "swam": "swim",
    "swum": "swim", "met": "meet", "bought": "buy", "brought": "bring", "kept": "keep",
    "sat": "sit", "ate": "eat", "eaten": "eat", "drove": "drive", "driven": "drive",
    "ran": "run", "found": "find", "gave": "give", "given": "give", "knew": "know",
    "known": "know", "understood": "understand", "wrote": "write", "written": "write",
    "had": "have", "has": "have", "slept": "sleep", "taught": "teach", "began": "begin",
    "begun": "begin", "chose": "choose", "chosen": "choose", "paid": "pay", "spent": "spend",
    "stood": "stand", "meant": "mean", "cried": "cry", "tried": "try", "worried": "worry",
}  # fmt: skip

_SV_IRREGULAR = {
    "gick": "gå", "gått": "gå", "går": "gå", "sa": "säga", "sade": "säga", "sagt": "säga",
    "säger": "säga", "kom": "komma", "kommit": "komma", "såg": "se", "sett": "se",
    "tog": "ta", "tagit": "ta", "fick": "få", "fått": "få", "får": "få", "gjorde": "göra",
    "gjort": "göra", "gör": "göra", "hörde": "höra", "hört": "höra", "kände": "känna",
    "känt": "känna", "satt": "sitta", "suttit": "sitta", "skrev": "skriva",
    "skrivit": "skriva", "förstod": "förstå", "förstått": "förstå", "förstår": "förstå",
    "bodde": "bo", "bott": "bo", "mådde": "må", "mår": "må", "sov": "sova", "sovit": "sova",
    "drack": "dricka", "druckit": "dricka", "visste": "veta", "vetat": "veta",
    "ville": "vilja", "velat": "vilja", "vill": "vilja", "kunde": "kunna", "kunnat": "kunna",
    "hade": "ha", "haft": "ha", "blev": "bli", "blivit": "bli", "blir": "bli", "åkte": "åka",
    "åkt": "åka",
}  # fmt: skip

_IRREGULAR = {"en": _EN_IRREGULAR, "sv": _SV_IRREGULAR}
_SV_TE = ("pte", "kte", "ste", "xte", "pt")

_local = threading.local()


def _stemmer(language: str) -> Any:
    stemmers: dict[str, Any] | None = getattr(_local, "stemmers", None)
    if stemmers is None:
        stemmers = _local.stemmers = {}
    if language not in stemmers:
        try:
            snowball = importlib.import_module("snowballstemmer")  # untyped: keep it Any
        except ImportError as exc:
            raise PipelineError(
                "stemming needs the snowballstemmer package, a qualpipe dependency: "
                "pip install snowballstemmer (or reinstall qualpipe)"
            ) from exc
        stemmers[language] = snowball.stemmer(_SNOWBALL[language])
    return stemmers[language]


@lru_cache(maxsize=1 << 18)
def stem(word: str, language: str) -> str:
    """The stem of one word in ``language`` (``en`` or ``sv``); ``word`` is lower-cased."""
    word = word.lower().replace("’", "'")
    base = _IRREGULAR[language].get(word, word)
    out: str = _stemmer(language).stemWord(base)
    if language == "sv" and base is word and word.endswith(_SV_TE) and out.endswith("t"):
        out = out[:-1]
    return out


@lru_cache(maxsize=1 << 18)
def stems(word: str, languages: tuple[str, ...] = LANGUAGES) -> tuple[str, ...]:
    """The distinct stems of ``word`` in each of ``languages``, in order."""
    return tuple(dict.fromkeys(stem(word, lang) for lang in languages))


def tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """(lower-cased word, start, end) for each word of ``text``; offsets into ``text``."""
    for m in WORD.finditer(text):
        yield m.group().lower(), m.start(), m.end()


_GROUP, _START, _END = re.Match.group, re.Match.start, re.Match.end
#: text -> its words and their offsets: the coders of one batch tokenise each segment once
_WORDS: dict[str, tuple[list[str], list[int], list[int]]] = {}
_WORDS_MAX = 2048


def words_of(text: str) -> tuple[list[str], list[int], list[int]]:
    """The lower-cased words of ``text``, their start offsets and their end offsets into
    ``text`` (as :func:`tokens` gives them), in three lists for reading, not changing.

    The text is lower-cased once, not word by word, when that keeps every offset
    (lower-casing never changes a character's class; it can lengthen a text, ``İ``, and
    a final sigma depends on the next character, which a word does not include). The
    last few thousand texts are remembered, so that the coders of a batch share them.
    """
    found = _WORDS.get(text)
    if found is not None:
        return found
    low = text.lower()
    if len(low) == len(text) and "\u03a3" not in text:  # no İ, no Σ
        matches = list(WORD.finditer(low))
        words: list[str] = list(map(_GROUP, matches))
    else:
        matches = list(WORD.finditer(text))
        words = [m.group().lower() for m in matches]
    if len(_WORDS) >= _WORDS_MAX:
        _WORDS.clear()
    found = _WORDS[text] = (words, list(map(_START, matches)), list(map(_END, matches)))
    return found


def forget_words() -> None:
    """Let :func:`words_of` and :func:`batch_words` forget the texts they remember (the
    code stage calls this before and after each batch, so that only one batch's words
    are kept)."""
    _WORDS.clear()
    _BATCH.clear()


#: WORD as the one group of a pattern for ``re.split``: words and what lies between them.
#: Possessive (a word is the longest run anyway: nothing to backtrack into), and with
#: ``\\w`` for ``[^\\W_]`` where a text has no underscore: the same words, found faster
_SPLIT = re.compile(r"([^\W_]++(?:['’][^\W_]++)*+)")
_SPLIT_NO_UNDERSCORE = re.compile(r"(\w++(?:['’]\w++)*+)")


class BatchWords:
    """The words of a batch of texts, as :func:`words_of` gives them text by text, in
    flat lists (for reading, not changing).

    ``words[bounds[j]:bounds[j + 1]]`` are the lower-cased words of ``texts[j]``,
    ``starts`` and ``ends`` their offsets into that text; ``ids`` numbers each word by
    its first occurrence in the batch: ``unique[ids[k]] == words[k]``. The same as
    numpy arrays: ``id_array``, ``start_array``, ``end_array``, and ``segment`` (the
    text of each word). ``low`` is the texts joined by line breaks and lower-cased, each
    character to one (``None`` where lower-casing lengthens or a sigma is in them),
    ``bases`` where each text starts in it.
    """

    __slots__ = (
        "_ends",
        "_starts",
        "bases",
        "bounds",
        "end_array",
        "id_array",
        "low",
        "segment",
        "start_array",
        "texts",
        "unique",
        "words",
    )

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        joined = "\n".join(texts)  # no word spans a line break
        low = joined.lower()
        exact = len(low) == len(joined) and "\u03a3" not in joined  # as in words_of
        bases = np.zeros(len(texts), np.int64)
        if len(texts) > 1:
            bases[1:] = np.fromiter(map(len, texts[:-1]), np.int64, len(texts) - 1).cumsum()
            bases[1:] += np.arange(1, len(texts))
        self.bases = bases
        if exact:
            split = _SPLIT if "_" in low else _SPLIT_NO_UNDERSCORE
            parts = split.split(low)  # text, word, text, word, ..., text
            self.words: list[str] = parts[1::2]
            edges = np.fromiter(map(len, parts), np.int64, len(parts)).cumsum()
            begins = edges[0:-1:2]
            self.bounds: list[int] = np.searchsorted(begins, bases).tolist()
            self.bounds.append(len(self.words))
            self.segment = np.repeat(np.arange(len(texts)), np.diff(self.bounds))
            self.start_array = begins - bases[self.segment]
            self.end_array = edges[1::2] - bases[self.segment]
            self._starts: list[int] | None = None  # as lists when first asked for
            self._ends: list[int] | None = None
        else:  # a text whose offsets lower-casing moves: text by text
            self.words, self._starts, self._ends, self.bounds = [], [], [], [0]
            for text in texts:
                words, starts, ends = words_of(text)
                self.words += words
                self._starts += starts
                self._ends += ends
                self.bounds.append(len(self.words))
            self.segment = np.repeat(np.arange(len(texts)), np.diff(self.bounds))
            self.start_array = np.array(self._starts, dtype=np.int64)
            self.end_array = np.array(self._ends, dtype=np.int64)
        self.low: str | None = low if exact else None
        self.unique: list[str] = list(dict.fromkeys(self.words))
        number = {w: i for i, w in enumerate(self.unique)}
        n = len(self.words)
        self.id_array = np.fromiter(map(number.__getitem__, self.words), np.int64, n)

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            self._starts = self.start_array.tolist()
        return self._starts

    @property
    def ends(self) -> list[int]:
        if self._ends is None:
            self._ends = self.end_array.tolist()
        return self._ends

    @property
    def ids(self) -> list[int]:
        found: list[int] = self.id_array.tolist()
        return found


_BATCH: list[BatchWords] = []


def batch_words(texts: list[str]) -> BatchWords:
    """The words of every text of ``texts`` at once (:class:`BatchWords`); the last
    batch is remembered, so that the coders of a batch tokenise it once."""
    if _BATCH and _BATCH[0].texts == texts:
        return _BATCH[0]
    found = BatchWords(list(texts))
    _BATCH[:] = [found]
    return found


def languages_option(value: Any, coder: str) -> tuple[str, ...]:
    """Validate a coder's ``language`` option: ``auto`` (both), ``en``, ``sv`` or a list."""
    if value is None or value == "auto":
        return LANGUAGES
    items: Sequence[Any] = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, Sequence)
        or not items
        or any(not isinstance(v, str) or v not in LANGUAGES for v in items)
    ):
        raise PipelineError(
            f"coder {coder!r}: language must be 'auto', 'en', 'sv' or a list of those, "
            f"got {value!r}"
        )
    return tuple(dict.fromkeys(items))
