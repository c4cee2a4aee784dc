"""Tests for the measurement tools in benchmarks/: the TAB metrics and the corpus generator."""

from __future__ import annotations

import csv
import importlib.util
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
GOLD = REPO.parent / "shared" / "tab" / "tab_test_subset_gold.json"


def _load(name: str) -> ModuleType:
    """Import benchmarks/<name>.py (benchmarks/ is not a package)."""
    module_name = f"_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, REPO / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


te = _load("tab_eval")
corpus = _load("corpus")


def mention(start, end, kind, entity_id, entity_type="PERSON"):
    return {
        "start_offset": start,
        "end_offset": end,
        "identifier_type": kind,
        "entity_id": entity_id,
        "entity_type": entity_type,
    }


def gold_doc(text, annotations, doc_id="d1"):
    """A one-document gold set from {annotator: [mention, ...]}."""
    annotations = {a: {"entity_mentions": ms} for a, ms in annotations.items()}
    return {doc_id: te._parse_doc(doc_id, text, annotations)}


def span_of(text, needle, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(needle, start + 1)
    return (start, start + len(needle))


# --------------------------------------------------------------------------- TAB metrics


def test_entity_with_one_unmasked_mention_is_not_protected():
    text = "Anna Berg met the court. Later Anna Berg appealed."
    first, second = span_of(text, "Anna Berg"), span_of(text, "Anna Berg", 1)
    gold = gold_doc(
        text, {"a1": [mention(*first, "DIRECT", "e1"), mention(*second, "DIRECT", "e1")]}
    )
    assert te.evaluate(gold, {"d1": [first]})["er_direct"] == 0.0
    result = te.evaluate(gold, {"d1": [first, second]})
    assert result["er_direct"] == 1.0
    assert result["counts"]["direct_entities"] == 1


def test_no_mask_mentions_need_not_be_masked():
    text = "Anna Berg spoke. Anna Berg left."
    first, second = span_of(text, "Anna Berg"), span_of(text, "Anna Berg", 1)
    gold = gold_doc(
        text, {"a1": [mention(*first, "QUASI", "e1"), mention(*second, "NO_MASK", "e1")]}
    )
    assert te.evaluate(gold, {"d1": [first]})["er_quasi"] == 1.0


def test_entity_is_classified_by_its_first_mention_as_in_the_official_script():
    text = "Serco hired him. Serco fired him."
    first, second = span_of(text, "Serco"), span_of(text, "Serco", 1)
    gold = gold_doc(
        text, {"a1": [mention(*first, "QUASI", "e1"), mention(*second, "DIRECT", "e1")]}
    )
    result = te.evaluate(gold, {"d1": [second]})
    assert result["counts"]["direct_entities"] == 0
    assert result["counts"]["quasi_entities"] == 1
    assert result["er_quasi"] == 0.0  # the QUASI mention is not masked


@pytest.mark.parametrize(
    ("mention_text", "masked", "expected"),
    [
        ("Mr John Smith,", ["John Smith"], True),  # title and trailing comma may stay
        ("Mrs. Jane Doe", ["Jane Doe"], True),  # title with a full stop
        ("no. 36110/97", ["36110", "97"], True),  # "no", the slash and the dot
        ("the Court of Appeal", ["Court", "Appeal"], True),  # determiner and preposition
        ("Smith’s garage", ["Smith", "garage"], True),  # possessive 's
        ("John Smith", ["John"], False),  # a name word left: not masked
        ("his wife", ["wife"], False),  # possessive pronouns are not function words
        ("about 1948", ["1948"], True),
    ],
)
def test_lenient_mention_masking(mention_text, masked, expected):
    text = f"It concerned {mention_text} in the end."
    start, end = span_of(text, mention_text)
    covered = bytearray(len(text))
    for word in masked:
        s, e = span_of(text, word)
        covered[s:e] = b"\x01" * (e - s)
    assert te.is_mention_masked(text, covered, start, end) is expected


def test_token_precision_on_a_toy_case():
    text = "Anna met Bob in Paris on Monday."
    gold = gold_doc(
        text,
        {
            "a1": [
                mention(*span_of(text, "Anna"), "DIRECT", "e1"),
                mention(*span_of(text, "Bob"), "QUASI", "e2"),
            ]
        },
    )
    masks = {"d1": [span_of(text, "Anna"), span_of(text, "Bob"), span_of(text, "Monday")]}
    result = te.evaluate(gold, masks)
    assert result["token_precision"] == pytest.approx(2 / 3)
    assert result["counts"]["system_tokens"] == 3
    # A span is split into \w+ tokens: "met Bob" is two tokens, one confirmed.
    result = te.evaluate(gold, {"d1": [(span_of(text, "met")[0], span_of(text, "Bob")[1])]})
    assert result["token_precision"] == pytest.approx(1 / 2)


def test_precision_and_recall_are_micro_averaged_over_annotators():
    text = "Anna met Bob and Carl in Paris."
    anna, bob, carl = span_of(text, "Anna"), span_of(text, "Bob"), span_of(text, "Carl")
    gold = gold_doc(
        text,
        {
            "a1": [mention(*anna, "DIRECT", "a1e1")],
            "a2": [
                mention(*anna, "DIRECT", "a2e1"),
                mention(*bob, "DIRECT", "a2e2"),
                mention(*carl, "QUASI", "a2e3"),
            ],
        },
    )
    result = te.evaluate(gold, {"d1": [anna, carl]})
    # direct entities: a1's Anna (masked), a2's Anna (masked), a2's Bob (not): 2/3, not the
    # macro average (1/1 + 1/2) / 2 = 0.75
    assert result["er_direct"] == pytest.approx(2 / 3)
    assert result["er_quasi"] == 1.0
    # tokens x annotators: Anna is confirmed by both, Carl by a2 only: 3 / (2 tokens x 2)
    assert result["token_precision"] == pytest.approx(3 / 4)
    assert result["counts"]["annotations"] == 2


def test_masks_accept_span_objects_and_merge_overlaps():
    @dataclass
    class FakeSpan:
        start: int
        end: int

    text = "Anna Berg"
    gold = gold_doc(text, {"a1": [mention(0, 9, "DIRECT", "e1")]})
    result = te.evaluate(gold, {"d1": [FakeSpan(0, 6), FakeSpan(3, 9), (0, 9)]})
    assert result["er_direct"] == 1.0
    assert result["counts"]["system_tokens"] == 2  # overlapping spans merged: Anna, Berg
    assert te.evaluate(gold, {})["er_direct"] == 0.0  # a missing document is unmasked


def test_unknown_document_and_bad_masks_are_errors():
    gold = gold_doc("Anna", {"a1": [mention(0, 4, "DIRECT", "e1")]})
    with pytest.raises(te.TabEvalError, match="not in the gold"):
        te.evaluate(gold, {"nope": []})
    with pytest.raises(te.TabEvalError, match="integers"):
        te.evaluate(gold, {"d1": [("0", "4")]})


def test_tab_gold_subset_loads_with_the_readme_counts():
    gold = te.load_gold(GOLD)
    assert len(gold) == 5
    counts = te.evaluate(gold, {})["counts"]
    assert counts["direct_mentions"] == 54
    assert counts["quasi_mentions"] == 319
    assert counts["direct_entities"] == 15
    assert counts["quasi_entities"] == 236
    assert counts["annotations"] == 7  # 001-61253 has three annotators


def test_baselines_on_tab_land_near_the_readme_figures():
    gold = te.load_gold(GOLD)
    texts = {doc_id: doc.text for doc_id, doc in gold.items()}
    regex = te.evaluate(gold, te.regex_baseline(texts))
    assert regex["er_direct"] == pytest.approx(0.60, abs=0.07)
    assert regex["er_quasi"] == pytest.approx(0.59, abs=0.07)
    assert regex["token_precision"] == pytest.approx(0.91, abs=0.07)
    caps = te.evaluate(gold, te.mask_capitalised_baseline(texts))
    assert caps["er_direct"] == 1.0
    assert caps["token_precision"] == pytest.approx(0.4, abs=0.05)


def test_cli_writes_json_and_loads_a_system(tmp_path, monkeypatch, capsys):
    (tmp_path / "toy_masker.py").write_text(
        "def mask(texts):\n    return {d: [(0, 10)] for d in texts}\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "result.json"
    code = te.main(["--baseline", "regex", "--system", "toy_masker:mask", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "baseline:regex" in printed and "toy_masker:mask" in printed
    results = json.loads(out.read_text(encoding="utf-8"))["results"]
    assert [r["system"] for r in results] == ["baseline:regex", "toy_masker:mask"]
    assert {"er_direct", "er_quasi", "token_precision", "by_type", "counts"} <= set(results[0])
    assert te.main(["--system", "no_such_module_xyz:f"]) == 2


# --------------------------------------------------------------------------- corpus


def _as_tuple(doc):
    return (doc.doc_id, doc.text, doc.language, doc.spans, doc.entity_keys, doc.meta)


def test_generator_is_deterministic_and_prefix_stable():
    a = corpus.generate_labelled(8, "mixed", seed=5, density=0.4)
    b = corpus.generate_labelled(8, "mixed", seed=5, density=0.4)
    assert [_as_tuple(d) for d in a] == [_as_tuple(d) for d in b]
    shorter = corpus.generate_labelled(3, "mixed", seed=5, density=0.4)
    assert [_as_tuple(d) for d in shorter] == [_as_tuple(d) for d in a[:3]]
    other = corpus.generate_labelled(8, "mixed", seed=6, density=0.4)
    assert [d.text for d in other] != [d.text for d in a]


@pytest.fixture(scope="module")
def labelled():
    return corpus.generate_labelled(60, "mixed", seed=11, density=0.5)


def test_every_span_matches_its_value(labelled):
    for doc in labelled:
        previous_end = 0
        assert len(doc.entity_keys) == len(doc.spans)
        for start, end, entity_type, value in doc.spans:
            assert doc.text[start:end] == value
            assert start >= previous_end  # sorted, non-overlapping
            assert entity_type in corpus.ENTITY_TYPES
            assert value == value.strip() and value
            previous_end = end


def test_entity_types_are_known_to_the_anonymiser():
    recognisers = pytest.importorskip("qualpipe.anonymise.recognisers")
    assert set(corpus.ENTITY_TYPES) <= set(recognisers.ENTITY_TYPES)


def test_all_entity_types_occur_and_ids_are_valid(labelled):
    seen = {span[2] for doc in labelled for span in doc.spans}
    assert seen == set(corpus.ENTITY_TYPES)
    ids = [(doc.language, s[3]) for doc in labelled for s in doc.spans if s[2] == "ID"]
    assert {lang for lang, _ in ids} == {"en", "sv"}
    for lang, value in ids:
        assert (corpus.personnummer_valid if lang == "sv" else corpus.nhs_valid)(value), value


def test_check_digits():
    assert corpus.personnummer_valid("811218-9876")  # the Tax Agency's example
    assert not corpus.personnummer_valid("811218-9875")
    assert corpus.nhs_valid("943 476 5919")  # NHS Digital's example
    assert not corpus.nhs_valid("943 476 5918")


def test_possessives_stay_outside_person_spans(labelled):
    found = {"en": False, "sv": False}
    for doc in labelled:
        for _, end, entity_type, value in doc.spans:
            if entity_type != "PERSON":
                continue
            after = doc.text[end : end + 2]
            if doc.language == "en" and after == "'s":
                found["en"] = True
            if doc.language == "sv" and re.match(r"s\s", after) and not value.endswith("s"):
                found["sv"] = True
    assert found == {"en": True, "sv": True}


def test_people_recur_within_and_across_documents(labelled):
    users = [doc for doc in labelled if doc.meta["role"] == "Service user"]
    worker_mentions = [sum(k.startswith("person:W") for k in doc.entity_keys) for doc in users]
    assert min(worker_mentions) >= 1  # every service user talks about their worker
    assert max(worker_mentions) >= 3  # and usually more than once
    docs_per_worker: dict[str, set[str]] = {}
    for doc in labelled:
        for key in doc.entity_keys:
            if key.startswith("person:W"):
                docs_per_worker.setdefault(key, set()).add(doc.meta["pair"])
    assert max(len(pairs) for pairs in docs_per_worker.values()) >= 2  # a worker named twice


def test_swedish_text_is_swedish_and_has_turns():
    from qualpipe.transcripts import find_turns

    for doc in corpus.generate_labelled(6, "sv", seed=2):
        assert doc.language == "sv"
        assert re.search("[åäöÅÄÖ]", doc.text)
        turns = find_turns(doc.text)
        assert {t.role for t in turns} == {"interviewer", "participant"}
        assert len(turns) >= 6
    english = corpus.generate_labelled(4, "en", seed=2)
    assert all(d.language == "en" for d in english)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="language"):
        corpus.generate_labelled(1, "de")
    with pytest.raises(ValueError, match="density"):
        corpus.generate_labelled(1, "en", density=2.0)


def test_generate_corpus_lengths_and_size():
    docs = list(corpus.generate_corpus(400_000, seed=3, language="mixed"))
    total = sum(len(t.encode("utf-8")) for _, t in docs)
    assert total >= 400_000
    assert total - len(docs[-1][1].encode("utf-8")) < 400_000  # stops as soon as it is reached
    for _, text in docs:
        assert 1_900 <= len(text.split()) <= 21_000
    assert docs == list(corpus.generate_corpus(400_000, seed=3, language="mixed"))


def test_cli_writes_transcripts_and_manifest(tmp_path):
    out = tmp_path / "corpus"
    assert corpus.main(["--out", str(out), "--mb", "0.3", "--seed", "4", "--labels"]) == 0
    with (out / "participants.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(corpus.MANIFEST_COLUMNS)
    assert rows and all((out / r["file"]).is_file() for r in rows)
    assert {r["role"] for r in rows} == {"Service user", "Support worker"}
    assert sorted(p.name for p in out.glob("*.txt")) == sorted(r["file"] for r in rows)
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text("utf-8").splitlines()]
    text = (out / labels[0]["file"]).read_text(encoding="utf-8")
    for start, end, _, value in labels[0]["spans"]:
        assert text[start:end] == value


def test_cli_writes_n_transcripts_at_the_density_asked_for(tmp_path):
    counts = {}
    for density in (0.05, 0.9):
        out = tmp_path / str(density)
        argv = ["--out", str(out), "--transcripts", "3", "--seed", "2", "--labels"]
        assert corpus.main([*argv, "--density", str(density)]) == 0
        assert len(list(out.glob("*.txt"))) == 3
        labels = [json.loads(x) for x in (out / "labels.jsonl").read_text("utf-8").splitlines()]
        words = sum(len((out / r["file"]).read_text("utf-8").split()) for r in labels)
        counts[density] = sum(len(r["spans"]) for r in labels) / words
    assert counts[0.9] > 4 * counts[0.05]  # identifiers per word follow --density
    with pytest.raises(SystemExit):
        corpus.main(["--out", str(tmp_path / "x"), "--density", "1.5"])
    assert not (tmp_path / "x").exists()


def test_evaluate_labelled_scores_masks(labelled, tmp_path, monkeypatch, capsys):
    docs = labelled[:10]
    exact = {d.doc_id: [(s, e) for s, e, _, _ in d.spans] for d in docs}
    perfect = corpus.evaluate_labelled(docs, exact)
    assert perfect["recall"] == 1.0 and perfect["token_precision"] == 1.0
    assert corpus.evaluate_labelled(docs, {})["recall"] == 0.0
    whole = corpus.evaluate_labelled(docs, {d.doc_id: [(0, len(d.text))] for d in docs})
    assert whole["recall"] == 1.0 and whole["token_precision"] < 0.2

    (tmp_path / "toy_masker2.py").write_text(
        "def mask(texts):\n    return {d: [(0, 5)] for d in texts}\n", encoding="utf-8"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "r.json"
    assert corpus.main(["--system", "toy_masker2:mask", "--docs", "4", "--json", str(out)]) == 0
    assert "recall" in capsys.readouterr().out
    assert json.loads(out.read_text(encoding="utf-8"))["counts"]["documents"] == 4


def test_manifest_is_readable_by_ingest(tmp_path):
    from qualpipe.builtin.participants import read_participants

    corpus.write_corpus(tmp_path, 100_000, seed=9)
    participants = read_participants(tmp_path / "participants.csv")
    row = participants.lookup(tmp_path / "s9-00001.txt")
    assert row is not None and row["participant"] == "U001"
