"""Serving the review app on 127.0.0.1 (werkzeug's server, in a thread for tests)."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

HOST = "127.0.0.1"


class QuietHandler(WSGIRequestHandler):
    """Logs nothing per request: request lines may carry ids a researcher typed."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def log(self, type: str, message: str, *args: Any) -> None:
        # werkzeug logs errors here; keep the kind only, never request contents
        if type == "error":
            super().log(type, "request failed (%s)", self.command or "?")


def make(app: Any, port: int = 0) -> BaseWSGIServer:
    """A threaded server for ``app`` on 127.0.0.1 (``port`` 0: a free random port)."""
    return make_server(HOST, port, app, threaded=True, request_handler=QuietHandler)


class ServerThread:
    """Runs the app in a daemon thread: ``with ServerThread(app) as url: ...``."""

    def __init__(self, app: Any, port: int = 0) -> None:
        self.server = make(app, port)
        self.url = f"http://{HOST}:{self.server.port}/"
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="qualpipe-review", daemon=True
        )

    def start(self) -> str:
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
