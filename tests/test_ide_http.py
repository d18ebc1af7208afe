"""The JSON-over-HTTP front: health, search with filters, reindex, and clear errors for bad requests; the
``gpte ide http`` command end to end with the shipped code model."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from _ide_workspace import ADDED, gpte_command, server_env, write_workspace

from gpte.ide import WorkspaceService
from gpte.ide.http import make_http_server


def _call(base: str, path: str, body: bytes | dict | None = None) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method="GET" if data is None else "POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def front(tmp_path, test_bert):
    root = write_workspace(tmp_path / "ws")
    service = WorkspaceService(root, model=test_bert, watch=False).start()
    httpd = make_http_server(service, port=0)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    assert service.wait_idle(60)
    host, port = httpd.server_address[:2]
    yield root, f"http://{host}:{port}"
    httpd.shutdown()
    httpd.server_close()
    service.close()


def test_health_and_search(front):
    root, base = front
    assert base.startswith("http://127.0.0.1:")
    status, health = _call(base, "/health")
    assert status == 200 and health["ok"] and health["state"] == "ready" and health["files"] == 5
    status, found = _call(base, "/search", {"query": "area", "k": 10, "path_glob": "app/geo*"})
    assert status == 200 and found["partial"] is False
    (hit,) = found["hits"]
    assert (hit["symbol"], hit["path"], hit["uri"]) == ("polygon_area", "app/geometry.py",
                                                         (root / "app/geometry.py").as_uri())
    assert hit["range"]["start"]["line"] == hit["start_line"] - 1 == 0
    status, found = _call(base, "/search", {"query": "file", "k": 3, "language": "python"})
    assert status == 200 and len(found["hits"]) == 3


def test_bad_requests_get_clear_errors(front):
    _, base = front
    cases = [
        (b"{not json", 400, "malformed JSON"),
        (b"[1, 2]", 400, "JSON object"),
        ({"k": 3}, 400, "no query"),
        ({"query": "x", "k": "many"}, 400, "k must be"),
        ({"query": "x", "colour": "red"}, 400, "unknown field"),
        ({"query": "   "}, 400, "non-empty"),
        ({"query": "x", "path_glob": "../*"}, 403, "relative to the workspace"),
    ]
    for body, code, reason in cases:
        status, reply = _call(base, "/search", body)
        assert (status, reason in reply["error"]) == (code, True), (body, status, reply)
    status, reply = _call(base, "/reindex", {"paths": ["/etc/passwd"]})
    assert status == 403 and "outside the workspace" in reply["error"]
    status, reply = _call(base, "/reindex", {"paths": "app/net.py"})
    assert status == 400
    assert _call(base, "/nowhere")[0] == 404 and _call(base, "/nowhere", {})[0] == 404
    assert _call(base, "/health")[0] == 200  # still serving


def test_reindex_picks_up_an_edit(front):
    root, base = front
    (root / "app" / "sorting.py").write_text(ADDED.lstrip(), encoding="utf-8")
    status, reply = _call(base, "/reindex", {"paths": ["app/sorting.py"]})
    assert status == 200 and reply["queued"] == ["app/sorting.py"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        hits = _call(base, "/search", {"query": "merge", "k": 10})[1]["hits"]
        if any(h["symbol"] == "merge_sorted_lists" for h in hits):
            break
        time.sleep(0.2)
    else:
        pytest.fail("the reindexed file never showed up")


@pytest.mark.slow
def test_http_command_with_the_shipped_code_model(tmp_path):
    root = write_workspace(tmp_path / "ws")
    proc = subprocess.Popen(gpte_command("ide", "http", "--root", str(root), "--port", "0", "--no-watch"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=server_env(), text=True)
    try:
        line = proc.stdout.readline()
        assert "serving" in line and "http://127.0.0.1:" in line, line
        base = line.split("http://", 1)[1].split("/", 1)[0]
        base = f"http://{base}"
        deadline = time.monotonic() + 240
        while _call(base, "/health")[1]["partial"]:
            assert time.monotonic() < deadline, "indexing never finished"
            time.sleep(0.5)
        status, found = _call(base, "/search", {"query": "checksum of a file's bytes", "k": 3})
        assert status == 200 and found["hits"][0]["symbol"] == "sha256_of_file"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
