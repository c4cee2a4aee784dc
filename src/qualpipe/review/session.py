"""One review session: a pipeline, its run store, its decisions file and re-runs.

Everything the web app does goes through :class:`ReviewSession`, which needs no web
framework: it checks a decision against the anonymised data before appending it
(a finding that exists, a code that is in the codebook, a span inside its segment) and
runs the pipeline again in a background thread (:class:`Rerun`).
"""

from __future__ import annotations

import getpass
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from qualpipe.anonymise.recognisers import ENTITY_TYPES
from qualpipe.decisions import Decision, DecisionError, DecisionStore
from qualpipe.errors import QualpipeError
from qualpipe.plugins import Manager, create_manager
from qualpipe.review.data import ReviewData, find_sources
from qualpipe.runner import RunContext, RunOptions, prepare, run

log = structlog.get_logger("qualpipe")

MAX_MEMO = 4000
MAX_NAME = 200


class ReviewError(DecisionError):
    """A decision the review app refuses (it names something that is not there)."""


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


@dataclass
class RerunStatus:
    state: str = "idle"  # idle | running | finished | failed
    started: float | None = None
    seconds: float | None = None
    total: int = 0
    stages: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "seconds": self.seconds,
            "total": self.total,
            "done": len(self.stages),
            "stages": list(self.stages),
            "error": self.error,
            "before": self.before,
            "after": self.after,
        }


class Rerun:
    """Runs the pipeline (``qualpipe run``'s API) in a background thread, one at a time."""

    def __init__(self, session: ReviewSession) -> None:
        self.session = session
        self.status = RerunStatus()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ctx: RunContext | None = None

    @property
    def running(self) -> bool:
        return self.status.state == "running"

    def start(self) -> bool:
        """Start a re-run; ``False`` if one is already running."""
        with self._lock:
            if self.running:
                return False
            self.status = RerunStatus(
                state="running", started=time.time(), before=self.session.snapshot()
            )
            self._thread = threading.Thread(target=self._work, name="qualpipe-rerun", daemon=True)
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> RerunStatus:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.status

    def progress(self) -> dict[str, Any]:
        status = self.status
        ctx = self._ctx
        if status.state == "running" and ctx is not None:
            status.total = len(ctx.stages)
            status.stages = [
                {"stage": r.stage_id, "action": r.action, "reason": r.reason}
                for r in list(ctx.summary.results)
            ]
        return status.to_json()

    def _ready(self, ctx: RunContext) -> None:
        self._ctx = ctx

    def _work(self) -> None:
        s = self.session
        status = self.status
        t0 = time.perf_counter()
        try:
            summary = run(
                s.pipeline_file,
                s.overrides,
                RunOptions(workdir=s.workdir, progress=False),
                s.manager,
                on_ready=self._ready,
            )
        except QualpipeError as exc:
            status.error = str(exc)
            status.state = "failed"
        except Exception as exc:  # reported on the page; the app keeps serving
            status.error = f"{type(exc).__name__} (see the terminal; run `qualpipe run` to debug)"
            status.state = "failed"
            log.error("review re-run crashed", error=type(exc).__name__)
        else:
            status.total = len(summary.results)
            status.stages = [
                {"stage": r.stage_id, "action": r.action, "reason": r.reason}
                for r in summary.results
            ]
            status.state = "finished"
        finally:
            status.seconds = round(time.perf_counter() - t0, 2)
            self._ctx = None
        try:
            status.after = s.snapshot()
        except QualpipeError:
            status.after = {}
        log.info("review re-run done", state=status.state, seconds=status.seconds)


class ReviewSession:
    """A pipeline opened for review."""

    def __init__(
        self,
        pipeline_file: Path | str,
        overrides: tuple[str, ...] = (),
        workdir: Path | None = None,
        who: str | None = None,
        manager: Manager | None = None,
    ) -> None:
        self.pipeline_file = Path(pipeline_file)
        self.overrides = tuple(overrides)
        self.workdir = workdir
        self.manager = manager or create_manager()
        ctx = prepare(self.pipeline_file, self.overrides, RunOptions(workdir=workdir), self.manager)
        self.pipeline = ctx.pipeline
        self.stages = ctx.stages
        self.store = ctx.store
        self.sources = find_sources(ctx.stages)
        self.data = ReviewData(self.store, self.sources)
        self.decisions: DecisionStore = self.pipeline.decision_store()
        self.who = who or _user()
        self.csrf_token = secrets.token_urlsafe(32)
        self.rerun = Rerun(self)

    # -- state -----------------------------------------------------------------------------

    def plan(self) -> list[dict[str, str]]:
        """What ``qualpipe run`` would do now, stage by stage (decisions included)."""
        ctx = prepare(
            self.pipeline_file, self.overrides, RunOptions(workdir=self.workdir), self.manager
        )
        return [{"stage": d.stage_id, "action": d.action, "reason": d.reason} for d in ctx.plan()]

    def snapshot(self) -> dict[str, Any]:
        """Counts a re-run is compared by (themes by id; findings; codings)."""
        return {
            "findings": len(self.data.rows("findings")),
            "codings": len(self.data.rows("codings")),
            "themes": {k: list(v) for k, v in self.data.theme_counts().items()},
        }

    # -- deciding ----------------------------------------------------------------------------

    def decide(
        self,
        target: str,
        action: str,
        ref: Mapping[str, Any],
        value: Mapping[str, Any] | None = None,
        memo: str = "",
    ) -> Decision:
        """Check a decision against the anonymised data, then append it."""
        if not isinstance(memo, str) or len(memo) > MAX_MEMO:
            raise ReviewError(f"a memo is text of at most {MAX_MEMO} characters")
        if not isinstance(ref, Mapping) or (value is not None and not isinstance(value, Mapping)):
            raise ReviewError("ref and value must be objects")
        check = getattr(self, f"_check_{target}", None)
        if check is None:
            raise ReviewError(f"unknown decision target {target!r}")
        clean_ref, clean_value = check(action, dict(ref), dict(value or {}))
        decision = Decision(
            target, action, clean_ref, clean_value, who=self.who, memo=memo.strip(), source="review"
        )
        stored = self.decisions.append(decision)
        log.info("review decision", target=target, action=action, id=stored.id)
        return stored

    def undo(self, decision_id: str) -> Decision:
        undone = self.decisions.undo(decision_id, who=self.who, source="review")
        log.info("review undo", target=undone.target, id=undone.id)
        return undone

    def current(self, target: str, ref: Mapping[str, Any]) -> Decision | None:
        """The effective decision about ``ref``, if any."""
        probe = Decision(target, "accept", dict(ref))
        return next((d for d in self.decisions.effective(target) if d.key() == probe.key()), None)

    def _check_finding(
        self, action: str, ref: dict[str, Any], value: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        doc_id = ref.get("document_id")
        docs = self.data.documents()
        if doc_id not in docs:
            raise ReviewError(f"no anonymised document {doc_id!r} in the latest run")
        if action in ("accept", "reject"):
            key = (doc_id, ref.get("start"), ref.get("end"))
            for f in self.data.rows("findings"):
                if (f["doc_id"], f["start"], f["end"]) == key:
                    return (
                        {
                            "document_id": doc_id,
                            "start": f["start"],
                            "end": f["end"],
                            "type": f["entity_type"],
                            "replacement": f.get("replacement")
                            or docs[doc_id]["text"][f["start"] : f["end"]],
                        },
                        {},
                    )
            raise ReviewError(f"no finding at {ref.get('start')}-{ref.get('end')} in {doc_id}")
        if action != "add":
            raise ReviewError(f"a finding can be accepted, rejected or added, not {action!r}")
        start, end = ref.get("start"), ref.get("end")
        text: str = docs[doc_id]["text"]
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            raise ReviewError("select some text of the document first")
        etype = str(value.get("type") or "").upper()
        if etype not in ENTITY_TYPES:
            raise ReviewError(f"unknown identifier type {etype!r}; use one of the list")
        selected = text[start:end]
        # trim the selection to the identifier itself
        lead = len(selected) - len(selected.lstrip())
        trail = len(selected) - len(selected.rstrip())
        start, end = start + lead, end - trail
        selected = text[start:end]
        if not selected or len(selected) > 200:
            raise ReviewError("select the identifier itself (1 to 200 characters)")
        for f in self.data.rows("findings"):
            if f["doc_id"] == doc_id and f["start"] < end and start < f["end"]:
                raise ReviewError("the selection overlaps an identifier that is already replaced")
        return {"document_id": doc_id, "start": start, "end": end}, {
            "text": selected,
            "type": etype,
        }

    def _check_coding(
        self, action: str, ref: dict[str, Any], value: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        seg_id, code = ref.get("segment_id"), ref.get("code")
        segments = self.data.segments()
        seg = segments.get(seg_id) if isinstance(seg_id, str) else None
        if seg is None:
            raise ReviewError(f"no segment {seg_id!r} in the latest run")
        if code not in self.data.codebook():
            raise ReviewError(f"no code {code!r} in the codebook")
        clean = {"segment_id": seg_id, "code": code}
        if action in ("accept", "reject"):
            known = any(
                r["segment_id"] == seg_id and r["code_id"] == code
                for r in self.data.rows("codings")
            )
            mine = self.current("coding", clean)
            if not known and (mine is None or mine.action != "add"):
                raise ReviewError(f"segment {seg_id} has no coding {code!r} to {action}")
            return clean, {}
        if action != "add":
            raise ReviewError(f"a coding can be accepted, rejected or added, not {action!r}")
        if "start" in value or "end" in value:
            start, end = value.get("start"), value.get("end")
            s0, s1 = int(seg["start"]), int(seg["end"])
            if not (isinstance(start, int) and isinstance(end, int) and s0 <= start < end <= s1):
                raise ReviewError("the selected span must lie inside the segment")
            if (start, end) != (s0, s1):
                return clean, {"start": start, "end": end}
        return clean, {}

    def _check_theme(
        self, action: str, ref: dict[str, Any], value: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        themes = self.data.theme_counts()
        theme_id = ref.get("theme_id")
        if theme_id not in themes:
            raise ReviewError(f"no theme {theme_id!r} in the latest run")
        clean = {"theme_id": theme_id}
        if action in ("accept", "reject"):
            return clean, {}
        if action == "rename":
            name = " ".join(str(value.get("name") or "").split())
            if not name or len(name) > MAX_NAME:
                raise ReviewError(f"a theme name is 1 to {MAX_NAME} characters")
            return clean, {"name": name}
        if action == "merge":
            into = value.get("into")
            if into not in themes or into == theme_id:
                raise ReviewError("merge into another theme of the list")
            return clean, {"into": into}
        raise ReviewError(f"a theme can be accepted, rejected, renamed or merged, not {action!r}")

    def _check_quote(
        self, action: str, ref: dict[str, Any], value: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        clean = {"theme_id": ref.get("theme_id"), "segment_id": ref.get("segment_id")}
        known = any(
            (q["theme_id"], q["segment_id"]) == (clean["theme_id"], clean["segment_id"])
            for q in self.data.rows("quotes")
        )
        if not known and self.current("quote", clean) is None:
            raise ReviewError("no such quote in the latest run")
        if action not in ("accept", "reject"):
            raise ReviewError(f"a quote can be pinned (accept) or rejected, not {action!r}")
        return clean, {}
