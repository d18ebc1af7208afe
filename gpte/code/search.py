"""Natural-language code search over a workspace: tree-sitter chunks, an embedder, the persistent index.

>>> from gpte.code import CodeSearch
>>> cs = CodeSearch("path/to/repo")           # doctest: +SKIP
>>> cs.index()                                # first run: every file; later runs: only what changed
>>> for hit in cs.search("parse a config file", k=5, language="python"):    # doctest: +SKIP
...     print(hit.path, hit.start_line, hit.symbol, round(hit.score, 3))

The index lives in ``<root>/.gpte/code-index/`` (add ``.gpte/`` to your .gitignore): the vector index (one item per
chunk, its metadata holding path, symbol, kind, lines and language), with the file table (content hash and chunk ids
of every indexed file) saved in the same index version, so the two always commit together. ``update`` re-chunks and re-embeds only files whose content hash changed, and removes the
chunks of deleted files; a changed file's chunks whose id and text are unchanged keep their stored vectors (only
the edited definitions are embedded again). Files are listed with ``git ls-files`` in a git work tree (so .gitignore is respected) and by
a walk that skips hidden folders and common build folders otherwise; binary, oversized and unreadable files and
unknown languages are skipped and reported with their path and reason.

Thread safety (for servers such as ``gpte ide``): one :class:`CodeSearch` may be searched from several threads while
one thread updates it. ``update`` calls run one at a time; they chunk and embed outside :attr:`CodeSearch.lock` and
hold it only to swap a batch of files' chunks in (a file's old chunks leave and its new ones arrive together), to
save and to read the file table, while ``search`` embeds the query outside the lock and holds it to scan the index.
A search therefore always sees a consistent state: every file either as it was or as it is now.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import re
import subprocess
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["CodeSearch", "CodeHit", "IndexReport"]

logger = logging.getLogger(__name__)

INDEX_DIR = Path(".gpte") / "code-index"
DEFAULT_CODE_MODEL = "code-minilm"  # gpte.code.code_models: MiniLM + the shipped code-search adapter
MAX_FILE_BYTES = 1_000_000
DEFAULT_GROUP_CHUNKS = 2048  # chunks embedded (and swapped into the index) per batch
FIRST_GROUP_CHUNKS = 64  # the first batch of an update is at most this big: the first files become searchable early
ProgressCallback = Callable[[int, int, str], None]  # (files done, files to do, path being processed)
_SKIP_DIRS = {".git", ".hg", ".svn", ".gpte", "node_modules", "__pycache__", ".venv", "venv", "build", "dist",
              "target", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".tox"}


@dataclass(frozen=True)
class CodeHit:
    path: str  # relative to the workspace root, POSIX
    symbol: str  # function, method or class name ("" for windows)
    qualname: str  # enclosing classes joined with "."
    kind: str  # "function", "method", "class", "window", ...
    language: str
    start_line: int  # 1-based, inclusive
    end_line: int
    score: float  # cosine similarity to the query
    snippet: str  # signature and first lines
    chunk_id: str


@dataclass
class IndexReport:
    files_indexed: int = 0  # files (re-)chunked and embedded in this run
    files_unchanged: int = 0
    files_removed: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0  # chunks run through the model (the others kept their stored vector: same id and text)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason
    seconds: float = 0.0


def _render(chunk: Any) -> str:
    """The text embedded for a chunk by a plain text model: where it is, what it is, its doc and its code."""
    head = f"{chunk.language} {chunk.kind} {chunk.qualname or chunk.symbol}".strip()
    parts = [head, chunk.doc or "", chunk.code or chunk.text]
    return "\n".join(p for p in parts if p)


class CodeSearch:
    """Index and search the code under ``root``; see the module docstring.

    Args:
        root: the workspace folder.
        model: an embedder, or a name/path for :func:`gpte.load` (default: the shipped code model ``code-minilm``;
            a plain text model such as ``minilm`` also works, reading each chunk as "language kind name, doc, code").
        index_dir: where the index lives (default ``<root>/.gpte/code-index``).
        max_file_bytes: larger files are skipped and reported.
    """

    def __init__(self, root: str | os.PathLike[str], model: Any = DEFAULT_CODE_MODEL, index_dir: str | os.PathLike[str] | None = None,
                 max_file_bytes: int = MAX_FILE_BYTES) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"{root} is not a folder")
        self.dir = Path(index_dir) if index_dir is not None else self.root / INDEX_DIR
        self.max_file_bytes = max_file_bytes
        self._model_arg = model
        self._coll: Any = None
        self._files: dict[str, dict[str, Any]] = {}
        self.lock = threading.RLock()  # guards the in-memory index and file table (see the module docstring)
        self._writer = threading.Lock()  # one update() at a time
        self._load_state()

    # ------------------------------------------------------------------ state
    @property
    def collection(self) -> Any:
        with self.lock:
            return self._collection()

    def _collection(self) -> Any:
        if self._coll is None:
            from gpte.index import Collection

            if (self.dir / "index" / "CURRENT").is_file():
                model = None if isinstance(self._model_arg, str) and self._model_arg == DEFAULT_CODE_MODEL else self._model_arg
                self._coll = Collection.open(self.dir / "index", model=model)
            else:
                self._coll = Collection(self._model_arg, backend="exact", store_text=False)
        return self._coll

    def _load_state(self) -> None:
        if (self.dir / "index" / "CURRENT").is_file():
            self._files = dict(self.collection.index.extras.get("code_files", {}))

    def indexed_files(self) -> dict[str, str]:
        """Indexed files (relative POSIX path → content sha256), a copy taken under the lock."""
        with self.lock:
            return {rel: entry.get("sha256", "") for rel, entry in self._files.items()}

    def _save(self) -> None:
        """Save the index and the file table as one version (under the index's writer lock; a concurrent writer's
        save is refused), so a crash never leaves vectors and file table out of step."""
        with self.lock:
            index = self.collection.index
            index.extras = {**index.extras, "code_files": dict(self._files)}
            self.collection.save(self.dir / "index")
        ignore_cache_folder(self.root, self.dir)

    # ------------------------------------------------------------------ files
    def list_files(self) -> tuple[list[str], dict[str, str]]:
        """Candidate files (relative POSIX paths) and the skipped ones with reasons."""
        skipped: dict[str, str] = {}
        paths = _git_files(self.root, skipped)
        if paths is None:
            paths = list(_walk(self.root, skipped))
        return sorted(paths), skipped

    def _read(self, rel: str) -> tuple[bytes | None, str | None]:
        path = self.root / rel
        try:
            if path.is_symlink() and not path.resolve().is_relative_to(self.root):
                return None, "symbolic link leaving the workspace"
            size = path.stat().st_size
            if size > self.max_file_bytes:
                return None, f"larger than {self.max_file_bytes} bytes ({size})"
            data = path.read_bytes()
        except FileNotFoundError:
            return None, "vanished while indexing"
        except OSError as exc:
            return None, f"unreadable ({exc.strerror or exc})"
        if b"\0" in data[:8192]:
            return None, "binary"
        return data, None

    # ------------------------------------------------------------------ indexing
    def index(self, progress: ProgressCallback | None = None) -> IndexReport:
        """Bring the index up to date with the whole workspace (first run: everything); ``progress`` as for
        :meth:`update`."""
        return self.update(None, progress=progress)

    def update(self, paths: Iterable[str | os.PathLike[str]] | None = None, progress: ProgressCallback | None = None,
               group_chunks: int = DEFAULT_GROUP_CHUNKS) -> IndexReport:
        """Re-index ``paths`` (relative or absolute; default: every file) whose content changed; drop deleted ones.

        Args:
            paths: files to look at; None: the whole workspace (files no longer listed are dropped).
            progress: called as ``progress(done, total, path)`` while files are read and after each embedded batch
                (``done`` counts files whose chunks are searchable now, of the ``total`` files that changed).
            group_chunks: chunks embedded per batch; each batch becomes searchable as soon as it is embedded.
        """
        with self._writer:
            return self._update(paths, progress, group_chunks)

    def _update(self, paths: Iterable[str | os.PathLike[str]] | None, progress: ProgressCallback | None,
                group_chunks: int) -> IndexReport:
        import time

        from gpte.code.languages import detect_language

        t0 = time.perf_counter()
        report = IndexReport()
        known = self.indexed_files()
        if paths is None:
            candidates, report.skipped = self.list_files()
            gone = set(known) - set(candidates)
        else:
            candidates = [self._relative(p) for p in paths]
            gone = {p for p in candidates if not (self.root / p).exists()}
            candidates = [p for p in candidates if p not in gone]
        with self.lock:
            for rel in sorted(gone):
                report.chunks_removed += self._drop(rel)
                report.files_removed += 1
        todo: list[tuple[str, bytes, str, str]] = []
        for rel in candidates:
            data, reason = self._read(rel)
            if data is None:
                report.skipped[rel] = reason or "unreadable"
                if rel in known:
                    with self.lock:
                        report.chunks_removed += self._drop(rel)
                continue
            language = detect_language(rel, data[:256])
            if language is None:
                report.skipped[rel] = "unknown language"
                continue
            digest = hashlib.sha256(data).hexdigest()
            if known.get(rel) == digest:
                report.files_unchanged += 1
                continue
            todo.append((rel, data, language, digest))
        done = 0
        if progress is not None:
            progress(0, len(todo), "")
        group: list[tuple[str, str, list[Any]]] = []  # files chunked but not yet embedded
        for i, (rel, data, language, digest) in enumerate(todo):
            chunks = self._chunk(rel, data, language, report)
            if chunks is not None:
                group.append((rel, digest, chunks))
            # embed many files' chunks in one call (big batches), the first batch small so that answers start early
            if sum(len(c) for _, _, c in group) >= (group_chunks if done else min(group_chunks, FIRST_GROUP_CHUNKS)):
                self._embed_group(group, report)
                group = []
                done = i + 1
                if progress is not None:
                    progress(done, len(todo), rel)
        if group:
            self._embed_group(group, report)
        if progress is not None and todo:
            progress(len(todo), len(todo), todo[-1][0])
        if todo or gone or report.chunks_removed:
            self._save()
        report.seconds = round(time.perf_counter() - t0, 3)
        for rel, why in list(report.skipped.items())[:20]:
            logger.info("skipped %s: %s", rel, why)
        return report

    def _chunk(self, rel: str, data: bytes, language: str, report: IndexReport) -> list[Any] | None:
        from gpte.code.chunking import chunk_source

        try:
            return chunk_source(data, language, rel)
        except Exception as exc:  # a parser failure on one file must not stop the rest
            report.skipped[rel] = f"could not be chunked ({type(exc).__name__}: {exc})"
            return None

    def _embed_group(self, group: list[tuple[str, str, list[Any]]], report: IndexReport) -> None:
        """Replace the chunks of every file in ``group`` with freshly embedded ones: embed outside the lock, then
        swap old chunks out and new ones in under it."""
        import numpy as np

        coll = self.collection
        chunks = [c for _, _, cs in group for c in cs]
        vectors = None
        if chunks:
            kept = self._stored_vectors(chunks)
            fresh = [c for c in chunks if c.id not in kept]
            embedded = None
            if fresh:
                encode = getattr(coll.model, "encode_chunks", None)
                if encode is not None:
                    embedded = np.asarray(encode(fresh, show_progress=False), dtype=np.float32)
                else:
                    embedded = np.asarray(coll.model.encode_document([_render(c) for c in fresh], show_progress=False),
                                          dtype=np.float32)
            row = {c.id: i for i, c in enumerate(fresh)}
            vectors = np.stack([kept[c.id] if c.id in kept else embedded[row[c.id]] for c in chunks])  # [n, D]
            report.chunks_embedded += len(fresh)
        with self.lock:
            for rel, _, _ in group:
                report.chunks_removed += self._drop(rel, keep_state=True)
            if chunks:
                meta = [{"path": c.path, "symbol": c.symbol, "qualname": c.qualname, "kind": c.kind,
                         "language": c.language, "start_line": c.start_line, "end_line": c.end_line,
                         "snippet": _snippet(c), "content_hash": c.content_hash} for c in chunks]
                coll.index.upsert([c.id for c in chunks], vectors, meta)
            for rel, digest, cs in group:
                self._files[rel] = {"sha256": digest, "language": cs[0].language if cs else None,
                                    "chunks": [c.id for c in cs]}
                report.files_indexed += 1
        report.chunks_added += len(chunks)

    def _stored_vectors(self, chunks: list[Any]) -> dict[str, Any]:
        """Stored vectors of the chunks already indexed with the same id and text (an edit elsewhere in their file
        leaves them as they were), when the index stores vectors losslessly; chunk id → vector."""
        index = self.collection.index
        if index.precision not in ("float32", "float16"):
            return {}
        with self.lock:
            same = [c.id for c in chunks
                    if c.id in index and (index.get(c.id) or {}).get("content_hash") == c.content_hash]
            if not same:
                return {}
            vectors = index.vectors(same)  # [m, D]
        return {cid: vectors[i] for i, cid in enumerate(same)} if vectors is not None else {}

    def _drop(self, rel: str, keep_state: bool = False) -> int:
        old = self._files.get(rel, {}).get("chunks", [])
        present = [cid for cid in old if cid in self.collection.index]
        if present:
            self.collection.index.delete(present)
        if not keep_state:
            self._files.pop(rel, None)
        return len(present)

    def _relative(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        full = (p if p.is_absolute() else self.root / p).resolve()
        if not full.is_relative_to(self.root):
            raise ValueError(f"{path} is outside the workspace {self.root}")
        return full.relative_to(self.root).as_posix()

    # ------------------------------------------------------------------ search
    def search(self, query: str, k: int = 10, language: str | None = None, path_glob: str | None = None,
               kinds: Sequence[str] | None = None) -> list[CodeHit]:
        """Ranked chunks for a natural-language (or code) query, optionally filtered."""
        import numpy as np

        coll = self.collection
        if len(coll) == 0:
            return []

        def keep(meta: dict[str, Any]) -> bool:
            if language is not None and meta.get("language") != language:
                return False
            if path_glob is not None and not fnmatch.fnmatch(meta.get("path", ""), path_glob):
                return False
            return kinds is None or meta.get("kind") in kinds

        flt = keep if (language or path_glob or kinds) else None
        q = np.atleast_2d(coll.model.encode_query(query))  # [1, D], embedded outside the lock
        with self.lock:
            hits = coll.index.search(q, k=k, filter=flt)[0]
        return [CodeHit(path=h.metadata["path"], symbol=h.metadata["symbol"], qualname=h.metadata["qualname"],
                        kind=h.metadata["kind"], language=h.metadata["language"],
                        start_line=h.metadata["start_line"], end_line=h.metadata["end_line"], score=h.score,
                        snippet=h.metadata["snippet"], chunk_id=str(h.id)) for h in hits]

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"root": str(self.root), "files": len(self._files), "chunks": len(self.collection),
                    "index": str(self.dir)}


def _snippet(chunk: Any, lines: int = 6) -> str:
    body = (chunk.text or "").splitlines()
    return "\n".join(body[:lines])


def ignore_cache_folder(root: Path, index_dir: Path) -> None:
    """Make the ``.gpte`` cache folder inside ``root`` ignore itself (a ``.gitignore`` holding ``*``)."""
    cache = root / INDEX_DIR.parts[0]
    try:
        if not index_dir.resolve().is_relative_to(cache.resolve()):
            return
        marker = cache / ".gitignore"
        if not marker.exists():
            cache.mkdir(parents=True, exist_ok=True)
            marker.write_text("# gpte's cache folder (code search index); never commit it\n*\n", encoding="utf-8")
    except OSError as exc:  # a read-only workspace still gets its index used
        logger.warning("could not write %s: %s", cache / ".gitignore", exc)


def _git_files(root: Path, skipped: dict[str, str] | None = None) -> list[str] | None:
    """Tracked and untracked-but-not-ignored files of a git work tree, or None outside one (or without git).

    Folders git could not open (it warns and goes on) are added to ``skipped``."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                              capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    if skipped is not None:
        for line in proc.stderr.decode("utf-8", "replace").splitlines():
            found = re.search(r"could not open directory '([^']*)': (.*)$", line)
            if found:
                skipped[found.group(1).rstrip("/") or "."] = f"unreadable folder ({found.group(2)})"
    names = [n for n in proc.stdout.decode("utf-8", "surrogateescape").split("\0") if n]
    return [n for n in names if not n.startswith(".gpte/") and (root / n).is_file()]


def _walk(root: Path, skipped: dict[str, str]) -> Iterable[str]:
    seen: set[tuple[int, int]] = set()

    def onerror(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(root).as_posix() if exc.filename else "?"
        skipped[where] = f"unreadable folder ({exc.strerror})"

    for dirpath, dirs, files in os.walk(root, onerror=onerror, followlinks=False):
        dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.startswith(".")]
        try:
            st = os.stat(dirpath)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        for name in files:
            yield (Path(dirpath) / name).relative_to(root).as_posix()
