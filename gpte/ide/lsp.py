"""The gpte language server (pygls): semantic ``workspace/symbol`` and a ``gpte.search`` command over a workspace.

    gpte ide serve --stdio                  # what an editor starts
    gpte ide serve --tcp --port 2087        # 127.0.0.1 unless --host says otherwise

Methods:

* ``workspace/symbol``: the query, in words or a name fragment, ranked by meaning → ``SymbolInformation[]`` (LSP
  lines are 0-based; a chunk's 1-based inclusive lines ``s..e`` become the range ``(s-1, 0)..(e, 0)``). While the
  first pass over the workspace is still running the answer comes from what is indexed so far and the server says so
  in a ``window/logMessage`` ("results are partial").
* ``workspace/executeCommand``:
  ``gpte.search`` with ``[query]``, ``[query, {k, language, path_glob, kinds}]`` or ``[{query, k, ...}]`` →
  ``{"hits": [{uri, path, range, symbol, kind, language, score, snippet}], "partial": bool, "state", ...}``;
  ``gpte.reindex`` with ``[]`` (whole workspace) or ``[uri, ...]``; ``gpte.status`` → the service status.
* ``textDocument/didSave`` and ``workspace/didChangeWatchedFiles`` queue the named files for re-indexing; a polling
  watcher catches changes made outside the editor.

The workspace is the ``initialize`` request's ``rootUri`` (else its first workspace folder, else ``rootPath``).
Indexing runs in a background thread and reports LSP work-done progress (``window/workDoneProgress/create``, then
``$/progress`` begin / report / end) when the client supports it. Requests run off the event loop, so a
``$/cancelRequest`` answers a pending request with ``RequestCancelled`` while the server goes on.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

try:
    from lsprotocol import types
    from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest
    from pygls.lsp.server import LanguageServer
    from pygls.protocol import LanguageServerProtocol
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the gpte language server needs pygls and lsprotocol: pip install 'gpte[ide]'") from _exc

import gpte
from gpte.code.search import DEFAULT_CODE_MODEL, CodeHit
from gpte.ide.service import OutsideWorkspaceError, ProgressEvent, WorkspaceService

__all__ = ["GpteLanguageServer", "build_server", "serve", "SYMBOL_KINDS"]

logger = logging.getLogger(__name__)

SYMBOL_KINDS = {"function": types.SymbolKind.Function, "method": types.SymbolKind.Method,
                "class": types.SymbolKind.Class, "window": types.SymbolKind.Namespace}
_LEVELS = {"error": types.MessageType.Error, "warning": types.MessageType.Warning, "info": types.MessageType.Info,
           "log": types.MessageType.Log}
WORKSPACE_SYMBOL_K = 25  # symbols per workspace/symbol answer (initializationOptions {"k": N} changes it)


class GpteProtocol(LanguageServerProtocol):
    """pygls' protocol, answering a request whose params do not fit its method with an error (pygls alone drops
    it, and the client would wait for ever)."""

    def structure_message(self, data: dict[str, Any]) -> Any:
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "method" in data and data.get("id") is not None:
                error = type(exc)(f"{exc.message}: the params do not fit {data['method']!r}")
                self._send_response(data["id"], error=error.to_response_error())
            raise


class GpteLanguageServer(LanguageServer):
    """A pygls server holding one :class:`WorkspaceService` (created on ``initialized``)."""

    def __init__(self, service_options: dict[str, Any]) -> None:
        super().__init__("gpte", gpte.__version__, protocol_cls=GpteProtocol)
        self.service_options = service_options
        self.service: WorkspaceService | None = None
        self.root: str | None = None
        self.symbol_k = WORKSPACE_SYMBOL_K
        self.progress_supported = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._events: asyncio.Queue[ProgressEvent] | None = None
        self._tokens = 0

    # ------------------------------------------------------------------ from the worker thread
    def post_message(self, level: str, text: str) -> None:
        """Send ``window/logMessage`` (and ``window/showMessage`` for errors) from any thread."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        params = types.LogMessageParams(type=_LEVELS.get(level, types.MessageType.Info), message=text)
        loop.call_soon_threadsafe(self.window_log_message, params)
        if level == "error":
            loop.call_soon_threadsafe(self.window_show_message,
                                      types.ShowMessageParams(type=types.MessageType.Error, message=text))

    def post_progress(self, event: ProgressEvent) -> None:
        """Queue a progress event for the event loop (kept in order by one consumer task)."""
        loop, events = self.loop, self._events
        if loop is not None and events is not None and not loop.is_closed():
            loop.call_soon_threadsafe(events.put_nowait, event)

    async def pump_progress(self) -> None:
        """Turn queued :class:`ProgressEvent` s into ``window/workDoneProgress/create`` and ``$/progress``."""
        assert self._events is not None
        token: str | None = None
        while True:
            event = await self._events.get()
            if event.kind == "begin":
                token = None
                if self.progress_supported:
                    self._tokens += 1
                    candidate = f"gpte-index-{self._tokens}"
                    try:
                        await asyncio.wait_for(self.work_done_progress.create_async(candidate), 10)
                        token = candidate
                    except Exception as exc:  # the client refused or never answered: no progress for this job
                        logger.info("work-done progress not created: %s", exc)
                if token is not None:
                    self.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                        title=event.title, message=event.message, percentage=event.percentage, cancellable=False))
            elif token is not None and event.kind == "report":
                self.work_done_progress.report(token, types.WorkDoneProgressReport(
                    message=event.message, percentage=event.percentage))
            elif token is not None and event.kind == "end":
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(message=event.message))
                self.work_done_progress.tokens.pop(token, None)
                token = None

    def require_service(self) -> WorkspaceService:
        if self.service is None:
            raise JsonRpcInvalidRequest("gpte: no workspace: the initialize request named no rootUri, rootPath or "
                                        "workspace folder")
        return self.service


def _range(hit: CodeHit) -> types.Range:
    """1-based inclusive lines → an LSP range covering them (0-based, end exclusive)."""
    return types.Range(start=types.Position(line=max(0, hit.start_line - 1), character=0),
                       end=types.Position(line=max(hit.start_line, hit.end_line), character=0))


def _symbol(service: WorkspaceService, hit: CodeHit) -> types.SymbolInformation:
    name = hit.qualname or hit.symbol or f"{hit.path}:{hit.start_line}-{hit.end_line}"
    return types.SymbolInformation(name=name, kind=SYMBOL_KINDS.get(hit.kind, types.SymbolKind.Function),
                                   location=types.Location(uri=service.uri(hit.path), range=_range(hit)),
                                   container_name=hit.path)


def _search_arguments(args: tuple[Any, ...]) -> dict[str, Any]:
    """``[query]``, ``[query, {options}]`` or ``[{query, ...}]`` → keyword arguments for the service."""
    if len(args) == 1 and isinstance(args[0], dict):
        opts = dict(args[0])
    elif 1 <= len(args) <= 2 and isinstance(args[0], str) and (len(args) == 1 or isinstance(args[1], dict)):
        opts = {"query": args[0], **(args[1] if len(args) == 2 else {})}
    else:
        raise JsonRpcInvalidParams("gpte.search takes [query], [query, {k, language, path_glob, kinds}] or "
                                   "[{query, k, language, path_glob, kinds}]")
    unknown = set(opts) - {"query", "k", "language", "path_glob", "kinds"}
    if unknown:
        raise JsonRpcInvalidParams(f"gpte.search: unknown option(s) {sorted(unknown)}")
    if "query" not in opts:
        raise JsonRpcInvalidParams("gpte.search: no query")
    return opts


async def _run_search(ls: GpteLanguageServer, **opts: Any) -> Any:
    service = ls.require_service()
    try:
        return await asyncio.to_thread(service.search, **opts)
    except (OutsideWorkspaceError, ValueError) as exc:
        raise JsonRpcInvalidParams(f"gpte: {exc}") from exc


def _root_from(params: types.InitializeParams) -> str | None:
    if params.root_uri:
        return params.root_uri
    if params.workspace_folders:
        return params.workspace_folders[0].uri
    return params.root_path


def build_server(model: Any = DEFAULT_CODE_MODEL, device: str | None = None, watch: bool = True,
                 poll_interval: float = 2.0, group_chunks: int = 256) -> GpteLanguageServer:
    """A ready-to-start language server; the service options apply to the workspace named by ``initialize``."""
    server = GpteLanguageServer({"model": model, "device": device, "watch": watch, "poll_interval": poll_interval,
                                 "group_chunks": group_chunks})

    @server.feature(types.INITIALIZE)
    def initialize(ls: GpteLanguageServer, params: types.InitializeParams) -> None:
        ls.root = _root_from(params)
        window = params.capabilities.window
        ls.progress_supported = bool(window is not None and window.work_done_progress)
        options = params.initialization_options
        if isinstance(options, dict) and isinstance(options.get("k"), int) and 1 <= options["k"] <= 1000:
            ls.symbol_k = options["k"]
        if params.workspace_folders and len(params.workspace_folders) > 1:
            logger.warning("several workspace folders: gpte serves the first, %s", ls.root)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: GpteLanguageServer, params: types.InitializedParams) -> None:
        ls.loop = asyncio.get_running_loop()
        ls._events = asyncio.Queue()
        ls._pump_task = asyncio.ensure_future(ls.pump_progress())  # type: ignore[attr-defined]
        if ls.root is None:
            ls.post_message("error", "gpte: the client named no workspace folder; nothing to index")
            return
        try:
            root = WorkspaceService.resolve_root(ls.root)
            ls.service = WorkspaceService(root, on_progress=ls.post_progress, on_message=ls.post_message,
                                          **ls.service_options)
        except (OSError, ValueError) as exc:
            ls.post_message("error", f"gpte: cannot serve {ls.root}: {exc}")
            return
        ls.service.start()
        ls.post_message("info", f"gpte: indexing {root} in the background")
        caps = ls.client_capabilities.workspace
        watched = caps.did_change_watched_files if caps is not None else None
        if watched is not None and watched.dynamic_registration:
            opts = types.DidChangeWatchedFilesRegistrationOptions(watchers=[types.FileSystemWatcher(glob_pattern="**/*")])
            reg = types.Registration(id="gpte-watch", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                                     register_options=opts)
            try:
                await asyncio.wait_for(
                    ls.client_register_capability_async(types.RegistrationParams(registrations=[reg])), 10)
            except Exception as exc:
                logger.info("didChangeWatchedFiles registration refused: %s", exc)

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: GpteLanguageServer, params: None) -> None:
        if ls.service is not None:
            await asyncio.to_thread(ls.service.close, 5.0)

    @server.feature(types.WORKSPACE_SYMBOL)
    async def workspace_symbol(ls: GpteLanguageServer,
                               params: types.WorkspaceSymbolParams) -> list[types.SymbolInformation]:
        if not params.query.strip():
            return []
        result = await _run_search(ls, query=params.query, k=ls.symbol_k)
        service = ls.require_service()
        if result.partial:
            status = service.status()
            ls.window_log_message(types.LogMessageParams(
                type=types.MessageType.Info,
                message=f"gpte: results are partial: the workspace is still being indexed "
                        f"({status['progress']['done']}/{status['progress']['total']} files embedded)"))
        return [_symbol(service, h) for h in result.hits]

    @server.command("gpte.search")
    async def cmd_search(ls: GpteLanguageServer, *args: Any) -> dict[str, Any]:
        opts = _search_arguments(args)
        result = await _run_search(ls, **opts)
        service = ls.require_service()
        return {"hits": [service.hit_json(h) for h in result.hits], "partial": result.partial,
                "state": result.state, "indexed_files": result.indexed_files, "missing": result.missing}

    @server.command("gpte.reindex")
    async def cmd_reindex(ls: GpteLanguageServer, *args: Any) -> dict[str, Any]:
        service = ls.require_service()
        if not args:
            service.reindex()
            return {"queued": "workspace"}
        if not all(isinstance(a, str) for a in args):
            raise JsonRpcInvalidParams("gpte.reindex takes file URIs or workspace paths")
        try:
            return {"queued": service.notify_changed(args)}
        except OutsideWorkspaceError as exc:
            raise JsonRpcInvalidParams(f"gpte: {exc}") from exc

    @server.command("gpte.status")
    async def cmd_status(ls: GpteLanguageServer, *args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(ls.require_service().status)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: GpteLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        _queue(ls, [params.text_document.uri])

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched(ls: GpteLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
        _queue(ls, [change.uri for change in params.changes])

    return server


def _queue(ls: GpteLanguageServer, uris: list[str]) -> None:
    if ls.service is None:
        return
    inside = []
    for uri in uris:
        try:
            inside.append(ls.service.resolve(uri))
        except OutsideWorkspaceError as exc:
            ls.window_log_message(types.LogMessageParams(type=types.MessageType.Warning, message=f"gpte: {exc}"))
    if inside:
        ls.service.notify_changed(inside)


def serve(stdio: bool = True, host: str = "127.0.0.1", port: int = 2087, **service_options: Any) -> None:
    """Run the server until the client exits: over stdin/stdout, or over TCP on ``host:port``."""
    server = build_server(**service_options)
    if stdio:
        out = sys.stdout.buffer
        sys.stdout = sys.stderr  # nothing else may write to the protocol stream
        server.start_io(sys.stdin.buffer, out)
    else:
        server.start_tcp(host, port)
