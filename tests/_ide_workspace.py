"""A small fixture repository for the IDE tests (five Python files, one clearly described function each), and a
minimal LSP client over a subprocess's stdio (Content-Length framing, a reader thread, server requests answered)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

FILES = {
    "app/config.py": '''
def load_config(path):
    """Read a TOML configuration file from disk and return its settings as a dict."""
    import tomllib
    with open(path, "rb") as fh:
        return tomllib.load(fh)
''',
    "app/geometry.py": '''
def polygon_area(points):
    """Area of a simple polygon from its vertices, by the shoelace formula."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        total += x1 * y2 - x2 * y1
    return abs(total) / 2.0
''',
    "app/net.py": '''
import urllib.request


def download_file(url, dest):
    """Download a URL over HTTP and save the response body to a local file."""
    with urllib.request.urlopen(url) as response, open(dest, "wb") as out:
        out.write(response.read())
''',
    "app/text.py": '''
import re


def slugify(title):
    """Turn a title into a lower-case URL slug joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
''',
    "app/hashing.py": '''
import hashlib


def sha256_of_file(path):
    """Compute the SHA-256 checksum of a file, reading it in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(65536), b""):
            h.update(block)
    return h.hexdigest()
''',
}

ADDED = '''

def merge_sorted_lists(a, b):
    """Merge two already sorted lists into one sorted list."""
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            out.append(a[i]); i += 1
        else:
            out.append(b[j]); j += 1
    return out + a[i:] + b[j:]
'''


def write_workspace(root: Path, git: bool = True) -> Path:
    """Write FILES under ``root`` (a git work tree when ``git``, with ``ignored/`` git-ignored)."""
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text.lstrip("\n"), encoding="utf-8")
    if git:
        subprocess.run(["git", "init", "-q", str(root)], check=True)
        (root / ".gitignore").write_text("ignored/\n")
        (root / "ignored").mkdir()
        (root / "ignored" / "secret.py").write_text('def parse_secret_token(s):\n    """Parse a secret token."""\n'
                                                    "    return s\n")
    return root


def gpte_command(*args: str) -> list[str]:
    """The command line that runs ``gpte`` from this checkout's interpreter."""
    return [sys.executable, "-m", "gpte", *args]


def server_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class LspClient:
    """Talks JSON-RPC to a language server subprocess; collects notifications; answers server-to-client requests
    (workDoneProgress/create, registerCapability) with ``null``."""

    def __init__(self, to_server: Any, from_server: Any, proc: subprocess.Popen | None = None) -> None:
        self.proc = proc
        self._in, self._out = to_server, from_server
        self._next = 0
        self._responses: dict[int | str, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.closed = threading.Event()
        self.notifications: list[dict[str, Any]] = []
        self.server_requests: list[dict[str, Any]] = []
        self.stderr: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if proc is not None:
            threading.Thread(target=self._drain_stderr, daemon=True).start()

    @classmethod
    def spawn(cls, cmd: list[str], cwd: Path) -> LspClient:
        """Start ``cmd`` (a stdio language server) and talk to it."""
        proc = subprocess.Popen(cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=server_env())
        return cls(proc.stdin, proc.stdout, proc)

    @classmethod
    def in_process(cls, server: Any) -> tuple[LspClient, threading.Thread]:
        """Run a pygls ``server`` on pipes in a thread of this process and talk to it."""
        c2s_r, c2s_w = os.pipe()
        s2c_r, s2c_w = os.pipe()
        thread = threading.Thread(target=server.start_io, args=(os.fdopen(c2s_r, "rb"), os.fdopen(s2c_w, "wb")),
                                  daemon=True)
        thread.start()
        return cls(os.fdopen(c2s_w, "wb"), os.fdopen(s2c_r, "rb")), thread

    # -------------------------------------------------------------- wire
    def write_raw(self, data: bytes) -> None:
        self._in.write(data)
        self._in.flush()

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps(message).encode("utf-8")
        self.write_raw(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _read(self) -> None:
        out = self._out
        while True:
            headers: dict[str, str] = {}
            while True:
                line = out.readline()
                if not line:
                    self.closed.set()
                    with self._cond:
                        self._cond.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                headers[name.strip().lower()] = value.strip()
            msg = json.loads(out.read(int(headers["content-length"])))
            if "method" in msg and "id" in msg:  # a request from the server
                self.server_requests.append(msg)
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            with self._cond:
                if "method" in msg and "id" not in msg:
                    self.notifications.append(msg)
                elif "id" in msg and "method" not in msg:
                    self._responses[msg["id"]] = msg
                self._cond.notify_all()

    def _drain_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.put(line)

    # -------------------------------------------------------------- requests
    def request_async(self, method: str, params: Any) -> int:
        self._next += 1
        self.send({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        return self._next

    def response(self, msg_id: int, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while msg_id not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed.is_set():
                    raise TimeoutError(f"no response to request {msg_id}; stderr:\n{self.stderr_text()}")
                self._cond.wait(min(left, 0.5))
            return self._responses.pop(msg_id)

    def request(self, method: str, params: Any, timeout: float = 60.0) -> dict[str, Any]:
        return self.response(self.request_async(method, params), timeout)

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait_notification(self, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((n for n in self.notifications if predicate(n)), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no such notification; got {[n['method'] for n in self.notifications]}")
                self._cond.wait(min(left, 0.5))

    def stderr_text(self) -> str:
        lines = []
        while not self.stderr.empty():
            lines.append(self.stderr.get().decode("utf-8", "replace"))
        return "".join(lines)[-4000:]

    def initialize(self, root: Path, progress: bool = True) -> dict[str, Any]:
        caps = {"window": {"workDoneProgress": progress}, "workspace": {"symbol": {}}}
        reply = self.request("initialize", {"processId": os.getpid(), "rootUri": root.as_uri(),
                                            "capabilities": caps}, timeout=120)
        self.notify("initialized", {})
        return reply

    def execute(self, command: str, *arguments: Any, timeout: float = 60.0) -> dict[str, Any]:
        return self.request("workspace/executeCommand", {"command": command, "arguments": list(arguments)}, timeout)

    def wait_ready(self, timeout: float = 120.0, partial_ok: bool = False) -> dict[str, Any]:
        """Poll ``gpte.status`` until the first pass is over (``partial_ok``: or the server settled without one)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.execute("gpte.status")["result"]
            if status["state"] in ("ready", "read-only", "failed") and (partial_ok or not status["partial"]):
                return status
            time.sleep(0.2)
        raise TimeoutError("the server did not finish indexing")

    def close(self) -> None:
        """shutdown + exit; kill a subprocess that does not go."""
        if self.closed.is_set():
            return
        try:
            self.request("shutdown", None, timeout=30)
            self.notify("exit", None)
            if self.proc is not None:
                self.proc.wait(timeout=20)
            else:
                self.closed.wait(20)
        except (TimeoutError, OSError, subprocess.TimeoutExpired):
            if self.proc is not None:
                self.proc.kill()
                self.proc.wait()
