"""The scanner's shortcut for ordinary capitalised words equals judging them in full."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qualpipe.anonymise import scanner
from qualpipe.anonymise.lexicon import lexicon

LEX = lexicon()

# words of every kind the judgement tells apart: dictionary words, months, names, places,
# genitives, institutions and streets by suffix, acronyms, letters, foreign words
WORDS = sorted(
    {
        *"Court Government Convention Article March May Will Hans Per Mark Bank".split(),
        *"Anna Annas Karin Karins Svensson Gävle Gävles Leeds Sandviken Jordan".split(),
        *"Skönviksgården Storgatan Vårdcentralen Hospital Clinic NHS ADHD ICA".split(),
        *"K W A O X Zorblax Qwertyuiop Yes Finns Swedish Christmas Monday".split(),
        *"Sister Doctor Doktor Interviewer IP INT Kommun Tingsrätt Sjukhus".split(),
        *itertools.islice(sorted(LEX.first_names), 0, None, max(1, len(LEX.first_names) // 25)),
        *itertools.islice(sorted(LEX.surnames), 0, None, max(1, len(LEX.surnames) // 25)),
        *itertools.islice(sorted(LEX.places), 0, None, max(1, len(LEX.places) // 25)),
    }
)
BEFORE = sorted(
    {
        *scanner.TITLES,
        *scanner.INTRO_LAST_WORDS,
        *scanner.PLACE_PREPOSITIONS,
        *scanner.KINSHIP_TITLES,
        *scanner.LETTER_LABELS,
        *"the and said my her with of".split(),
        "Sister",
        "Article",
        "[00:01:02]",
        "2019,",
    }
)
AFTER = sorted(
    {*scanner.POST_TITLES, *scanner.ORG_NOUNS_AFTER, "Sjukhus", "said", "and", "", ":", "'s"}
)


def judge(text: str, s: int, e: int, language: str, shortcut: bool) -> scanner.Scan:
    out = scanner.Scan()
    saved = scanner._quiet
    if not shortcut:
        scanner._quiet = lambda *args: False  # type: ignore[assignment]
    try:
        scanner._phrase(text, s, e, False, language, LEX, out)
    finally:
        scanner._quiet = saved
    return out


def check(before: str, word: str, after: str, language: str, filler: str) -> bool:
    """Judge ``word`` mid-sentence with and without the shortcut; True if it was taken."""
    head = f"{filler} {before} "
    text = f"{head}{word} {after} and then"
    s = len(head)
    e = s + len(word)
    fast = judge(text, s, e, language, shortcut=True)
    assert fast == judge(text, s, e, language, shortcut=False), (text, word)
    stripped = word[:-2] if word.endswith(("'s", "’s")) else word.rstrip("'’")
    return bool(stripped) and scanner._quiet(stripped, text, s, s + len(stripped), language, LEX)


@pytest.mark.parametrize("language", ["en", "sv"])
def test_the_shortcut_never_drops_a_span(language: str) -> None:
    taken = sum(
        check(before, word, after, language, "we talked about it")
        for word, before, after in itertools.product(WORDS, BEFORE, AFTER)
    )
    assert taken > 1000  # the shortcut is taken often, and then nothing differs


@settings(max_examples=300, deadline=None)
@given(
    before=st.sampled_from(BEFORE),
    word=st.sampled_from(WORDS) | st.from_regex(r"[A-ZÅÄÖ][a-zåäö'’-]{0,9}", fullmatch=True),
    after=st.sampled_from(AFTER) | st.from_regex(r"[A-Za-zåäö]{1,8}", fullmatch=True),
    language=st.sampled_from(["en", "sv"]),
    filler=st.sampled_from(["we talked", "Karin said", "in the morning", "x"]),
)
def test_the_shortcut_equals_the_full_judgement(
    before: str, word: str, after: str, language: str, filler: str
) -> None:
    check(before, word, after, language, filler)
