"""The llm coder against a scripted chat-completions server started in the test.

The server (http.server on 127.0.0.1, a random port, its own thread) records every
request and answers from a script: a queue of replies consumed one per request, then
a default responder that codes the segments it is sent.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from qualpipe import QualpipeError
from qualpipe.codebook import Code, Codebook
from qualpipe.coding.coders import CoderContext, Suggestion
from qualpipe.errors import PipelineError
from qualpipe.testing import Project, invoke

import qualpipe_llm.plugin as plugin
from qualpipe_llm.plugin import LLMError, code, setup

# -- the scripted server -------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer: a status, a body (an assistant message's content for 200)."""

    content: str | None = None
    status: int = 200
    body: bytes | None = None
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def ok(codings: list[dict[str, Any]] | str) -> Reply:
    return Reply(content=codings if isinstance(codings, str) else json.dumps({"codings": codings}))


def default_responder(request: dict[str, Any]) -> Reply:
    """Codes each segment of the user message: 'prata' -> talking, 'mat' -> food."""
    user = request["messages"][1]["content"]
    codings = []
    for local, text in re.findall(r"\[(S\d+)\]\n(.*?)\n\[/S\d+\]", user, re.DOTALL):
        if "pratar" in text:
            codings.append(
                {"segment": local, "code": "talking", "score": 0.9, "evidence": ["pratar"]}
            )
        if "mat" in text:
            codings.append({"segment": local, "code": "food", "score": 0.7, "evidence": ["mat"]})
    return ok(codings)


class Server:
    def __init__(self) -> None:
        self.script: list[Reply] = []
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.responder: Callable[[dict[str, Any]], Reply] = default_responder
        self.refuse_response_format = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length))
                server.requests.append(request)
                server.headers.append(dict(self.headers.items()))
                server.paths.append(self.path)
                if server.refuse_response_format and "response_format" in request:
                    reply = Reply(status=400, body=b'{"error": {"message": "response_format"}}')
                else:
                    reply = server.script.pop(0) if server.script else server.responder(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status == 200 and reply.body is None:
                    data = {
                        "id": "x",
                        "object": "chat.completion",
                        "model": request.get("model"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                    body = json.dumps(data).encode()
                else:
                    body = reply.body if reply.body is not None else b'{"error": "boom"}'
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout)
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits are recorded, not slept; jitter is fixed at its upper end."""
    waited: list[float] = []
    monkeypatch.setattr(plugin, "_sleep", waited.append)
    monkeypatch.setattr(plugin, "_random", lambda: 1.0)
    return waited


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plugin.BASE_URL_ENV, raising=False)


# -- data ------------------------------------------------------------------------------------

BOOK = Codebook(
    "SIDL",
    [
        Code(
            "talking",
            "Talking",
            level="theme",
            description="Casual, spontaneous conversation.",
            inclusion="Talk valued for itself.",
            exclusion="Formal assessment conversations.",
            examples=["we just chat while we cook"],
        ),
        Code("being-heard", "Being heard", level="code", parent_id="talking", position=1),
        Code("food", "Food", level="theme", description="Cooking and eating.", position=2),
    ],
)
DOC = "I: Hur går det?\nIP: Vi pratar om allt.\nIP: Vi lagar mat ihop.\n"
SEGMENTS = [
    {
        "segment_id": "p01:s20-38",
        "doc_id": "p01",
        "start": 20,
        "end": 38,
        "text": DOC[20:38],
    },
    {
        "segment_id": "p01:s43-61",
        "doc_id": "p01",
        "start": 43,
        "end": 61,
        "text": DOC[43:61],
    },
]


def run(options: Mapping[str, Any], segments: list[dict[str, Any]] | None = None) -> list[Any]:
    state = setup(BOOK, options)
    return list(code(segments or SEGMENTS, CoderContext(BOOK, options, state)))


#: the prompt templates of coder version 1 (sha256, first 12 hex digits)
PINNED_PROMPT = "65637319ca2a"


# -- prompt ----------------------------------------------------------------------------------


def test_prompt_has_codebook_segments_and_asks_for_json(server: Server) -> None:
    run({"base_url": server.base_url, "model": "test-model"})
    (request,) = server.requests
    assert server.paths == ["/v1/chat/completions"]
    assert request["model"] == "test-model"
    assert request["temperature"] == 0
    assert request["response_format"] == {"type": "json_object"}
    system, user = request["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    for needle in (
        "- id: talking",
        "name: Talking",
        "description: Casual, spontaneous conversation.",
        "inclusion: Talk valued for itself.",
        "exclusion: Formal assessment conversations.",
        'examples: ["we just chat while we cook"]',
        "- id: being-heard",
        "name: Talking / Being heard",
        "parent: talking",
        "- id: food",
        "JSON",
        '{"codings": [{"segment": "<segment id>", "code": "<code id>"',
        "exact quote",
        "at most 3 per segment",
    ):
        assert needle in system["content"], needle
    assert "[S1]\nVi pratar om allt.\n[/S1]" in user["content"]
    assert "[S2]\nVi lagar mat ihop.\n[/S2]" in user["content"]
    assert "JSON" in user["content"]


def test_prompt_hash_is_pinned_to_the_coder_version() -> None:
    # Changing a prompt template changes codings: bump VERSION and update this hash.
    templates = (plugin.SYSTEM_TEMPLATE, plugin.USER_TEMPLATE, plugin.REPAIR_TEMPLATE)
    digest = hashlib.sha256("\x00".join(templates).encode()).hexdigest()
    assert digest == plugin.PROMPT_SHA256
    assert (plugin.VERSION, plugin.PROMPT_SHA256[:12]) == ("1", PINNED_PROMPT)
    assert plugin.PROMPT_SHA256[:12] in plugin.LLM.description


# -- suggestions -----------------------------------------------------------------------------


def test_suggestions_codes_scores_and_document_offsets(server: Server) -> None:
    server.script = [
        ok(
            [
                {"segment": "S1", "code": "talking", "score": 0.9, "evidence": ["pratar om"]},
                {"segment": "S1", "code": "being-heard", "score": 1.7, "evidence": ["allt"]},
                {"segment": "S2", "code": "food", "score": -0.2, "evidence": ["lagar mat", "mat"]},
            ]
        )
    ]
    got = run({"base_url": server.base_url, "model": "test-model"})
    assert got == [
        Suggestion("p01:s20-38", "being-heard", 1.0, [("allt", 33, 37)]),
        Suggestion("p01:s20-38", "talking", 0.9, [("pratar om", 23, 32)]),
        Suggestion("p01:s43-61", "food", 0.0, [("lagar mat", 46, 55), ("mat", 52, 55)]),
    ]
    for sug in got:
        for term, start, end in sug.evidence:
            assert DOC[start:end] == term


def test_unknown_ids_malformed_entries_and_unfound_evidence_are_dropped(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    server.script = [
        ok(
            [
                {"segment": "S9", "code": "talking", "score": 0.9},
                {"segment": "p01:s20-38", "code": "talking", "score": 0.9},
                {"segment": "S1", "code": "no-such-code", "score": 0.9},
                {"segment": "S1", "code": "talking"},
                {"segment": "S1", "code": "talking", "score": "high"},
                "S1 talking",
                {
                    "segment": "S1",
                    "code": "talking",
                    "score": "0.8",
                    "evidence": ["we talk about everything", "Vi pratar", "VI PRATAR", 7],
                },
            ]
        )
    ]
    with caplog.at_level(logging.INFO, logger="qualpipe_llm"):
        got = run({"base_url": server.base_url, "model": "test-model"})
    assert got == [Suggestion("p01:s20-38", "talking", 0.8, [("Vi pratar", 20, 29)])]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    message = warning.getMessage()
    assert "3 malformed entries" in message
    assert "2 with unknown segment ids" in message
    assert "1 with unknown code ids" in message
    assert "3 evidence quotes not found verbatim" in message
    assert "test-model" in message
    for record in caplog.records:  # never the segment text
        assert "pratar" not in record.getMessage() and "mat ihop" not in record.getMessage()


def test_max_codes_min_score_and_duplicates(server: Server) -> None:
    server.script = [
        ok(
            [
                {"segment": "S1", "code": "talking", "score": 0.5, "evidence": ["Vi"]},
                {"segment": "S1", "code": "talking", "score": 0.6, "evidence": ["allt"]},
                {"segment": "S1", "code": "being-heard", "score": 0.4},
                {"segment": "S1", "code": "food", "score": 0.3},
                {"segment": "S2", "code": "food", "score": 0.1},
            ]
        )
    ]
    got = run(
        {"base_url": server.base_url, "model": "m", "max_codes": 2, "min_score": 0.2},
    )
    assert got == [
        Suggestion("p01:s20-38", "talking", 0.6, [("Vi", 20, 22), ("allt", 33, 37)]),
        Suggestion("p01:s20-38", "being-heard", 0.4, []),
    ]
    assert "at most 2 per segment" in server.requests[0]["messages"][0]["content"]


def test_batch_size_splits_requests(server: Server) -> None:
    segments = [
        {**SEGMENTS[i % 2], "segment_id": f"s{i}"} for i in range(5)
    ]  # 5 segments, 2 per request -> 3 requests
    got = run({"base_url": server.base_url, "model": "m", "batch_size": 2}, segments)
    assert len(server.requests) == 3
    assert [
        len(re.findall(r"\[/S\d+\]", r["messages"][1]["content"])) for r in server.requests
    ] == [
        2,
        2,
        1,
    ]
    assert [(s.segment_id, s.code_id) for s in got] == [
        ("s0", "talking"),
        ("s1", "food"),
        ("s2", "talking"),
        ("s3", "food"),
        ("s4", "talking"),
    ]


def test_fenced_json_is_accepted() -> None:
    assert plugin.parse_answer('```json\n{"codings": []}\n```') == []
    with pytest.raises(ValueError):
        plugin.parse_answer('Sure! {"codings": []}')
    with pytest.raises(ValueError):
        plugin.parse_answer('{"codes": []}')


# -- invalid JSON ----------------------------------------------------------------------------


def test_invalid_json_gets_one_repair_request(server: Server) -> None:
    server.script = [
        Reply(content="Segment S1 is about talking."),
        ok([{"segment": "S1", "code": "talking", "score": 0.9}]),
    ]
    got = run({"base_url": server.base_url, "model": "test-model"})
    assert got == [Suggestion("p01:s20-38", "talking", 0.9, [])]
    assert len(server.requests) == 2
    repair = server.requests[1]["messages"]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert repair[2]["content"] == "Segment S1 is about talking."
    assert "not valid JSON" in repair[3]["content"]


def test_invalid_json_twice_fails_naming_the_model(server: Server) -> None:
    server.script = [Reply(content="no"), Reply(content='{"codings": [')]
    with pytest.raises(LLMError, match=r"model 'test-model' did not answer with valid JSON"):
        run({"base_url": server.base_url, "model": "test-model"})
    assert len(server.requests) == 2


# -- retries, timeouts, errors ---------------------------------------------------------------


def test_429_is_retried_with_backoff(server: Server, sleeps: list[float]) -> None:
    server.script = [Reply(status=429), Reply(status=429, headers={"Retry-After": "5"})]
    got = run({"base_url": server.base_url, "model": "m"})
    assert len(got) == 2 and len(server.requests) == 3
    assert sleeps == [1.0, 5.0]  # 1 s * 2**0, then Retry-After wins over 2 s


def test_backoff_is_exponential_with_jitter(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: list[float] = []
    monkeypatch.setattr(plugin, "_sleep", waited.append)
    monkeypatch.setattr(plugin, "_random", lambda: 0.0)  # the lower end: half
    server.script = [Reply(status=503)] * 3
    run({"base_url": server.base_url, "model": "m", "max_retries": 3})
    assert waited == [0.5, 1.0, 2.0]


def test_500_every_time_fails_after_max_retries(server: Server, sleeps: list[float]) -> None:
    server.script = [Reply(status=500, body=b'{"error": {"message": "model crashed"}}')] * 10
    with pytest.raises(LLMError) as info:
        run({"base_url": server.base_url, "model": "test-model", "max_retries": 2})
    message = str(info.value)
    assert "model 'test-model'" in message and "3 attempt(s)" in message
    assert "HTTP 500 model crashed" in message
    assert len(server.requests) == 3 and sleeps == [1.0, 2.0]


def test_other_4xx_fail_at_once(server: Server, sleeps: list[float]) -> None:
    server.script = [Reply(status=404, body=b'{"error": {"message": "model not found"}}')]
    with pytest.raises(LLMError, match=r"HTTP 404: model not found \(is the model name right"):
        run({"base_url": server.base_url, "model": "nope"})
    assert len(server.requests) == 1 and sleeps == []


def test_slow_response_times_out_and_is_retried(server: Server, sleeps: list[float]) -> None:
    server.script = [Reply(content='{"codings": []}', delay=1.0)]
    got = run({"base_url": server.base_url, "model": "m", "timeout": 0.2, "max_retries": 1})
    assert [(s.code_id, s.evidence) for s in got] == [
        ("talking", [("pratar", 23, 29)]),
        ("food", [("mat", 52, 55)]),
    ]
    assert len(server.requests) == 2 and sleeps == [1.0]


def test_timeout_every_time_fails(server: Server, sleeps: list[float]) -> None:
    server.script = [Reply(content='{"codings": []}', delay=1.0)] * 2
    with pytest.raises(LLMError, match=r"failed after 2 attempt\(s\): no answer within 0.2 s"):
        run({"base_url": server.base_url, "model": "m", "timeout": 0.2, "max_retries": 1})


def test_connection_refused_is_retried_then_fails(sleeps: list[float]) -> None:
    s = Server()
    url = s.base_url
    s.close()
    with pytest.raises(LLMError, match="cannot connect"):
        run({"base_url": url, "model": "m", "max_retries": 2})
    assert len(sleeps) == 2


def test_endpoint_without_response_format(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    server.refuse_response_format = True
    got = run({"base_url": server.base_url, "model": "m", "batch_size": 1})
    assert len(got) == 2
    assert ["response_format" in r for r in server.requests] == [True, False, False]


# -- API key ---------------------------------------------------------------------------------


def test_api_key_from_env_as_bearer_never_logged(
    server: Server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "sk-test-5ecret-v4lue"
    monkeypatch.setenv("MY_LLM_KEY", secret)
    with caplog.at_level(logging.DEBUG, logger="qualpipe_llm"):
        run({"base_url": server.base_url, "model": "m", "api_key_env": "MY_LLM_KEY"})
    assert server.headers[0]["Authorization"] == f"Bearer {secret}"
    assert caplog.records and all(secret not in r.getMessage() for r in caplog.records)
    assert any("from $MY_LLM_KEY" in r.getMessage() for r in caplog.records)
    assert secret not in repr(setup(BOOK, {"model": "m", "api_key_env": "MY_LLM_KEY"}))


def test_no_key_no_authorization_header(server: Server) -> None:
    run({"base_url": server.base_url, "model": "m"})
    assert "Authorization" not in server.headers[0]


def test_option_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MISSING_KEY", raising=False)
    with pytest.raises(PipelineError, match="model is required"):
        setup(BOOK, {})
    with pytest.raises(PipelineError, match="never put an API key"):
        setup(BOOK, {"model": "m", "api_key": "sk-x"})
    with pytest.raises(PipelineError, match="not set") as info:
        setup(BOOK, {"model": "m", "api_key_env": "MISSING_KEY"})
    assert "MISSING_KEY" in str(info.value)
    with pytest.raises(PipelineError, match="NAME of an environment variable") as info:
        setup(BOOK, {"model": "m", "api_key_env": "sk-abc123-secret"})
    assert "sk-abc123" not in str(info.value)
    with pytest.raises(PipelineError, match="unknown option"):
        setup(BOOK, {"model": "m", "temprature": 0})
    with pytest.raises(PipelineError, match="batch_size must be a whole number"):
        setup(BOOK, {"model": "m", "batch_size": 0})
    with pytest.raises(PipelineError, match="base_url must be"):
        setup(BOOK, {"model": "m", "base_url": "localhost:11434"})


def test_base_url_default_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plugin.settings({"model": "m"}).base_url == "http://127.0.0.1:11434/v1"
    monkeypatch.setenv(plugin.BASE_URL_ENV, "http://gpu-box:8000/v1")
    s = plugin.settings({"model": "m"})
    assert (s.base_url, s.url) == (
        "http://gpu-box:8000/v1",
        "http://gpu-box:8000/v1/chat/completions",
    )
    assert plugin.settings({"model": "m", "base_url": "https://x/v1"}).base_url == "https://x/v1"
    defaults = plugin.settings({"model": "m"})
    assert (defaults.temperature, defaults.timeout, defaults.max_retries) == (0.0, 60.0, 3)
    assert (defaults.batch_size, defaults.max_codes, defaults.min_score) == (8, 3, 0.0)


def test_error_is_a_qualpipe_error() -> None:
    assert issubclass(LLMError, QualpipeError)


# -- through qualpipe ------------------------------------------------------------------------

CODEBOOK_YAML = """\
codebook: 1
name: SIDL
codes:
  - {id: talking, name: Talking, level: theme, description: Casual conversation.}
  - {id: food, name: Food, level: theme, description: Cooking and eating.}
"""


def pipeline(url: str) -> str:
    return f"""\
qualpipe: 1
name: llm
stages:
  - {{id: ingest, uses: ingest, with: {{paths: data}}}}
  - {{id: segment, uses: segment}}
  - {{id: codebook, uses: codebook, with: {{path: codebook.yaml}}}}
  - id: code
    uses: code
    with:
      coders: [{{name: llm, base_url: "{url}", model: test-model}}]
"""


@pytest.fixture
def project(
    qualpipe_project: Project, qualpipe_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> Project:
    # the installed copy (if any) stays out, so this test sees exactly the module below
    monkeypatch.setenv("QUALPIPE_DISABLE_PLUGINS", "llm")
    qualpipe_plugin(plugin)
    qualpipe_project.write("data/p01.txt", DOC)
    qualpipe_project.write("codebook.yaml", CODEBOOK_YAML)
    return qualpipe_project


def test_end_to_end(project: Project, server: Server) -> None:
    project.pipeline(pipeline(server.base_url))
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code == 0, result.output
    rows = project.dataset("llm", "code").to_pylist()
    assert {(r["code_id"], r["coder"], r["coder_version"], r["status"]) for r in rows} == {
        ("talking", "llm", "1", "suggested"),
        ("food", "llm", "1", "suggested"),
    }
    for r in rows:
        assert r["evidence"]
        for e in r["evidence"]:
            assert DOC[e["start"] : e["end"]] == e["term"]
    manifest = project.manifest("llm", "code")
    assert manifest["params"]["coders"][0]["model"] == "test-model"
    comps = manifest["components"]["components"]
    assert comps["coder"]["llm"] == f"qualpipe_llm.plugin@{plugin.__version__}/1"


def test_end_to_end_failure_writes_nothing(
    project: Project, server: Server, sleeps: list[float]
) -> None:
    server.script = [Reply(status=500)] * 20
    project.pipeline(pipeline(server.base_url))
    result = project.run("run", "pipeline.yaml")
    assert result.exit_code != 0
    assert "test-model" in result.output and "HTTP 500" in result.output
    assert not (project.workdir("llm") / "code" / "manifest.json").exists()


def test_listed_by_qualpipe_plugins_through_its_entry_point(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        dist = importlib.metadata.distribution("qualpipe-llm")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(
            "qualpipe-llm is not installed (pip install -e plugins/qualpipe-llm): "
            "entry-point discovery cannot be tested"
        )
    monkeypatch.delenv("QUALPIPE_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("QUALPIPE_LOAD_PLUGINS", raising=False)
    result = invoke(["plugins", "--json"])
    assert result.exit_code == 0, result.stderr
    by_name = {p["name"]: p for p in result.json()["plugins"]}
    assert by_name["llm"] == {
        "name": "llm",
        "version": dist.version,
        "source": "entrypoint",
        "distribution": "qualpipe-llm",
        "hooks": ["qualpipe_register_coders"],
        "provides": {"coder": ["llm"]},
        "error": None,
    }
