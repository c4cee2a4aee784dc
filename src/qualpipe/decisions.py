"""Researchers' decisions about the pipeline's suggestions: append-only, outside the run store.

In reflexive thematic analysis people decide and the machine only suggests. Every
decision a researcher takes (accept or reject an anonymisation finding, a coding, a
theme or a quote; add a missed one; edit, rename or merge) is one line of a JSON Lines
file kept next to the pipeline file, never inside the run store, so deleting a run
directory loses no human work. Stages read the *effective* decisions (the latest one per
target and reference) and the runner adds their fingerprint to the reading stages'
fingerprints, so exactly the affected stages re-run.

References name only anonymised data (offsets in the anonymised text, segment ids, code
paths, theme ids). One exception makes the file sensitive: a missed identifier
(``finding``/``add``) carries the selected text, which the anonymise stage adds to its
deny list. The file is therefore written with mode 0600 and is never exported.

The format is documented in docs/review.md.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qualpipe.errors import EXIT_INVALID, QualpipeError

TARGETS = ("finding", "coding", "theme", "quote")
ACTIONS = ("accept", "reject", "edit", "add", "merge", "rename")
#: Not a decision about a suggestion but about an earlier decision: the latest decision
#: for that reference becomes "no decision" (``value = {"id": <undone decision id>}``).
UNDO = "undo"
SOURCES = ("review", "qdpx", "cli")
#: Written into a folder created for a decisions file.
GITIGNORE = (
    "# qualpipe review decisions: they can hold identifiers the anonymiser missed.\n"
    "# Keep them out of version control and shared folders (docs/review.md).\n*\n"
)

#: The fields of a reference that identify what is decided about, per target: the latest
#: decision per (target, these values) is the effective one.
KEY_FIELDS: dict[str, tuple[str, ...]] = {
    "finding": ("document_id", "start", "end"),
    "coding": ("segment_id", "code"),
    "theme": ("theme_id",),
    "quote": ("theme_id", "segment_id"),
}

#: Which actions each target accepts.
TARGET_ACTIONS: dict[str, tuple[str, ...]] = {
    "finding": ("accept", "reject", "add"),
    "coding": ("accept", "reject", "add", "edit"),
    "theme": ("accept", "reject", "rename", "merge"),
    "quote": ("accept", "reject"),
}

# (target, action) -> (required ref keys, optional ref keys)
_FINDING_REF = ("document_id", "start", "end", "type", "replacement")
_INT_FIELDS = ("start", "end")


class DecisionError(QualpipeError):
    """A decision or the decisions file is invalid."""

    exit_code = EXIT_INVALID


def _ref_keys(target: str, action: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) keys of the reference."""
    if target == "finding":
        if action == "add":
            return ("document_id", "start", "end"), ("type",)
        return _FINDING_REF, ()
    return KEY_FIELDS[target], ()


def _value_keys(target: str, action: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required, optional) keys of the value."""
    if action == UNDO:
        return ("id",), ()
    if target == "finding" and action == "add":
        return ("text", "type"), ()
    if target == "coding" and action == "add":
        return (), ("start", "end")
    if target == "coding" and action == "edit":
        return (), ("code", "start", "end")
    if target == "theme" and action == "rename":
        return ("name",), ()
    if target == "theme" and action == "merge":
        return ("into",), ()
    return (), ()


def _check_keys(
    what: str, data: Mapping[str, Any], required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    missing = [k for k in required if k not in data]
    if missing:
        raise DecisionError(
            f"{what} lacks {', '.join(missing)} (needs {', '.join(required) or 'nothing'})"
        )
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        allowed = ", ".join(required + optional) or "nothing"
        raise DecisionError(f"{what} has unknown keys {', '.join(unknown)} (allowed: {allowed})")
    for k, v in data.items():
        if k in _INT_FIELDS:
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise DecisionError(f"{what}: {k} must be a whole number >= 0, not {v!r}")
        elif not isinstance(v, str) or not v.strip():
            raise DecisionError(f"{what}: {k} must be a non-empty string")
    if "start" in data or "end" in data:
        if ("start" in data) != ("end" in data):
            raise DecisionError(f"{what}: give both start and end, or neither")
        if data["start"] >= data["end"]:
            raise DecisionError(
                f"{what}: start ({data['start']}) must be before end ({data['end']})"
            )


def validate(decision: Decision) -> None:
    """Raise :class:`DecisionError` (one line) unless the decision is well formed."""
    t, a = decision.target, decision.action
    if t not in TARGETS:
        raise DecisionError(f"unknown decision target {t!r}; use one of {', '.join(TARGETS)}")
    if a != UNDO and a not in ACTIONS:
        raise DecisionError(f"unknown decision action {a!r}; use one of {', '.join(ACTIONS)}")
    if a != UNDO and a not in TARGET_ACTIONS[t]:
        raise DecisionError(
            f"a {t} decision cannot be {a!r}; use one of {', '.join(TARGET_ACTIONS[t])}"
        )
    if not isinstance(decision.ref, Mapping) or not isinstance(decision.value, Mapping):
        raise DecisionError(f"{t}/{a} decision: ref and value must be objects")
    if a == UNDO:
        # an undo names the reference by its key fields only
        _check_keys(f"{t}/{a} decision ref", decision.ref, KEY_FIELDS[t], _ref_keys(t, "reject")[0])
    else:
        _check_keys(f"{t}/{a} decision ref", decision.ref, *_ref_keys(t, a))
    _check_keys(f"{t}/{a} decision value", decision.value, *_value_keys(t, a))
    if t == "coding" and a == "edit" and not decision.value:
        raise DecisionError("coding/edit decision value needs code and/or start and end")
    if decision.source not in SOURCES:
        raise DecisionError(
            f"unknown decision source {decision.source!r}; use one of {', '.join(SOURCES)}"
        )
    for name in ("who", "memo", "id", "at"):
        if not isinstance(getattr(decision, name), str):
            raise DecisionError(f"{t}/{a} decision: {name} must be a string")


@dataclass(frozen=True)
class Decision:
    """One decision. ``id``, ``at`` and ``who`` are filled when it is appended."""

    target: str
    action: str
    ref: dict[str, Any]
    value: dict[str, Any] = field(default_factory=dict)
    who: str = ""
    memo: str = ""
    source: str = "review"
    id: str = ""
    at: str = ""

    def key(self) -> tuple[Any, ...]:
        """What the decision is about: the target and its reference's key fields."""
        return (self.target, *(self.ref.get(k) for k in KEY_FIELDS.get(self.target, ())))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at,
            "who": self.who,
            "source": self.source,
            "target": self.target,
            "action": self.action,
            "ref": dict(self.ref),
            "value": dict(self.value),
            "memo": self.memo,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Decision:
        if not isinstance(data, Mapping):
            raise DecisionError(f"a decision must be a JSON object, not {type(data).__name__}")
        missing = [k for k in ("target", "action", "ref") if k not in data]
        if missing:
            raise DecisionError(f"a decision lacks {', '.join(missing)}")
        ref, value = data["ref"], data.get("value") or {}
        if not isinstance(ref, Mapping) or not isinstance(value, Mapping):
            raise DecisionError("a decision's ref and value must be objects")
        decision = cls(
            target=data["target"],
            action=data["action"],
            ref=dict(ref),
            value=dict(value),
            who=data.get("who", ""),
            memo=data.get("memo", ""),
            source=data.get("source", "review"),
            id=data.get("id", ""),
            at=data.get("at", ""),
        )
        validate(decision)
        return decision


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DecisionStore:
    """A JSON Lines file of decisions, created on the first append."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def for_pipeline(
        cls, pipeline_file: Path, pipeline_name: str, override: Path | None = None
    ) -> DecisionStore:
        """Default location: ``<pipeline file's folder>/decisions/<pipeline name>.jsonl``
        (outside the run store / workdir; a pipeline file may set ``decisions: PATH``,
        relative to its folder)."""
        folder = Path(pipeline_file).resolve().parent
        if override is not None:
            path = Path(override).expanduser()
            return cls(path if path.is_absolute() else folder / path)
        return cls(folder / "decisions" / f"{pipeline_name}.jsonl")

    def __repr__(self) -> str:
        return f"DecisionStore({str(self.path)!r})"

    # -- writing ---------------------------------------------------------------------

    def append(self, decision: Decision) -> Decision:
        """Validate, fill id/at/who, append one line durably (mode 0600) and return it."""
        return self.extend([decision])[0]

    def extend(self, decisions: Iterable[Decision]) -> list[Decision]:
        filled = []
        for d in decisions:
            validate(d)
            filled.append(
                replace(
                    d,
                    id=d.id or uuid.uuid4().hex,
                    at=d.at or _now(),
                    who=d.who or _current_user(),
                    ref=dict(d.ref),
                    value=dict(d.value),
                )
            )
        if not filled:
            return []
        data = "".join(
            json.dumps(d.to_json(), ensure_ascii=False, sort_keys=True) + "\n" for d in filled
        )
        self._write(data.encode())
        return filled

    def undo(
        self, decision_id: str, *, who: str = "", memo: str = "", source: str = "cli"
    ) -> Decision:
        """Append an undo of the decision with that id (the reference goes back to undecided)."""
        for d in self.all():
            if d.id == decision_id:
                ref = {k: d.ref[k] for k in KEY_FIELDS[d.target]}
                return self.append(
                    Decision(d.target, UNDO, ref, {"id": d.id}, who=who, memo=memo, source=source)
                )
        raise DecisionError(
            f"{self.path}: no decision with id {decision_id!r}; `qualpipe decisions` lists them"
        )

    def _write(self, data: bytes) -> None:
        created = not self.path.exists()
        try:
            if not self.path.parent.exists():
                # a folder made for decisions: private, and kept out of version control
                # (missed identifiers are real names)
                self.path.parent.mkdir(parents=True, mode=0o700)
                (self.path.parent / ".gitignore").write_text(GITIGNORE, encoding="utf-8")
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise DecisionError(
                f"{self.path}: cannot write decisions ({exc.strerror}); check the folder"
            ) from exc
        try:
            os.fchmod(fd, 0o600)
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # never glue a line onto a torn one (a crash mid-write)
            view = memoryview(data)
            while view:  # one write for a line of normal size: O_APPEND keeps it whole
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        except OSError as exc:
            raise DecisionError(f"{self.path}: cannot write decisions ({exc.strerror})") from exc
        finally:
            os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                dfd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)

    # -- reading ---------------------------------------------------------------------

    def all(self) -> list[Decision]:
        """Every decision in file order; a corrupt line is an error naming file:line."""
        if not self.path.exists():
            return []
        out = []
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise DecisionError(f"{self.path}: cannot read decisions ({exc.strerror})") from exc
        lines = raw.decode("utf-8", errors="replace").split("\n")
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                out.append(Decision.from_json(json.loads(line)))
            except json.JSONDecodeError as exc:
                if n == len(lines):
                    # a last line without its newline is still being written (or was torn
                    # by a crash): not a decision yet
                    continue
                raise DecisionError(
                    f"{self.path}:{n}: not a JSON decision ({exc.msg}); repair or delete that line"
                ) from exc
            except DecisionError as exc:
                raise DecisionError(f"{self.path}:{n}: {exc}; repair or delete that line") from exc
        return out

    def effective(self, target: str | None = None) -> list[Decision]:
        """The latest decision per (target, reference key), in file order; an undo
        leaves its reference undecided."""
        return effective_of(self.all(), target)

    def fingerprint(self, targets: Iterable[str]) -> str:
        """sha256 over the effective decisions of those targets (what stages act on:
        memo, id and time left out, so re-taking the same decision changes nothing)."""
        return fingerprint_of(self.effective(), targets)


def effective_of(decisions: Iterable[Decision], target: str | None = None) -> list[Decision]:
    """The latest decision per (target, reference key) of ``decisions`` (in file order)."""
    if target is not None and target not in TARGETS:
        raise DecisionError(f"unknown decision target {target!r}; use one of {', '.join(TARGETS)}")
    latest: dict[tuple[Any, ...], tuple[int, Decision]] = {}
    for i, d in enumerate(decisions):
        if target is None or d.target == target:
            latest[d.key()] = (i, d)
    return [d for _, d in sorted(latest.values(), key=lambda x: x[0]) if d.action != UNDO]


def fingerprint_of(decisions: Iterable[Decision], targets: Iterable[str]) -> str:
    """sha256 over the effective ones of ``decisions`` whose target is in ``targets``."""
    wanted = set(targets)
    unknown = wanted - set(TARGETS)
    if unknown:
        raise DecisionError(f"unknown decision targets {sorted(unknown)}; use {', '.join(TARGETS)}")
    rows = [
        {"target": d.target, "action": d.action, "ref": d.ref, "value": d.value, "who": d.who}
        for d in effective_of(decisions)
        if d.target in wanted
    ]
    rows.sort(key=lambda r: json.dumps(r, sort_keys=True, ensure_ascii=False))
    text = json.dumps(
        {"targets": sorted(wanted), "decisions": rows}, sort_keys=True, ensure_ascii=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


def summarise(decisions: Iterable[Decision]) -> dict[str, Any]:
    """Counts of decisions (never their content) by target and action, by person, and
    as ``counts`` rows ``[target, action, who, n]``: what stage manifests record and the
    report's provenance shows."""
    by_target: dict[str, dict[str, int]] = {}
    by_person: dict[str, dict[str, int]] = {}
    rows: dict[tuple[str, str, str], int] = {}
    total = 0
    for d in decisions:
        total += 1
        who = d.who or "unknown"
        t = by_target.setdefault(d.target, {})
        t[d.action] = t.get(d.action, 0) + 1
        p = by_person.setdefault(who, {})
        p[d.action] = p.get(d.action, 0) + 1
        rows[(d.target, d.action, who)] = rows.get((d.target, d.action, who), 0) + 1
    return {
        "total": total,
        "by_target": by_target,
        "by_person": by_person,
        "counts": [[t, a, w, n] for (t, a, w), n in sorted(rows.items())],
    }
