"""A fast, rule-based sentence splitter for English and Swedish transcripts.

:func:`split_sentences` returns ``(start, end)`` offsets into the text it was given, so a
sentence is ``text[start:end]`` (trimmed of surrounding whitespace). It never reads or
splits outside ``[start, end)``, which lets callers split one speaker turn at a time.

How it works: one regular expression finds *candidate* boundaries (``.``, ``!``, ``?``,
``…`` or ``...``, optionally followed by closing quotes or brackets, then whitespace), and
blank lines, which always end a sentence. Each candidate is then checked by a few cheap
rules on the word before it and the word after it:

* ``?`` and ``!`` end a sentence, except inside a quotation that the sentence goes on
  after (``"Really?" she asked``).
* An ellipsis ends a sentence unless the next word starts with a lower-case letter
  (``I was... well``).
* A full stop does not end a sentence when the next word starts with a lower-case
  letter; after an abbreviation that is always followed by more words (``Dr.``,
  ``e.g.``, ``t.ex.``, ``bl.a.``, ``kl.``); after ``No.``/``nr.``/``s.`` before a number;
  after an abbreviation that may end a sentence (``etc.``, ``osv.``, ``a.m.``) unless
  an upper-case word follows; after an initial (``C. A. Whomersley``) or a dotted acronym
  (``U.S.``) unless a common sentence opener follows (``plan B. Then we left``); or after
  a number that opens its line (a list item, ``1. Buy food``).

Decimal numbers and times (``3.5``, ``14.30``), dotted names (``www.example.se``) and
abbreviations inside a word (``e.g.`` before ``g``) never match the candidate pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["ABBREVIATIONS", "split_sentences"]

_OPENERS = "\"'“”„«»‘’([{-–—¿¡*"
# Terminal punctuation, closing quotes or brackets, whitespace, opening quotes or
# brackets or dashes, and the first character of the next word (none at the end).
_CANDIDATE = re.compile(
    r"([.!?…]+)([\"'”’»«)\]}]*)(?=\s|$)\s*?(?:[\"'“”„«»‘’(\[{\-–—¿¡*]*(\S)|(?=\n[ \t]*\n|$))"
)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# a short bracketed annotation, (laughs) or [ohörbart], and the next word after it
_ANNOTATION = re.compile(r"[^\n()\[\]]{0,60}[)\]]")
_NEXT_WORD = re.compile(r"\s*[\"'“”„«»‘’(\[{\-–—¿¡*]*(\S)")
_TOKEN = re.compile(r"\S+")
_ACRONYM = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]")


def _words(*groups: str) -> frozenset[str]:
    return frozenset(w for g in groups for w in g.split())


#: Abbreviations never followed by the end of a sentence (lower case, without the
#: final full stop). Titles (``Mr.``, ``Dr.``) are matched in any case; ``St.`` only
#: capitalised (*Saint*): in lower case it is the Swedish *stycken*, which may end one.
_TITLES = _words("mr mrs ms messrs mme mlle dr prof capt sgt")
_NON_FINAL = {
    "en": _words("e.g eg i.e ie vs v cf viz approx ca c esp incl excl dept ibid resp"),
    "sv": _words(
        "t.ex bl.a dvs d.v.s ca kl s.k p.g.a pga fr.o.m t.o.m resp ev jfr f.d f.ö",
        "s.a.s m.a.o enl inkl exkl ang tfn tel obs",
    ),
}
#: Abbreviations that may end a sentence: they do when an upper-case word follows.
_FINAL = {
    "en": _words("etc a.m p.m am pm al jr inc ltd co corp bros st"),
    "sv": _words("osv o.s.v m.m mm m.fl o.d o.dyl etc st kr"),
}
#: Abbreviations followed by a number (``No. 5``, ``nr. 3``, ``s. 12``); otherwise words.
_NUMBERED = {
    "en": _words("no nos nr p pp vol vols ch chap sec art fig figs"),
    "sv": _words("nr s sid kap art avd uppl fig"),
}
#: Common sentence openers: after an initial or acronym, they mean a new sentence.
_OPENERS_WORDS = {
    "en": _words(
        "the a an i we you he she it they this that these those there then but and so",
        "or if when what why how who yes no well my our his her their in on at after",
        "before because as now just also maybe oh okay ok not",
    ),
    "sv": _words(
        "det den de jag vi du ni han hon man en ett där här då sen sedan men och så",
        "eller om när vad varför hur vem ja nej jo nä mm alltså eftersom efter innan",
        "i på med till nu bara också kanske inte min mitt mina vår vårt",
    ),
}


class _Rules:
    __slots__ = ("final", "non_final", "numbered", "openers")

    def __init__(self, languages: Iterable[str]) -> None:
        langs = list(languages)
        self.non_final = frozenset().union(*(_NON_FINAL[lang] for lang in langs))
        self.final = frozenset().union(*(_FINAL[lang] for lang in langs))
        self.numbered = frozenset().union(*(_NUMBERED[lang] for lang in langs))
        self.openers = frozenset().union(*(_OPENERS_WORDS[lang] for lang in langs))


_RULES = {
    "en": _Rules(["en"]),
    "sv": _Rules(["sv"]),
    None: _Rules(["en", "sv"]),
}

#: Every abbreviation the splitter knows, by language (for documentation and tests).
ABBREVIATIONS: dict[str, frozenset[str]] = {
    lang: _TITLES | _NON_FINAL[lang] | _FINAL[lang] | _NUMBERED[lang] for lang in ("en", "sv")
}


def _rules(language: str | None) -> _Rules:
    if language:
        key = language.lower().split("-")[0].split("_")[0]
        if key in _RULES:
            return _RULES[key]
    return _RULES[None]


def _after_initial_is_boundary(text: str, at: int, end: int, rules: _Rules) -> bool:
    """After an initial or acronym: a boundary only if a common sentence opener follows."""
    m = _TOKEN.match(text, at, end)
    if m is None:
        return True
    nxt = m.group()
    if len(nxt) == 2 and nxt[1] == "." and nxt[0].isupper():
        return False  # another initial: C. A. Whomersley
    return nxt.rstrip(".,;:!?\"'”’»)").lower() in rules.openers


def _full_stop_is_boundary(text: str, lo: int, s: int, nc: int, end: int, rules: _Rules) -> bool:
    """Does the full stop at ``s`` end a sentence? ``nc``: start of the next word."""
    nxt = text[nc]
    if nxt.islower():
        return False
    i = s
    while i > lo and not text[i - 1].isspace():
        i -= 1
    token = text[i:s].lstrip(_OPENERS)
    if not token:
        return True
    low = token.lower()
    if low in _TITLES or token == "St":
        return False  # Dr. Smith, St. Louis (but: 5 st. Sen gick vi)
    if low in rules.non_final:
        return False
    if low in rules.numbered and nxt.isdigit():
        return False
    if low in rules.final:
        return nxt.isupper() or not nxt.isalnum()
    if token.isdigit():
        # a list item number opening its line (``1. Buy food``) is not a sentence
        j = i
        while j > lo and text[j - 1] in " \t":
            j -= 1
        return not (j == lo or text[j - 1] == "\n")
    if len(token) == 1:
        if token.isupper():
            return _after_initial_is_boundary(text, nc, end, rules)
        return True
    if "." in token and _ACRONYM.fullmatch(token):
        return _after_initial_is_boundary(text, nc, end, rules)
    return True


def split_sentences(
    text: str, start: int = 0, end: int | None = None, language: str | None = None
) -> list[tuple[int, int]]:
    """Sentences of ``text[start:end]`` as ``(start, end)`` offsets into ``text``.

    Offsets are trimmed of whitespace and never empty; sentences are in order and do
    not overlap. ``language`` (``"en"``, ``"sv"``, or ``None`` for both) chooses the
    abbreviation lists.
    """
    n = len(text)
    end = n if end is None else max(0, min(end, n))
    start = max(0, min(start, end))
    rules = _rules(language)
    cuts = [m.start() for m in _BLANK_LINE.finditer(text, start, end)]
    append = cuts.append
    last = start
    for m in _CANDIDATE.finditer(text, start, end):
        nc = m.start(3)
        if nc < 0:
            continue  # a blank line or the end of the region follows: a cut anyway
        cut = m.end(2)
        if text[nc - 1] in "([" and not text[nc].isupper():
            # "That was it. (laughs) Then ...": the annotation stays with the sentence
            note = _ANNOTATION.match(text, nc, end)
            if note is not None:
                after = _NEXT_WORD.match(text, note.end(), end)
                if after is None:
                    continue
                cut, nc = note.end(), after.start(1)
        punct = m.group(1)
        if "?" in punct or "!" in punct:
            if m.group(2) and text[nc].islower():
                continue  # "Really?" she asked.
        elif len(punct) > 1 or punct == "…":
            # trailing off ends a sentence; a hesitation (Uh... I mean... ) does not
            if text[nc].islower() or len(text[last : m.start()].split()) < 3:
                continue
        elif not _full_stop_is_boundary(text, start, m.start(), nc, end, rules):
            continue
        append(cut)
        last = cut
    if len(cuts) > 1:
        cuts.sort()
    spans: list[tuple[int, int]] = []
    pos = start
    cuts.append(end)
    for cut in cuts:
        if cut <= pos:
            continue
        piece = text[pos:cut]
        body = piece.lstrip()
        if body:
            a = cut - len(body)
            spans.append((a, a + len(body.rstrip())))
        pos = cut
    return spans
