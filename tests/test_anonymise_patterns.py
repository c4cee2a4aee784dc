"""The ``patterns`` recogniser: validators, one test group per entity type, properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qualpipe.anonymise.patterns import (
    PATTERNS,
    date_ok,
    find_patterns,
    find_patterns_adapter,
    ipv4_ok,
    ipv6_ok,
    luhn_ok,
    nhs_ok,
    ni_number_ok,
    personnummer_date_ok,
    personnummer_ok,
    uk_postcode_ok,
)
from qualpipe.anonymise.recognisers import ENTITY_TYPES, RecogniserContext


def found(text: str) -> list[tuple[str, str]]:
    return [(text[s.start : s.end], s.entity_type) for s in find_patterns(text)]


def only(text: str) -> tuple[str, str]:
    """The single span found in ``text``."""
    spans = found(text)
    assert len(spans) == 1, spans
    return spans[0]


def score_of(text: str, value: str) -> float:
    for s in find_patterns(text):
        if text[s.start : s.end] == value:
            return s.score
    raise AssertionError(f"{value!r} not found in {text!r}: {found(text)}")


# --- validators -------------------------------------------------------------------------


def test_luhn() -> None:
    assert luhn_ok("8112189876")
    assert luhn_ok("79927398713")
    assert not luhn_ok("8112189875")
    assert not luhn_ok("")
    assert not luhn_ok("81121898x6")


@pytest.mark.parametrize(
    "value", ["811218-9876", "811218+9876", "8112189876", "19811218-9876", "198112189876"]
)
def test_personnummer_forms(value: str) -> None:
    assert personnummer_ok(value)


def test_personnummer_checks() -> None:
    assert personnummer_ok("701063-2391")  # samordningsnummer: day 03 + 60
    assert not personnummer_ok("811218-9875")  # check digit
    assert personnummer_date_ok("811218-9875")  # ... but the date is fine
    assert not personnummer_date_ok("811318-9876")  # month 13
    assert not personnummer_date_ok("810230-1234")  # 30 February
    assert personnummer_date_ok("000229-1234")  # 2000 was a leap year
    assert not personnummer_date_ok("010229-1234")
    assert not personnummer_ok("81-12-18-9876")


def test_nhs() -> None:
    assert nhs_ok("943 476 5919")
    assert nhs_ok("9434765919")
    assert nhs_ok("943-476-5919")
    assert not nhs_ok("943 476 5918")
    assert not nhs_ok("943 476 591")
    assert not nhs_ok("1000000010")  # check digit would be 10: never issued


def test_ni_number() -> None:
    assert ni_number_ok("AB 12 34 56 C")
    assert ni_number_ok("ab123456c")
    assert not ni_number_ok("QQ 12 34 56 C")  # Q is not used
    assert not ni_number_ok("GB 12 34 56 A")  # excluded prefix
    assert not ni_number_ok("AB 12 34 56 E")  # suffix A-D only


@pytest.mark.parametrize(
    "value", ["SW1A 1AA", "M1 1AE", "EC1A 1BB", "W1A 0AX", "B33 8TH", "CR2 6XH", "DN55 1PT"]
)
def test_uk_postcode_valid(value: str) -> None:
    assert uk_postcode_ok(value)


@pytest.mark.parametrize("value", ["XX1 1XX", "SW1A 1CA", "SW1A1AA", "Q1 1AA", "M1 AAE"])
def test_uk_postcode_invalid(value: str) -> None:
    assert not uk_postcode_ok(value)


def test_ip_and_date_validators() -> None:
    assert ipv4_ok("192.168.1.1")
    assert not ipv4_ok("256.1.1.1")
    assert not ipv4_ok("1.2.3")
    assert ipv6_ok("2001:db8::1")
    assert ipv6_ok("::1")
    assert not ipv6_ok("2001:db8:::1")
    assert not ipv6_ok("12:30")
    assert date_ok(2024, 2, 29)
    assert not date_ok(2023, 2, 29)
    assert date_ok(None, 2, 29)
    assert not date_ok(None, 4, 31)
    assert not date_ok(None, 13, 1)


# --- EMAIL, URL, IP ---------------------------------------------------------------------


def test_email() -> None:
    assert only("My email is anna.svensson@example.se, so write.") == (
        "anna.svensson@example.se",
        "EMAIL",
    )
    assert only("j.o'brien+nhs@trust.nhs.uk.") == ("j.o'brien+nhs@trust.nhs.uk", "EMAIL")
    assert found("an @ sign, @handle and user@localhost") == []


def test_urls() -> None:
    text = (
        "See https://www.example.com/path?q=1. Or www.1177.se, or nhs.uk (and http://x.org/a_(b))"
    )
    assert found(text) == [
        ("https://www.example.com/path?q=1", "URL"),
        ("www.1177.se", "URL"),
        ("nhs.uk", "URL"),
        ("http://x.org/a_(b)", "URL"),
    ]
    assert score_of(text, "nhs.uk") < score_of(text, "www.1177.se")


def test_url_negatives() -> None:
    assert found("t.ex. bl.a. e.g. i.e. osv. etc. s.k. kl. 14.30 Slutet.Se upp") == []
    assert found("we tried x.se") == []  # one-letter label: not clearly a domain


def test_ip_addresses() -> None:
    assert found("server 192.168.1.1 and 10.0.0.256 and 1.2.3") == [("192.168.1.1", "IP")]
    text = "addr 2001:db8::1, fe80::1 and ::ffff:192.0.2.1."
    assert found(text) == [("2001:db8::1", "IP"), ("fe80::1", "IP"), ("::ffff:192.0.2.1", "IP")]
    assert found("[00:12:34] I: ok. 10:15:00:00") == []


# --- PHONE ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "070-123 45 67",
        "0701234567",
        "070 123 45 67",
        "08-123 456 78",
        "08-12 34 56",
        "031-12 34 56",
        "+46 70 123 45 67",
        "+46 (0)8 123 456 78",
        "+46701234567",
        "0046 70 123 45 67",
        "07700 900123",
        "020 7946 0958",
        "+44 20 7946 0958",
        "(0161) 496 0000",
        "+1 555 123 4567",
    ],
)
def test_phone_exact(number: str) -> None:
    assert only(f"Ring mig på {number} efter lunch.") == (number, "PHONE")


def test_phone_trailing_numbers_are_not_swallowed() -> None:
    assert found("ring 070-123 45 67 2 gånger") == [("070-123 45 67", "PHONE")]
    assert found("ring 031-12 34 56 10 gånger") == [("031-12 34 56", "PHONE")]
    assert found("call +46 70 123 45 67 2019") == [("+46 70 123 45 67", "PHONE"), ("2019", "DATE")]


def test_phone_negatives() -> None:
    assert found("call me at 14:30, or 08.30, open 0800-1700, room 0123") == []
    assert found("we were 2 3 4 5 6 7 8 people") == []
    assert found("0,5 procent and 00:03:12") == []


# --- ID ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pnr", ["811218-9876", "811218+9876", "8112189876", "19811218-9876", "198112189876"]
)
def test_personnummer(pnr: str) -> None:
    text = f"Personnumret är {pnr} om ni behöver det."
    assert only(text) == (pnr, "ID")
    assert score_of(text, pnr) == 1.0


def test_personnummer_bad_check_digit_still_id() -> None:
    # a misheard digit must not leave an identity number in the text: ID, lower score
    text = "personnummer 811218-9875"
    assert only(text) == ("811218-9875", "ID")
    assert score_of(text, "811218-9875") == 0.6


def test_samordningsnummer() -> None:
    assert score_of("samordningsnummer 701063-2391", "701063-2391") == 1.0


def test_personnummer_invalid_date_is_not_id() -> None:
    assert found("koden 811318-9876") == []


def test_nhs_numbers() -> None:
    text = "My NHS number is 943 476 5919, or 9434765919, not 943 476 5918."
    assert found(text) == [("943 476 5919", "ID"), ("9434765919", "ID")]


def test_ten_digit_numbers_between_id_and_phone() -> None:
    # 0701234567 has a valid date part (07-01-23) but no Luhn digit: a mobile number
    assert found("ring 0701234567") == [("0701234567", "PHONE")]
    # a ten-digit personnummer of someone born in 2005 is an ID (Luhn digit right)
    assert found("pnr 0501012389") == [("0501012389", "ID")]
    # "070 123 4567" has the NHS shape, but NHS numbers don't start with 0
    assert found("ring 070 123 4567") == [("070 123 4567", "PHONE")]


def test_ni_numbers() -> None:
    assert found("NI AB 12 34 56 C and AB123456C") == [
        ("AB 12 34 56 C", "ID"),
        ("AB123456C", "ID"),
    ]
    assert found("QQ 12 34 56 C, GB123456A") == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("the ruling in no. 12345/03 was", "12345/03"),
        ("application no. 33234/96 at the court", "33234/96"),
        ("vårt dnr 123-4567-2019 gäller", "123-4567-2019"),
        ("in case 2-123/2001 the court", "2-123/2001"),
        ("mål nr 1234-19 avgjordes", "1234-19"),
        ("Ärende 2019/123 stängdes", "2019/123"),
    ],
)
def test_case_numbers(text: str, value: str) -> None:
    assert only(text) == (value, "ID")
    assert score_of(text, value) == 0.8


def test_case_words_need_a_case_number() -> None:
    assert found("no 5 times, case 3, nr 7 in the queue") == []


# --- POSTCODE and ADDRESS ---------------------------------------------------------------


def test_uk_postcodes() -> None:
    assert only("The postcode is SW1A 1AA, near the station.") == ("SW1A 1AA", "POSTCODE")
    assert found("M1 1AE and B33 8TH and XX1 1XX") == [
        ("M1 1AE", "POSTCODE"),
        ("B33 8TH", "POSTCODE"),
    ]


def test_swedish_postcodes_need_context() -> None:
    assert found("123 45 Stockholm") == [("123 45", "POSTCODE")]
    assert found("SE-123 45 Göteborg") == [("SE-123 45", "POSTCODE")]
    assert found("postnummer 123 45") == [("123 45", "POSTCODE")]
    assert found("vi var 123 45 gånger") == []
    assert found("mellan 100 20 och 30") == []


@pytest.mark.parametrize(
    "address",
    [
        "Storgatan 12",
        "Drottninggatan 5B",
        "Kungsvägen 7 lgh 1102",
        "Stora Nygatan 3",
        "Olof Palmes gata 12",
        "Sergels torg 12",
        "Götgatan 3-5",
        "Hornsgatan 12 B",
        "Sankt Eriksgatan 44",
        "Lilla Torget 3",
    ],
)
def test_swedish_addresses(address: str) -> None:
    assert only(f"Jag bodde på {address} i flera år.") == (address, "ADDRESS")


@pytest.mark.parametrize(
    "address",
    [
        "12 High Street",
        "221B Baker Street",
        "4 Church Lane",
        "Flat 2, 10 Park Road",
        "10 Downing St",
        "3 Primrose Hill",
    ],
)
def test_english_addresses(address: str) -> None:
    assert only(f"I lived at {address} for years.") == (address, "ADDRESS")


def test_address_negatives() -> None:
    # nouns, not street names: "on the road", "the floor"
    assert found("på vägen 2 gånger, Vägen 2, på plan 3, i storgatan 4") == []
    assert found("we walked 12 miles down the street, 3 Streets") == []


def test_address_and_postcode() -> None:
    assert found("Storgatan 12, 123 45 Stockholm") == [
        ("Storgatan 12", "ADDRESS"),
        ("123 45", "POSTCODE"),
    ]


# --- DATE -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "date", ["2023-03-14", "14/3/2023", "14.3.2023", "3/14/2023", "14/03/23", "29/02/2024"]
)
def test_numeric_dates(date: str) -> None:
    assert only(f"We met on {date} at the clinic.") == (date, "DATE")


def test_numeric_date_negatives() -> None:
    assert found("31/02/2023 and 2023-02-30 and 14.30 and 24/7 and 2/3 of them") == []


@pytest.mark.parametrize(
    "date",
    [
        "14 March 2023",
        "March 14, 2023",
        "14th of March",
        "March 2023",
        "Monday 14 March",
        "Tuesday, 14 March 2023",
        "the 3rd of May 1998",
        "May 3rd",
        "3 Jan. 2020",
        "Sept. 3, 2021",
    ],
)
def test_english_written_dates(date: str) -> None:
    assert only(f"It was {date} when we met.") == (date, "DATE")


@pytest.mark.parametrize(
    "date",
    [
        "14 mars 2023",
        "den 14 mars",
        "14:e mars",
        "mars 2023",
        "måndagen den 3 april",
        "den 3/4",
        "1 jan",
    ],
)
def test_swedish_written_dates(date: str) -> None:
    assert only(f"Vi träffades {date} på mottagningen.") == (date, "DATE")


def test_years() -> None:
    assert found("I was 45 in 2019") == [("2019", "DATE")]
    assert score_of("I was 45 in 2019", "2019") == 0.7
    assert score_of("born 1975", "1975") == 0.7
    assert score_of("det var år 2003", "2003") == 0.7
    assert score_of("1998 was hard", "1998") == 0.5
    assert found("1500 people, 2040 and 1899") == []
    assert found("1998-2001") == [("1998-2001", "DATE")]


def test_decades() -> None:
    text = "Back in the 1990s, på 90-talet, early 80s, mid-80s"
    assert found(text) == [
        ("1990s", "DATE"),
        ("90-talet", "DATE"),
        ("early 80s", "DATE"),  # a part of a period is part of the date
        ("80s", "DATE"),
    ]
    assert score_of(text, "1990s") == 0.4
    assert found("I'm in my 50s now") == []  # an age, not a decade


def test_date_ranges_and_parts_are_one_date() -> None:
    assert found("on 16 and 17 April 1997 we met") == [("16 and 17 April 1997", "DATE")]
    assert found("between June and August 1983.") == [("June and August 1983", "DATE")]
    assert found("at the end of September 1994") == [("the end of September 1994", "DATE")]
    assert found("den 3 och 4 maj 2021") == [("3 och 4 maj 2021", "DATE")]


def test_times_are_not_dates() -> None:
    assert found("call me at 14:30") == []
    assert found("Mötet var kl. 10 eller kl 14.30, till 16:45:12") == []


def test_month_abbreviations_that_are_names() -> None:
    assert found("I saw Jan 3 times, Maj 2 gånger") == []
    assert found("Jan. 3, Jan 3rd, Jan 3, 2020 and Dec 24") == [
        ("Jan. 3", "DATE"),
        ("Jan 3rd", "DATE"),
        ("Jan 3, 2020", "DATE"),
        ("Dec 24", "DATE"),
    ]


def test_may_is_a_verb_unless_capitalised() -> None:
    assert found("these 2 may help, may 5") == []
    assert found("on 5 May") == [("5 May", "DATE")]


def test_years_option() -> None:
    ctx = RecogniserContext(options={"years": False})
    spans = find_patterns("in 1998, the 1990s, on 14 March 2023", ctx)
    assert [s.entity_type for s in spans] == ["DATE"]
    assert find_patterns("born 1975", RecogniserContext()) != []


# --- MONEY ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount",
    [
        "EUR 5,000",
        "5 000 euros",
        "£250",
        "$1.2 million",
        "€50",
        "3 500 kronor",
        "3500 kr",
        "SEK 10 000",
        "200 pounds",
        "500:-",
        "2 000 SEK",
    ],
)
def test_money(amount: str) -> None:
    text = f"Jag fick {amount} i månaden."
    assert only(text) == (amount, "MONEY")
    assert score_of(text, amount) == 0.8


def test_money_is_not_a_year() -> None:
    assert found("2000 kronor") == [("2000 kronor", "MONEY")]
    assert found("EUR 2000") == [("EUR 2000", "MONEY")]


# --- overlaps, plain talk, the recogniser -----------------------------------------------


def test_overlaps_resolved_longest_wins() -> None:
    assert found("http://192.168.1.1/2023-03-14 and anna1985@example.se") == [
        ("http://192.168.1.1/2023-03-14", "URL"),
        ("anna1985@example.se", "EMAIL"),
    ]
    spans = find_patterns("www.example.se/2019 info@example.se 14 March 2023")
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


PLAIN_TALK = """\
I: Can you tell me a bit about what the support looked like for you?
P7: Well, we met every week for about 2 hours, sometimes 3, and she was there 24/7 in a way.
About 2/3 of the staff had left by then. I'm in my 50s now, so I've seen a lot of them come
and go. It was 1 to 1 support, 10 minutes at most on the phone, then we'd go out. These 2 may
help, she said, about the leaflets. Page 12, item 4. I scored it 7/10. We waited 45 min on the
3rd floor. I took 20 mg twice a day. The plan said one thing, but we did what I needed.
IP: Mötet var kl. 10 eller kl. 14.30, på plan 3. Vi var 15 personer och hon var 34 år.
Ja, vi gick på vägen 2 gånger och sen hem. Det var rum 204. Mm. Och vad hände sen?
(XIII): Honestly, it felt like a tick-box exercise. No 5 times I said no. Call me at 14:30.
"""


def test_plain_interview_talk_finds_nothing() -> None:
    assert found(PLAIN_TALK) == []


def test_recogniser_constant() -> None:
    assert PATTERNS.name == "patterns"
    assert PATTERNS.priority == 100
    assert set(PATTERNS.entity_types) <= set(ENTITY_TYPES)
    text = "Ring 070-123 45 67"
    spans = list(PATTERNS.find(text, RecogniserContext(doc_id="d1")))
    assert spans == find_patterns_adapter(text, RecogniserContext())
    assert [(s.recogniser, s.entity_type) for s in spans] == [("patterns", "PHONE")]


def test_empty_and_unicode_text() -> None:
    assert find_patterns("") == []
    assert found("Å ä ö ٣٤٥ ①② ¹²³ 12\u00a0High Street") == [("12\u00a0High Street", "ADDRESS")]


# --- properties -------------------------------------------------------------------------

_PIECES = st.sampled_from([
    " ", "  ", "\n", ",", ".", "-", "/", ":", "+", "(", ")", "@", "£", "€", "$",
    "0", "07", "070-123 45 67", "811218-9876", "19811218", "943 476 5919", "192.168.",
    "2001:db8::", "::", "www.", "http://", "example.se", "a@b.se", "SW1A 1AA", "AB 12",
    "Storgatan", "High Street", "lgh", "den", "March", "mars", "May", "the", "Monday",
    "14", "3rd", ":e", "1998", "90-talet", "1990s", "kr", "kronor", "EUR", "SEK", "no.",
    "dnr", "123", "45", "2023-03-14", "14/3/", "kl.", "Flat", "SE-", "Stockholm", "ok",
])  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PIECES | st.text(max_size=4), max_size=40).map("".join))
def test_spans_are_sorted_disjoint_and_in_bounds(text: str) -> None:
    spans = find_patterns(text)
    for s in spans:
        assert 0 <= s.start < s.end <= len(text)
        assert s.entity_type in ENTITY_TYPES
        assert s.recogniser == "patterns"
        assert 0.0 < s.score <= 1.0
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    # offsets are relative to the text: a prefix shifts every span by its length
    shifted = find_patterns("\n\n" + text)
    assert [(s.start - 2, s.end - 2, s.entity_type) for s in shifted] == [
        (s.start, s.end, s.entity_type) for s in spans
    ]
