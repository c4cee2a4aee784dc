"""Agreement statistics: hand-computed values, levels, missing data, stage and CLI."""

from __future__ import annotations

import json
import random
import re
import warnings
from collections.abc import Callable
from typing import Any

import pytest

import qualpipe.builtin.human as human
from qualpipe.coding.agreement import (
    Agreement,
    agreement_table,
    cohen_kappa,
    format_table,
    krippendorff_alpha,
    percent_agreement,
)
from qualpipe.errors import PipelineError
from qualpipe.plugins import BUILTIN_PLUGINS
from qualpipe.testing import Project

# -- the formulas, by hand ---------------------------------------------------------------------

A10 = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
B10 = [1, 1, 1, 1, 0, 0, 0, 0, 0, 1]


def test_two_coders_by_hand() -> None:
    # joint table: (1,1)=4 (1,0)=1 (0,0)=4 (0,1)=1
    # percent: 8 of 10 units agree = 0.8
    assert percent_agreement([A10, B10]) == pytest.approx(0.8)
    # kappa: p_o = 0.8; each coder has five 1s and five 0s, so
    # p_e = 0.5 * 0.5 + 0.5 * 0.5 = 0.5 and kappa = (0.8 - 0.5) / (1 - 0.5) = 0.6
    assert cohen_kappa(A10, B10) == pytest.approx(0.6)
    # alpha: coincidences o11 = 2*4 = 8, o00 = 8, o10 = o01 = 1 + 1 = 2;
    # n1 = n0 = 10, n = 20; alpha = 1 - (n-1) * (o10+o01) / (2 * n1 * n0)
    #                             = 1 - 19 * 4 / 200 = 0.62
    assert krippendorff_alpha([A10, B10]) == pytest.approx(0.62)


def test_perfect_agreement_is_one() -> None:
    assert percent_agreement([A10, A10]) == 1
    assert cohen_kappa(A10, A10) == pytest.approx(1)
    assert krippendorff_alpha([A10, A10, A10]) == pytest.approx(1)


def test_chance_level_agreement() -> None:
    a, b = [1, 1, 0, 0], [1, 0, 1, 0]
    # p_o = 2/4 = 0.5, p_e = 0.5*0.5 + 0.5*0.5 = 0.5: kappa = 0
    assert percent_agreement([a, b]) == pytest.approx(0.5)
    assert cohen_kappa(a, b) == pytest.approx(0)
    # alpha: o11 = o00 = 2, o10 = o01 = 2; n1 = n0 = 4, n = 8;
    # 1 - 7 * 4 / (2 * 4 * 4) = 1 - 28/32 = 0.125 (alpha corrects for small samples)
    assert krippendorff_alpha([a, b]) == pytest.approx(0.125)
    # worse than chance: systematic disagreement gives negative values
    assert cohen_kappa([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1)


def test_undefined_when_every_value_is_the_same() -> None:
    zeros = [0, 0, 0, 0]
    # p_e = 1: kappa is 0/0, alpha's expected disagreement is 0: undefined, not 1
    assert percent_agreement([zeros, zeros]) == 1
    assert cohen_kappa(zeros, zeros) is None
    assert krippendorff_alpha([zeros, zeros]) is None
    assert cohen_kappa([None, None], [1, 0]) is None  # no unit both coded


def test_three_coders_with_missing_values_by_hand() -> None:
    data = [
        [1, 1, 0, None],  # A
        [1, 0, 0, 1],  # B
        [1, None, 0, None],  # C
    ]
    # unit 1: three 1s -> o11 += 3*2/(3-1) = 3
    # unit 2: a 1 and a 0 -> o10 += 1, o01 += 1
    # unit 3: three 0s -> o00 += 3
    # unit 4: one value, not pairable
    # n1 = 3 + 1 = 4, n0 = 3 + 1 = 4, n = 8
    # alpha = 1 - (8 - 1) * 2 / (2 * 4 * 4) = 1 - 14/32 = 0.5625
    assert krippendorff_alpha(data) == pytest.approx(0.5625)
    # percent: agreeing pairs 3 + 0 + 3 of 3 + 1 + 3 pairs = 6/7
    assert percent_agreement(data) == pytest.approx(6 / 7)
    # kappa A~B uses the three units both coded: (1,1) (1,0) (0,0)
    # p_o = 2/3; A: two 1s, one 0; B: one 1, two 0s: p_e = (2*1 + 1*2)/9 = 4/9
    # kappa = (2/3 - 4/9) / (1 - 4/9) = (2/9) / (5/9) = 0.4
    assert cohen_kappa(data[0], data[1]) == pytest.approx(0.4)


def test_weights_count_characters() -> None:
    # three stretches of 5, 5 and 10 characters: (1,0), (1,1), (0,1)
    a, b, w = [1, 1, 0], [0, 1, 1], [5, 5, 10]
    # percent: 5 of 20 characters agree
    assert percent_agreement([a, b], w) == pytest.approx(0.25)
    # p_o = 0.25; A: 10 ones, 10 zeros; B: 15 ones, 5 zeros
    # p_e = (10*15 + 10*5) / 400 = 0.5; kappa = (0.25 - 0.5) / 0.5 = -0.5
    assert cohen_kappa(a, b, w) == pytest.approx(-0.5)
    # o11 = 2*5 = 10, o10 = o01 = 5 + 10 = 15, o00 = 0; n1 = 25, n0 = 15, n = 40
    # alpha = 1 - 39 * 30 / (2 * 25 * 15) = 1 - 1170/750 = -0.56
    assert krippendorff_alpha([a, b], w) == pytest.approx(-0.56)


def test_matches_scikit_learn_and_krippendorff() -> None:
    np = pytest.importorskip("numpy")
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    kd = pytest.importorskip("krippendorff")
    rng = random.Random(7)
    for _ in range(100):
        n = rng.randint(4, 40)
        a = [rng.randint(0, 2) for _ in range(n)]
        b = [x if rng.random() < 0.6 else rng.randint(0, 2) for x in a]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = sklearn_metrics.cohen_kappa_score(a, b)
        ours = cohen_kappa(a, b)
        assert (ours is None and np.isnan(expected)) or ours == pytest.approx(expected)
        data = [[rng.choice([0, 1, 2, None]) for _ in range(n)] for _ in range(rng.randint(2, 4))]
        alpha = krippendorff_alpha(data)
        if alpha is None:
            continue
        matrix = np.array([[np.nan if v is None else v for v in row] for row in data], float)
        assert alpha == pytest.approx(
            kd.alpha(reliability_data=matrix, level_of_measurement="nominal")
        )


# -- codings -> agreement rows ------------------------------------------------------------------


def coding(
    seg: str, code: str, coder: str, status: str = "human", doc: str = "d"
) -> dict[str, Any]:
    start, end = (int(x) for x in seg.split(":")[1].split("-"))
    return {
        "segment_id": seg,
        "doc_id": doc,
        "start": start,
        "end": end,
        "code_id": code,
        "coder": coder,
        "status": status,
    }


S = ["d:0-10", "d:10-20", "d:20-30", "d:30-40"]
SEGMENTS = [{"segment_id": s, "doc_id": "d"} for s in [*S, "d:40-50"]]
CODINGS = [
    coding(S[0], "x", "anna"),
    coding(S[1], "x", "anna"),
    coding(S[3], "y", "anna"),
    coding(S[0], "x", "rules", "suggested"),
    coding(S[2], "x", "rules", "accepted"),
    coding(S[3], "x", "rules", "rejected"),  # rejected suggestions do not count
]


def values(table: Any) -> dict[tuple[str, str, str, str], tuple[float | None, int]]:
    return {
        (r["level"], r["code_id"], r["coder_a"], r["measure"]): (r["value"], r["n"])
        for r in table.to_pylist()
    }


def test_segment_level_by_hand() -> None:
    got = values(agreement_table(CODINGS, SEGMENTS[:4], level="segment"))
    # code x over 4 segments: anna 1 1 0 0, rules 1 0 1 0: the chance case above
    assert got["segment", "x", "anna", "percent"] == (0.5, 4)
    assert got["segment", "x", "anna", "kappa"] == (0.0, 4)
    assert got["segment", "x", "*", "alpha"] == (0.125, 4)
    # code y: anna 0 0 0 1, rules 0 0 0 0: p_o = 3/4, p_e = (3*4)/16 = 3/4: kappa 0
    # alpha: o00 = 6, o10 = o01 = 1; n0 = 7, n1 = 1, n = 8: 1 - 7*2/(2*7*1) = 0
    assert got["segment", "y", "anna", "percent"] == (0.75, 4)
    assert got["segment", "y", "anna", "kappa"] == (0.0, 4)
    assert got["segment", "y", "*", "alpha"] == (0.0, 4)
    # overall: percent (2 + 3) / 8; pooled kappa: mean p_o = mean p_e = 0.625 -> 0;
    # pooled alpha: o11 = 2, o00 = 2 + 6 = 8, o10 = o01 = 2 + 1 = 3; n1 = 5, n0 = 11,
    # n = 16: 1 - 15 * 6 / (2 * 5 * 11) = 1 - 90/110 = 0.181818; 4 units x 2 codes = 8
    assert got["segment", "*", "anna", "percent"] == (0.625, 8)
    assert got["segment", "*", "anna", "kappa"] == (0.0, 8)
    assert got["segment", "*", "*", "alpha"] == (pytest.approx(0.181818), 8)


def test_segments_nobody_coded_count_only_when_given() -> None:
    with_all = values(agreement_table(CODINGS, SEGMENTS, level="segment"))
    coded_only = values(agreement_table(CODINGS, None, level="segment"))
    # d:40-50 is an agreement on absence for every code when the segments are known
    assert with_all["segment", "x", "anna", "percent"] == (0.6, 5)  # 3 of 5
    assert coded_only["segment", "x", "anna", "percent"] == (0.5, 4)


def test_character_level_does_not_count_text_nobody_coded() -> None:
    rows = [
        {**coding("d:0-100", "x", "anna"), "start": 10, "end": 20},
        {**coding("d:0-100", "x", "rules", "suggested"), "start": 15, "end": 30},
        # a second, overlapping span of anna's merges with the first: [10, 20)
        {**coding("d:0-100", "x", "anna"), "start": 12, "end": 18},
    ]
    got = values(agreement_table(rows, None, level="character"))
    # characters 10-30 only (0-10 and 30-100 nobody coded): the weighted case above
    assert got["character", "x", "anna", "percent"] == (0.25, 20)
    assert got["character", "x", "anna", "kappa"] == (-0.5, 20)
    assert got["character", "x", "*", "alpha"] == (-0.56, 20)
    same = [rows[0], {**rows[0], "coder": "bertil"}]
    got = values(agreement_table(same, None, level="character"))
    # identical spans: every counted character agrees; kappa and alpha are undefined
    # (nobody left a counted character uncoded), not 1
    assert got["character", "x", "anna", "percent"] == (1.0, 10)
    assert got["character", "x", "anna", "kappa"] == (None, 10)


def test_people_miss_documents_they_did_not_code() -> None:
    rows = [
        coding("d:0-10", "x", "anna"),
        coding("e:0-10", "x", "anna", doc="e"),
        coding("e:0-10", "x", "bertil", doc="e"),  # bertil coded only document e
        coding("d:0-10", "x", "rules", "suggested"),
    ]
    segments = [{"segment_id": s, "doc_id": s[0]} for s in ("d:0-10", "d:10-20", "e:0-10")]
    pairs = {
        (r["coder_a"], r["coder_b"]): r["n"]
        for r in agreement_table(rows, segments, level="segment").to_pylist()
        if r["code_id"] == "x" and r["measure"] == "percent"
    }
    # anna and rules see all 3 segments; bertil only e's one segment
    assert pairs == {
        ("anna", "bertil"): 1,
        ("anna", "rules"): 3,
        ("bertil", "rules"): 1,
        ("*", "*"): 3,
    }


def test_coder_selection_and_errors() -> None:
    table = agreement_table(CODINGS, SEGMENTS, coders=["rules", "anna"], level="segment")
    assert {(r["coder_a"], r["coder_b"]) for r in table.to_pylist()} == {
        ("rules", "anna"),
        ("*", "*"),
    }
    with pytest.raises(PipelineError, match="'bob' have no codings"):
        Agreement(CODINGS, SEGMENTS, ["anna", "bob"])
    with pytest.raises(PipelineError, match="at least two coders"):
        Agreement([CODINGS[0]])
    with pytest.raises(PipelineError, match="level must be"):
        Agreement(CODINGS).table("word")


def test_readable_table() -> None:
    text = format_table(agreement_table(CODINGS, SEGMENTS[:4], level="segment"))
    lines = text.splitlines()
    assert lines[0].split() == ["level", "code", "coders", "percent", "kappa", "alpha", "n"]
    assert lines[1].split() == ["segment", "x", "anna", "~", "rules", "0.500", "0.000", "4"]
    assert lines[2].split() == ["segment", "x", "all", "coders", "0.500", "0.125", "4"]


# -- the agreement stage and ``qualpipe agree`` ------------------------------------------------


@pytest.fixture
def human_plugin(qualpipe_plugin: Callable[..., str]) -> None:
    """The plugin under test, registered unless it is already a built-in."""
    if "qualpipe.builtin.human" not in BUILTIN_PLUGINS:
        qualpipe_plugin(human)


TEXT = "I: Hur går det?\nIP: Vi pratar om allt.\nIP: Vi lagar mat ihop.\n"
# segments (the words after the labels): [3, 15), [20, 38), [43, 61)
CODEBOOK = """\
codebook: 1
name: SIDL
codes:
  - {id: talking, name: Talking, level: theme}
  - {id: food, name: Food, level: theme}
"""
ANNA = "doc,start,end,code,coder\np01,20,38,talking,anna\np01,43,61,food,anna\n"
BERTIL = "doc,start,end,code,coder\np01,20,26,talking,bertil\np01,43,61,talking,bertil\n"
PIPELINE = """\
qualpipe: 1
name: agr
stages:
  - {id: ingest, uses: ingest, with: {paths: data}}
  - {id: segment, uses: segment}
  - {id: codebook, uses: codebook, with: {path: codebook.yaml}}
  - {id: anna, uses: import-codings, with: {path: anna.csv}}
  - {id: bertil, uses: import-codings, with: {path: bertil.csv}}
  - id: agree
    uses: agreement
    inputs: {codings: anna.codings, other_codings: bertil.codings, segments: segment}
"""


@pytest.fixture
def ran(qualpipe_project: Project, human_plugin: None) -> Project:
    qualpipe_project.write("data/p01.txt", TEXT)
    qualpipe_project.write("codebook.yaml", CODEBOOK)
    qualpipe_project.write("anna.csv", ANNA)
    qualpipe_project.write("bertil.csv", BERTIL)
    qualpipe_project.pipeline(PIPELINE)
    result = qualpipe_project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    return qualpipe_project


def test_agreement_stage_compares_two_imports(ran: Project) -> None:
    got = values(ran.dataset("agr", "agree"))
    # 3 segments; talking: anna 0 1 0, bertil 0 1 1 -> 2 of 3 agree
    assert got["segment", "talking", "anna", "percent"] == (pytest.approx(2 / 3, abs=1e-6), 3)
    # food: anna 0 0 1, bertil 0 0 0 -> 2 of 3
    assert got["segment", "food", "anna", "percent"] == (pytest.approx(2 / 3, abs=1e-6), 3)
    # characters: talking is coded on [20, 38) by anna, [20, 26) + [43, 61) by bertil:
    # 6 agreeing of 18 + 18 = 36 counted characters
    assert got["character", "talking", "anna", "percent"] == (pytest.approx(6 / 36, abs=1e-6), 36)
    text = (ran.workdir("agr") / "agree" / "agreement.txt").read_text(encoding="utf-8")
    assert "talking" in text and "anna ~ bertil" in text


def test_agree_command_on_a_run_folder(ran: Project) -> None:
    result = ran.run("agree", ".qualpipe/agr", "--level", "segment")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "coders: anna, bertil" in out
    assert "segments: " in out and "(3 units)" in out
    assert re.search(r"^segment +talking +anna ~ bertil +0\.667 ", out, re.M)
    result = ran.run("agree", ".qualpipe/agr/anna", ".qualpipe/agr/bertil/codings", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert {r["level"] for r in rows} == {"segment", "character"}


def test_agree_command_errors(ran: Project) -> None:
    result = ran.run("agree", ".qualpipe/agr", "--coders", "anna")
    assert result.exit_code != 0
    assert "at least two coders" in result.stderr
    result = ran.run("agree", ".qualpipe/agr/segment")
    assert "no codings output" in result.stderr
