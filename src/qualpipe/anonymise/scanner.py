"""One pass over the capitalised phrases of a text, feeding three recognisers.

Names, places and institutions start with a capital letter. A single regular expression
finds every capitalised phrase (``Anna Svensson``, ``University of Leeds``,
``Mr C.A. Whomersley``); each phrase is then judged with cheap string and set look-ups:

1. context before it: a title (``Dr``, ``fru``), an introduction (``my name is``,
   ``jag heter``), a place preposition (``in``, ``från``);
2. context after it: a post-nominal title (``LJ``, ``QC``), an institution noun
   (``Gävle sjukhus``);
3. its own words: institution keywords and suffixes (``St Mary's Hospital``,
   ``Skönviksgården``), street suffixes (``Storgatan``), the name and place gazetteers;
4. otherwise, the proper-noun heuristic: capitalised mid-sentence and no common word.

This keeps Python's per-match work to the phrases themselves, which is what makes the
rule path fast. The three recognisers (``context``, ``gazetteer``, ``proper-nouns``)
share the scan of the last text through a one-entry cache.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from qualpipe.anonymise.lexicon import (
    MONTHS_AND_DAYS,
    Lexicon,
    guess_language,
    lexicon,
    lower_used,
    name_tier,
)
from qualpipe.anonymise.recognisers import Span

_UP = "A-ZÅÄÖÆØÉÜÇŞĞİ"
_TOK = rf"(?:[{_UP}]\.(?:[{_UP}]\.)*(?=[ \t]+[{_UP}])|[{_UP}][\w'’-]*)"
_CONNECT = r"(?:of|de|la|du|van|von|der|den|af|av|al|bin|ibn|el|upon|on|the)"
_PHRASE = rf"{_TOK}(?:(?:[ \t]+{_CONNECT}){{0,2}}[ \t]+{_TOK})*"
PHRASE = re.compile(_PHRASE)
_NEXT = re.compile(r"[ \t]+([\w'’-]+)")

TITLES = frozenset(
    """dr mr mrs ms miss mx prof professor sir dame lady lord rev father sister nurse
    doktor fru herr fröken syster pastor advokat överläkare kurator""".split()
)
#: titles that are also kinship words: titles only when capitalised ("Sister Agnes")
KINSHIP_TITLES = frozenset("sister father mother syster bror".split())
GENDER_TITLES = frozenset("mr mrs ms miss mx herr fru fröken".split())
#: words after which a capital letter is a label, not a person: "Article 6 (b)", "Plan B"
LETTER_LABELS = frozenset(
    """article annex schedule section part appendix table figure plan vitamin type class
    grade group block wing level category stage option bilaga avsnitt del plan typ grupp
    nivå""".split()
)
INTRODUCTIONS = (
    "my name is", "my name's", "i'm called", "i am called", "call me", "called", "named",
    "her name is", "his name is", "their name is", "name was", "heter", "hette", "kallas",
    "kallad", "kallade", "döpt till",
)  # fmt: skip
POST_TITLES = frozenset({"LJ", "J", "QC", "KC", "MR", "CJ", "MP"})
PLACE_PREPOSITIONS = frozenset(
    """in from to at near outside around i från till nära utanför vid mot kring över
    towards via""".split()
)
ORG_KEYWORDS = frozenset(
    """Hospital Hospitals Clinic School College University Centre Center Council Service
    Services Ward Unit Trust Court Office Department Police Church Home House Project
    Foundation Association Society Team Practice Surgery Prison Academy Agency Authority
    Ltd AB Inc Institute Programme Program Charity Housing Hostel Shelter Limited
    Laboratory Laboratories Party Company Corporation Bank Hotel Library Museum
    Infirmary Sjukhus Vårdcentral Kommun""".split()
)
ORG_PREFIXES = frozenset(
    """HM HMP Prison University Vårdcentralen Hälsocentralen Region Stiftelsen Föreningen
    Kommunen Boendet Gruppboendet Mottagningen Kliniken Skolan Kyrkan Socialtjänsten
    Landstinget Psykiatrin Beroendecentrum""".split()
)
ORG_SUFFIXES = (
    "kliniken", "mottagningen", "skolan", "gymnasiet", "sjukhuset", "sjukhus", "gården",
    "hemmet", "boendet", "centralen", "kyrkan", "föreningen", "förbundet", "enheten",
    "avdelningen", "kommun", "kommunen", "regionen", "tingsrätt", "hovrätt", "stiftelsen",
    "församling", "vårdcentral", "vårdcentralen", "hälsocentralen", "verksamheten",
    "huset", "centrum",
)  # fmt: skip
ORG_NOUNS_AFTER = frozenset(
    """sjukhus kommun vårdcentral tingsrätt hovrätt församling hälsocentral kommuns
    sjukhuset""".split()
)
STREET_SUFFIXES = (
    "gatan", "vägen", "gränd", "gränden", "stigen", "torget", "backen", "allén", "leden",
    "stråket", "kajen", "esplanaden",
)  # fmt: skip
_ALL_SUFFIXES = (*ORG_SUFFIXES, *STREET_SUFFIXES)
INTRO_LAST_WORDS = frozenset(p.rsplit(" ", 1)[-1] for p in INTRODUCTIONS)
_SENTENCE_END = frozenset('.!?:;"“”(\n•-–—')


@dataclass
class Scan:
    context: list[Span] = field(default_factory=list)
    gazetteer: list[Span] = field(default_factory=list)
    proper: list[Span] = field(default_factory=list)


# (text, language, scan): the text object is kept, so ``is`` never matches another text
_cache: tuple[str, str | None, Scan] | None = None


def scan(text: str, language: str | None) -> Scan:
    """Scan ``text`` (cached for the last text, so three recognisers share it)."""
    global _cache
    if _cache is not None and _cache[0] is text and _cache[1] == language:
        return _cache[2]
    result = _scan(text, language or guess_language(text), lexicon())
    _cache = (text, language, result)
    return result


def _prev_words(text: str, start: int, n: int = 3) -> str:
    """Up to ``n`` words before ``start``, lower case, single-spaced."""
    lo = max(0, start - 40)
    return " ".join(text[lo:start].lower().split()[-n:])


def prev_word(text: str, start: int) -> str:
    """The word before ``start``, lower case, without a final full stop."""
    k = start
    while k > 0 and text[k - 1] in " \t":
        k -= 1
    lo = max(0, k - 30)
    j = max(text.rfind(" ", lo, k), text.rfind("\n", lo, k), text.rfind("\t", lo, k), lo - 1)
    return text[j + 1 : k].rstrip(".,;:!?\"'’”)").lower()


def _prev_capitalised(text: str, start: int) -> bool:
    """Is the word before ``start`` capitalised ("Sister Agnes" vs "my sister Lena")?"""
    i = _word_start(text, start)
    return i < len(text) and text[i].isupper()


def _word_start(text: str, start: int) -> int:
    """Start of the word before ``start`` (the title in "doktor Lind")."""
    i = start - 1
    while i >= 0 and text[i] in " \t.":
        i -= 1
    while i >= 0 and text[i].isalpha():
        i -= 1
    return i + 1


def sentence_start(text: str, start: int) -> bool:
    """Does ``start`` open a sentence (only spaces after ``.!?:;``, a quote, a dash, a
    line break, or the beginning of the text)?"""
    i = start - 1
    while i >= 0 and text[i] in " \t":
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END


def _function_word(word: str, language: str, lex: Lexicon) -> bool:
    """One of the ~500 commonest words of the language ("My", "Will", "Hans", "Per")."""
    rank = lex.ranks.get(language, {}).get(word.lower())
    return rank is not None and rank <= 500


def _plain_common(word: str, lex: Lexicon, language: str) -> bool:
    """In the language's frequency list, whether or not it is also someone's name
    (gazetteers hold "Court", "State", "Health" as surnames or places)."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    lower = word.lower()
    if lower in MONTHS_AND_DAYS:
        return True
    rank = lex.ranks.get(language if language in lex.ranks else "en", {}).get(lower)
    limit = 3000 if language == "sv" else 20000
    return rank is not None and rank <= limit and not (word in lex.first_names and rank > 2000)


def _common(word: str, lex: Lexicon, language: str) -> bool:
    """A common word of the language that is no name (for the proper-noun heuristic)."""
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if language == "sv":
        # Swedish capitalises only proper nouns: a capital mid-sentence is a strong sign
        rank = lex.ranks.get("sv", {}).get(word.lower())
        return (rank is not None and rank <= 3000 and not lex.is_name(word)) or (
            word.lower() in MONTHS_AND_DAYS
        )
    # English: common in English (wordfreq's lists are case-folded, so Swedish place
    # names such as "skärholmen" rank high in the Swedish list: not evidence here)
    rank = lex.ranks.get("en", {}).get(word.lower())
    if word.lower() in MONTHS_AND_DAYS:
        return True
    return rank is not None and rank <= 20000 and not lex.is_name(word[:1].upper() + word[1:])


_SUFFIX_ENDS = frozenset(x[-3:] for x in (*ORG_SUFFIXES, *STREET_SUFFIXES))


def _scan(text: str, language: str, lex: Lexicon) -> Scan:
    out = Scan()
    known = lex.known
    stops = _SENTENCE_END
    for m in PHRASE.finditer(text):
        s = m.start()
        # the character before the phrase, skipping one or two spaces
        i = s - 1
        ch = text[i] if i >= 0 else "\n"
        if ch == " " or ch == "\t":
            i -= 1
            ch = text[i] if i >= 0 else "\n"
            if ch == " ":
                i -= 1
                ch = text[i] if i >= 0 else "\n"
        elif ch.isalnum() or ch in "'’-":
            continue  # a capital inside a word: McDonald, iPhone
        initial = ch in stops
        phrase = m.group()
        if initial:
            # most sentences start with an ordinary word: one set look-up decides
            if (
                " " not in phrase
                and phrase not in known
                and phrase[:-2] not in known
                and phrase[:-1] not in known
                and not (phrase[-3:] in _SUFFIX_ENDS and phrase.endswith(_ALL_SUFFIXES))
            ):
                continue
        elif phrase == "I":
            continue
        _phrase(text, s, m.end(), initial, language, lex, out)
    return out


def _phrase(
    text: str, s: int, e: int, initial: bool, language: str, lex: Lexicon, out: Scan
) -> None:
    """Judge one capitalised phrase ``text[s:e]``."""
    first, places, demonyms = lex.first_names, lex.places, lex.demonyms
    phrase = text[s:e]
    if phrase.endswith(("'s", "’s")):  # possessive: the name without it
        e -= 2
        phrase = phrase[:-2]
    elif phrase.endswith(("'", "’")):
        e -= 1
        phrase = phrase[:-1]
    if s >= e:
        return
    single = " " not in phrase and "\t" not in phrase
    if single and len(phrase) == 1 and initial:
        return
    if single and not initial and _quiet(phrase, text, s, e, language, lex):
        return
    words = phrase.split()
    if len(words) > 1 and words[0].rstrip(".").lower() in TITLES:
        # "Mr Galip Yalman", "Dr Price": the title is part of the phrase. Mr/Mrs/Ms
        # stay; a professional title (Dr, Sister, Lord) identifies too and goes
        ps = s
        if words[0].rstrip(".").lower() in GENDER_TITLES:
            ps = s + len(words[0])
            while ps < e and text[ps] in " \t":
                ps += 1
        stop = e
        while stop > ps and text[stop - 1] == ".":
            stop -= 1
        out.context.append(Span(ps, stop, "PERSON", "context", 0.9))
        return
    last_prev = prev_word(text, s)

    # 1. context before the phrase
    kinship = last_prev in KINSHIP_TITLES and not _prev_capitalised(text, s)
    if last_prev in TITLES and not initial and not kinship:
        if last_prev not in GENDER_TITLES:  # "doktor Lind": the title goes too
            s = _word_start(text, s)
        stop = e
        while stop > s and text[stop - 1] == ".":
            stop -= 1
        out.context.append(Span(s, stop, "PERSON", "context", 0.9))
        return
    if (
        last_prev in INTRO_LAST_WORDS
        and not initial
        and _prev_words(text, s).endswith(INTRODUCTIONS)
    ):
        kind = "PLACE" if phrase in places and words[0] not in first else "PERSON"
        if not (single and _common(phrase, lex, language)):
            out.context.append(Span(s, e, kind, "context", 0.85))
            return
    # 2. context after it
    nm = _NEXT.match(text, e)
    nxt, ne = (nm.group(1), nm.end(1)) if nm else ("", e)
    if nxt in POST_TITLES and not all(_common(w, lex, language) for w in words):
        out.context.append(Span(s, e, "PERSON", "context", 0.8))
        return
    if nxt.lower() in ORG_NOUNS_AFTER and nxt[:1].islower():
        out.context.append(Span(s, ne, "ORG", "context", 0.7))
        return
    # 3. the phrase's own words
    last = words[-1]
    if (
        len(words) > 1
        and last in ORG_KEYWORDS
        and not all(_common(w.strip("'’"), lex, language) for w in words[:-1])
    ) or (len(words) > 1 and words[0] in ORG_PREFIXES):
        out.context.append(Span(s, e, "ORG", "context", 0.7))
        return
    if any(w.endswith(ORG_SUFFIXES) and len(w) > 6 for w in words):
        out.context.append(Span(s, e, "ORG", "context", 0.7))
        return
    if last.endswith(STREET_SUFFIXES) and len(last) > 6:
        out.context.append(Span(s, e, "ADDRESS", "context", 0.6))
        return
    if _gazetteer(text, s, e, words, single, initial, last_prev, lex, out, language):
        return
    after_prep = last_prev in PLACE_PREPOSITIONS
    if after_prep and not initial and not all(_common(w, lex, language) for w in words):
        out.context.append(Span(s, e, "PLACE", "context", 0.5))
        return
    # 4. the proper-noun heuristic
    if e < len(text) and text[e] == ":" and (s == 0 or text[s - 1] == "\n"):
        return  # a speaker label ("Intervjuaren:", "Informant:")
    ps, rest = s, words
    if initial:
        if single or not _common(words[0], lex, language):
            return
        ps = s + len(words[0])
        while ps < e and text[ps] in " \t":
            ps += 1
        rest = words[1:]
    if all(_plain_common(w.strip("'’"), lex, language) for w in rest):
        # every word a dictionary word: "Secretary of State", "Court of Appeal"
        return
    if len(rest) == 1 and len(rest[0]) == 1 and rest[0] not in "IAO":
        # a person known by a letter: "sued by “K”", "the witness W."
        if last_prev not in LETTER_LABELS:
            out.proper.append(Span(ps, e, "PERSON", "proper-nouns", 0.5))
        return
    if len(rest) == 1 and rest[0].isupper() and len(rest[0]) <= 5:
        return  # acronyms: ADHD, NHS, ICA
    lowered = rest[0].lower()
    kind = "DEM" if lowered in demonyms else "OTHER"
    out.proper.append(Span(ps, e, kind, "proper-nouns", 0.5))


# what one capitalised word yields mid-sentence whatever the words around it (below):
# (lexicon, {(word, language): (nothing without context, a common word)})
_quiet_cache: tuple[Lexicon | None, dict[tuple[str, str], tuple[bool, bool]]] = (None, {})
_QUIET_CACHE_SIZE = 200_000
#: words before a phrase that can make a span of it (titles, introductions, prepositions)
_CUE_BEFORE = TITLES | INTRO_LAST_WORDS | PLACE_PREPOSITIONS


def _quiet(phrase: str, text: str, s: int, e: int, language: str, lex: Lexicon) -> bool:
    """Does :func:`_phrase` find nothing in the single word ``phrase`` (mid-sentence)?

    A shortcut, exact by construction: most capitalised words mid-sentence are ordinary
    ("Court", "March", "Government") and yield nothing unless a word before or after
    them is a cue (a title, an introduction, a place preposition before a rare word, a
    post-nominal title or an institution noun after). What the word yields on its own is
    worked out once per word and language, following :func:`_phrase` step by step; the
    cues are checked here. False means: judge it in full.
    """
    global _quiet_cache
    if _quiet_cache[0] is not lex or len(_quiet_cache[1]) > _QUIET_CACHE_SIZE:
        _quiet_cache = (lex, {})
    key = (phrase, language)
    known = _quiet_cache[1].get(key)
    if known is None:
        known = _quiet_cache[1][key] = (
            _quiet_word(phrase, language, lex),
            _common(phrase, lex, language),
        )
    quiet, common = known
    if not quiet:
        return False
    last_prev = prev_word(text, s)
    if last_prev in _CUE_BEFORE and not (
        common and last_prev not in TITLES and last_prev not in INTRO_LAST_WORDS
    ):
        return False
    nm = _NEXT.match(text, e)
    if nm is None:
        return True
    nxt = nm.group(1)
    return nxt not in POST_TITLES and nxt.lower() not in ORG_NOUNS_AFTER


def _quiet_word(word: str, language: str, lex: Lexicon) -> bool:
    """Without cues around it, does the single word ``word`` (not opening a sentence)
    yield nothing in :func:`_phrase`? (Steps 3 and 4 of its judgement.)"""
    if word.endswith(ORG_SUFFIXES) and len(word) > 6:
        return False
    if word.endswith(STREET_SUFFIXES) and len(word) > 6:
        return False
    # the gazetteers: any name or place (or the genitive of one) is judged in full
    first, surnames, places = lex.first_names, lex.surnames, lex.places
    if word in first or word in surnames or word in places:
        return False
    if word.endswith("s") and len(word) > 3 and not lex.is_common(word):
        stem = word[:-1]
        if stem in first or stem in surnames or stem in places:
            return False
    # the proper-noun heuristic finds nothing in a dictionary word or an acronym
    if _plain_common(word.strip("'’"), lex, language):
        return True
    if len(word) == 1 and word not in "IAO":
        return False  # a person known by a letter, unless after "Article", "Plan", ...
    return word.isupper() and len(word) <= 5


def _gazetteer(
    text: str,
    s: int,
    e: int,
    words: list[str],
    single: bool,
    initial: bool,
    last_prev: str,
    lex: Lexicon,
    out: Scan,
    language: str = "en",
) -> bool:
    """Name and place look-ups for one phrase; True if it produced a span."""
    first, surnames, places = lex.first_names, lex.surnames, lex.places
    phrase = text[s:e]
    only_place = not single or (phrase not in first and phrase not in surnames)
    plausible = (
        not single
        or (last_prev in PLACE_PREPOSITIONS and not initial)
        or (phrase.lower() not in MONTHS_AND_DAYS and not lower_used(text, phrase))
    )
    if phrase in places and only_place and plausible:
        out.gazetteer.append(Span(s, e, "PLACE", "gazetteer", 0.7))
        return True
    if single:
        word = phrase
        is_name = word in first or word in surnames
        if (
            not is_name
            and word not in places
            and word.endswith("s")
            and len(word) > 3
            and not lex.is_common(word)
        ):
            # Swedish genitive: Karins, Gävles (but not "Yes" from a place called Ye)
            stem = word[:-1]
            if stem in first or stem in surnames or stem in places:
                word, e = stem, e - 1
                is_name = word in first or word in surnames
        if not is_name and word not in places:
            return False
        if word.lower() in MONTHS_AND_DAYS:
            return False
        if name_tier(word) and (
            lower_used(text, word)
            or (initial and _function_word(word, language, lex))
            or (initial and not lex.native_name(word, language))
        ):
            # "Hans mamma", "per vecka", "My name": used as a word here; "Date of
            # interview": a dictionary word at the start of a sentence that is a name
            # only in some distant locale
            return False
        if word in places and (last_prev in PLACE_PREPOSITIONS or not is_name):
            out.gazetteer.append(Span(s, e, "PLACE", "gazetteer", 0.7))
        else:
            score = 0.7 if word in first else 0.6
            out.gazetteer.append(Span(s, e, "PERSON", "gazetteer", score))
        return True
    # several words: the longest run of name words is a person; a known place inside
    names = [
        w in first or w in surnames or w[:-1] in surnames or w.rstrip(".") == w[:1] + "."
        for w in words
    ]
    # word offsets, then the longest run of name words ("I'm Emma Berglund" -> the name)
    starts, pos = [], s
    for w in words:
        ws = text.index(w, pos)
        starts.append(ws)
        pos = ws + len(w)
    best: tuple[int, int] = (0, -1)
    i = 0
    while i < len(words):
        if names[i] or (words[i] in first and name_tier(words[i]) < 2):
            j = i
            while j + 1 < len(words) and (
                names[j + 1]
                # a first name followed by an unknown capitalised word: its surname
                or (j == i and words[i] in first and not lex.is_common(words[j + 1]))
            ):
                j += 1
            if j - i > best[1] - best[0]:
                best = (i, j)
            i = j + 1
        else:
            i += 1
    if best[1] > best[0]:
        a, b = best
        out.gazetteer.append(Span(starts[a], starts[b] + len(words[b]), "PERSON", "gazetteer", 0.9))
        return True
    pos = s
    found = False
    for w, is_name in zip(words, names, strict=True):
        ws = text.index(w, pos)
        pos = ws + len(w)
        if w in places and w.lower() not in MONTHS_AND_DAYS:
            out.gazetteer.append(Span(ws, pos, "PLACE", "gazetteer", 0.7))
            found = True
        elif is_name and w in first and name_tier(w) == 0:
            out.gazetteer.append(Span(ws, pos, "PERSON", "gazetteer", 0.7))
            found = True
    return found
