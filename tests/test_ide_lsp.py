"""The language server over its real transport (``gpte ide serve --stdio`` in a subprocess; TCP; one in-process
server on pipes for cancellation), with messages built and read through lsprotocol's types."""

from __future__ import annotations

import socket
import time

import pytest
from _ide_workspace import ADDED, FILES, LspClient, gpte_command, write_workspace
from lsprotocol import converters, types

from gpte.shared.fsio import writer_lock

CONVERTER = converters.get_converter()
SYMBOLS = {"load_config", "polygon_area", "download_file", "slugify", "sha256_of_file"}
SERVE = ("ide", "serve", "--model", "test-bert", "--device", "cpu", "--poll-interval", "0.3")


def _def_line(root, uri: str, name: str) -> int:
    """0-based line of ``def name`` in the file behind ``uri``."""
    path = root / uri.removeprefix(root.as_uri() + "/")
    return next(i for i, line in enumerate(path.read_text().splitlines()) if line.startswith(f"def {name}"))


def _symbols(client: LspClient, query: str) -> list[types.SymbolInformation]:
    reply = client.request("workspace/symbol", CONVERTER.unstructure(types.WorkspaceSymbolParams(query=query)))
    return CONVERTER.structure(reply["result"], list[types.SymbolInformation])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = write_workspace(tmp_path_factory.mktemp("lsp") / "ws")
    client = LspClient.spawn(gpte_command(*SERVE, "--stdio"), root)
    reply = client.initialize(root)
    client.wait_ready()
    yield root, client, reply
    client.close()


def test_initialize_advertises_symbols_commands_and_save(served):
    _, _, reply = served
    result = CONVERTER.structure(reply["result"], types.InitializeResult)
    caps = result.capabilities
    assert caps.workspace_symbol_provider
    assert set(caps.execute_command_provider.commands) == {"gpte.search", "gpte.reindex", "gpte.status"}
    assert caps.text_document_sync.save
    assert result.server_info.name == "gpte"


def test_first_index_reports_work_done_progress(served):
    _, client, _ = served
    created = [r for r in client.server_requests if r["method"] == "window/workDoneProgress/create"]
    assert created
    token = created[0]["params"]["token"]
    values = [n["params"]["value"] for n in client.notifications
              if n["method"] == "$/progress" and n["params"]["token"] == token]
    kinds = [v["kind"] for v in values]
    assert kinds[0] == "begin" and kinds[-1] == "end" and "report" in kinds
    begin = CONVERTER.structure(values[0], types.WorkDoneProgressBegin)
    assert begin.title == "gpte: indexing the workspace"
    assert CONVERTER.structure(values[-1], types.WorkDoneProgressEnd).message.startswith("5 files indexed")


def test_workspace_symbol_locations(served):
    root, client, _ = served
    found = _symbols(client, "a function that computes something")
    assert {s.name for s in found} == SYMBOLS
    for sym in found:
        assert sym.kind == types.SymbolKind.Function and sym.container_name.startswith("app/")
        assert sym.location.range.start.line == _def_line(root, sym.location.uri, sym.name)
        assert sym.location.range.end.line > sym.location.range.start.line
    assert _symbols(client, "   ") == []


def test_execute_command_search_and_filters(served):
    root, client, _ = served
    result = client.execute("gpte.search", "area", {"path_glob": "app/geo*", "k": 3})["result"]
    assert result["partial"] is False and result["state"] == "ready"
    (hit,) = result["hits"]
    assert (hit["symbol"], hit["kind"], hit["uri"]) == ("polygon_area", "function", (root / "app/geometry.py").as_uri())
    rng = CONVERTER.structure(hit["range"], types.Range)
    assert rng.start.line == hit["start_line"] - 1 == _def_line(root, hit["uri"], "polygon_area")
    assert hit["snippet"].startswith("def polygon_area") and isinstance(hit["score"], float)
    two = client.execute("gpte.search", {"query": "file", "k": 2})["result"]["hits"]
    assert len(two) == 2 and two[0]["score"] >= two[1]["score"]
    assert client.execute("gpte.search", "file", {"language": "rust"})["result"]["hits"] == []
    for bad in ([], [5], ["q", {"k": "many"}], ["q", {"colour": "red"}], [{"k": 3}], ["q", {"k": 0}]):
        err = client.execute("gpte.search", *bad)["error"]
        assert err["code"] == -32602, (bad, err)
    assert "error" in client.execute("gpte.nonexistent")


def test_requests_outside_the_workspace_are_refused(served, tmp_path):
    root, client, _ = served
    err = client.execute("gpte.search", "x", {"path_glob": "../*"})["error"]
    assert err["code"] == -32602 and "relative to the workspace" in err["message"]
    err = client.execute("gpte.reindex", (tmp_path / "elsewhere.py").as_uri())["error"]
    assert err["code"] == -32602 and "outside the workspace" in err["message"]
    (tmp_path / "elsewhere.py").write_text("def elsewhere():\n    return 1\n")
    client.notify("textDocument/didSave", CONVERTER.unstructure(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=(tmp_path / "elsewhere.py").as_uri()))))
    warning = client.wait_notification(lambda n: n["method"] == "window/logMessage"
                                       and "elsewhere.py is outside the workspace" in n["params"]["message"])
    assert warning["params"]["type"] == types.MessageType.Warning
    assert "elsewhere" not in {s.name for s in _symbols(client, "elsewhere")}


def test_malformed_messages_leave_the_server_running(served):
    _, client, _ = served
    client.write_raw(b"Content-Length: 12\r\n\r\n{not json!!}")
    client.send({"jsonrpc": "2.0", "id": 9001, "method": "workspace/symbol", "params": {"limit": 3}})
    client.send({"jsonrpc": "2.0", "id": 9002, "method": "gpte/noSuchMethod", "params": {}})
    client.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": 123456}})  # unknown id
    reply = client.response(9001)
    assert reply.get("error", {}).get("code") in (-32602, -32603), reply
    assert client.response(9002)["error"]["code"] == -32601
    assert {s.name for s in _symbols(client, "still alive?")} == SYMBOLS
    assert client.proc.poll() is None


def test_did_save_reindexes_the_file(served):
    root, client, _ = served
    (root / "app" / "text.py").write_text(FILES["app/text.py"].lstrip("\n") + ADDED, encoding="utf-8")
    client.notify("textDocument/didSave", CONVERTER.unstructure(types.DidSaveTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=(root / "app" / "text.py").as_uri()))))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        merged = [s for s in _symbols(client, "merge") if s.name == "merge_sorted_lists"]
        if merged:
            break
        time.sleep(0.2)
    assert merged, "the saved file's new function never appeared"
    assert merged[0].location.range.start.line == _def_line(root, merged[0].location.uri, "merge_sorted_lists")
    last = client.execute("gpte.status")["result"]["last_update"]
    assert last["files_indexed"] == 1


def test_cancelled_request_is_answered_with_request_cancelled(tmp_path, test_bert):
    from gpte.ide.lsp import build_server

    root = write_workspace(tmp_path / "ws")
    server = build_server(model=test_bert, watch=False)
    client, thread = LspClient.in_process(server)
    try:
        client.initialize(root)
        client.wait_ready()
        with server.service.code_search.lock:  # an update is swapping files in: the search must wait
            msg_id = client.request_async("workspace/executeCommand",
                                          {"command": "gpte.search", "arguments": ["area"]})
            time.sleep(0.3)
            client.notify("$/cancelRequest", {"id": msg_id})
            reply = client.response(msg_id, timeout=10)
        assert reply["error"]["code"] == types.LSPErrorCodes.RequestCancelled
        assert len(client.execute("gpte.search", "area")["result"]["hits"]) == 5  # still serving
    finally:
        client.close()
        thread.join(20)
    assert not thread.is_alive()


def test_second_server_on_a_locked_workspace_says_why(tmp_path):
    root = write_workspace(tmp_path / "ws")
    with writer_lock(root / ".gpte" / "code-index"):  # another server holds the workspace (and saved nothing yet)
        client = LspClient.spawn(gpte_command(*SERVE, "--stdio"), root)
        try:
            client.initialize(root)
            note = client.wait_notification(lambda n: n["method"] == "window/logMessage"
                                            and "read-only" in n["params"]["message"])
            assert ".lock" in note["params"]["message"]
            status = client.wait_ready(partial_ok=True)
            assert status["state"] == "read-only" and status["files"] == 0
            assert _symbols(client, "area of a polygon") == []
            client.wait_notification(lambda n: "results are partial" in n["params"].get("message", ""))
            result = client.execute("gpte.search", "area")["result"]
            assert result["partial"] is True and result["hits"] == []
        finally:
            client.close()


def test_tcp_transport_binds_localhost(tmp_path):
    root = write_workspace(tmp_path / "ws")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    import subprocess

    from _ide_workspace import server_env

    proc = subprocess.Popen(gpte_command(*SERVE, "--tcp", "--port", str(port)), cwd=root, env=server_env(),
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.2)
        client = LspClient(sock.makefile("wb"), sock.makefile("rb"))
        client.initialize(root)
        client.wait_ready()
        assert {s.name for s in _symbols(client, "checksum")} == SYMBOLS
        client.close()
        sock.close()
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
