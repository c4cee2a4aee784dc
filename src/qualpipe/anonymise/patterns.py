"""The ``patterns`` recogniser: validated, format-driven identifiers.

Finds e-mail addresses, URLs, IP addresses, phone numbers (Swedish, UK, international),
identity and case numbers (personnummer, samordningsnummer, NHS and National Insurance
numbers, "dnr 123-4567-2019"), postcodes, street addresses, dates (numeric, written in
English or Swedish, years and decades) and amounts of money. Check digits and calendar
dates are validated where a check exists; the validators are plain functions
(:func:`luhn_ok`, :func:`personnummer_ok`, :func:`nhs_ok`, ...) usable elsewhere.

Speed is the design constraint (the whole rule path must do tens of MB/s per core), so
there is no regex per entity type run over the whole text. Nearly every identifier here
holds a digit, so one compiled pattern, ``_NUM``, starts only at a digit, ``+``, ``(`` or
``$`` (an ASCII set the regex engine skips through in C) and is an ordered alternation of
the digit-led forms, each a named group. A plain number such as "45 people" or "14:30"
fails every alternative inside the regex engine, so Python only sees real candidates,
which it validates (calendar, Luhn, mod 11, octets, digit counts); when validation says
no, the alternatives after the one that matched are tried at the same place. Identifiers
led by a word ("Storgatan 12", "March 14", "EUR 500", "dnr 123-4567") reach Python
through a fixed-width look-behind on the last three letters of those words (a prefix
tree, so a miss costs a character test or two); Python then checks the whole word.
E-mail, "£"/"€" amounts, URLs and IPv6 have their own passes, each started by one
character that C finds at memchr speed ("@", "£", "€", ":" for "://" and "::", "." for
"www." and ".se"/".com"/...).

Within this recogniser spans never overlap: the longer span wins (then the higher score).

Choices worth knowing:

* A personnummer whose date is valid but whose check digit is wrong is still an ``ID``,
  with score 0.6 (1.0 when the Luhn digit is right): transcripts are typed from audio
  and a misheard digit must not leave a national identity number in the text.
* Bare years 1900-2039 are ``DATE`` with score 0.5 (0.7 after "in", "born", "år", ...),
  decades ("the 1990s", "90-talet") 0.4; the stage's ``min_score`` decides whether
  they are replaced. ``ctx.options["years"] = False`` turns years and decades off.
* Times of day ("14:30", "kl. 10") are never dates or phone numbers.
* Spans cover the identifier only: "dnr 123-4567-2019" gives the span "123-4567-2019";
  "den 14 mars", "Monday 14 March" and "the 3rd of May" are dates as a whole.
"""

from __future__ import annotations

import bisect
import calendar
import ipaddress
import itertools
import re
from collections.abc import Callable, Iterable
from typing import Any

from qualpipe.anonymise.recognisers import Recogniser, RecogniserContext, Span

__all__ = [
    "PATTERNS",
    "date_ok",
    "find_patterns",
    "find_patterns_adapter",
    "ipv4_ok",
    "ipv6_ok",
    "luhn_ok",
    "nhs_ok",
    "ni_number_ok",
    "personnummer_date_ok",
    "personnummer_ok",
    "uk_postcode_ok",
]

NAME = "patterns"

# ---------------------------------------------------------------------------------------
# Validators (pure functions, usable on their own)
# ---------------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    if not digits or not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def date_ok(year: int | None, month: int, day: int) -> bool:
    """True when ``day``/``month`` exist (in ``year``; any leap year when it is None)."""
    if not 1 <= month <= 12 or day < 1:
        return False
    if year is None:
        return day <= _MAX_DAYS[month]
    return day <= calendar.monthrange(year, month)[1]


_MAX_DAYS = (0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_PNR_SHAPE = re.compile(r"(\d{2})?(\d{2})(\d{2})(\d{2})([-+]?)(\d{4})")


def _pnr_split(value: str) -> tuple[str, int | None, int, int] | None:
    """(the ten digits, year or None, month, day as written) for a well-formed value."""
    m = _PNR_SHAPE.fullmatch(value.strip())
    if m is None:
        return None
    century, yy, mm, dd, _sep, tail = m.groups()
    year = int(century + yy) if century else None
    return yy + mm + dd + tail, year, int(mm), int(dd)


def personnummer_date_ok(value: str) -> bool:
    """True when ``value`` is shaped like a personnummer/samordningsnummer with a real date.

    Accepts YYMMDD-NNNN, YYMMDD+NNNN, YYMMDDNNNN, YYYYMMDDNNNN and YYYYMMDD-NNNN; a
    samordningsnummer has 60 added to the day. The check digit is not looked at.
    """
    parts = _pnr_split(value)
    if parts is None:
        return False
    _ten, year, month, day = parts
    if day > 60:
        day -= 60
    if year is None:
        # any century will do: 00 is a leap year in 2000, so day 29 of month 2 needs yy % 4 == 0
        yy = int(parts[0][:2])
        return date_ok(2000 + yy, month, day) or date_ok(1900 + yy, month, day)
    return 1800 <= year <= 2099 and date_ok(year, month, day)


def personnummer_ok(value: str) -> bool:
    """True for a valid personnummer or samordningsnummer: real date and Luhn check digit."""
    parts = _pnr_split(value)
    return parts is not None and personnummer_date_ok(value) and luhn_ok(parts[0])


def nhs_ok(value: str) -> bool:
    """True for a valid UK NHS number: ten digits (spaces/hyphens ignored), mod 11 check."""
    digits = value.replace(" ", "").replace("-", "").replace("\u00a0", "")
    if len(digits) != 10 or not digits.isdigit():
        return False
    total = sum((10 - i) * (ord(ch) - 48) for i, ch in enumerate(digits[:9]))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == ord(digits[9]) - 48


_NI_SHAPE = re.compile(r"([A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z])(\d{6})([A-D])")
_NI_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def ni_number_ok(value: str) -> bool:
    """True for a well-formed UK National Insurance number ("AB 12 34 56 C")."""
    m = _NI_SHAPE.fullmatch(re.sub(r"[ \u00a0]", "", value.upper()))
    return m is not None and m.group(1) not in _NI_BAD_PREFIXES


_UK_POSTCODE = re.compile(
    r"(?:GIR 0AA|(?:[A-PR-UWYZ][0-9][0-9]?|[A-PR-UWYZ][A-HK-Y][0-9][0-9]?"
    r"|[A-PR-UWYZ][0-9][A-HJKPSTUW]|[A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY])"
    r" [0-9][ABD-HJLNP-UW-Z]{2})"
)


def uk_postcode_ok(value: str) -> bool:
    """True for a UK postcode in the official format, outward and inward code ("SW1A 1AA")."""
    return _UK_POSTCODE.fullmatch(" ".join(value.upper().split())) is not None


def ipv4_ok(value: str) -> bool:
    """True for a dotted-quad IPv4 address with every octet in 0-255."""
    parts = value.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def ipv6_ok(value: str) -> bool:
    """True for an IPv6 address in any standard textual form (with at least two colons)."""
    if value.count(":") < 2:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------
# Word lists
# ---------------------------------------------------------------------------------------

_MONTH_WORDS = {
    # English and Swedish, full and abbreviated (lower case)
    **dict.fromkeys(("january", "januari", "jan"), 1),
    **dict.fromkeys(("february", "februari", "feb"), 2),
    **dict.fromkeys(("march", "mars", "mar"), 3),
    **dict.fromkeys(("april", "apr"), 4),
    **dict.fromkeys(("may", "maj"), 5),
    **dict.fromkeys(("june", "juni", "jun"), 6),
    **dict.fromkeys(("july", "juli", "jul"), 7),
    **dict.fromkeys(("august", "augusti", "aug"), 8),
    **dict.fromkeys(("september", "sept", "sep"), 9),
    **dict.fromkeys(("october", "oktober", "oct", "okt"), 10),
    **dict.fromkeys(("november", "nov"), 11),
    **dict.fromkeys(("december", "dec"), 12),
}
_MONTH_ABBREVIATIONS = frozenset(
    {"jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "okt", "nov", "dec"}
)
_WEEKDAYS = (
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag",
)  # fmt: skip
# Swedish street names: compounds ("Storgatan") and, after a name, separate words
# ("Olof Palmes gata"). Lower-case compounds are ordinary nouns ("på vägen").
_STREET_SUFFIXES = (
    "gatan", "vägen", "gränden", "gränd", "stigen", "torget", "backen", "allén", "plan",
    "leden", "stråket", "gata", "väg", "torg", "allé", "backe", "stig",
)  # fmt: skip
_STREET_WORDS_SV = frozenset({"gata", "väg", "gränd", "torg", "allé", "backe", "stig"})
_STREET_MODIFIERS = frozenset({
    "stora", "lilla", "norra", "södra", "östra", "västra", "gamla", "nya", "sankt", "övre",
    "nedre", "yttre", "inre",
})  # fmt: skip
_STREET_WORDS_EN = (
    "Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Drive|Dr|Close|Way|Crescent|Place|Pl|Gardens"
    "|Terrace|Court|Ct|Square|Sq|Grove|Hill|Row|Walk|Mews"
)
_MONEY_CODES = frozenset({"EUR", "SEK", "USD", "GBP", "NOK", "DKK", "CHF"})
_CASE_WORDS = frozenset({
    "no", "nr", "dnr", "case", "ärende", "mål", "diarienummer", "ärendenummer", "målnummer",
    "referensnummer", "reference", "ref", "application", "file", "number", "nummer",
})  # fmt: skip
_POSTCODE_WORDS = frozenset({"postnummer", "postnr"})
_FLAT_WORDS = frozenset({"flat", "apartment", "apt"})
_YEAR_CONTEXT = frozenset({
    "in", "born", "since", "until", "till", "from", "during", "of", "year", "by", "before",
    "after", "around", "år", "född", "sedan", "i", "från", "under", "innan", "efter", "runt",
    "ca", "cirka",
})  # fmt: skip
_DECADE_CONTEXT = frozenset({"the", "early", "late", "mid"})


def _trie(words: Iterable[str]) -> str:
    """A regex alternation of ``words`` as a prefix tree ("kr(?:ona|onor)?").

    The regex engine tries the alternatives of a group one by one; sharing prefixes
    means a non-matching word is rejected after one or two character tests.
    """
    tree: dict[str, Any] = {}
    for word in words:
        node = tree
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        ends = "" in node
        if len(alts) == 1 and not ends:
            return alts[0]
        return "(?:" + "|".join(alts) + ")" + ("?" if ends else "")

    return "(?:" + emit(tree) + ")"


def _capitalised(words: Iterable[str]) -> list[str]:
    """Each word as written and with a capital first letter."""
    return [form for w in words for form in {w, w[0].upper() + w[1:]}]


def _ctx_lookbehind() -> str:
    """Look-behinds that fire when the digit follows one of the trigger words + a space.

    Each look-behind is fixed width, so the last three characters of every trigger word
    (two for two-letter words) are listed; Python then checks the whole word.
    """
    words: set[str] = set()
    base = [*_MONTH_WORDS, *_STREET_SUFFIXES, *_CASE_WORDS, *_POSTCODE_WORDS, *_FLAT_WORDS]
    for w in base:
        for form in (w, w[0].upper() + w[1:]):
            words.add(form)
            if w in _MONTH_ABBREVIATIONS or w in {"no", "nr", "dnr", "ref", "apt"}:
                words.add(form + ".")
    words |= _MONEY_CODES
    words.discard("may")  # the modal verb: "they may 2"; "May 2" is kept
    three = {w[-3:] for w in words if len(w) >= 3}
    two = {w for w in words if len(w) == 2}
    return f"(?:(?<={_trie(three)} [0-9])|(?<=(?<![^\\W\\d_]){_trie(two)} [0-9]))"


# ---------------------------------------------------------------------------------------
# The digit-led pattern
# ---------------------------------------------------------------------------------------

_SP = r"[ \t\u00a0]"
_PSEP = r"(?:[ \u00a0]?[-\u2013][ \u00a0]?|[ \u00a0])"  # between groups of a phone number
_CAP = "A-ZÅÄÖÆØÉÜ"
_LOW = "a-zåäöæøéüß"
# "may" only as "May": "these 2 may help" is not a date. Abbreviations may take a dot.
_ABBR_OR_MAY = _MONTH_ABBREVIATIONS | {"may"}
_NAME_LIKE_MONTHS = frozenset({"Jan", "Jun", "Maj"})  # also given names
_MONTH = (
    "(?:"
    + _trie([*_capitalised(w for w in _MONTH_WORDS if w not in _ABBR_OR_MAY), "May"])
    + "|"
    + _trie(_capitalised(_MONTH_ABBREVIATIONS))
    + "(?![^\\W_])(?:\\.(?=[ \\t\\u00a0]?[0-9]))?)(?![^\\W_])"
)
_MULT = _trie((
    "million", "millions", "miljoner", "miljon", "billion", "bn", "miljarder", "miljard",
    "thousand", "tusen",
))  # fmt: skip
_CURRENCY_AFTER = _trie((
    "kronor", "krona", "kr", "SEK", "sek", "öre", "euro", "euros", "EUR", "€", "pound", "pounds",
    "GBP", "£", "pence", "dollar", "dollars", "USD", "$", "quid", ":-",
)) + r"(?![^\W_])"  # fmt: skip
_AMOUNT = r"(?:\d{1,3}(?:[ \u00a0.,]\d{3})+|\d+)(?:[.,]\d{1,2})?"
_AMOUNT_MULT = _AMOUNT + rf"(?:{_SP}?{_MULT}(?![^\W_])|k(?![^\W_]))?"

# Each digit-led form is (first character class, rest): in _NUM the first character is
# consumed by the shared leading set, so the rest is spliced in after a look-behind that
# re-checks it; the stand-alone regex (for fallbacks) is simply first + rest.
_CLEAN: list[tuple[str, str, str]] = [
    # personnummer / samordningsnummer: YYMMDD-NNNN, YYYYMMDDNNNN, ...
    ("pnr", "[0-9]", r"\d{5}(?:\d{2})?[-+]?\d{4}(?![0-9]|[-+][0-9])"),
    # NHS number, 3-3-4 with the same separator (or none) twice
    ("nhs", "[0-9]", r"\d{2}(?P<nhs_sep>[ \u00a0-]?)\d{3}(?P=nhs_sep)\d{4}(?![0-9])"),
    ("ipv4", "[0-9]", r"\d{0,2}+(?:\.\d{1,3}){3}(?![0-9]|\.[0-9])"),
    # 2023-03-14, 2023/3/14
    ("date_iso", "[12]", r"\d{3}(?P<iso_sep>[-/.])\d{1,2}(?P=iso_sep)\d{1,2}(?![0-9]|[-/.][0-9])"),
    # 14/3/2023, 14.3.2023, 3/14/2023, 14/03/23
    (
        "date_num",
        "[0-9]",
        r"\d?+(?P<num_sep>[-/.])\d{1,2}(?P=num_sep)(?:\d{4}|\d{2})(?![0-9]|[-/.:][0-9])",
    ),
    # "den 14/3"
    ("date_den", "[0-9]", r"(?<=[Dd]en [0-9])\d?[/.]\d{1,2}(?![0-9]|[/.][0-9])"),
    # national and 00-international phone numbers
    ("phone", "0", rf"(?=(?:[-\u2013 \u00a0]{{0,3}}\d){{7}})\d{{1,4}}(?:{_PSEP}?\d{{1,4}}){{0,6}}"),
    # 3 500 kronor, 3500 kr, 5 000 euros, 200 pounds, 1.2 million dollars, 500:-
    (
        "money",
        "[0-9]",
        rf"(?>\d{{0,2}}(?:[ \u00a0.,]\d{{3}})++|\d*+)(?:[.,]\d{{1,2}})?+"
        rf"(?:{_SP}?{_MULT}|k)?+{_SP}?+{_CURRENCY_AFTER}",
    ),
    # 14 March 2023, 14th of March, 14:e mars, 3 april
    (
        "date_dm",
        "[0-9]",
        rf"\d?+(?:st|nd|rd|th|:e|:a)?+(?:{_SP}+of)?+{_SP}++{_MONTH}"
        rf"(?:,?{_SP}+[12]\d{{3}}(?![^\W_]))?",
    ),
    # 12 High Street, 221B Baker Street, 4 Church Lane
    (
        "addr_en",
        "[0-9]",
        rf"\d{{0,3}}+[A-Za-z]?+(?:[-\u2013]\d{{1,4}}[A-Za-z]?)?+,?+{_SP}++"
        rf"(?:[A-Z][a-z'\u2019]+{_SP}+){{1,3}}(?:{_STREET_WORDS_EN})(?![^\W_])",
    ),
    # SE-123 45
    ("pc_se_pre", "[0-9]", rf"(?:(?<=SE-[0-9])|(?<=S-[0-9]))\d{{2}}{_SP}?\d{{2}}(?![0-9])"),
    # 123 45 Stockholm (the place name is not part of the span)
    ("pc_se", "[1-9]", rf"\d{{2}}{_SP}?\d{{2}}(?={_SP}+[{_CAP}][{_LOW}]{{2,}})"),
    # AB 12 34 56 C
    ("ni_spaced", "[0-9]", rf"(?<=[A-Z]{{2}} [0-9])\d{_SP}?\d\d{_SP}?\d\d{_SP}?[A-D](?![^\W_])"),
    # 1990s, 90s, 90-talet, 2000-talet
    ("decade", "[0-9]", r"(?:\d\d0|0)(?:s|['\u2019]s|-talet|-tal)(?![^\W_])"),
    # 1998-2001, 1998-99
    (
        "year_range",
        "[12]",
        rf"(?:(?<=1)9\d\d|(?<=2)0[0-3]\d){_SP}?[-\u2013]{_SP}?(?:19\d\d|20[0-3]\d|\d\d)"
        r"(?![^\W_]|[-/.,:][0-9])",
    ),
    # 1900-2039 on its own
    ("year", "[12]", r"(?:(?<=1)9\d\d|(?<=2)0[0-3]\d)(?![^\W_]|[-/.,:][0-9]|['\u2019]s|-tal)"),
    # a number after a trigger word: Storgatan 12, March 14, EUR 500, dnr 123-4567, ...
    ("ctx", "[0-9]", _ctx_lookbehind()),
]
# After an upper-case letter: SW1A 1AA, M1 1AE, AB123456C
_LETTER: list[tuple[str, str, str]] = [
    ("ukpc", "[0-9]", rf"[0-9A-Z]?{_SP}\d[ABD-HJLNP-UW-Z]{{2}}(?![^\W_])"),
    ("ni_compact", "[0-9]", rf"(?<=[A-Z]{{2}}[0-9])\d{{5}}{_SP}?[A-D](?![^\W_])"),
]
_INTL_REST = rf"[1-9]\d{{0,3}}(?:[ \u00a0]?\(0\))?(?:{_PSEP}?\d{{1,4}}){{1,7}}"
_PAREN_REST = rf"0\d{{1,4}}\)(?:{_PSEP}?\d{{1,4}}){{1,5}}"
_CURSYM_REST = (
    rf"{_SP}?(?:\d{{1,3}}(?:,\d{{3}})+|\d+)(?:[.,]\d{{1,2}})?"
    rf"(?:{_SP}?{_MULT}(?![^\W_])|[km](?![^\W_]))?"
)


def _group(kind: str, first: str, rest: str) -> str:
    recheck = "" if first == "[0-9]" else f"(?<={first})"
    return f"{recheck}(?P<{kind}>{rest})"


# The leading set is ASCII on purpose: the engine tests an ASCII set with a bitmap, about
# twice as fast as a set with "£" or "€" in it (those two get a pass of their own).
# Branch order: a digit inside a number is rejected by the first look-behind.
_NUM = re.compile(
    "[0-9+($](?:(?<![0-9][0-9])(?:"
    + r"(?<=[A-Z][0-9])(?:"
    + "|".join(_group(*alt) for alt in _LETTER)
    # a clean start: not inside a word or a number, and not a time of day ("14:30")
    + r")|(?<=[0-9])(?<![^\W_][0-9])(?<![0-9][.,/:-][0-9])(?![0-9]?:[0-9])(?:"
    + "|".join(_group(*alt) for alt in _CLEAN)
    + r")|(?<=\+)(?<![\w+]\+)(?P<intl>"
    + _INTL_REST
    + r")|(?<=\()(?P<paren>"
    + _PAREN_REST
    + r")|(?<=\$)(?P<cursym>"
    + _CURSYM_REST
    + ")))"
)
_CURSYM = re.compile(f"[£€](?P<cursym>{_CURSYM_REST})")
# Stand-alone forms, to try the remaining interpretations when validation rejects one.
_CLEAN_ORDER = [kind for kind, _first, _rest in _CLEAN]
_STANDALONE = {kind: re.compile(first + rest) for kind, first, rest in _CLEAN}

# Patterns used once a candidate is known (anchored, short windows)
_DIGIT_RUNS = re.compile(r"\d+")
_HSPACE = " \t\u00a0"
_OPENERS = "([{\"'\u2018\u201c\u00ab-"
_MONTH_FIRST = re.compile(
    rf"{_MONTH}{_SP}+(?:(?P<day>\d{{1,2}})(?P<ord>st|nd|rd|th)?(?![0-9])"
    rf"(?:,?{_SP}+(?P<year>[12]\d{{3}}))?|(?P<year2>[12]\d{{3}}))(?![^\W_]|[-/.:][0-9])"
)
_DATE_PREFIX = re.compile(
    r"(?:(?<![^\W_])(?P<wd>" + _trie(_capitalised(_WEEKDAYS)) + r")(?:en)?,?"
    rf"{_SP}+)?(?:(?<![^\W_])(?P<art>[Dd]en|[Tt]he){_SP}+)?\Z"
)
_SV_HOUSE = re.compile(
    rf"\d{{1,4}}(?:[A-Za-z]|{_SP}[A-H])?(?![^\W_])(?:[-\u2013]\d{{1,4}}[A-Za-z]?)?"
    rf"(?:,?{_SP}+(?:lgh|Lgh|lägenhet)\.?{_SP}*\d{{1,5}}(?![0-9]))?"
    rf"(?:,?{_SP}+\d{{1,2}}{_SP}?tr(?:appor|appa)?(?![^\W_])\.?)?"
)
_AMOUNT_AT = re.compile(_AMOUNT_MULT + r"(?![0-9])")
_CASE_NUMBER = re.compile(
    r"(?:\d{1,7}(?:[ \u00a0]?[-/:][ \u00a0]?\d{1,7}){1,3}|\d{4,12})(?![^\W_]|[-/][0-9])"
)
_SE_POSTCODE_AT = re.compile(rf"[1-9]\d{{2}}{_SP}?\d{{2}}(?![0-9])")
_FLAT_ADDRESS = re.compile(
    rf"(?:[Ff]lat|[Aa]partment|[Aa]pt\.?){_SP}+\d{{1,4}}[A-Za-z]?,?{_SP}+"
    rf"\d{{1,4}}[A-Za-z]?,?{_SP}+(?:[A-Z][a-z'\u2019]+{_SP}+){{1,3}}"
    rf"(?:{_STREET_WORDS_EN})(?![^\W_])"
)
_DM_PARSE = re.compile(
    rf"(?P<day>\d{{1,2}})(?P<ord>st|nd|rd|th|:e|:a)?(?:{_SP}+of)?{_SP}+(?P<month>[^\W\d_]+)"
    rf"\.?(?:,?{_SP}+(?P<year>[12]\d{{3}}))?"
)
_DATE_SEP = re.compile(r"[-/.]")
_NEXT_WORD = re.compile(rf"{_SP}+([^\W\d_]+)")
_TIME_RANGE = re.compile(r"[01]\d[0-5]\d[ \u00a0]?[-\u2013][ \u00a0]?[0-2]\d[0-5]\d")

# Scores
S_EMAIL = 1.0
S_URL = 0.95
S_DOMAIN = 0.85
S_IP = 0.9
S_PHONE = 0.9
S_ID = 1.0
S_ID_TYPO = 0.6
S_NI = 0.95
S_CASE = 0.8
S_POSTCODE_UK = 0.95
S_POSTCODE_SE = 0.85
S_ADDRESS = 0.9
S_DATE = 0.95
S_DATE_PART = 0.9
S_YEAR_CONTEXT = 0.7
S_YEAR = 0.5
S_DECADE = 0.4
S_MONEY = 0.8


# ---------------------------------------------------------------------------------------
# Handlers: (text, start, end of the regex match) -> Span or None
# ---------------------------------------------------------------------------------------

Handler = Callable[[str, int, int, bool], "Span | None"]


def _span(start: int, end: int, etype: str, score: float) -> Span:
    return Span(start, end, etype, NAME, score)


def _word_before(text: str, pos: int) -> tuple[int, int] | None:
    """(start, end) of the word ending just before ``pos`` (one or two spaces between).

    The "word" is the whitespace-delimited token without opening brackets or quotes; the
    callers compare it with word lists, so punctuation inside simply makes it no match.
    """
    if pos == 0 or text[pos - 1] not in _HSPACE:
        return None
    end = pos - 1
    if end and text[end - 1] in _HSPACE:
        end -= 1
    chunk = text[max(0, end - 30) : end]
    if not chunk or chunk[-1].isspace():
        return None
    token = chunk.rsplit(None, 1)[-1].lstrip(_OPENERS)
    if not token:
        return None
    return end - len(token), end


def _h_pnr(text: str, s: int, e: int, years: bool) -> Span | None:
    raw = text[s:e]
    if not personnummer_date_ok(raw):
        return _span(s, e, "ID", S_ID) if nhs_ok(raw) else None
    ten = raw.replace("-", "").replace("+", "")[-10:]
    if luhn_ok(ten):
        return _span(s, e, "ID", S_ID)
    if len(raw) == 10:  # no separator: could be a phone number or an NHS number
        if nhs_ok(raw):
            return _span(s, e, "ID", S_ID)
        if raw[0] == "0":
            return None  # let the phone pattern have it
    return _span(s, e, "ID", S_ID_TYPO)


def _h_nhs(text: str, s: int, e: int, years: bool) -> Span | None:
    if text[s] == "0" or not nhs_ok(text[s:e]):
        return None
    return _span(s, e, "ID", S_ID)


def _h_ipv4(text: str, s: int, e: int, years: bool) -> Span | None:
    return _span(s, e, "IP", S_IP) if ipv4_ok(text[s:e]) else None


def _h_date_iso(text: str, s: int, e: int, years: bool) -> Span | None:
    y, m, d = (int(x) for x in _DATE_SEP.split(text[s:e]))
    return _span(s, e, "DATE", S_DATE) if 1800 <= y <= 2099 and date_ok(y, m, d) else None


def _h_date_num(text: str, s: int, e: int, years: bool) -> Span | None:
    a, b, c = _DATE_SEP.split(text[s:e])
    year = int(c) if len(c) == 4 else 2000 + int(c)
    if len(c) == 4 and not 1800 <= year <= 2099:
        return None
    ia, ib = int(a), int(b)
    if date_ok(year, ib, ia) or date_ok(year, ia, ib):
        return _span(s, e, "DATE", S_DATE)
    return None


def _h_date_den(text: str, s: int, e: int, years: bool) -> Span | None:
    a, b = _DATE_SEP.split(text[s:e])
    if not date_ok(None, int(b), int(a)):
        return None
    return _span(s - 4, e, "DATE", S_DATE_PART)


def _phone_span(text: str, s: int, e: int) -> Span | None:
    """Validate a phone candidate; trailing digit groups beyond the maximum are dropped."""
    if e < len(text) and text[e].isdigit():
        return None  # part of a longer number
    raw = text[s:e]
    # digit groups, leaving out the "(0)" of "+46 (0)8 ..."
    runs = [
        (m.start(), m.end())
        for m in _DIGIT_RUNS.finditer(raw)
        if raw[max(0, m.start() - 1) : m.end() + 1] != "(0)"
    ]
    n = sum(b - a for a, b in runs)
    national = not (raw[0] == "+" or raw.startswith("00"))
    if not national:
        digits = "".join(raw[a:b] for a, b in runs)
        if raw[0] == "0":
            digits, n = digits[2:], n - 2
        if digits.startswith("46"):
            lo, hi = 9, 11
        elif digits.startswith("44"):
            lo, hi = 11, 12
        else:
            lo, hi = 8, 15
    else:
        lo, hi = 8, 11
    # Drop trailing groups that are too many digits, a lone digit ("... 45 67 2 gånger"), or
    # two digits after a complete Swedish-style national number ("031-12 34 56 10").
    while len(runs) > 1:
        size = runs[-1][1] - runs[-1][0]
        if not (n > hi or size == 1 or (national and n == 11 and size == 2)):
            break
        runs.pop()
        n -= size
    if not lo <= n <= hi:
        return None
    end = s + runs[-1][1]
    if raw[0] == "(" and end <= s + raw.find(")"):
        return None
    if _TIME_RANGE.fullmatch(text, s, end):
        return None  # opening hours "0800-1700"
    return _span(s, end, "PHONE", S_PHONE)


def _h_phone(text: str, s: int, e: int, years: bool) -> Span | None:
    return _phone_span(text, s, e)


def _h_money(text: str, s: int, e: int, years: bool) -> Span | None:
    return _span(s, e, "MONEY", S_MONEY)


def _extend_date_left(text: str, s: int, with_the: bool) -> int:
    """Start of "Monday", "måndagen den", "den" or (before an ordinal) "the" before a date."""
    m = _DATE_PREFIX.search(text, max(0, s - 24), s)
    if m is None:  # pragma: no cover - the pattern can match empty at the end
        return s
    art = m.group("art")
    if art is not None and art.lower() == "the" and not with_the:
        return s
    return m.start()


def _h_date_dm(text: str, s: int, e: int, years: bool) -> Span | None:
    m = _DM_PARSE.match(text, s, e)
    if m is None:  # pragma: no cover - the same shape as the "date_dm" alternative
        return None
    month = _MONTH_WORDS.get(m.group("month").lower())
    year = int(m.group("year")) if m.group("year") else None
    if month is None or not date_ok(year, month, int(m.group("day"))):
        return None
    ordinal = m.group("ord") in {"st", "nd", "rd", "th"}
    start = _extend_date_left(text, s, with_the=ordinal)
    return _span(start, e, "DATE", S_DATE if year else S_DATE_PART)


def _h_addr_en(text: str, s: int, e: int, years: bool) -> Span | None:
    return _span(s, e, "ADDRESS", S_ADDRESS)


def _h_pc_se_pre(text: str, s: int, e: int, years: bool) -> Span | None:
    start = s - 3 if text[s - 3 : s] == "SE-" else s - 2
    if start > 0 and (text[start - 1].isalnum()):
        return None
    return _span(start, e, "POSTCODE", S_POSTCODE_SE)


def _h_pc_se(text: str, s: int, e: int, years: bool) -> Span | None:
    after = _NEXT_WORD.match(text, e, e + 40)
    if after is not None and after.group(1).lower() in _MONTH_WORDS:
        return None
    return _span(s, e, "POSTCODE", S_POSTCODE_SE)


def _h_ni_spaced(text: str, s: int, e: int, years: bool) -> Span | None:
    start = s - 3
    if start > 0 and text[start - 1].isalnum():
        return None
    return _span(start, e, "ID", S_NI) if ni_number_ok(text[start:e]) else None


def _h_decade(text: str, s: int, e: int, years: bool) -> Span | None:
    if not years:
        return None
    raw = text[s:e]
    digits = len(raw) - len(raw.lstrip("0123456789"))
    if digits == 4:
        if not 1000 <= int(raw[:4]) <= 2090:
            return None
    elif "-tal" not in raw and text[max(0, s - 4) : s].lower() != "mid-":
        word = _word_before(text, s)
        if word is None or text[word[0] : word[1]].lower().rstrip("-") not in _DECADE_CONTEXT:
            return None  # "in my 50s" is an age, not a decade
    return _span(s, e, "DATE", S_DECADE)


def _year_score(word: str) -> float:
    return S_YEAR_CONTEXT if word.lower() in _YEAR_CONTEXT else S_YEAR


def _h_year_range(text: str, s: int, e: int, years: bool) -> Span | None:
    if not years:
        return None
    word = _word_before(text, s)
    return _span(s, e, "DATE", _year_score(text[word[0] : word[1]] if word else ""))


def _h_year(text: str, s: int, e: int, years: bool) -> Span | None:
    word = _word_before(text, s)
    w = ""
    if word is not None:
        w = text[word[0] : word[1]]
        if w.rstrip(".").lower() in _MONTH_WORDS:
            found = _month_first(text, word[0], word[1])
            if found is not None:
                return found
        elif w in _MONEY_CODES:
            return _span(word[0], e, "MONEY", S_MONEY)
    if not years:
        return None
    return _span(s, e, "DATE", _year_score(w))


def _month_first(text: str, ws: int, we: int) -> Span | None:
    if text[ws:we] == "may":
        return None
    m = _MONTH_FIRST.match(text, ws)
    if m is None:
        return None
    month = _MONTH_WORDS.get(text[ws:we].rstrip(".").lower())
    if month is None:  # pragma: no cover - the regex matched a month word
        return None
    if m.group("day"):
        year = int(m.group("year")) if m.group("year") else None
        if not date_ok(year, month, int(m.group("day"))):
            return None
        if year is None and m.group("ord") is None and text[ws:we] in _NAME_LIKE_MONTHS:
            return None  # "I saw Jan 3 times"; "Jan. 3", "Jan 3rd" and "Jan 3, 2020" are dates
        score = S_DATE if year else S_DATE_PART
    else:
        score = S_DATE_PART
    start = _extend_date_left(text, ws, with_the=False)
    return _span(start, m.end(), "DATE", score)


def _street_start(text: str, ws: int, we: int) -> int | None:
    """Start of a Swedish street name whose last word is text[ws:we], or None."""
    word = text[ws:we]
    low = word.lower()
    suffix = next((x for x in _STREET_SUFFIXES if low.endswith(x)), None)
    if suffix is None or not low.replace("-", "").isalpha():
        return None
    prev = _word_before(text, ws)
    prev_word = text[prev[0] : prev[1]] if prev else ""
    if word in _STREET_WORDS_SV:  # "Olof Palmes gata": needs capitalised words before
        if not prev_word[:1].isupper():
            return None
        assert prev is not None
        start = prev[0]
        prev2 = _word_before(text, start)
        if prev2 and text[prev2[0]].isupper():
            start = prev2[0]
        return start
    if not word[0].isupper():
        return None
    if prev_word.lower() in _STREET_MODIFIERS and prev_word[:1].isupper():
        assert prev is not None
        return prev[0]
    if len(word) == len(suffix):  # "Vägen 2", "Plan 3": not a named street
        return None
    return ws


def _h_ctx(text: str, s: int, e: int, years: bool) -> Span | None:
    word = _word_before(text, s)
    if word is None:
        return None
    ws, we = word
    w = text[ws:we]
    low = w.rstrip(".").lower()
    if low in _MONTH_WORDS:
        return _month_first(text, ws, we)
    if low in _CASE_WORDS:
        m = _CASE_NUMBER.match(text, s)
        return _span(s, m.end(), "ID", S_CASE) if m else None
    if w in _MONEY_CODES:
        m = _AMOUNT_AT.match(text, s)
        return _span(ws, m.end(), "MONEY", S_MONEY) if m else None
    if low in _POSTCODE_WORDS:
        m = _SE_POSTCODE_AT.match(text, s)
        return _span(s, m.end(), "POSTCODE", S_POSTCODE_SE) if m else None
    if low in _FLAT_WORDS:
        m = _FLAT_ADDRESS.match(text, ws)
        return _span(ws, m.end(), "ADDRESS", S_ADDRESS) if m else None
    start = _street_start(text, ws, we)
    if start is None:
        return None
    m = _SV_HOUSE.match(text, s)
    return _span(start, m.end(), "ADDRESS", S_ADDRESS) if m else None


def _h_ukpc(text: str, s: int, e: int, years: bool) -> Span | None:
    for back in (1, 2):
        start = s - back
        if start < 0 or not text[start].isupper():
            break
        if (start == 0 or not text[start - 1].isalnum()) and uk_postcode_ok(text[start:e]):
            return _span(start, e, "POSTCODE", S_POSTCODE_UK)
    return None


def _h_ni_compact(text: str, s: int, e: int, years: bool) -> Span | None:
    start = s - 2
    if start > 0 and text[start - 1].isalnum():
        return None
    return _span(start, e, "ID", S_NI) if ni_number_ok(text[start:e]) else None


def _h_intl(text: str, s: int, e: int, years: bool) -> Span | None:
    return _phone_span(text, s, e)


def _h_cursym(text: str, s: int, e: int, years: bool) -> Span | None:
    return _span(s, e, "MONEY", S_MONEY)


_HANDLERS: dict[str, Handler] = {
    "pnr": _h_pnr,
    "nhs": _h_nhs,
    "ipv4": _h_ipv4,
    "date_iso": _h_date_iso,
    "date_num": _h_date_num,
    "date_den": _h_date_den,
    "phone": _h_phone,
    "money": _h_money,
    "date_dm": _h_date_dm,
    "addr_en": _h_addr_en,
    "pc_se_pre": _h_pc_se_pre,
    "pc_se": _h_pc_se,
    "ni_spaced": _h_ni_spaced,
    "decade": _h_decade,
    "year_range": _h_year_range,
    "year": _h_year,
    "ctx": _h_ctx,
    "ukpc": _h_ukpc,
    "ni_compact": _h_ni_compact,
    "intl": _h_intl,
    "paren": _h_phone,
    "cursym": _h_cursym,
}


def _scan_numbers(text: str, out: list[Span], years: bool) -> None:
    search = _NUM.search
    handlers = _HANDLERS
    pos = 0
    while True:
        m = search(text, pos)
        if m is None:
            return
        s = m.start()
        kind = m.lastgroup
        assert kind is not None
        found = handlers[kind](text, s, m.end(), years)
        if found is None and kind in _STANDALONE:
            # validation said no: try the later interpretations at the same place
            for other in _CLEAN_ORDER[_CLEAN_ORDER.index(kind) + 1 :]:
                m2 = _STANDALONE[other].match(text, s)
                if m2 is not None:
                    found = handlers[other](text, s, m2.end(), years)
                    if found is not None:
                        break
        if found is None:
            pos = s + 1
        else:
            out.append(found)
            pos = max(found.end, s + 1)


# ---------------------------------------------------------------------------------------
# E-mail, URLs, IPv6
# ---------------------------------------------------------------------------------------

_LABEL = r"[^\W_](?:[\w-]{0,61}[^\W_])?"
_EMAIL_DOMAIN = re.compile(rf"@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,24}}(?![\w-])")
_EMAIL_LOCAL_REV = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]{1,64}")
_TLDS = _trie("com org net edu gov info io eu se nu uk dk fi de nl fr ie".split())
_DOMAIN_REV = re.compile(r"(?:[^\W_][\w-]*\.)*[^\W_][\w-]*[^\W_]")  # labels, reversed
_URL_REST = re.compile(r"[^\s<>\"'`{}|\\^\[\]]*")
_URL_TRAILING = ".,;:!?)]}'\"\u2019"
_SCHEME_REV = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]{0,9}")
# Both passes start with one literal character, which the engine finds at memchr speed.
_DOT = re.compile(rf"\.(?:{_TLDS}(?![\w-])|(?<=[Ww]{{3}}\.))")
_COLON = re.compile(r":(?=//|:|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:)")
_IPV6_LEFT_REV = re.compile(r"[0-9A-Fa-f:]*")
_IPV6_RIGHT = re.compile(r"[0-9A-Fa-f:.]*")


def _scan_emails(text: str, out: list[Span]) -> None:
    at = text.find("@")
    while at >= 0:
        m = _EMAIL_DOMAIN.match(text, at)
        if m is not None:
            local = _EMAIL_LOCAL_REV.match(text[max(0, at - 64) : at][::-1])
            if local is not None:
                start = at - local.end()
                while start < at and text[start] in ".'":
                    start += 1
                if start < at:
                    out.append(_span(start, m.end(), "EMAIL", S_EMAIL))
            at = text.find("@", m.end())
        else:
            at = text.find("@", at + 1)


def _url_end(text: str, pos: int) -> int:
    end = _URL_REST.match(text, pos).end()  # type: ignore[union-attr]
    while end > pos and text[end - 1] in _URL_TRAILING:
        if text[end - 1] == ")" and text.count("(", pos, end) >= text.count(")", pos, end):
            break
        end -= 1
    return end


def _scan_colons(text: str, out: list[Span]) -> None:
    """URLs with a scheme ("https://...") and IPv6 addresses: both start at a colon."""
    pos = 0
    search = _COLON.search
    while True:
        m = search(text, pos)
        if m is None:
            return
        i = m.start()
        if text.startswith("//", i + 1):
            scheme = _SCHEME_REV.match(text[max(0, i - 10) : i][::-1])
            end = _url_end(text, i + 3)
            if scheme is not None and end > i + 3:
                out.append(_span(i - scheme.end(), end, "URL", S_URL))
            pos = max(end, i + 3)
            continue
        left = _IPV6_LEFT_REV.match(text[max(0, i - 45) : i][::-1])
        start = i - (left.end() if left else 0)
        end = _IPV6_RIGHT.match(text, i).end()  # type: ignore[union-attr]
        while end > start and (
            text[end - 1] == "." or (text[end - 1] == ":" and text[end - 2 : end] != "::")
        ):
            end -= 1
        bounded = (start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "_.")) and (
            end == len(text) or not (text[end].isalnum() or text[end] == "_")
        )
        if bounded and ipv6_ok(text[start:end]) and text[start:end].strip(":"):
            out.append(_span(start, end, "IP", S_IP))
        pos = max(end, i + 1)


def _scan_dots(text: str, out: list[Span]) -> None:
    """ "www." addresses and bare domains with a common top-level domain ("1177.se")."""
    covered = [(sp.start, sp.end) for sp in out if sp.entity_type in {"URL", "EMAIL"}]
    covered.sort()
    k = 0
    last_end = 0
    for m in _DOT.finditer(text):
        dot = m.start()
        if dot < last_end:
            continue
        while k < len(covered) and covered[k][1] <= dot:
            k += 1
        if k < len(covered) and covered[k][0] <= dot:
            continue  # inside a URL with a scheme or an e-mail address
        if m.end() == dot + 1:  # "www." (a top-level domain is never empty)
            start = dot - 3
            end = _url_end(text, dot + 1)
            if (start == 0 or not (text[start - 1].isalnum() or text[start - 1] in "/.@")) and (
                end > dot + 2
            ):
                out.append(_span(start, end, "URL", S_URL))
                last_end = end
            continue
        labels = _DOMAIN_REV.match(text[max(0, dot - 80) : dot][::-1])
        if labels is None or len(labels.group().split(".", 1)[0]) < 2:
            continue
        start = dot - labels.end()
        if start > 0 and (text[start - 1] in "@/.:-_" or text[start - 1].isalnum()):
            continue
        end = m.end()
        if end < len(text) and text[end] == "/":
            end = _url_end(text, end)
        out.append(_span(start, end, "URL", S_DOMAIN))
        last_end = end


# ---------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------


def _resolve(spans: list[Span]) -> list[Span]:
    """Sorted, non-overlapping spans: the longer one wins, then the higher score."""
    spans.sort()
    if all(a.end <= b.start for a, b in itertools.pairwise(spans)):
        return spans
    kept: list[tuple[int, int]] = []
    chosen: list[Span] = []
    for sp in sorted(spans, key=lambda x: (x.start - x.end, -x.score, x.start)):
        i = bisect.bisect_left(kept, (sp.start, sp.end))
        if i > 0 and kept[i - 1][1] > sp.start:
            continue
        if i < len(kept) and kept[i][0] < sp.end:
            continue
        kept.insert(i, (sp.start, sp.end))
        chosen.append(sp)
    chosen.sort()
    return chosen


def find_patterns(text: str, ctx: RecogniserContext | None = None) -> list[Span]:
    """Every pattern identifier in ``text``: sorted, non-overlapping :class:`Span` objects."""
    years = True if ctx is None else bool(ctx.options.get("years", True))
    out: list[Span] = []
    if not text:
        return out
    _scan_numbers(text, out, years)
    for symbol in "£€":  # str.find is far quicker than a regex scan for a non-ASCII set
        i = text.find(symbol)
        while i >= 0:
            m = _CURSYM.match(text, i)
            if m is not None:
                out.append(_span(i, m.end(), "MONEY", S_MONEY))
            i = text.find(symbol, i + 1)
    if "@" in text:
        _scan_emails(text, out)
    _scan_colons(text, out)
    _scan_dots(text, out)
    return _extend_dates(text, _resolve(out))


_RANGE_PREFIX = re.compile(
    r"(?:\b(?:\d{1,2}(?:st|nd|rd|th|:e|:a)?|"
    + "|".join(sorted({m for m in _MONTH_WORDS if len(m) > 3}, key=len, reverse=True))
    + r")[ \t]*(?:and|och|or|eller|to|till|until|-|\u2013|&)[ \t]*)+\Z",
    re.IGNORECASE,
)
_RANGE_LEAD = re.compile(
    r"(?:\b(?:the[ \t]+)?(?:early|late|mid|end|beginning|start|middle|slutet|början|mitten|"
    r"halfway|morning|evening|night|afternoon)(?:[ \t]+(?:morning|evening|night|of))*"
    r"[ \t]+(?:of[ \t]+|av[ \t]+|på[ \t]+)?)\Z",
    re.IGNORECASE,
)


def _extend_dates(text: str, spans: list[Span]) -> list[Span]:
    """Grow a date over what names its range or part: "16 and 17 April 1997",
    "June and August 1983", "end of September 1994", "early morning of 29 October"."""
    out = []
    for span in spans:
        if span.entity_type == "DATE" and span.start:
            window = text[max(0, span.start - 40) : span.start]
            m = _RANGE_PREFIX.search(window) or _RANGE_LEAD.search(window)
            if m:
                span = Span(
                    span.start - len(window) + m.start(),
                    span.end,
                    "DATE",
                    span.recogniser,
                    span.score,
                )
        out.append(span)
    return out


def find_patterns_adapter(text: str, ctx: RecogniserContext) -> list[Span]:
    """:class:`Recogniser` entry point (``find(text, ctx)``)."""
    return find_patterns(text, ctx)


PATTERNS = Recogniser(
    NAME,
    ("EMAIL", "URL", "IP", "PHONE", "ID", "POSTCODE", "ADDRESS", "DATE", "MONEY"),
    find_patterns_adapter,
    priority=100,
    version="1",
    description=(
        "validated formats: e-mail, URLs, IP addresses, Swedish/UK/international phone "
        "numbers, personnummer (Luhn), NHS (mod 11) and NI numbers, case numbers, "
        "UK and Swedish postcodes, street addresses, dates, years, amounts of money"
    ),
)
