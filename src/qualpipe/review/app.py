"""The review web app (Flask): server-rendered pages, a little JavaScript, JSON actions.

Security on a shared machine: the server binds 127.0.0.1 only; every request must name
``127.0.0.1`` or ``localhost`` as its Host (a DNS-rebinding guard); every POST carries
the session's random CSRF token (a hidden field or the ``X-CSRF-Token`` header); every
response says ``Cache-Control: no-store`` and forbids framing and any script, style or
image that is not served by the app itself (``Content-Security-Policy: default-src
'self'``). Request lines are not logged, and errors are logged by type only, so no
transcript text reaches a log.
"""

from __future__ import annotations

import hmac
import json
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import structlog
from flask import Flask, Response, abort, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException

from qualpipe.anonymise.recognisers import ENTITY_TYPES
from qualpipe.decisions import Decision
from qualpipe.errors import QualpipeError
from qualpipe.review.data import CodeInfo, CodingItem, SensitiveDataError
from qualpipe.review.session import ReviewSession

log = structlog.get_logger("qualpipe")

ALLOWED_HOSTS = frozenset({"127.0.0.1", "localhost"})
PAGE_SIZE = 50
SECURITY_HEADERS = {
    "Cache-Control": "no-store, max-age=0",
    "Pragma": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

#: How a decision reads on the page, per target and action.
STATE_LABELS = {
    ("finding", "accept"): "confirmed",
    ("finding", "reject"): "false positive",
    ("finding", "add"): "missed identifier added",
    ("coding", "accept"): "accepted",
    ("coding", "reject"): "rejected",
    ("coding", "add"): "added by you",
    ("coding", "edit"): "edited",
    ("theme", "accept"): "accepted",
    ("theme", "reject"): "rejected",
    ("theme", "rename"): "renamed",
    ("theme", "merge"): "merged",
    ("quote", "accept"): "pinned",
    ("quote", "reject"): "rejected",
}


def state_label(decision: Decision | None) -> str:
    if decision is None:
        return "open"
    return STATE_LABELS.get((decision.target, decision.action), decision.action)


def _page_args() -> tuple[str, int]:
    state = request.args.get("state", "open")
    if state not in ("open", "decided", "all"):
        state = "open"
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    return state, page


def _queue(items: list[Any], state: str, page: int) -> dict[str, Any]:
    """Template arguments of one page of a review queue: the items of ``page`` among
    those in ``state`` (open, decided, all), with the totals and the page count."""
    if state == "open":
        shown = [i for i in items if i.decision is None]
    elif state == "decided":
        shown = [i for i in items if i.decision is not None]
    else:
        shown = items
    pages = max(1, -(-len(shown) // PAGE_SIZE))
    page = min(page, pages)
    return {
        "items": shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
        "total": len(items),
        "open": sum(1 for i in items if i.decision is None),
        "state": state,
        "page": page,
        "pages": pages,
    }


def _local_next(value: str | None, default: str) -> str:
    """A redirect target only within this app."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


def create_app(session: ReviewSession) -> Flask:
    """The Flask app of one review session."""
    app = Flask("qualpipe.review", root_path=str(_here()))
    app.config.update(
        MAX_CONTENT_LENGTH=64 * 1024,
        SECRET_KEY=session.csrf_token,
        TEMPLATES_AUTO_RELOAD=False,
        JSON_SORT_KEYS=False,
    )
    app.jinja_env.globals.update(
        state_label=state_label,
        session=session,
        csrf_token=session.csrf_token,
        entity_types=ENTITY_TYPES,
    )
    app.jinja_env.filters["tojson_attr"] = lambda v: json.dumps(v, ensure_ascii=False)

    @app.before_request
    def guard() -> Response | None:
        host = urlsplit("//" + (request.host or "")).hostname or ""
        if host not in ALLOWED_HOSTS:
            abort(400, description="unexpected Host header: open the app at http://127.0.0.1")
        if request.method == "POST":
            sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf") or ""
            if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
                abort(403, description="missing or wrong CSRF token: reload the page")
            origin = request.headers.get("Origin")
            if origin and (urlsplit(origin).hostname or "") not in ALLOWED_HOSTS:
                abort(403, description="request from another site refused")
        return None

    @app.after_request
    def headers(response: Response) -> Response:
        for k, v in SECURITY_HEADERS.items():
            response.headers[k] = v
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> tuple[Any, int]:
        code = exc.code or 500
        if request.is_json or request.path.startswith("/api/"):
            return jsonify(error=exc.description), code
        return render_template("error.html", title=exc.name, message=exc.description), code

    @app.errorhandler(SensitiveDataError)
    def sensitive(exc: SensitiveDataError) -> tuple[Any, int]:
        log.warning("review refused a sensitive dataset", path=request.path)
        if request.path.startswith("/api/"):
            return jsonify(error=str(exc)), 403
        return render_template("error.html", title="Sensitive data", message=str(exc)), 403

    @app.errorhandler(QualpipeError)
    def qualpipe_error(exc: QualpipeError) -> tuple[Any, int]:
        if request.path.startswith("/api/") or request.is_json:
            return jsonify(error=str(exc)), 400
        return render_template("error.html", title="Error", message=str(exc)), 400

    @app.errorhandler(pa.ArrowException)
    @app.errorhandler(OSError)
    def busy(exc: Exception) -> tuple[Any, int]:
        # datasets swapped under us while a re-run commits: ask for a reload
        log.warning("review page could not read the run store", error=type(exc).__name__)
        msg = (
            "the pipeline is re-running; reload this page when it has finished"
            if session.rerun.running
            else "could not read the run store; reload the page, or re-run the pipeline"
        )
        return render_template("error.html", title="Please reload", message=msg), 503

    @app.context_processor
    def rerun_state() -> dict[str, Any]:
        return {"rerun": session.rerun.progress()}

    def render(template: str, **kw: Any) -> str:
        return render_template(template, **kw)

    # -- pages -------------------------------------------------------------------------------

    @app.get("/")
    def overview() -> str:
        effective = session.decisions.effective()
        sections: list[dict[str, Any]] = []
        problems: list[str] = []

        def section(name: str, href: str, items: Callable[[], list[Any]]) -> None:
            try:
                found = items()
            except SensitiveDataError as exc:
                problems.append(str(exc))
                found = []
            decided = sum(1 for i in found if i.decision is not None)
            sections.append(
                {
                    "name": name,
                    "href": href,
                    "total": len(found),
                    "decided": decided,
                    "open": len(found) - decided,
                }
            )

        section("Anonymisation findings", "/findings", lambda: session.data.findings(effective))
        section("Codings", "/codings", lambda: session.data.codings(effective))
        section(
            "Themes",
            "/themes",
            lambda: [t for t in session.data.themes(effective) if not t.proposal],
        )
        added = {
            "finding": sum(1 for d in effective if d.target == "finding" and d.action == "add"),
            "coding": sum(1 for d in effective if d.target == "coding" and d.action == "add"),
        }
        try:
            documents = len(session.data.rows("documents"))
        except SensitiveDataError as exc:
            problems.append(str(exc))
            documents = 0
        return render(
            "overview.html",
            title="Overview",
            sections=sections,
            problems=problems,
            documents=documents,
            decisions=len(session.decisions.all()),
            added=added,
            finished_at=session.data.finished_at(),
        )

    @app.get("/findings")
    def findings() -> str:
        state, page = _page_args()
        etype = request.args.get("type", "")
        effective = session.decisions.effective("finding")
        items = session.data.findings(effective)
        types = Counter(i.type for i in items)
        if etype:
            items = [i for i in items if i.type == etype]
        added = [d for d in effective if d.action == "add"]
        documents = [
            (doc_id, doc.get("participant_id") or "")
            for doc_id, doc in session.data.documents().items()
        ]
        return render(
            "findings.html",
            documents=documents,
            title="Anonymisation findings",
            **_queue(items, state, page),
            etype=etype,
            types=sorted(types.items()),
            added=added,
            available=session.sources.get("findings") is not None,
        )

    @app.get("/document/<doc_id>")
    def document(doc_id: str) -> str:
        found = session.data.document(doc_id)
        if found is None:
            abort(404, description=f"no anonymised document {doc_id!r} in the latest run")
        doc, text = found
        added = [
            d
            for d in session.decisions.effective("finding")
            if d.action == "add" and d.ref.get("document_id") == doc_id
        ]
        return render(
            "document.html",
            title=f"Document {doc_id}",
            doc=doc,
            text=text,
            findings=sum(1 for p in text if p.marks),
            added=added,
        )

    @app.get("/codings")
    def codings() -> str:
        state, page = _page_args()
        code = request.args.get("code", "")
        effective = session.decisions.effective("coding")
        items = session.data.codings(effective)
        book = session.data.codebook()
        # codings people added that no run has produced yet
        present = {(i.segment_id, i.code.code_id) for i in items}
        segments = session.data.segments() if effective else {}
        for d in effective:
            ref = (d.ref.get("segment_id"), d.ref.get("code"))
            if d.action == "add" and ref not in present and ref[0] in segments:
                code_id = str(ref[1])
                info = book.get(code_id) or CodeInfo(code_id, code_id, code_id, "code", "")
                item: CodingItem = session.data.coding_for(segments[str(ref[0])], info)
                item.decision = d
                items.append(item)
        if code:
            items = [i for i in items if i.code.code_id == code]
        return render(
            "codings.html",
            title="Codings",
            **_queue(items, state, page),
            code=code,
            codes=list(book.values()),
            available=session.sources.get("codings") is not None,
        )

    @app.get("/themes")
    def themes() -> str:
        effective = session.decisions.effective()
        items = session.data.themes(effective)
        status = session.rerun.progress()
        before = status.get("before", {}).get("themes", {}) if status["state"] == "finished" else {}
        return render(
            "themes.html",
            title="Themes",
            themes=[t for t in items if not t.proposal],
            names={t.theme_id: t.name for t in items},
            before=before,
            available=session.sources.get("themes") is not None,
        )

    @app.get("/decisions")
    def decisions() -> str:
        everything = session.decisions.all()
        effective = {d.id for d in session.decisions.effective()}
        return render(
            "decisions.html",
            title="Decisions",
            decisions=list(reversed(everything)),
            effective=effective,
        )

    # -- actions -----------------------------------------------------------------------------

    def payload() -> Mapping[str, Any]:
        if request.is_json:
            data = request.get_json(silent=True)
            if not isinstance(data, dict):
                abort(400, description="expected a JSON object")
            return data
        form = request.form
        try:
            return {
                "target": form.get("target", ""),
                "action": form.get("action", ""),
                "ref": json.loads(form.get("ref") or "{}"),
                "value": json.loads(form.get("value") or "{}"),
                "memo": form.get("memo", ""),
                "id": form.get("id", ""),
                "name": form.get("name"),
                "into": form.get("into"),
            }
        except ValueError:
            abort(400, description="malformed form")

    def answer(decision: Decision) -> Any:
        if request.is_json:
            return jsonify(
                ok=True,
                id=decision.id,
                target=decision.target,
                action=decision.action,
                state=state_label(session.current(decision.target, decision.ref)),
            )
        return redirect(_local_next(request.form.get("next"), "/"), code=303)

    @app.post("/api/decide")
    def decide() -> Any:
        data = payload()
        value = dict(data.get("value") or {})
        # plain forms send a theme's new name or merge target as their own fields
        extra = {"rename": "name", "merge": "into"}.get(str(data.get("action")))
        if extra and data.get(extra):
            value[extra] = data[extra]
        try:
            decision = session.decide(
                str(data.get("target", "")),
                str(data.get("action", "")),
                data.get("ref") or {},
                value,
                str(data.get("memo") or ""),
            )
        except SensitiveDataError:
            raise
        except QualpipeError as exc:
            return _refuse(str(exc))
        return answer(decision)

    @app.post("/api/undo")
    def undo() -> Any:
        data = payload()
        try:
            decision = session.undo(str(data.get("id", "")))
        except QualpipeError as exc:
            return _refuse(str(exc))
        return answer(decision)

    def _refuse(message: str) -> Any:
        if request.is_json:
            return jsonify(ok=False, error=message), 400
        return render_template("error.html", title="Not saved", message=message), 400

    @app.post("/api/rerun")
    def rerun() -> Any:
        started = session.rerun.start()
        if request.is_json:
            return jsonify(started=started, **session.rerun.progress()), 202 if started else 409
        return redirect(_local_next(request.form.get("next"), "/"), code=303)

    @app.get("/api/rerun")
    def rerun_status() -> Any:
        return jsonify(session.rerun.progress())

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status=204)

    @app.get("/api/plan")
    def plan() -> Any:
        return jsonify(stages=session.plan())

    return app


def _here() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent
