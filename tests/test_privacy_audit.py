"""Privacy audit: a full pipeline over generated transcripts with known identifiers.

benchmarks/corpus.py writes transcripts whose identifiers sit at known offsets. They go
through ingest -> anonymise -> segment -> codebook -> code -> theme -> export (every
format) with JSON debug logs, and then every file the run wrote (except the raw ingest
stage, which holds the sensitive documents by design), every file of the export folder
(inside the .qdpx, .docx and .xlsx archives too), the review page and the logs are
searched for every identifier value the generator recorded and for every name of the
participants manifest. The key file is the one place those values may live.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import stat
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
import corpus  # noqa: E402

SEED = 5
N_DOCS = 20  # ten pairs; with seed 5 both English and Swedish pairs
MIN_LENGTH = 4
STRUCTURED = {"ADDRESS", "POSTCODE", "PHONE", "EMAIL", "ID", "URL"}
# Measured on this corpus (seed 5, 20 documents) with the current anonymiser: identifier
# values the recognisers miss and that therefore reach the anonymised outputs, all of
# them documented weak spots (docs/anonymise.md: English ORG recall 0.55): Age UK,
# Citizens Advice, Rethink, Shelter, Turning Point, Women's Aid, RSMH, a country
# (Scotland) and a day/month date (5/11). Lower this when the anonymiser improves.
LEAK_CEILING = 9
CLI = [sys.executable, "-m", "qualpipe", "--log-json", "--log-level", "debug"]


@dataclass
class Audit:
    root: Path
    project: Path
    workdir: Path
    out: Path
    key: Path
    docs: list[corpus.LabelledDoc]
    names: list[str]
    values: dict[str, set[str]]  # value -> entity types (MANIFEST for manifest names)
    skipped: dict[str, str]  # value -> why it is not searched for
    allow: list[str]
    logs: str
    replacements: re.Pattern[str]  # every replacement written, casefolded
    leaks: dict[str, set[str]] = field(default_factory=dict)  # value -> where

    @property
    def checked(self) -> list[str]:
        return sorted(v for v in self.values if v not in self.skipped)


def _pipeline(root: Path) -> str:
    """pipelines/sidl.yaml with data, key, codebook and exports moved under ``root``."""
    text = (REPO / "pipelines" / "sidl.yaml").read_text(encoding="utf-8")
    swaps = {
        "  data: data/sidl            # relative to this file": "  data: data",
        "paths: ${params.data}/transcripts": "paths: ${params.data}/t",
        "      # key: ${env.HOME}/qualpipe-keys/sidl.key.json": (
            f"      key: {root / 'keys' / 'sidl.key.json'}"
        ),
        "path: codebooks/sidl.yaml": f"path: {REPO / 'pipelines' / 'codebooks' / 'sidl.yaml'}",
        "formats: [qdpx, qdc, html, docx, xlsx, csv]": (
            f"formats: [qdpx, qdc, html, docx, xlsx, csv, parquet{_plugin_formats()}]"
        ),
        "out: exports/sidl ": f"out: {root / 'out'} ",
    }
    for old, new in swaps.items():
        assert old in text, f"pipelines/sidl.yaml changed: {old!r} not found"
        text = text.replace(old, new)
    return text


def _plugin_formats() -> str:
    """Export formats of installed plugin packages (CI installs them after the core run)."""
    from qualpipe.plugins import create_manager

    builtin = {"qdpx", "qdc", "html", "docx", "xlsx", "csv", "parquet"}
    extra = sorted(set(create_manager().registry.components["exporter"]) - builtin)
    return "".join(f", {name}" for name in extra)


def _write_inputs(project: Path, docs: list[corpus.LabelledDoc]) -> list[str]:
    (project / "data" / "t").mkdir(parents=True)
    rows, names = [], []
    for i, doc in enumerate(docs):
        (project / "data" / "t" / f"{doc.doc_id}.txt").write_text(doc.text, encoding="utf-8")
        pair = corpus._pair(SEED, "mixed", i // 2)
        person = pair.user if i % 2 == 0 else pair.worker
        assert person.key == doc.meta["participant"]
        names.append(f"{person.first} {person.surname}")  # the name the transcripts use
        meta = {k: doc.meta[k] for k in ("participant", "role", "gender", "age_band", "pair")}
        # Manifest attributes other than names are the researcher's choice and are kept as
        # they are: a careful study codes municipalities rather than naming them.
        municipality = (
            f"K{sorted({d.meta['municipality'] for d in docs}).index(doc.meta['municipality']) + 1}"
        )
        rows.append(
            {"file": f"t/{doc.doc_id}.txt", **meta, "municipality": municipality}
            | {"language": doc.language, "name": names[-1]}
        )
    with (project / "data" / "participants.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return names


def _skip_list(
    docs: list[corpus.LabelledDoc], values: dict[str, set[str]], allow: list[str]
) -> dict[str, str]:
    """Values not searched for, computed from the data, each with the reason."""
    prose = []  # the generated text outside every labelled identifier
    for doc in docs:
        chars = list(doc.text)
        for start, end, _, _ in doc.spans:
            chars[start:end] = "\0" * (end - start)
        prose.append("".join(chars))
    ordinary = "\n".join(prose).casefold()
    book = (REPO / "pipelines" / "codebooks" / "sidl.yaml").read_text(encoding="utf-8").casefold()
    allowed = {a.casefold() for a in allow}
    skipped = {}
    for value in values:
        folded = value.casefold()
        if len(value) < MIN_LENGTH:
            skipped[value] = f"shorter than {MIN_LENGTH}"
        elif folded in allowed:
            skipped[value] = "in the pipeline's allow list"
        elif folded in ordinary:
            skipped[value] = "used in ordinary sentences of the generated text"
        elif folded in book:
            skipped[value] = "in the codebook"
    return skipped


def _texts(name: str, data: bytes) -> Iterator[tuple[str, str]]:
    """Every readable text of a file: Parquet as rows, zip members, markup unescaped."""
    if name.endswith(".parquet"):
        table = pq.read_table(io.BytesIO(data))
        yield name, json.dumps(table.to_pylist(), ensure_ascii=False, default=str)
        return
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for member in zf.namelist():
                yield from _texts(f"{name}!{member}", zf.read(member))
        return
    text = data.decode("utf-8", "replace")
    yield name, text
    if "<" in text or "&" in text:  # XML and HTML: entities, and words split over runs
        yield name, html.unescape(text)
        yield name, html.unescape(re.sub(r"<[^>]*>", "", text))


def _search(audit: Audit, text: str, values: list[str], raw: bool = False) -> set[str]:
    """The values in ``text`` (case-insensitive substrings). Unless ``raw``, a match lying
    wholly inside a replacement does not count: a pseudonym may contain a real value
    (``Dahl`` in ``Dahlberg``)."""
    folded = text.casefold()
    hits = {v for v in values if v.casefold() in folded}
    if raw or not hits:
        return hits
    inside = bytearray(len(folded))
    for m in audit.replacements.finditer(folded):
        inside[m.start() : m.end()] = b"\1" * (m.end() - m.start())
    found = set()
    for value in hits:
        v = value.casefold()
        i = folded.find(v)
        while i >= 0:
            if not all(inside[i : i + len(v)]):
                found.add(value)
                break
            i = folded.find(v, i + 1)
    return found


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Audit:
    root = tmp_path_factory.mktemp("privacy-audit")
    project = root / "project"
    docs = corpus.generate_labelled(N_DOCS, "mixed", seed=SEED, words=(200, 600))
    assert {d.language for d in docs} == {"en", "sv"}
    names = _write_inputs(project, docs)
    (project / "sidl.yaml").write_text(_pipeline(root), encoding="utf-8")
    workdir = root / "work"
    proc = subprocess.run(
        [*CLI, "run", "sidl.yaml", "--workdir", str(workdir), "--no-progress"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values: dict[str, set[str]] = {}
    for doc in docs:
        for _, _, etype, value in doc.spans:
            values.setdefault(value, set()).add(etype)
    for name in names:
        values.setdefault(name, set()).add("MANIFEST")
    allow = ["ICA", "Coop", "Apoteket"]  # pipelines/sidl.yaml
    findings = workdir / "anonymise" / "findings"
    assert f"allow: [{', '.join(allow)}]" in (project / "sidl.yaml").read_text()
    found = Audit(
        root=root,
        project=project,
        workdir=workdir,
        out=root / "out",
        key=root / "keys" / "sidl.key.json",
        docs=docs,
        names=names,
        values=values,
        skipped=_skip_list(docs, values, allow),
        allow=allow,
        logs=proc.stdout + "\n" + proc.stderr,
        replacements=re.compile(
            "|".join(
                re.escape(r)
                for r in sorted(
                    {r.casefold() for r in pq.read_table(findings)["replacement"].to_pylist()},
                    key=len,
                    reverse=True,
                )
            )
        ),
    )
    print(f"\naudit: {len(values)} distinct identifier values, {len(found.checked)} searched")
    for value, why in sorted(found.skipped.items()):
        print(f"  skipped {value!r} ({'/'.join(sorted(values[value]))}): {why}")
    # the places searched: the run store minus the raw ingest stage, the exports, the logs
    places: list[tuple[str, str]] = [("logs", found.logs)]
    for folder in (workdir, found.out):
        for path in _files(folder):
            if path.is_relative_to(workdir / "ingest"):
                continue
            places += list(_texts(str(path.relative_to(root)), path.read_bytes()))
    for where, text in places:
        for value in _search(found, text, found.checked):
            found.leaks.setdefault(value, set()).add(where)
    return found


def test_raw_text_lives_only_in_the_ingest_stage(audit: Audit) -> None:
    manifest = json.loads((audit.workdir / "ingest" / "manifest.json").read_text())
    assert manifest["outputs"]["documents"]["sensitive"] is True
    anonymised = json.loads((audit.workdir / "anonymise" / "manifest.json").read_text())
    assert {o["sensitive"] for o in anonymised["outputs"].values()} == {False}
    # the scan itself works: the raw stage holds the identifiers
    ingest = _files(audit.workdir / "ingest")
    raw = " ".join(t for p in ingest for _, t in _texts(p.name, p.read_bytes()))
    present = _search(audit, raw, audit.checked, raw=True)
    assert present == set(audit.checked)
    # no raw document anywhere else, not even one line with a masked identifier in it
    masked = set(audit.checked) - set(audit.leaks)
    lines = {
        line
        for doc in audit.docs
        for line in doc.text.splitlines()
        if any(s[3] in line for s in doc.spans if s[3] in masked)
    }
    assert len(lines) > 50
    others = [p for f in (audit.workdir, audit.out) for p in _files(f)]
    others = [p for p in others if not p.is_relative_to(audit.workdir / "ingest")]
    blob = "\n".join(t for p in others for _, t in _texts(p.name, p.read_bytes()))
    assert not [line for line in lines if line in blob]
    assert not [line for line in lines if line in audit.logs]


def test_no_identifier_reaches_outputs_review_or_logs(audit: Audit) -> None:
    print(f"\nleaked identifier values: {len(audit.leaks)} of {len(audit.checked)} searched")
    for value, where in sorted(audit.leaks.items()):
        types = "/".join(sorted(audit.values[value]))
        docs = [d.doc_id for d in audit.docs if any(s[3] == value for s in d.spans)]
        print(f"  {value!r} ({types}) in {', '.join(docs)} -> {len(where)} places:")
        for place in sorted(where):
            print(f"      {place}")
    assert audit.checked, "nothing was searched for"
    # never a name of the participants manifest, never a structured identifier
    assert not {v for v in audit.leaks if "MANIFEST" in audit.values[v]}
    assert not {v for v in audit.leaks if audit.values[v] & STRUCTURED}
    # never anything in the logs
    assert not _search(audit, audit.logs, audit.checked)
    # misses of the recognisers on this corpus, at most the measured number
    assert len(audit.leaks) <= LEAK_CEILING, sorted(audit.leaks)


def test_the_key_alone_holds_the_masked_values(audit: Audit) -> None:
    key = audit.key.resolve()
    assert key.is_file()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not key.is_relative_to(audit.workdir.resolve())
    assert not key.is_relative_to(audit.out.resolve())
    masked = [v for v in audit.checked if v not in audit.leaks]
    # the key holds the masked values (casefolded, whole or as the parts found), except
    # manifest names the transcripts never use and values masked inside longer ones
    key_text = key.read_text(encoding="utf-8").casefold()
    missing = [v for v in masked if not all(t.casefold() in key_text for t in v.split())]
    print(f"\nmasked values not literally in the key: {missing}")
    assert len(missing) <= 0.2 * len(masked)
    # every file under the audit folder, except the inputs and the raw ingest stage
    holders = set()
    for path in _files(audit.root):
        if path.is_relative_to(audit.project / "data") or path.is_relative_to(
            audit.workdir / "ingest"
        ):
            continue
        for _, text in _texts(str(path), path.read_bytes()):
            if _search(audit, text, masked):
                holders.add(path.resolve())
    assert holders == {key}
