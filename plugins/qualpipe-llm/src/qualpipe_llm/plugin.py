"""The ``llm`` coder: code suggestions from a chat model behind an OpenAI-compatible API.

For each batch of the ``code`` stage the coder sends ``batch_size`` segments per request
to ``{base_url}/chat/completions``: a system message with the codebook (every code's id,
path name, level, description, inclusion and exclusion criteria and examples) and strict
instructions to answer with JSON only, and a user message with the segments, each under
a short id (``S1``, ``S2``, ...) that stands for its segment id in this request only::

    {"codings": [{"segment": "S1", "code": "talking", "score": 0.8,
                  "evidence": ["we just chat while we cook"]}]}

The answer is validated strictly: entries naming an unknown segment or code, or without
a numeric score, are dropped and counted (one warning per batch, counts only); scores
are clamped to 0..1; every evidence string must occur verbatim in the segment and becomes
``(term, start, end)`` with offsets into the document text, evidence that does not is
dropped. An answer that is not valid JSON gets one repair request; if that fails too the
batch fails with an error naming the model, and the stage fails without writing anything.

Requests are retried ``max_retries`` times, with exponential backoff and jitter, on HTTP
429 and 5xx, timeouts and connection errors; other HTTP errors fail at once.

Provenance: ``model`` (and every other option) is part of the ``coder_settings`` hash of
each coding row and is written in clear in the stage manifest's ``params``; the prompt
template is fixed by the coder version (:data:`PROMPT_SHA256`, pinned by a test, so the
template cannot change without a new version) and logged with the model at setup.

Logs carry counts, the model, the endpoint and timings, never segment text or the API key.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from qualpipe import PipelineError, QualpipeError, hookimpl
from qualpipe.codebook import Codebook
from qualpipe.coding.coders import Coder, CoderContext, Suggestion

from qualpipe_llm import __version__

__all__ = [
    "BASE_URL_ENV",
    "DEFAULT_BASE_URL",
    "LLM",
    "PROMPT_SHA256",
    "LLMError",
    "Settings",
    "State",
    "__version__",
    "code",
    "codebook_text",
    "messages",
    "parse_answer",
    "qualpipe_register_coders",
    "setup",
]

log = logging.getLogger("qualpipe_llm")

NAME = "llm"
VERSION = "1"
#: Environment variable with the endpoint when the ``base_url`` option is not given.
BASE_URL_ENV = "QUALPIPE_LLM_BASE_URL"
#: Ollama's OpenAI-compatible endpoint on this machine.
DEFAULT_BASE_URL = "http://127.0.0.1:11434/v1"

#: option -> default (``model`` has none: it is required)
DEFAULTS: dict[str, Any] = {
    "base_url": None,
    "model": None,
    "api_key_env": None,
    "temperature": 0.0,
    "timeout": 60.0,
    "max_retries": 3,
    "batch_size": 8,
    "max_codes": 3,
    "min_score": 0.0,
}
#: backoff before retry ``n`` (0-based): ``min(BACKOFF_CAP, BACKOFF_BASE * 2**n)`` times a
#: random factor in [0.5, 1) ("equal jitter"); a numeric Retry-After raises it
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
#: at most this much of an endpoint's error message goes into an error
ERROR_CHARS = 200

# module-level so tests can make waiting instant and jitter predictable
_sleep: Callable[[float], None] = time.sleep
_random: Callable[[], float] = random.random

SYSTEM_TEMPLATE = """\
You are a careful qualitative researcher coding interview segments with a codebook.

For each segment, choose the codes of the codebook below that apply to it, at most \
{max_codes} per segment. A code applies when the segment fits its description and \
inclusion criteria and not its exclusion criteria. Parent codes are themes: choose the \
most specific code that applies. Give no code to a segment that fits none.

Answer with ONE JSON object and nothing else: no prose, no markdown, no code fences. \
The object has exactly this form:
{{"codings": [{{"segment": "<segment id>", "code": "<code id>", "score": <number from 0 \
to 1>, "evidence": ["<exact quote from the segment>", ...]}}]}}

Rules:
- "segment" is a segment id exactly as given (S1, S2, ...); "code" is a code id exactly \
as given in the codebook. Never invent ids.
- "score" is your confidence from 0 to 1 that the code applies.
- "evidence" lists one to three short quotes copied character for character from that \
segment (same spelling, case and punctuation) that show why the code applies.
- If no code applies to any segment, answer {{"codings": []}}.

CODEBOOK ({n_codes} codes)
{codebook}"""

USER_TEMPLATE = """\
Code these {n_segments} segments. Answer with the JSON object only.

{segments}"""

REPAIR_TEMPLATE = """\
Your answer was not valid JSON of the required form ({problem}). Answer again with only \
the JSON object {{"codings": [...]}} as described, nothing else."""

#: sha256 of the prompt templates: fixed for a coder version (a test pins it)
PROMPT_SHA256 = hashlib.sha256(
    "\x00".join((SYSTEM_TEMPLATE, USER_TEMPLATE, REPAIR_TEMPLATE)).encode("utf-8")
).hexdigest()


class LLMError(QualpipeError):
    """The endpoint failed, or its model gave no usable answer: the stage fails."""


@dataclass(frozen=True)
class Settings:
    """The validated options."""

    model: str
    base_url: str
    api_key_env: str | None = None
    temperature: float = 0.0
    timeout: float = 60.0
    max_retries: int = 3
    batch_size: int = 8
    max_codes: int = 3
    min_score: float = 0.0

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"


@dataclass
class State:
    """The result of ``setup``: settings, the rendered codebook, known code ids."""

    settings: Settings
    system: str
    code_ids: frozenset[str]
    api_key: str | None = field(default=None, repr=False)
    #: False once the endpoint has refused ``response_format``
    json_mode: bool = True


# --------------------------------------------------------------------------- options


def _number(options: Mapping[str, Any], name: str, low: float, high: float | None) -> float:
    value = options.get(name)
    if value is None:
        value = DEFAULTS[name]
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < low or (high is not None and value > high):
        bound = f"from {low:g} to {high:g}" if high is not None else f"at least {low:g}"
        raise PipelineError(f"coder {NAME!r}: {name} must be a number {bound}, got {value!r}")
    return float(value)


def _integer(options: Mapping[str, Any], name: str, low: int) -> int:
    value = options.get(name)
    if value is None:
        value = DEFAULTS[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise PipelineError(
            f"coder {NAME!r}: {name} must be a whole number of at least {low}, got {value!r}"
        )
    return value


def settings(options: Mapping[str, Any]) -> Settings:
    """Check the options (raising :class:`PipelineError`) and fill in the defaults."""
    if "api_key" in options:
        raise PipelineError(
            f"coder {NAME!r}: never put an API key in the pipeline file; set api_key_env to "
            "the NAME of an environment variable that holds it"
        )
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise PipelineError(
            f"coder {NAME!r}: unknown option(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})"
        )
    model = options.get("model")
    if not isinstance(model, str) or not model.strip():
        raise PipelineError(
            f"coder {NAME!r}: model is required: the model name the endpoint serves, e.g. "
            "{name: llm, model: llama3.1:8b}"
        )
    base_url = options.get("base_url") or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if not isinstance(base_url, str) or urllib.parse.urlsplit(base_url).scheme not in (
        "http",
        "https",
    ):
        raise PipelineError(
            f"coder {NAME!r}: base_url must be an http:// or https:// URL such as "
            f"{DEFAULT_BASE_URL}, got {base_url!r}"
        )
    key_env = options.get("api_key_env")
    if key_env is not None and (
        not isinstance(key_env, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env)
    ):
        # the value is not shown: it may be the key itself, pasted in the wrong place
        raise PipelineError(
            f"coder {NAME!r}: api_key_env must be the NAME of an environment variable "
            "(letters, digits, _), such as OPENAI_API_KEY, not the key itself"
        )
    return Settings(
        model=model.strip(),
        base_url=base_url,
        api_key_env=key_env,
        temperature=_number(options, "temperature", 0.0, 2.0),
        timeout=_number(options, "timeout", 0.001, None),
        max_retries=_integer(options, "max_retries", 0),
        batch_size=_integer(options, "batch_size", 1),
        max_codes=_integer(options, "max_codes", 1),
        min_score=_number(options, "min_score", 0.0, 1.0),
    )


def _safe_url(url: str) -> str:
    """``url`` without user name or password, for logs and errors."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# --------------------------------------------------------------------------- prompt


def codebook_text(book: Codebook) -> str:
    """Every code of the codebook, one block each, in codebook order."""
    paths = book.path_names()
    blocks = []
    for c in book.codes:
        lines = [f"- id: {c.id}", f"  name: {paths[c.id]}", f"  level: {c.level}"]
        if c.parent_id:
            lines.append(f"  parent: {c.parent_id}")
        for label, value in (
            ("description", c.description),
            ("inclusion", c.inclusion),
            ("exclusion", c.exclusion),
        ):
            if value.strip():
                lines.append(f"  {label}: {' '.join(value.split())}")
        if c.examples:
            lines.append("  examples: " + json.dumps(list(c.examples), ensure_ascii=False))
        blocks.append("\n".join(lines))
    return "\n".join(blocks)


def system_message(book: Codebook, max_codes: int) -> str:
    return SYSTEM_TEMPLATE.format(
        max_codes=max_codes, n_codes=len(book.codes), codebook=codebook_text(book)
    )


def user_message(segments: Sequence[Mapping[str, Any]]) -> str:
    parts = [f"[S{i}]\n{seg['text']}\n[/S{i}]" for i, seg in enumerate(segments, start=1)]
    return USER_TEMPLATE.format(n_segments=len(segments), segments="\n\n".join(parts))


def messages(state: State, segments: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The chat messages for one request."""
    return [
        {"role": "system", "content": state.system},
        {"role": "user", "content": user_message(segments)},
    ]


# --------------------------------------------------------------------------- setup


def setup(codebook: Codebook, options: Mapping[str, Any]) -> State:
    """Check the options, read the API key from its variable, render the codebook."""
    s = settings(options)
    key = None
    if s.api_key_env is not None:
        key = os.environ.get(s.api_key_env, "").strip()
        if not key:
            raise PipelineError(
                f"coder {NAME!r}: api_key_env names {s.api_key_env}, but that environment "
                "variable is not set (or empty)"
            )
    if not codebook.codes:
        raise PipelineError(f"coder {NAME!r}: the codebook has no codes")
    state = State(
        settings=s,
        system=system_message(codebook, s.max_codes),
        code_ids=frozenset(c.id for c in codebook.codes),
        api_key=key,
    )
    log.info(
        "%s: model %r at %s, prompt sha256 %s, codebook %s (%d codes), %d segments per "
        "request, temperature %g, API key %s",
        NAME,
        s.model,
        _safe_url(s.base_url),
        PROMPT_SHA256[:12],
        codebook.version,
        len(codebook.codes),
        s.batch_size,
        s.temperature,
        f"from ${s.api_key_env}" if key else "none",
    )
    return state


# --------------------------------------------------------------------------- HTTP


class _Retryable(Exception):
    """A failure worth another try (429, 5xx, timeout, connection)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def _error_detail(body: bytes) -> str:
    """The endpoint's error message (shortened), never the request it echoes."""
    try:
        data = json.loads(body)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message", "") if isinstance(err, dict) else str(err)
    except (ValueError, AttributeError):
        msg = body.decode("utf-8", "replace")
    msg = " ".join(str(msg).split())
    return msg[:ERROR_CHARS] + ("..." if len(msg) > ERROR_CHARS else "")


def _post(state: State, payload: dict[str, Any]) -> dict[str, Any]:
    """One POST to the endpoint; JSON back, or an exception saying what went wrong."""
    s = state.settings
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if state.api_key:
        headers["Authorization"] = f"Bearer {state.api_key}"
    body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    request = urllib.request.Request(s.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=s.timeout) as response:
            raw = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_detail(exc.read() or b"")
        if exc.code == 429 or exc.code >= 500:
            retry_after = None
            header = exc.headers.get("Retry-After") if exc.headers else None
            if header and header.strip().isdigit():
                retry_after = float(header.strip())
            raise _Retryable(f"HTTP {exc.code} {detail}".strip(), retry_after) from None
        if exc.code == 400 and state.json_mode and "response_format" in detail:
            raise _NoJsonMode from None
        raise LLMError(
            f"coder {NAME!r}: model {s.model!r} at {_safe_url(s.url)}: HTTP {exc.code}"
            + (f": {detail}" if detail else "")
            + (" (check api_key_env)" if exc.code in (401, 403) else "")
            + (" (is the model name right?)" if exc.code == 404 else "")
        ) from None
    except TimeoutError:
        raise _Retryable(f"no answer within {s.timeout:g} s (timeout)") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            raise _Retryable(f"no answer within {s.timeout:g} s (timeout)") from None
        raise _Retryable(f"cannot connect: {exc.reason}") from None
    except OSError as exc:  # reset, remote closed, ...
        raise _Retryable(f"connection failed: {type(exc).__name__}") from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise _Retryable("the endpoint's response is not JSON") from None
    if not isinstance(data, dict):
        raise _Retryable("the endpoint's response is not a JSON object")
    return data


class _NoJsonMode(Exception):
    """The endpoint refused ``response_format``."""


def _complete(state: State, chat: list[dict[str, str]]) -> str:
    """The assistant's answer to ``chat``, with retries; raises :class:`LLMError`."""
    s = state.settings
    attempt = 0
    while True:
        payload: dict[str, Any] = {
            "model": s.model,
            "messages": chat,
            "temperature": s.temperature,
            "stream": False,
        }
        if state.json_mode:
            payload["response_format"] = {"type": "json_object"}
        try:
            data = _post(state, payload)
            content = _content(data)
        except _NoJsonMode:
            state.json_mode = False
            log.warning(
                "%s: the endpoint refuses response_format json_object; asking for JSON "
                "in the prompt only",
                NAME,
            )
            continue
        except _Retryable as exc:
            if attempt >= s.max_retries:
                raise LLMError(
                    f"coder {NAME!r}: model {s.model!r} at {_safe_url(s.url)} failed after "
                    f"{attempt + 1} attempt(s): {exc}"
                ) from None
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (0.5 + _random() / 2)
            if exc.retry_after is not None:
                delay = max(delay, min(exc.retry_after, BACKOFF_CAP))
            log.warning(
                "%s: model %r: %s; retry %d of %d in %.1f s",
                NAME,
                s.model,
                exc,
                attempt + 1,
                s.max_retries,
                delay,
            )
            _sleep(delay)
            attempt += 1
            continue
        return content


def _content(data: Mapping[str, Any]) -> str:
    try:
        content = data["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise _Retryable("the response has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise _Retryable("choices[0].message.content is not text")
    return content


# --------------------------------------------------------------------------- answers


@dataclass
class Counts:
    """What was dropped from answers (logged per batch; never any text)."""

    malformed: int = 0
    unknown_segment: int = 0
    unknown_code: int = 0
    evidence_dropped: int = 0
    below_min_score: int = 0
    over_max_codes: int = 0

    def any(self) -> bool:
        return any(vars(self).values())


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n(.*)\n\s*```\s*$", re.DOTALL | re.IGNORECASE)


def parse_answer(content: str) -> list[Any]:
    """The ``codings`` list of an answer; :class:`ValueError` if it is not of that form.

    One markdown code fence around the whole answer is tolerated (small local models add
    one despite the instructions); anything else must be the JSON object itself.
    """
    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("codings"), list):
        raise ValueError('not an object with a "codings" list')
    return list(data["codings"])


def _locate(quote: str, text: str) -> int:
    return text.find(quote) if quote else -1


def suggestions(
    entries: Sequence[Any],
    segments: Sequence[Mapping[str, Any]],
    state: State,
    counts: Counts,
) -> list[Suggestion]:
    """Validate answer entries into suggestions for the segments of one request."""
    s = state.settings
    found: dict[tuple[str, str], tuple[float, list[tuple[str, int, int]]]] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            counts.malformed += 1
            continue
        local, code_id, score = entry.get("segment"), entry.get("code"), entry.get("score")
        if not isinstance(local, str | int) or not isinstance(code_id, str):
            counts.malformed += 1
            continue
        if isinstance(score, str):
            try:
                score = float(score)
            except ValueError:
                score = None
        if not isinstance(score, int | float) or isinstance(score, bool) or math.isnan(score):
            counts.malformed += 1
            continue
        index = _segment_index(local, len(segments))
        if index is None:
            counts.unknown_segment += 1
            continue
        if code_id not in state.code_ids:
            counts.unknown_code += 1
            continue
        seg = segments[index]
        text, offset = seg["text"], seg["start"]
        evidence: list[tuple[str, int, int]] = []
        raw = entry.get("evidence") or []
        for quote in raw if isinstance(raw, list) else [raw]:
            at = _locate(quote, text) if isinstance(quote, str) else -1
            if at < 0:
                counts.evidence_dropped += 1
                continue
            item = (quote, offset + at, offset + at + len(quote))
            if item not in evidence:
                evidence.append(item)
        key = (seg["segment_id"], code_id)
        score = min(1.0, max(0.0, float(score)))
        if key in found:  # the same pair twice: best score, all evidence
            old_score, old_evidence = found[key]
            score = max(score, old_score)
            evidence = old_evidence + [e for e in evidence if e not in old_evidence]
        found[key] = (score, evidence)
    per_segment: dict[str, list[Suggestion]] = {}
    for (seg_id, code_id), (score, evidence) in found.items():
        if score < s.min_score:
            counts.below_min_score += 1
            continue
        evidence.sort(key=lambda e: (e[1], e[2]))
        per_segment.setdefault(seg_id, []).append(Suggestion(seg_id, code_id, score, evidence))
    out: list[Suggestion] = []
    for seg in segments:
        ranked = sorted(per_segment.get(seg["segment_id"], []), key=lambda x: -x.score)
        counts.over_max_codes += max(0, len(ranked) - s.max_codes)
        out.extend(ranked[: s.max_codes])
    return out


def _segment_index(local: str | int, n: int) -> int | None:
    """``"S3"`` (or ``"3"``, ``3``) -> 2 when there are at least 3 segments."""
    m = re.fullmatch(r"\s*\[?[Ss]?(\d+)\]?\s*", str(local))
    if m is None:
        return None
    i = int(m.group(1))
    return i - 1 if 1 <= i <= n else None


# --------------------------------------------------------------------------- coder


def _request(
    state: State, segments: Sequence[Mapping[str, Any]], counts: Counts
) -> list[Suggestion]:
    s = state.settings
    chat = messages(state, segments)
    content = _complete(state, chat)
    try:
        entries = parse_answer(content)
    except ValueError as exc:
        log.warning("%s: model %r gave no valid JSON (%s); asking once more", NAME, s.model, exc)
        chat = [
            *chat,
            {"role": "assistant", "content": content},
            {"role": "user", "content": REPAIR_TEMPLATE.format(problem=exc)},
        ]
        content = _complete(state, chat)
        try:
            entries = parse_answer(content)
        except ValueError as again:
            raise LLMError(
                f"coder {NAME!r}: model {s.model!r} did not answer with valid JSON, even "
                f"when asked again ({again}); try another model, a lower batch_size or "
                "temperature 0"
            ) from None
    return suggestions(entries, segments, state, counts)


def code(segments: Sequence[Mapping[str, Any]], ctx: CoderContext) -> Iterator[Suggestion]:
    """Suggest codes for ``segments``, ``batch_size`` segments per request."""
    state = ctx.state if isinstance(ctx.state, State) else setup(ctx.codebook, ctx.options)
    s = state.settings
    todo = [seg for seg in segments if str(seg.get("text") or "").strip()]
    counts = Counts()
    t0 = time.perf_counter()
    n_requests = n_suggestions = 0
    for i in range(0, len(todo), s.batch_size):
        chunk = todo[i : i + s.batch_size]
        t1 = time.perf_counter()
        found = _request(state, chunk, counts)
        n_requests += 1
        n_suggestions += len(found)
        log.debug(
            "%s: model %r: %d segments -> %d suggestions in %.2f s",
            NAME,
            s.model,
            len(chunk),
            len(found),
            time.perf_counter() - t1,
        )
        yield from found
    if counts.any():
        log.warning(
            "%s: model %r: dropped %d malformed entries, %d with unknown segment ids, %d with "
            "unknown code ids, %d evidence quotes not found verbatim, %d below min_score, "
            "%d over max_codes",
            NAME,
            s.model,
            counts.malformed,
            counts.unknown_segment,
            counts.unknown_code,
            counts.evidence_dropped,
            counts.below_min_score,
            counts.over_max_codes,
        )
    log.info(
        "%s: model %r: %d segments, %d requests, %d suggestions in %.2f s (prompt %s)",
        NAME,
        s.model,
        len(todo),
        n_requests,
        n_suggestions,
        time.perf_counter() - t0,
        PROMPT_SHA256[:12],
    )


LLM = Coder(
    name=NAME,
    code=code,
    setup=setup,
    version=VERSION,
    description=(
        "a chat model behind an OpenAI-compatible endpoint (Ollama, vLLM, llama.cpp, "
        f"hosted APIs); prompt sha256 {PROMPT_SHA256[:12]}"
    ),
)


@hookimpl
def qualpipe_register_coders(register: Callable[[Coder], None]) -> None:
    register(LLM)
