"""The workspace search service shared by the language server and the HTTP front.

One :class:`WorkspaceService` per workspace folder. A worker thread owns every change to the index:

1. it takes the workspace's server lock (``<root>/.gpte/code-index/.lock``, :func:`gpte.shared.fsio.writer_lock`);
   a second server on the same workspace finds it held and serves the existing index read-only (reloading it when
   the first one saves, and taking over when the first one exits);
2. it opens :class:`gpte.code.CodeSearch` (an index saved by an earlier run answers at once) and brings it up to
   date with the whole workspace, reporting progress; answers given before that pass ends are marked ``partial``;
3. then it applies changes: paths named by :meth:`WorkspaceService.notify_changed` (an editor's save, a watched-file
   notification) and those a polling watcher finds (mtime and size of the listed files, every ``poll_interval``
   seconds), re-embedding only files whose content changed.

Searches run on the caller's thread. :class:`~gpte.code.CodeSearch` swaps each embedded batch of files in under its
lock, so a search during an update sees the last consistent state (every file as it was or as it is now).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gpte.code.search import DEFAULT_CODE_MODEL, INDEX_DIR, CodeHit, CodeSearch, IndexReport, ignore_cache_folder

__all__ = ["WorkspaceService", "SearchResult", "ProgressEvent", "OutsideWorkspaceError", "MAX_K"]

logger = logging.getLogger(__name__)

MAX_K = 1000  # the most hits one query may ask for
MessageLevel = Literal["error", "warning", "info", "log"]
State = Literal["starting", "indexing", "ready", "read-only", "failed", "closed"]


class OutsideWorkspaceError(ValueError):
    """A path or URI names something outside the workspace folder (or is not a ``file:`` URI)."""


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an indexing job, shaped like LSP work-done progress."""

    kind: Literal["begin", "report", "end"]
    title: str  # "gpte: indexing the workspace" or "gpte: updating the index"
    message: str
    percentage: int | None = None  # 0..100 (begin/report)


@dataclass
class SearchResult:
    """Hits for one query, and how complete the index behind them was."""

    hits: list[CodeHit]
    partial: bool  # True while the first pass over the workspace has not finished: more hits may come
    state: str  # the service state when the query ran (see WorkspaceService.status)
    indexed_files: int
    missing: list[str] = field(default_factory=list)  # hit paths whose file vanished since indexing (dropped)


class _Stopped(Exception):
    """Raised from the progress callback to abandon an update when the service closes."""


class WorkspaceService:
    """Thread-safe code search over one workspace folder, kept up to date in the background.

    Args:
        root: the workspace folder.
        model: an embedder, or a name for :func:`gpte.load`; the default uses the saved index's model, else
            ``code-minilm``.
        device: where a model given by name runs (``cpu``, ``cuda`` ...).
        index_dir: the index folder (default ``<root>/.gpte/code-index``).
        watch: poll the workspace for changes made outside the editor.
        poll_interval: seconds between two polls of the watcher (and of a read-only server's reload check).
        group_chunks: chunks embedded per batch; each batch becomes searchable as soon as it is embedded.
        on_progress: called from the worker thread with each :class:`ProgressEvent`.
        on_message: called from the worker thread as ``on_message(level, text)`` for things a user should see
            (skipped folders, read-only mode, failures).
    """

    def __init__(self, root: str | os.PathLike[str], model: Any = DEFAULT_CODE_MODEL, *, device: str | None = None,
                 index_dir: str | os.PathLike[str] | None = None, watch: bool = True, poll_interval: float = 2.0,
                 group_chunks: int = 256, on_progress: Callable[[ProgressEvent], None] | None = None,
                 on_message: Callable[[MessageLevel, str], None] | None = None) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"the workspace {root} is not a folder")
        self.index_dir = Path(index_dir).resolve() if index_dir is not None else self.root / INDEX_DIR
        self.watch = watch
        self.poll_interval = poll_interval
        self.group_chunks = group_chunks
        self.on_progress = on_progress
        self.on_message = on_message
        self._model = model
        self._device = device
        self._cs: CodeSearch | None = None  # replaced whole (read-only reloads); never None once ready
        self._cond = threading.Condition()  # guards the fields below
        self._state: State = "starting"
        self._complete = False  # a full pass over the workspace finished in this session
        self._busy = False
        self._pending_full = False
        self._pending: set[str] = set()
        self._progress = (0, 0)
        self._reason = ""  # why read-only / failed
        self._last_report: IndexReport | None = None
        self._stop = threading.Event()
        self._lock_cm: Any = None  # the held writer_lock context, None when read-only
        self._current: str | None = None  # the CURRENT version a read-only server loaded
        self._snapshot: dict[str, tuple[int, int]] = {}  # watcher: path -> (mtime_ns, size)
        self._thread = threading.Thread(target=self._run, name=f"gpte-ide-{self.root.name}", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> WorkspaceService:
        """Start the worker thread (opening, indexing, watching); returns self."""
        self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop the worker (an update in progress is abandoned at its next batch) and release the server lock."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        self._release_lock()
        with self._cond:
            self._state = "closed"
            self._cond.notify_all()

    def __enter__(self) -> WorkspaceService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def read_only(self) -> bool:
        """True while another server holds this workspace's lock."""
        return self._lock_cm is None

    @property
    def code_search(self) -> CodeSearch | None:
        """The :class:`CodeSearch` answering now (None until it is open); its ``lock`` guards the index."""
        return self._cs

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is queued or running (the first pass included); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                idle = (self._state in ("ready", "read-only", "failed", "closed") and not self._busy
                        and not self._pending and not self._pending_full)
                if idle:
                    return True
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is None else min(left, 0.5))

    def status(self) -> dict[str, Any]:
        """State (starting, indexing, ready, read-only, failed, closed), counts and progress, JSON-ready."""
        cs = self._cs
        stats = cs.stats() if cs is not None else {"files": 0, "chunks": 0}
        with self._cond:
            done, total = self._progress
            rep = self._last_report
            last = None if rep is None else {
                "files_indexed": rep.files_indexed, "files_unchanged": rep.files_unchanged,
                "files_removed": rep.files_removed, "chunks_added": rep.chunks_added,
                "chunks_removed": rep.chunks_removed, "skipped": len(rep.skipped), "seconds": rep.seconds}
            return {"root": str(self.root), "state": self._state, "partial": not self._complete,
                    "read_only": self.read_only, "files": stats["files"], "chunks": stats["chunks"],
                    "progress": {"done": done, "total": total}, "reason": self._reason,
                    "index_dir": str(self.index_dir), "last_update": last}

    # ------------------------------------------------------------------ requests
    def resolve(self, path_or_uri: str) -> str:
        """The workspace-relative POSIX path of a ``file:`` URI or a path (relative to the root or absolute).

        Raises :class:`OutsideWorkspaceError` for anything outside the root, symbolic links leading out included.
        """
        if not isinstance(path_or_uri, str) or not path_or_uri:
            raise OutsideWorkspaceError(f"expected a file URI or path, got {path_or_uri!r}")
        text = path_or_uri
        if "://" in text or text.startswith("file:"):
            parsed = urllib.parse.urlparse(text)
            if parsed.scheme != "file":
                raise OutsideWorkspaceError(f"{text}: only file: URIs name workspace files")
            if parsed.netloc not in ("", "localhost"):
                raise OutsideWorkspaceError(f"{text}: a file URI on another host ({parsed.netloc}) is not served")
            text = urllib.parse.unquote(parsed.path)
        p = Path(text)
        full = Path(os.path.normpath(p if p.is_absolute() else self.root / p))
        if not full.is_relative_to(self.root) or not full.resolve().is_relative_to(self.root):
            raise OutsideWorkspaceError(f"{path_or_uri} is outside the workspace {self.root}")
        return full.relative_to(self.root).as_posix()

    @staticmethod
    def resolve_root(root: str) -> Path:
        """A workspace folder from a ``file:`` URI (as LSP clients send) or a path."""
        if "://" in root or root.startswith("file:"):
            parsed = urllib.parse.urlparse(root)
            if parsed.scheme != "file":
                raise ValueError(f"{root}: the workspace must be a file: URI")
            root = urllib.parse.unquote(parsed.path)
        return Path(root).resolve()

    def uri(self, rel: str) -> str:
        """The ``file:`` URI of a workspace-relative path."""
        return (self.root / rel).as_uri()

    def hit_json(self, hit: CodeHit) -> dict[str, Any]:
        """A hit as JSON (the ``gpte.search`` command and ``POST /search``): 1-based inclusive lines ``s..e`` and
        the LSP range ``(s-1, 0)..(e, 0)`` (0-based, end exclusive) covering them."""
        start, end = max(0, hit.start_line - 1), max(hit.start_line, hit.end_line)
        return {"uri": self.uri(hit.path), "path": hit.path, "symbol": hit.qualname or hit.symbol, "kind": hit.kind,
                "language": hit.language, "score": round(float(hit.score), 6), "snippet": hit.snippet,
                "start_line": hit.start_line, "end_line": hit.end_line,
                "range": {"start": {"line": start, "character": 0}, "end": {"line": end, "character": 0}}}

    def search(self, query: str, k: int = 10, language: str | None = None, path_glob: str | None = None,
               kinds: Sequence[str] | None = None) -> SearchResult:
        """Ranked hits from the current index (possibly partial, see :class:`SearchResult`).

        Hits whose file was deleted since it was indexed are dropped (and the file queued for removal); snippets
        come from the index, never from the file.

        Raises:
            ValueError: an empty query, ``k`` outside 1..MAX_K, a bad filter.
            OutsideWorkspaceError: a ``path_glob`` that is absolute or climbs out with ``..``.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be an integer in 1..{MAX_K} (got {k!r})")
        for name, value in (("language", language), ("path_glob", path_glob)):
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be a string (got {type(value).__name__})")
        if kinds is not None and (isinstance(kinds, str) or not all(isinstance(x, str) for x in kinds)):
            raise ValueError("kinds must be a list of strings")
        if path_glob is not None and (path_glob.startswith(("/", "\\")) or ".." in Path(path_glob).parts):
            raise OutsideWorkspaceError(f"path_glob {path_glob!r} must be relative to the workspace, without '..'")
        cs = self._cs
        with self._cond:
            state, partial = self._state, not self._complete
        if cs is None:
            return SearchResult([], partial=True, state=state, indexed_files=0)
        hits = cs.search(query, k=k, language=language, path_glob=path_glob, kinds=kinds)
        missing = sorted({h.path for h in hits if not (self.root / h.path).is_file()})
        if missing:
            if not self.read_only:
                self.notify_changed(missing)
            more = cs.search(query, k=k + 50, language=language, path_glob=path_glob, kinds=kinds)
            hits = [h for h in more if h.path not in missing and (self.root / h.path).is_file()][:k]
        return SearchResult(hits, partial=partial, state=state, indexed_files=cs.stats()["files"], missing=missing)

    def notify_changed(self, paths: Iterable[str]) -> list[str]:
        """Queue files (URIs or paths) for re-indexing; returns their relative paths.

        Raises :class:`OutsideWorkspaceError` (queuing nothing) if any lies outside the workspace.
        """
        rels = [self.resolve(p) for p in paths]
        with self._cond:
            self._pending.update(rels)
            self._cond.notify_all()
        return rels

    def reindex(self) -> None:
        """Queue a pass over the whole workspace (only changed files are re-embedded)."""
        with self._cond:
            self._pending_full = True
            self._cond.notify_all()

    # ------------------------------------------------------------------ worker
    def _message(self, level: MessageLevel, text: str) -> None:
        getattr(logger, {"log": "debug"}.get(level, level))("%s", text)
        if self.on_message is not None:
            try:
                self.on_message(level, text)
            except Exception:  # a broken listener must not stop indexing
                logger.exception("on_message listener failed")

    def _emit(self, event: ProgressEvent) -> None:
        if self.on_progress is not None:
            try:
                self.on_progress(event)
            except Exception:
                logger.exception("on_progress listener failed")

    def _set(self, **fields: Any) -> None:
        with self._cond:
            for name, value in fields.items():
                setattr(self, f"_{name}", value)
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            ignore_cache_folder(self.root, self.index_dir)
            writer = self._take_lock()
            self._open()
            if writer:
                self._set(state="indexing")
                self._snapshot = self._scan()
                self._job(None)
            else:
                self._enter_read_only()
            while not self._stop.is_set():
                with self._cond:
                    if not (self._pending or self._pending_full or self._stop.is_set()):
                        self._cond.wait(self.poll_interval)
                    full, paths = self._pending_full, set(self._pending)
                    self._pending_full, self._pending = False, set()
                    self._busy = bool(full or paths)
                if self._stop.is_set():
                    break
                if self.read_only:
                    self._read_only_tick()
                    self._set(busy=False)
                    continue
                try:
                    if full or paths:
                        self._job(None if full else paths)
                    elif self.watch:
                        self._poll()
                except (_Stopped, KeyboardInterrupt):
                    raise
                except Exception as exc:  # one failed update (a full disk, a vanished folder) must not stop the rest
                    logger.exception("gpte ide update failed")
                    self._message("error", f"gpte: updating the index of {self.root} failed: "
                                           f"{type(exc).__name__}: {exc}")
                self._set(busy=False)
        except _Stopped:
            pass
        except Exception as exc:  # the service reports and stays up: searches answer from what is loaded
            logger.exception("gpte ide worker failed")
            self._set(state="failed", reason=f"{type(exc).__name__}: {exc}", busy=False)
            self._message("error", f"gpte: indexing {self.root} failed: {type(exc).__name__}: {exc}")
        finally:
            self._set(busy=False)

    def _take_lock(self) -> bool:
        from gpte.shared.fsio import LockedError, writer_lock

        cm = writer_lock(self.index_dir)
        try:
            cm.__enter__()
        except LockedError:
            return False
        self._lock_cm = cm
        return True

    def _release_lock(self) -> None:
        cm, self._lock_cm = self._lock_cm, None
        if cm is not None:
            cm.__exit__(None, None, None)

    def _embedder(self) -> Any:
        if not isinstance(self._model, str | os.PathLike):
            return self._model
        if self._model == DEFAULT_CODE_MODEL and self._device is None:
            return DEFAULT_CODE_MODEL  # CodeSearch: the saved index's model, else code-minilm
        import gpte

        return gpte.load(self._model, **({"device": self._device} if self._device else {}))

    def _open(self) -> None:
        """Open the index (loading the embedder); a saved index answers from here on."""
        cs = CodeSearch(self.root, model=self._embedder(), index_dir=self.index_dir)
        cs.stats()  # loads the collection (and the model) here, not on the first query
        self._model = cs.collection.model  # reloads reuse the loaded embedder
        self._cs = cs
        self._current = self._read_current()

    def _job(self, paths: set[str] | None) -> None:
        cs = self._cs
        assert cs is not None
        full = paths is None
        if paths is not None:
            listed = set(cs.list_files()[0])
            indexed = cs.indexed_files()
            if any(p in indexed and p not in listed and (self.root / p).exists() for p in paths):
                full = True  # a file became git-ignored: a full pass drops it
            else:
                paths = {p for p in paths if p in listed or p in indexed}
                if not paths:
                    return
        title = "gpte: indexing the workspace" if full else "gpte: updating the index"
        began = [False]

        def progress(done: int, total: int, path: str) -> None:
            if self._stop.is_set():
                raise _Stopped
            self._set(progress=(done, total))
            if not began[0] and (total or full):
                began[0] = True
                self._emit(ProgressEvent("begin", title, f"{total} files to embed", 0))
            elif began[0] and total:
                self._emit(ProgressEvent("report", title, f"{done}/{total} files ({path})",
                                         int(100 * done / total)))

        try:
            report = cs.update(None if full else sorted(paths or ()), progress=progress,
                               group_chunks=self.group_chunks)
        except _Stopped:
            raise
        except Exception as exc:
            if began[0]:
                self._emit(ProgressEvent("end", title, f"failed: {exc}"))
            raise
        self._set(last_report=report)
        if began[0]:
            self._emit(ProgressEvent("end", title, f"{report.files_indexed} files indexed, {report.files_removed} "
                                                   f"removed, {report.chunks_added} chunks added in {report.seconds} s"))
        unreadable = {p: why for p, why in report.skipped.items() if why.startswith("unreadable")}
        if unreadable:
            shown = "; ".join(f"{p}: {why}" for p, why in sorted(unreadable.items())[:10])
            self._message("warning", f"gpte: skipped {len(unreadable)} unreadable file(s) or folder(s): {shown}")
        if full:
            self._set(complete=True, state="ready")

    # ------------------------------------------------------------------ watcher
    def _scan(self) -> dict[str, tuple[int, int]]:
        """(mtime_ns, size) of every listed file."""
        assert self._cs is not None
        out: dict[str, tuple[int, int]] = {}
        for rel in self._cs.list_files()[0]:
            try:
                st = os.stat(self.root / rel, follow_symlinks=False)
            except OSError:
                continue
            out[rel] = (st.st_mtime_ns, st.st_size)
        return out

    def _poll(self) -> None:
        new = self._scan()
        old, self._snapshot = self._snapshot, new
        changed = {p for p, sig in new.items() if old.get(p) != sig} | (set(old) - set(new))
        if changed:
            logger.info("watcher: %d changed file(s) under %s", len(changed), self.root)
            self._set(busy=True)
            self._job(changed)

    # ------------------------------------------------------------------ read-only mode
    def _read_current(self) -> str | None:
        try:
            return (self.index_dir / "index" / "CURRENT").read_text(encoding="utf-8").strip() or None
        except OSError:
            return None

    def _enter_read_only(self) -> None:
        assert self._cs is not None
        has_index = self._cs.stats()["chunks"] > 0
        why = (f"another gpte server holds {self.index_dir / '.lock'}: serving its index read-only "
               f"({'reloaded whenever it saves' if has_index else 'none saved yet; answers are empty until it saves'}"
               "); this server takes over when that one exits")
        self._set(state="read-only", reason=why, complete=has_index)
        self._message("warning", f"gpte: {why}")

    def _read_only_tick(self) -> None:
        if self._take_lock():
            self._message("info", "gpte: the other server released the workspace; this one now keeps it indexed")
            self._set(state="indexing", reason="")
            self._open()
            self._snapshot = self._scan()
            self._job(None)
            return
        current = self._read_current()
        if current is not None and current != self._current:
            try:
                cs = CodeSearch(self.root, model=self._model, index_dir=self.index_dir)
                cs.stats()
            except Exception as exc:  # mid-save or damaged: keep the loaded snapshot, retry on the next poll
                logger.info("read-only reload of %s deferred: %s", self.index_dir, exc)
                return
            self._cs, self._current = cs, current
            self._set(complete=True)
            logger.info("read-only: reloaded %s (%s)", self.index_dir, current)
