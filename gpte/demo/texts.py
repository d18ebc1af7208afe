"""The text tab's service: semantic search over pasted or uploaded texts, and the similarity of two texts.

Texts are pasted one per line or uploaded as UTF-8 ``.txt`` files (one text per non-empty line, as ``gpte index
build`` reads a text file). Their embeddings are cached per (model, texts), so a second query over the same texts
only embeds the query: ``score = encode_document(text) · encode_query(query)``, both unit vectors (cosine).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gpte.demo.config import DemoConfig, DemoError
from gpte.demo.models import ModelCache

__all__ = ["TextItem", "TextResult", "TextService", "parse_texts"]

_CACHED_CORPORA = 8  # embedded text sets kept per process


@dataclass(frozen=True)
class TextItem:
    source: str  # "line 3" for pasted text, "notes.txt:12" for a line of an uploaded file
    text: str


@dataclass(frozen=True)
class TextResult:
    rank: int  # 1-based
    score: float  # cosine similarity to the query
    source: str
    text: str


def _read_upload(path: Path, limit: int) -> str:
    name = path.name
    try:
        size = path.stat().st_size
        if size > limit:
            raise DemoError(f"{name}: too large ({size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB)")
        raw = path.read_bytes()
    except OSError as exc:
        raise DemoError(f"{name}: the upload cannot be read ({exc.strerror or exc})") from exc
    if b"\0" in raw[:8192]:
        raise DemoError(f"{name}: not a text file (it contains binary data)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DemoError(f"{name}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from exc


def parse_texts(pasted: str | None, files: Sequence[str | os.PathLike[str]] | None = None, *,
                max_bytes: int = 20_000_000, max_texts: int = 20_000) -> list[TextItem]:
    """Non-empty lines of ``pasted`` and of each uploaded file, in order, with where each came from."""
    items = [TextItem(f"line {i}", line.strip()) for i, line in enumerate((pasted or "").splitlines(), 1)
             if line.strip()]
    for upload in files or ():
        path = Path(upload)
        text = _read_upload(path, max_bytes)
        items.extend(TextItem(f"{path.name}:{i}", line.strip()) for i, line in enumerate(text.splitlines(), 1)
                     if line.strip())
    if len(items) > max_texts:
        raise DemoError(f"{len(items)} texts given; the demo embeds at most {max_texts} at once")
    return items


class TextService:
    """Rank texts for a query, and compare two texts, with a text model from the :class:`ModelCache`."""

    def __init__(self, config: DemoConfig, models: ModelCache) -> None:
        self.config = config
        self.models = models
        self._corpora: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _document_vectors(self, model_name: str, model: Any, texts: list[str]) -> np.ndarray:
        digest = hashlib.sha256("\0".join(texts).encode("utf-8", "surrogatepass")).hexdigest()
        key = (model_name, digest)
        with self._lock:
            if key in self._corpora:
                self._corpora.move_to_end(key)
                return self._corpora[key]
        vectors = np.asarray(model.encode_document(texts), dtype=np.float32)  # (n, d), unit rows
        with self._lock:
            self._corpora[key] = vectors
            while len(self._corpora) > _CACHED_CORPORA:
                self._corpora.popitem(last=False)
        return vectors

    def search(self, pasted: str | None, files: Sequence[str | os.PathLike[str]] | None, query: str, model: str,
               k: int = 10) -> list[TextResult]:
        """The ``k`` texts closest to ``query``, best first."""
        query = (query or "").strip()
        if not query:
            raise DemoError("nothing to search for: type a query")
        if not 1 <= int(k) <= 1000:
            raise DemoError(f"the number of results must be between 1 and 1000, not {k}")
        items = parse_texts(pasted, files, max_bytes=self.config.max_upload_bytes, max_texts=self.config.max_texts)
        if not items:
            raise DemoError("no texts to search: paste some (one per line) or upload .txt files")
        encoder = self.models.get(model, "text")
        docs = self._document_vectors(model, encoder, [item.text for item in items])  # (n, d)
        q = np.asarray(encoder.encode_query(query), dtype=np.float32).reshape(-1)  # (d,)
        scores = docs @ q  # (n,)
        order = np.argsort(-scores, kind="stable")[: int(k)]
        return [TextResult(rank=r, score=float(scores[i]), source=items[i].source, text=items[i].text)
                for r, i in enumerate(order, 1)]

    def similarity(self, first: str, second: str, model: str) -> float:
        """Cosine similarity of two texts (both embedded the same way, without query or document prompts)."""
        first, second = (first or "").strip(), (second or "").strip()
        missing = [name for name, text in (("first", first), ("second", second)) if not text]
        if missing:
            raise DemoError(f"the {' and '.join(missing)} text is empty")
        encoder = self.models.get(model, "text")
        a, b = np.asarray(encoder.encode([first, second]), dtype=np.float32)  # two unit vectors
        return float(a @ b)
