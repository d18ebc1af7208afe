"""A small JSON-over-HTTP front on :class:`WorkspaceService` (standard library only), for tools that speak no LSP.

    gpte ide http --root PATH [--host 127.0.0.1] [--port 8765]

Endpoints (JSON in, JSON out):

* ``GET /health`` → ``{"ok": true, "state": ..., "partial": ..., "files": ..., "chunks": ...}`` (the service status)
* ``POST /search`` ``{"query": str, "k": int, "language": str?, "path_glob": str?, "kinds": [str]?}``
  → ``{"hits": [{uri, path, range, symbol, kind, language, score, snippet, start_line, end_line}], "partial": bool,
  "state": str, "indexed_files": int, "missing": [path]}``
* ``POST /reindex`` ``{}`` (the whole workspace) or ``{"paths": [path or file URI, ...]}`` → ``{"queued": ...}``

Errors: a body that is not a JSON object or has bad fields → 400 with ``{"error": reason}``; a path outside the
workspace → 403; unknown endpoints → 404; a body over 1 MiB → 413.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from gpte.ide.service import OutsideWorkspaceError, WorkspaceService

__all__ = ["make_http_server", "MAX_BODY"]

logger = logging.getLogger(__name__)

MAX_BODY = 1 << 20


class _BadRequest(Exception):
    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class _Handler(BaseHTTPRequestHandler):
    service: WorkspaceService  # set on the subclass made by make_http_server
    server_version = "gpte-ide"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class names it so
        logger.info("%s %s", self.address_string(), format % args)

    def _reply(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from exc
        if length > MAX_BODY:
            raise _BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_BODY} bytes")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"malformed JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"the body must be a JSON object, not {type(body).__name__}")
        return body

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self.path.split("?")[0] in ("/health", "/status"):
            self._reply(HTTPStatus.OK, {"ok": True, **self.service.status()})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: GET {self.path}"})

    def do_POST(self) -> None:  # noqa: N802
        route = {"/search": self._search, "/reindex": self._reindex}.get(self.path.split("?")[0])
        if route is None:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such endpoint: POST {self.path}"})
            return
        try:
            self._reply(HTTPStatus.OK, route(self._body()))
        except _BadRequest as exc:
            self._reply(exc.status, {"error": exc.reason})
        except OutsideWorkspaceError as exc:
            self._reply(HTTPStatus.FORBIDDEN, {"error": str(exc)})
        except (ValueError, TypeError) as exc:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except Exception as exc:  # the server keeps serving; the client learns what failed
            logger.exception("gpte ide http: %s failed", self.path)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})

    def _search(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"query", "k", "language", "path_glob", "kinds"}
        if unknown:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"unknown field(s) {sorted(unknown)}")
        if "query" not in body:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "no query")
        result = self.service.search(**body)
        return {"hits": [self.service.hit_json(h) for h in result.hits], "partial": result.partial,
                "state": result.state, "indexed_files": result.indexed_files, "missing": result.missing}

    def _reindex(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = set(body) - {"paths"}
        if unknown:
            raise _BadRequest(HTTPStatus.BAD_REQUEST, f"unknown field(s) {sorted(unknown)}")
        paths = body.get("paths")
        if paths is None:
            self.service.reindex()
            return {"queued": "workspace"}
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise _BadRequest(HTTPStatus.BAD_REQUEST, "paths must be a list of strings")
        return {"queued": self.service.notify_changed(paths)}


def make_http_server(service: WorkspaceService, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A threading HTTP server bound to ``host:port`` (port 0: any free port) answering from ``service``."""
    handler = type("GpteHandler", (_Handler,), {"service": service})
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    return httpd
