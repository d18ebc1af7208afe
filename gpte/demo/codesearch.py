"""The code tab's service: index a named workspace with :class:`gpte.code.CodeSearch` and rank its functions.

One engine per (model, workspace), kept for the life of the process; the index lives under the demo's cache folder.
Each result carries ``file:line``, the symbol and the code of the definition (read back from the file, inside the
workspace, at most :data:`MAX_SNIPPET_LINES` lines) with the language the page highlights it in.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from gpte.code import CodeSearch
from gpte.code.languages import supported_languages
from gpte.demo.config import DemoConfig, DemoError, index_dir_for, resolve_folder
from gpte.demo.images import Progress
from gpte.demo.models import ModelCache

__all__ = ["CodeIndexSummary", "CodeResult", "CodeService", "LANGUAGES"]

MAX_SNIPPET_LINES = 60
# languages gpte parses (the language filter's choices)
LANGUAGES: tuple[str, ...] = tuple(supported_languages())


@dataclass(frozen=True)
class CodeResult:
    rank: int  # 1-based
    score: float  # cosine similarity to the query
    path: str  # relative to the workspace, POSIX
    start_line: int  # 1-based, inclusive
    end_line: int
    symbol: str  # qualified name ("" for a window of lines)
    kind: str  # function, method, class, window ...
    language: str
    code: str  # the definition's lines (capped), or the indexed snippet if the file changed since

    @property
    def location(self) -> str:
        """``path:line`` of the definition's first line."""
        return f"{self.path}:{self.start_line}"


@dataclass(frozen=True)
class CodeIndexSummary:
    folder: str
    model: str
    files: int  # files in the index
    chunks: int  # definitions (and windows) in the index
    indexed: int  # files (re-)embedded in this run
    unchanged: int
    removed: int
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason
    seconds: float = 0.0

    def message(self) -> str:
        return (f"{self.folder}: {self.chunks} definitions from {self.files} files ({self.indexed} files embedded now, "
                f"{self.unchanged} unchanged, {self.removed} removed, {len(self.skipped)} skipped) with {self.model}, "
                f"{self.seconds:.1f} s")


class CodeService:
    """Index and search the workspaces a :class:`DemoConfig` names; engines are cached per (model, workspace)."""

    def __init__(self, config: DemoConfig, models: ModelCache) -> None:
        self.config = config
        self.models = models
        self._engines: dict[tuple[str, Path], tuple[CodeSearch, threading.Lock]] = {}
        self._lock = threading.Lock()

    def folder(self, requested: str | os.PathLike[str] | None) -> Path:
        """The requested workspace if the demo may read it (see :func:`gpte.demo.config.resolve_folder`)."""
        return resolve_folder(requested, list(self.config.code_folders), "--code")

    def _engine(self, folder: Path, model_name: str) -> tuple[CodeSearch, threading.Lock]:
        key = (model_name, folder)
        with self._lock:
            if key not in self._engines:
                model = self.models.get(model_name, "code")
                index_dir = index_dir_for(Path(self.config.cache_dir), "code", folder, model_name)
                self._engines[key] = (CodeSearch(folder, model=model, index_dir=index_dir), threading.Lock())
            return self._engines[key]

    def index(self, folder: str | os.PathLike[str] | None, model: str, progress: Progress | None = None
              ) -> CodeIndexSummary:
        """Bring the index of the workspace up to date (only changed files are re-embedded)."""
        path = self.folder(folder)
        report = progress or (lambda fraction, desc: None)
        report(0.0, f"loading {model}")
        engine, lock = self._engine(path, model)
        with lock:
            def on_progress(done: int, total: int, rel: str) -> None:
                report(done / max(total, 1), f"chunking and embedding changed files of {path.name}: {done} of {total}")

            try:
                r = engine.index(progress=on_progress)  # only changed files are embedded; deleted ones dropped
            except OSError as exc:
                raise DemoError(f"{path}: indexing failed ({exc.strerror or exc})") from exc
            report(1.0, "indexed")
            stats = engine.stats()
            return CodeIndexSummary(folder=str(path), model=model, files=stats["files"], chunks=stats["chunks"],
                                    indexed=r.files_indexed, unchanged=r.files_unchanged, removed=r.files_removed,
                                    skipped=dict(r.skipped), seconds=r.seconds)

    def search(self, folder: str | os.PathLike[str] | None, model: str, query: str, k: int = 10,
               language: str | None = None, progress: Progress | None = None
               ) -> tuple[list[CodeResult], CodeIndexSummary]:
        """The ``k`` definitions of the workspace that best match ``query`` (words or a code fragment)."""
        query = (query or "").strip()
        if not query:
            raise DemoError("nothing to search for: describe what the code does")
        if not 1 <= int(k) <= 100:
            raise DemoError(f"the number of results must be between 1 and 100, not {k}")
        language = language or None
        if language is not None and language not in LANGUAGES:
            raise DemoError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
        summary = self.index(folder, model, progress)
        root = Path(summary.folder)
        engine, lock = self._engine(root, model)
        with lock:
            hits = engine.search(query, k=int(k), language=language)
        return [CodeResult(rank=i, score=float(h.score), path=h.path, start_line=h.start_line, end_line=h.end_line,
                           symbol=h.qualname or h.symbol or "", kind=h.kind, language=h.language,
                           code=_definition(root, h.path, h.start_line, h.end_line) or h.snippet)
                for i, h in enumerate(hits, 1)], summary


def _definition(root: Path, rel: str, start: int, end: int) -> str | None:
    """Lines ``start..end`` of ``root/rel`` (at most MAX_SNIPPET_LINES), or None if it cannot be read safely."""
    path = (root / rel).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        return None
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            lines = [line.rstrip("\n") for i, line in enumerate(fh, 1) if start <= i <= end]
    except OSError:
        return None
    if not lines:
        return None
    if len(lines) > MAX_SNIPPET_LINES:
        lines = [*lines[:MAX_SNIPPET_LINES], f"... ({len(lines) - MAX_SNIPPET_LINES} more lines)"]
    return "\n".join(lines)
