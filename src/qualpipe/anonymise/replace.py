"""Replacing identifiers: typed placeholders, realistic pseudonyms or descriptions.

Modes, chosen per entity type (``replace: {PERSON: pseudonym, "*": placeholder}``):

``placeholder``  ``[PERSON 3]``, ``[PLACE 1]``: numbered in order of first appearance;
                 a lone first name or surname reuses the number of the one full name it
                 belongs to.
``pseudonym``    realistic and consistent: people get first names of the same gender
                 (where the gazetteer knows it) and surnames, in the document's
                 language; places get towns of the same country; other types fall back
                 to placeholders. A pseudonym is never one of the corpus's real values.
``description``  ``(name)``, ``(name of the institution)``, ``(namn)``, ... in the style
                 of published transcripts, in English or Swedish.

The same value always gets the same replacement, in every document and every re-run
with the same key.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from qualpipe.anonymise.engine import casefold_same_length, normalise_value, person_tokens
from qualpipe.anonymise.keyfile import KeyStore
from qualpipe.anonymise.lexicon import lexicon
from qualpipe.anonymise.recognisers import Span

MODES = ("placeholder", "pseudonym", "description")
LABELS = {"OTHER": "NAME"}
DESCRIPTIONS = {
    "en": {
        "PERSON": "(name)",
        "PLACE": "(name of the place)",
        "ORG": "(name of the institution)",
        "ADDRESS": "(address)",
        "POSTCODE": "(postcode)",
        "DATE": "(date)",
        "PHONE": "(phone number)",
        "EMAIL": "(e-mail address)",
        "URL": "(web address)",
        "IP": "(IP address)",
        "ID": "(identity number)",
        "MONEY": "(amount)",
        "DEM": "(nationality)",
        "OTHER": "(name)",
    },
    "sv": {
        "PERSON": "(namn)",
        "PLACE": "(ortnamn)",
        "ORG": "(namn på verksamheten)",
        "ADDRESS": "(adress)",
        "POSTCODE": "(postnummer)",
        "DATE": "(datum)",
        "PHONE": "(telefonnummer)",
        "EMAIL": "(e-postadress)",
        "URL": "(webbadress)",
        "IP": "(IP-adress)",
        "ID": "(personnummer)",
        "MONEY": "(belopp)",
        "DEM": "(nationalitet)",
        "OTHER": "(namn)",
    },
}
LOCALES = {"sv": ("sv_SE",), "en": ("en_GB", "en_US"), None: ("en_GB", "en_US")}
COUNTRIES = {"sv": "SE", "en": "GB", None: "GB"}


@dataclass(frozen=True)
class Replaced:
    """A replacement written into the new text."""

    start: int  # in the new text
    end: int
    old_start: int  # in the original text
    old_end: int
    entity_type: str
    recogniser: str
    score: float
    replacement: str


def _match_case(original: str, new: str) -> str:
    if original.isupper() and len(original) > 1:
        return new.upper()
    if original.islower():
        return new.lower()
    return new


class Replacer:
    def __init__(
        self, key: KeyStore, modes: Mapping[str, str], originals: set[str] | None = None
    ) -> None:
        self.key = key
        self.modes = modes
        # pseudonyms must never be a real value of the corpus (or an earlier pseudonym)
        self.taken = {casefold_same_length(o) for o in (originals or set())}
        self.taken |= {casefold_same_length(r) for r in key.replacements()}
        # pseudonym pools, sorted once; a pool found with nothing left stays so (``taken``
        # only grows), so a corpus with more names than its pools does not search them again
        self._pools: dict[tuple[str, ...], list[str]] = {}
        self._exhausted: set[tuple[str, ...]] = set()

    def mode(self, etype: str) -> str:
        return self.modes.get(etype) or self.modes.get("*") or "placeholder"

    # -- choosing replacements -----------------------------------------------------
    def replacement(self, etype: str, value: str, language: str | None) -> str:
        value = normalise_value(value)
        mode = self.mode(etype)
        if mode == "description":
            lang = language if language in DESCRIPTIONS else "en"
            return DESCRIPTIONS[lang].get(etype, "(identifier)")
        if mode == "pseudonym" and etype == "PERSON":
            return self._person_pseudonym(value, language)
        if mode == "pseudonym" and etype == "PLACE":
            return self._place_pseudonym(value, language)
        return self._placeholder(etype, value)

    def _placeholder(self, etype: str, value: str) -> str:
        folded = value.casefold()
        known = self.key.get(etype, folded)
        if known is not None:
            return known
        label = LABELS.get(etype, etype)
        linked = self._linked_person(folded) if etype == "PERSON" else None
        text = linked or f"[{label} {self.key.next_number(label)}]"
        self.key.put(etype, folded, text)
        return text

    def _linked_person(self, folded: str) -> str | None:
        """A lone name part reuses its full name's number, and the other way round
        (looked up in the key's index of placeholder names, not by reading every entry)."""
        tokens = folded.split()
        if len(tokens) == 1:
            candidates = set(self.key.placeholder_names(tokens[0], whole=False))
        elif tokens:
            candidates = set(self.key.placeholder_names(tokens[0], whole=True))
            candidates |= set(self.key.placeholder_names(tokens[-1], whole=True))
        else:
            return None
        return candidates.pop() if len(candidates) == 1 else None

    def _pick(self, pool: Sequence[str], etype: str, value: str, name: tuple[str, ...] = ()) -> str:
        if not pool or (name and name in self._exhausted):
            return ""
        digest = hashlib.sha256(f"{self.key.salt}\0{etype}\0{value}".encode()).digest()
        start = int.from_bytes(digest[:8], "big") % len(pool)
        for i in range(len(pool)):
            candidate = pool[(start + i) % len(pool)]
            folded = casefold_same_length(candidate)
            # neither the pseudonym nor any part of it ("Eva" in "Eva-Lena") may be a
            # real value of the corpus, not even in the genitive the text may add
            # ("Kalles" -> "Roberts" when Roberts is a real surname): the output would
            # then show a real name
            parts = folded.replace("-", " ").split()
            if not any(p in self.taken or p + "s" in self.taken for p in (folded, *parts)):
                self.taken.add(folded)
                return candidate
        if name:
            self._exhausted.add(name)
        return ""

    def _person_pool(
        self, name: tuple[str, ...], locales: Sequence[str], is_first: bool, gender: str | None
    ) -> list[str]:
        """First names (of a gender) or surnames of the locales, sorted once per run."""
        if name in self._pools:
            return self._pools[name]
        lex = lexicon()
        pool: list[str] = []
        for loc in locales:
            if is_first:
                f, m = lex.first_by_locale.get(loc, ((), ()))
                pool += list({"f": f, "m": m}.get(gender or "u", f + m))
            else:
                pool += list(lex.surnames_by_locale.get(loc, ()))
        self._pools[name] = sorted(set(pool))
        return self._pools[name]

    def _person_pseudonym(self, value: str, language: str | None) -> str:
        lex = lexicon()
        tokens = person_tokens(value) or [value]
        out = []
        for i, token in enumerate(tokens):
            folded = token.casefold()
            known = self.key.get("_PERSON_TOKEN", folded)
            if known is None:
                gender = lex.first_names.get(token)
                is_first = gender is not None and (i == 0 or token not in lex.surnames)
                locales = LOCALES.get(language, LOCALES[None])
                name = (*locales, (gender or "u") if is_first else "surname")
                pool = self._person_pool(name, locales, is_first, gender)
                known = self._pick(pool, "PERSON", folded, name) or self._placeholder(
                    "PERSON", value
                )
                self.key.put("_PERSON_TOKEN", folded, known)
            out.append(_match_case(token, known))
        text = " ".join(out)
        self.key.put("PERSON", value.casefold(), text)
        return text

    def _place_pseudonym(self, value: str, language: str | None) -> str:
        folded = value.casefold()
        known = self.key.get("PLACE", folded)
        if known is None:
            country = COUNTRIES.get(language, "GB")
            pool = self._pools.get(("places", country))
            if pool is None:
                places = lexicon().places_by_country.get(country, ())
                pool = self._pools[("places", country)] = sorted(places)
            known = self._pick(pool, "PLACE", folded, ("places", country)) or self._placeholder(
                "PLACE", value
            )
            self.key.put("PLACE", folded, known)
        return _match_case(value, known)

    # -- applying them ---------------------------------------------------------------
    def apply(
        self, text: str, spans: Sequence[Span], language: str | None
    ) -> tuple[str, list[Replaced]]:
        pieces: list[str] = []
        done: list[Replaced] = []
        pos = 0
        new_len = 0
        for span in spans:
            pieces.append(text[pos : span.start])
            new_len += span.start - pos
            rep = self.replacement(span.entity_type, text[span.start : span.end], language)
            pieces.append(rep)
            done.append(
                Replaced(
                    new_len,
                    new_len + len(rep),
                    span.start,
                    span.end,
                    span.entity_type,
                    span.recogniser,
                    span.score,
                    rep,
                )
            )
            new_len += len(rep)
            pos = span.end
        pieces.append(text[pos:])
        return "".join(pieces), done


class Remapper:
    """Maps offsets of the original text into the new text (binary search).

    An offset strictly inside a replaced span moves to the replacement's start
    (``side="start"``) or end (``side="end"``).
    """

    def __init__(self, done: Sequence[Replaced]) -> None:
        self.done = done
        self.starts = [r.old_start for r in done]

    def __call__(self, offset: int, side: str) -> int:
        # the last replacement that starts before the offset
        i = bisect.bisect_left(self.starts, offset) - 1
        if i < 0:
            return offset
        r = self.done[i]
        if offset < r.old_end:
            return r.start if side == "start" else r.end
        return offset + (r.end - r.old_end)
