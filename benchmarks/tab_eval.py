"""Evaluate masking against the Text Anonymization Benchmark (TAB) gold annotations.

A re-implementation of TAB's official ``evaluation.py`` (Pilán et al. 2022, Computational
Linguistics 48(4); NorskRegnesentral/text-anonymization-benchmark), independent of qualpipe's
anonymiser and of spaCy:

* **Entity recall, direct (ER_di) and quasi (ER_qi)**: an entity (one annotator's
  ``entity_id``) is direct when its *first* annotated mention is DIRECT, otherwise quasi. It is
  protected only if every one of its mentions marked DIRECT or QUASI is masked (its NO_MASK
  mentions may stay). Micro-averaged: each (document, annotator) entity counts once.
* **Mention masked**: every character of the mention lies in a system span, except leftover
  characters from `` ,.-;:/&()[]–'" ’“”``, the titles and words mr/mrs/ms/no/nr/about, and
  function words. The official script finds function words with spaCy part-of-speech tags
  (ADP, PART, CCONJ, DET); here a closed word list of those classes stands in for the tagger.
* **Token precision (uniform weights)**: system spans are split into ``\\w+`` tokens (as the
  official script does); each token scores, per annotator of the document, 1 if one of that
  annotator's DIRECT/QUASI mentions covers it. Precision = hits / (tokens x annotators).

Deviations from the official script, all deliberate and small: function words come from a list
instead of spaCy tags; "Mr." (with a full stop) is skipped like "Mr" (spaCy keeps "Mr." as one
token that the official list does not match); overlapping system spans are merged first so a
token is not counted twice (``merge_overlapping=False`` restores the official behaviour);
every gold document is evaluated, a document missing from ``masks`` counting as unmasked (the
official script evaluates only the documents present in the system output).

Run ``python benchmarks/tab_eval.py --help``; see benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEFAULT_GOLD = SHARED / "tab" / "tab_test_subset_gold.json"
DEFAULT_TEXTS = SHARED / "tab" / "echr_test_texts_TAE.json"

IDENTIFIER_TYPES = ("DIRECT", "QUASI", "NO_MASK")

#: Words the official script skips by form (TOKENS_TO_IGNORE there).
TITLES_TO_IGNORE = frozenset({"mr", "mrs", "ms", "no", "nr", "about"})

#: Stand-in for spaCy's POS_TO_IGNORE = {ADP, PART, CCONJ, DET}: English words that
#: en_core_web_md tags with one of those classes in almost every context. Possessive
#: pronouns (his, her, their) are PRON in spaCy 3 and therefore are *not* skipped.
FUNCTION_WORDS = frozenset(
    {
        # ADP (prepositions)
        "of", "in", "on", "at", "by", "for", "with", "from", "to", "into", "onto", "over",
        "under", "between", "after", "before", "during", "since", "until", "till", "through",
        "throughout", "against", "among", "amongst", "within", "without", "upon", "via", "per",
        "across", "along", "around", "behind", "beyond", "despite", "towards", "toward", "near",
        "off", "like", "than", "as", "except", "inside", "outside",
        # PART (particles)
        "'s", "’s", "'", "not", "n't",
        # CCONJ
        "and", "or", "but", "nor", "&",
        # DET
        "the", "a", "an", "this", "these", "those", "that", "every", "each", "another",
        "either", "neither", "some", "any", "all", "both",
    }
)  # fmt: skip

#: Characters that may stay unmasked inside a mention (CHARACTERS_TO_IGNORE there).
CHARACTERS_TO_IGNORE = frozenset(" ,.-;:/&()[]–'\" ’“”")

_WORD = re.compile(r"\w+")
# Approximates spaCy's tokens for the lenient check: a possessive 's is its own token.
_LENIENT_TOKEN = re.compile(r"['’]s\b|\w+")

Masks = Mapping[str, Iterable[Any]]
SystemFunction = Callable[[dict[str, str]], Masks]


class TabEvalError(Exception):
    """A gold file, a mask list or a --system reference that cannot be used."""


@dataclass(frozen=True)
class GoldMention:
    start: int
    end: int
    identifier_type: str  # DIRECT, QUASI or NO_MASK

    @property
    def needs_masking(self) -> bool:
        return self.identifier_type != "NO_MASK"


@dataclass
class GoldEntity:
    """One annotator's entity: all mentions sharing an ``entity_id``, in file order."""

    entity_id: str
    annotator: str
    entity_type: str
    mentions: list[GoldMention] = field(default_factory=list)

    @property
    def is_direct(self) -> bool:
        # The official script classifies the entity by its first mention.
        return self.mentions[0].identifier_type == "DIRECT"

    @property
    def needs_masking(self) -> bool:
        return any(m.needs_masking for m in self.mentions)

    @property
    def mentions_to_mask(self) -> list[GoldMention]:
        return [m for m in self.mentions if m.needs_masking]


@dataclass
class GoldDoc:
    doc_id: str
    text: str
    entities: list[GoldEntity]

    @property
    def annotators(self) -> tuple[str, ...]:
        """Annotators with at least one entity (the official precision denominator)."""
        return tuple(sorted({e.annotator for e in self.entities}))

    def entities_to_mask(self, *, direct: bool = True, quasi: bool = True) -> list[GoldEntity]:
        return [
            e
            for e in self.entities
            if e.needs_masking and ((e.is_direct and direct) or (not e.is_direct and quasi))
        ]


def load_gold(path: str | Path = DEFAULT_GOLD) -> dict[str, GoldDoc]:
    """Read gold annotations in TAB's JSON schema (a list of documents, or a dict of them)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TabEvalError(f"cannot read TAB gold file {str(path)!r}: {exc}") from exc
    docs = list(raw.values()) if isinstance(raw, dict) else raw
    if not isinstance(docs, list):
        raise TabEvalError(f"{str(path)!r}: expected a list of annotated documents")
    gold: dict[str, GoldDoc] = {}
    for doc in docs:
        missing = [k for k in ("doc_id", "text", "annotations") if k not in doc]
        if missing:
            raise TabEvalError(f"{str(path)!r}: a document lacks {missing}; is this TAB JSON?")
        gold[doc["doc_id"]] = _parse_doc(doc["doc_id"], doc["text"], doc["annotations"])
    return gold


def _parse_doc(doc_id: str, text: str, annotations: Mapping[str, Any]) -> GoldDoc:
    entities: list[GoldEntity] = []
    for annotator, block in annotations.items():
        if "entity_mentions" not in block:
            raise TabEvalError(f"document {doc_id!r}, {annotator!r}: no 'entity_mentions'")
        by_id: dict[str, GoldEntity] = {}
        for m in block["entity_mentions"]:
            start, end, kind = m["start_offset"], m["end_offset"], m["identifier_type"]
            if not (0 <= start < end <= len(text)):
                raise TabEvalError(f"document {doc_id!r}: bad mention offsets {(start, end)!r}")
            if kind not in IDENTIFIER_TYPES:
                raise TabEvalError(f"document {doc_id!r}: bad identifier_type {kind!r}")
            entity = by_id.get(m["entity_id"])
            if entity is None:
                entity = GoldEntity(m["entity_id"], annotator, m["entity_type"])
                by_id[m["entity_id"]] = entity
            entity.mentions.append(GoldMention(start, end, kind))
        entities.extend(by_id.values())
    return GoldDoc(doc_id, text, entities)


# --------------------------------------------------------------------------- masks


def normalise_spans(
    spans: Iterable[Any], text_length: int, *, merge: bool
) -> list[tuple[int, int]]:
    """(start, end) pairs from tuples, lists or objects with ``.start``/``.end`` (qualpipe Span).

    Spans are clipped to the text; empty ones are dropped; overlapping ones are merged when
    ``merge`` is true (touching ones are kept apart, so token splitting is unchanged).
    """
    out: list[tuple[int, int]] = []
    for span in spans:
        if hasattr(span, "start") and hasattr(span, "end"):
            start, end = span.start, span.end
        else:
            try:
                start, end = span[0], span[1]
            except (TypeError, IndexError, KeyError) as exc:
                raise TabEvalError(f"a mask must be (start, end): got {span!r}") from exc
        if not (isinstance(start, int) and isinstance(end, int)):
            raise TabEvalError(f"mask offsets must be integers: got {span!r}")
        start, end = max(0, start), min(text_length, end)
        if start < end:
            out.append((start, end))
    if not merge:
        return out
    merged: list[tuple[int, int]] = []
    for start, end in sorted(out):
        if merged and start < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _coverage(text_length: int, spans: Sequence[tuple[int, int]]) -> bytearray:
    covered = bytearray(text_length)
    for start, end in spans:
        covered[start:end] = b"\x01" * (end - start)
    return covered


def is_mention_masked(text: str, covered: bytearray, start: int, end: int) -> bool:
    """True when ``text[start:end]`` is masked, leniently (see the module docstring)."""
    left = {i for i in range(start, end) if not covered[i]}
    if not left:
        return True
    for tok in _LENIENT_TOKEN.finditer(text, start, end):
        word = tok.group().lower()
        if word in TITLES_TO_IGNORE or word in FUNCTION_WORDS:
            left.difference_update(range(tok.start(), tok.end()))
    return all(text[i] in CHARACTERS_TO_IGNORE for i in left)


def _annotator_reach(doc: GoldDoc) -> dict[str, list[int]]:
    """Per annotator, reach[p] = the furthest end of a to-mask mention starting at or before p.

    A token [s, e) is covered by one of the annotator's mentions iff reach[s] >= e, the
    official "fully covered by a single annotated span" test.
    """
    reach: dict[str, list[int]] = {}
    for entity in doc.entities:
        if not entity.needs_masking:
            continue
        row = reach.setdefault(entity.annotator, [-1] * (len(doc.text) + 1))
        for m in entity.mentions_to_mask:
            row[m.start] = max(row[m.start], m.end)
    return {a: list(itertools.accumulate(row, max)) for a, row in reach.items()}


def _ratio(num: float, den: float) -> float:
    return num / den if den else 0.0  # the official script returns 0 too


def evaluate(
    gold: Mapping[str, GoldDoc], masks: Masks, *, merge_overlapping: bool = True
) -> dict[str, Any]:
    """Score system ``masks`` ({doc_id: [(start, end), ...]}) against ``gold``.

    Returns er_direct, er_quasi, er_all, token_precision, mention_precision, token_recall,
    mention_recall, token_f1, by_type (entity recall per TAB entity type, for direct and quasi
    entities), token_recall_by_type (the official per-type figure) and counts.
    """
    unknown = sorted(set(masks) - set(gold))
    if unknown:
        raise TabEvalError(f"masks for documents not in the gold file: {unknown[:5]!r}")
    entities = {"direct": [0, 0], "quasi": [0, 0]}  # [protected, total]
    by_type: dict[str, dict[str, dict[str, float]]] = {"direct": {}, "quasi": {}}
    tok_rec = {"hit": 0, "all": 0}
    men_rec = {"hit": 0, "all": 0}
    tok_rec_by_type: dict[str, list[int]] = {}
    prec = {"tok_hit": 0, "tok_den": 0, "men_hit": 0, "men_den": 0}
    counts = dict.fromkeys(
        ("documents", "annotations", "direct_mentions", "quasi_mentions", "system_spans"),
        0,
    )
    counts.update(system_chars=0, system_tokens=0)

    for doc_id, doc in gold.items():
        spans = normalise_spans(masks.get(doc_id, ()), len(doc.text), merge=merge_overlapping)
        covered = _coverage(len(doc.text), spans)
        counts["documents"] += 1
        counts["annotations"] += len(doc.annotators)
        counts["system_spans"] += len(spans)
        counts["system_chars"] += sum(covered)

        for entity in doc.entities:
            for m in entity.mentions:
                if m.identifier_type == "DIRECT":
                    counts["direct_mentions"] += 1
                elif m.identifier_type == "QUASI":
                    counts["quasi_mentions"] += 1
            if not entity.needs_masking:
                continue
            kind = "direct" if entity.is_direct else "quasi"
            masked = all(
                is_mention_masked(doc.text, covered, m.start, m.end)
                for m in entity.mentions_to_mask
            )
            entities[kind][0] += masked
            entities[kind][1] += 1
            row = by_type[kind].setdefault(entity.entity_type, {"entities": 0, "protected": 0})
            row["entities"] += 1
            row["protected"] += masked
            # Official token/mention recall: every mention of an entity to mask.
            type_row = tok_rec_by_type.setdefault(entity.entity_type, [0, 0])
            for m in entity.mentions:
                men_rec["all"] += 1
                men_rec["hit"] += is_mention_masked(doc.text, covered, m.start, m.end)
                for tok in _WORD.finditer(doc.text, m.start, m.end):
                    hit = is_mention_masked(doc.text, covered, tok.start(), tok.end())
                    tok_rec["all"] += 1
                    tok_rec["hit"] += hit
                    type_row[0] += hit
                    type_row[1] += 1

        reach = _annotator_reach(doc)
        n_annotators = len(doc.annotators)
        for start, end in spans:
            prec["men_den"] += n_annotators
            prec["men_hit"] += sum(row[start] >= end for row in reach.values())
            for tok in _WORD.finditer(doc.text, start, end):
                counts["system_tokens"] += 1
                prec["tok_den"] += n_annotators
                prec["tok_hit"] += sum(row[tok.start()] >= tok.end() for row in reach.values())

    for rows in by_type.values():
        for row in rows.values():
            row["recall"] = _ratio(row["protected"], row["entities"])
    token_precision = _ratio(prec["tok_hit"], prec["tok_den"])
    token_recall = _ratio(tok_rec["hit"], tok_rec["all"])
    counts.update(
        direct_entities=entities["direct"][1],
        direct_entities_protected=entities["direct"][0],
        quasi_entities=entities["quasi"][1],
        quasi_entities_protected=entities["quasi"][0],
        tokens_confirmed=prec["tok_hit"],
        tokens_times_annotators=prec["tok_den"],
    )
    return {
        "er_direct": _ratio(*entities["direct"]),
        "er_quasi": _ratio(*entities["quasi"]),
        "er_all": _ratio(
            entities["direct"][0] + entities["quasi"][0],
            entities["direct"][1] + entities["quasi"][1],
        ),
        "token_precision": token_precision,
        "mention_precision": _ratio(prec["men_hit"], prec["men_den"]),
        "token_recall": token_recall,
        "mention_recall": _ratio(men_rec["hit"], men_rec["all"]),
        "token_f1": _ratio(2 * token_precision * token_recall, token_precision + token_recall),
        "by_type": {k: dict(sorted(v.items())) for k, v in by_type.items()},
        "token_recall_by_type": {t: _ratio(h, n) for t, (h, n) in sorted(tok_rec_by_type.items())},
        "counts": counts,
    }


def false_negatives(gold: Mapping[str, GoldDoc], masks: Masks) -> list[dict[str, Any]]:
    """The to-mask mentions left unmasked, for error analysis."""
    out = []
    for doc_id, doc in gold.items():
        spans = normalise_spans(masks.get(doc_id, ()), len(doc.text), merge=True)
        covered = _coverage(len(doc.text), spans)
        for entity in doc.entities:
            for m in entity.mentions_to_mask:
                if not is_mention_masked(doc.text, covered, m.start, m.end):
                    out.append(
                        {
                            "doc_id": doc_id,
                            "annotator": entity.annotator,
                            "entity_id": entity.entity_id,
                            "entity_type": entity.entity_type,
                            "identifier_type": m.identifier_type,
                            "start": m.start,
                            "end": m.end,
                            "text": doc.text[m.start : m.end],
                            "partial": any(covered[m.start : m.end]),
                        }
                    )
    return out


# --------------------------------------------------------------------------- baselines

_MONTHS = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
    "|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec"
)
_REGEX_BASELINE = re.compile(
    "|".join(
        (
            r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",  # e-mail
            r"(?:https?://|www\.)\S+[\w/]",  # web address
            r"\+?\d[\d ()-]{7,}\d",  # telephone number
            rf"\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?(?:{_MONTHS})\.?,? \d{{4}}\b",  # 3 May 2001
            rf"\b(?:{_MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? \d{{4}}\b",  # May 3, 2001
            rf"\b(?:{_MONTHS}) \d{{4}}\b",  # May 2001
            r"\b\d{1,4}[./-]\d{1,2}[./-]\d{1,4}\b",  # 03/05/2001, 2001-05-03
            r"\b\d{1,6}/\d{2,4}\b",  # case and application numbers: 36110/97
            r"\b\d{5,}\b",  # long identity, account and file numbers
            r"\b(?:1[89]|20)\d{2}\b",  # years
        )
    )
)


def regex_baseline(texts: Mapping[str, str]) -> dict[str, list[tuple[int, int]]]:
    """Regex-only masking: e-mails, web addresses, phones, dates, years and numbers
    shaped like identifiers (case numbers, long digit strings); other numbers stay."""
    return {d: [m.span() for m in _REGEX_BASELINE.finditer(t)] for d, t in texts.items()}


def mask_capitalised_baseline(texts: Mapping[str, str]) -> dict[str, list[tuple[int, int]]]:
    """Mask every capitalised word and every number: high recall, poor precision."""
    return {
        d: [m.span() for m in _WORD.finditer(t) if m.group()[0].isupper() or m.group()[0].isdigit()]
        for d, t in texts.items()
    }


BASELINES: dict[str, SystemFunction] = {
    "regex": regex_baseline,
    "mask-capitalised": mask_capitalised_baseline,
}


def load_system(ref: str) -> SystemFunction:
    """Import ``module:function`` (the current directory is searched first)."""
    module_name, _, func_name = ref.partition(":")
    if not module_name or not func_name:
        raise TabEvalError(f"--system wants MODULE:FUNCTION, got {ref!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TabEvalError(f"cannot import {module_name!r} for --system {ref!r}: {exc}") from exc
    func = getattr(module, func_name, None)
    if not callable(func):
        raise TabEvalError(f"{module_name!r} has no callable {func_name!r} (--system {ref!r})")
    return func  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- CLI


def run_system(
    name: str,
    func: SystemFunction,
    gold: Mapping[str, GoldDoc],
    throughput_texts: Mapping[str, str] | None = None,
) -> tuple[dict[str, Any], Masks]:
    """Run ``func`` on the gold texts and score it; optionally time it on more texts."""
    texts = {doc_id: doc.text for doc_id, doc in gold.items()}
    t0 = time.perf_counter()
    masks = func(texts)
    elapsed = time.perf_counter() - t0
    result = evaluate(gold, masks)
    result["system"] = name
    result["seconds"] = elapsed
    if throughput_texts is not None:
        t0 = time.perf_counter()
        func(dict(throughput_texts))
        elapsed = time.perf_counter() - t0
        chars = sum(len(t) for t in throughput_texts.values())
        result["throughput"] = {
            "documents": len(throughput_texts),
            "chars": chars,
            "seconds": elapsed,
            "chars_per_second": chars / elapsed if elapsed else None,
        }
    return result, masks


def format_table(results: Sequence[Mapping[str, Any]]) -> str:
    head = f"{'system':<28} {'ER_di':>6} {'ER_qi':>6} {'P_tok':>6} {'R_tok':>6} {'spans':>6}"
    head += f" {'chars/s':>10}"
    lines = [head, "-" * len(head)]
    for r in results:
        tp = r.get("throughput")
        speed = f"{tp['chars_per_second']:,.0f}" if tp and tp["chars_per_second"] else "-"
        lines.append(
            f"{r['system']:<28} {r['er_direct']:>6.3f} {r['er_quasi']:>6.3f}"
            f" {r['token_precision']:>6.3f} {r['token_recall']:>6.3f}"
            f" {r['counts']['system_spans']:>6} {speed:>10}"
        )
    lines.append("")
    lines.append("entity recall by TAB entity type (protected/entities):")
    types = sorted({t for r in results for k in ("direct", "quasi") for t in r["by_type"][k]})
    lines.append(f"{'system':<28} " + " ".join(f"{t:>14}" for t in types))
    for r in results:
        cells = []
        for t in types:
            d, q = r["by_type"]["direct"].get(t), r["by_type"]["quasi"].get(t)
            cell = " ".join(
                f"{k}{int(row['protected'])}/{int(row['entities'])}"
                for k, row in (("d", d), ("q", q))
                if row
            )
            cells.append(f"{cell:>14}")
        lines.append(f"{r['system']:<28} " + " ".join(cells))
    return "\n".join(lines)


def _constant(masks: Masks) -> SystemFunction:
    """A "system" that returns masks read from a file."""

    def system(_texts: dict[str, str]) -> Masks:
        return masks

    return system


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="TAB entity recall (ER_di, ER_qi) and token precision for a masking system."
    )
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD, help="TAB gold JSON")
    parser.add_argument(
        "--system",
        action="append",
        default=[],
        metavar="MODULE:FUNCTION",
        help="function taking {doc_id: text} and returning {doc_id: [(start, end), ...]}",
    )
    parser.add_argument("--baseline", action="append", default=[], choices=sorted(BASELINES))
    parser.add_argument(
        "--masks", action="append", default=[], type=Path, help="JSON {doc_id: [[start, end]]}"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results as JSON")
    parser.add_argument(
        "--throughput",
        action="store_true",
        help=f"also time each system on all texts in {DEFAULT_TEXTS.name}",
    )
    parser.add_argument("--misses", action="store_true", help="print unmasked gold mentions")
    args = parser.parse_args(argv)

    try:
        gold = load_gold(args.gold)
        throughput_texts = None
        if args.throughput:
            throughput_texts = json.loads(DEFAULT_TEXTS.read_text(encoding="utf-8"))
        masks_names = {p.name for p in args.masks}
        runs: list[tuple[str, SystemFunction]] = [
            (f"baseline:{b}", BASELINES[b]) for b in args.baseline
        ]
        runs += [(ref, load_system(ref)) for ref in args.system]
        for path in args.masks:
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise TabEvalError(f"cannot read --masks {str(path)!r}: {exc}") from exc
            if not isinstance(saved, dict):
                raise TabEvalError(f"--masks {str(path)!r}: expected {{doc_id: [[start, end]]}}")
            runs.append((path.name, _constant(saved)))
        if not runs:
            parser.error("give at least one --system, --baseline or --masks")
        scored = [
            run_system(name, f, gold, None if name in masks_names else throughput_texts)
            for name, f in runs
        ]
        results = [result for result, _ in scored]
    except TabEvalError as exc:
        print(f"tab_eval: error: {exc}", file=sys.stderr)
        return 2

    n_ann = results[0]["counts"]["annotations"]
    c = results[0]["counts"]
    print(
        f"TAB gold {args.gold.name}: {c['documents']} documents, {n_ann} annotations, "
        f"{c['direct_entities']} direct / {c['quasi_entities']} quasi entities, "
        f"{c['direct_mentions']} direct / {c['quasi_mentions']} quasi mentions\n"
    )
    print(format_table(results))
    if args.misses:
        for (name, _), (_, masks) in zip(runs, scored, strict=True):
            print(f"\nunmasked mentions, {name}:")
            for fn in false_negatives(gold, masks):
                flag = "partial" if fn["partial"] else "missed"
                print(
                    f"  {fn['doc_id']} {fn['annotator']} {fn['identifier_type'][0]}"
                    f" {fn['entity_type']:<8} {flag:<7} {fn['text']!r}"
                )
    if args.json:
        args.json.write_text(
            json.dumps({"gold": str(args.gold), "results": results}, indent=2, ensure_ascii=False)
            + "\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
