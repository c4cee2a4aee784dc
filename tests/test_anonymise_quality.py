"""Recall and precision of the anonymiser on generated, labelled interview transcripts.

The corpus comes from benchmarks/corpus.py (English and Swedish transcripts with known
identifiers at known offsets, written for this project); docs/anonymise.md reports the
figures on larger samples. These floors catch regressions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import corpus

from qualpipe.anonymise.api import mask

FLOORS = {
    "PERSON": 0.95,
    "PLACE": 0.93,
    "ADDRESS": 0.98,
    "POSTCODE": 0.98,
    "DATE": 0.90,
    "PHONE": 0.98,
    "EMAIL": 0.98,
    "ID": 0.98,
    "URL": 0.98,
}


@pytest.fixture(scope="module", params=["en", "sv"])
def scores(request: Any) -> dict[str, Any]:
    docs = corpus.generate_labelled(60, request.param, 11, 0.3)
    result = corpus.evaluate_labelled(docs, mask({d.doc_id: d.text for d in docs}))
    result["language"] = request.param
    return result


def test_recall_per_entity_type(scores: dict[str, Any]) -> None:
    by_type = scores["recall_by_type"]
    low = {t: round(by_type[t], 3) for t, floor in FLOORS.items() if by_type.get(t, 1) < floor}
    assert low == {}, f"{scores['language']}: recall below the floor: {low}"


def test_overall_recall_and_precision(scores: dict[str, Any]) -> None:
    assert scores["recall"] >= 0.88, scores["recall"]
    assert scores["token_precision"] >= 0.85, scores["token_precision"]
