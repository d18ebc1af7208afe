"""The image tab's service: index a named folder with an image–text model and search it by text, image or both.

One :class:`gpte.multimodal.ImageSearch` per (model, folder), kept for the life of the process; its index lives under
the demo's cache folder, so a restarted demo only embeds what changed. Results carry thumbnails rendered here (the
demo never serves the image files themselves) and their metadata.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpte.demo.config import DemoConfig, DemoError, index_dir_for, resolve_folder
from gpte.demo.models import ModelCache
from gpte.multimodal import ImageSearch
from gpte.unimodal.image_io import ImageInputError, load_image

__all__ = ["ImageIndexSummary", "ImageResult", "ImageService", "Progress"]

Progress = Callable[[float, str], None]  # (fraction done, what is happening)
THUMBNAIL_SIDE = 384  # longer side of the thumbnails the gallery shows


@dataclass(frozen=True)
class ImageResult:
    rank: int  # 1-based
    score: float  # cosine similarity to the query
    id: str  # path relative to the folder
    path: str  # absolute path of the file
    thumbnail: Any  # an RGB PIL image, longer side at most THUMBNAIL_SIDE (None if the file can no longer be read)
    metadata: dict[str, Any]  # width, height, bytes, sha256, duplicates (other paths with the same bytes)


@dataclass(frozen=True)
class ImageIndexSummary:
    folder: str
    model: str
    images: int  # images in the index after this run
    indexed: int  # embedded in this run
    unchanged: int
    removed: int
    duplicates: int  # files with the same bytes as another one (embedded once)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason
    seconds: float = 0.0

    def message(self, limit: int = 5) -> str:
        """One line for the page, plus the first few skipped files and why."""
        text = (f"{self.folder}: {self.images} images in the index ({self.indexed} embedded now, {self.unchanged} "
                f"unchanged, {self.removed} removed, {self.duplicates} duplicates, {len(self.skipped)} skipped) "
                f"with {self.model}, {self.seconds:.1f} s")
        shown = [f"skipped {path}: {why}" for path, why in sorted(self.skipped.items())[:limit]]
        more = [f"... and {len(self.skipped) - limit} more skipped"] if len(self.skipped) > limit else []
        return "\n".join([text, *shown, *more])


class ImageService:
    """Index and search the image folders a :class:`DemoConfig` names; engines are cached per (model, folder)."""

    def __init__(self, config: DemoConfig, models: ModelCache) -> None:
        self.config = config
        self.models = models
        self._engines: dict[tuple[str, Path], tuple[ImageSearch, threading.Lock]] = {}
        self._lock = threading.Lock()

    def folder(self, requested: str | os.PathLike[str] | None) -> Path:
        """The requested folder if the demo may read it (see :func:`gpte.demo.config.resolve_folder`)."""
        return resolve_folder(requested, list(self.config.image_folders), "--images")

    def _engine(self, folder: Path, model_name: str) -> tuple[ImageSearch, threading.Lock]:
        key = (model_name, folder)
        with self._lock:
            if key not in self._engines:
                model = self.models.get(model_name, "image")
                index_dir = index_dir_for(Path(self.config.cache_dir), "images", folder, model_name)
                engine = ImageSearch(folder, model=model, index_dir=index_dir,
                                     follow_symlinks=self.config.follow_symlinks,
                                     batch_size=self.config.image_batch_size)
                self._engines[key] = (engine, threading.Lock())
            return self._engines[key]

    def index(self, folder: str | os.PathLike[str] | None, model: str, progress: Progress | None = None
              ) -> ImageIndexSummary:
        """Bring the index of ``folder`` up to date (only new and changed images are embedded)."""
        path = self.folder(folder)
        report = progress or (lambda fraction, desc: None)
        report(0.0, f"loading {model}")
        engine, lock = self._engine(path, model)
        with lock:
            def on_progress(done: int, total: int, rel: str) -> None:
                report(done / max(total, 1), f"indexing images of {path.name}: {done} of {total} files looked at")

            report(0.0, f"indexing the image files in {path}")
            try:
                r = engine.index(progress=on_progress)
            except OSError as exc:
                raise DemoError(f"{path}: indexing failed ({exc.strerror or exc})") from exc
            report(1.0, "indexed")
            return ImageIndexSummary(folder=str(path), model=model, images=len(engine), indexed=r.images_indexed,
                                     unchanged=r.images_unchanged, removed=r.images_removed,
                                     duplicates=len(r.duplicates), skipped=dict(r.skipped), seconds=r.seconds)

    def load_query_image(self, upload: str | os.PathLike[str]) -> Any:
        """The uploaded query image as an RGB PIL image; a :class:`DemoError` if it is too large or not an image."""
        path = Path(upload)
        name = path.name
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise DemoError(f"{name}: the upload cannot be read ({exc.strerror or exc})") from exc
        limit = self.config.max_upload_bytes
        if size > limit:
            raise DemoError(f"{name}: too large ({size / 1e6:.1f} MB; the limit is {limit / 1e6:.1f} MB)")
        if size == 0:
            raise DemoError(f"{name}: the file is empty")
        try:
            return load_image(path)
        except ImageInputError as exc:
            raise DemoError(f"{name}: not a usable image ({exc.reason})") from exc

    def search(self, folder: str | os.PathLike[str] | None, model: str, text: str | None = None,
               image: str | os.PathLike[str] | None = None, k: int = 12, progress: Progress | None = None
               ) -> tuple[list[ImageResult], ImageIndexSummary]:
        """Top-``k`` images of ``folder`` for a text, an uploaded image, or both (the image edited by the text).

        The folder is indexed first (incrementally), so results always reflect its current contents.
        """
        text = (text or "").strip()
        if not text and image is None:
            raise DemoError("nothing to search for: type a description, upload an image, or both")
        if not 1 <= int(k) <= 200:
            raise DemoError(f"the number of results must be between 1 and 200, not {k}")
        query: Any = text
        if image is not None:
            picture = self.load_query_image(image)
            query = (picture, text) if text else picture
        summary = self.index(folder, model, progress)
        engine, lock = self._engine(Path(summary.folder), model)
        with lock:
            hits = engine.search(query, k=int(k))
        results = []
        for rank, hit in enumerate(hits, 1):
            meta = dict(hit.metadata)
            if meta.get("duplicates"):
                meta["duplicates"] = [os.path.relpath(p, summary.folder) for p in meta["duplicates"] if p]
            try:
                thumb = load_image(hit.path, max_side=THUMBNAIL_SIDE) if hit.path else None
            except ImageInputError:
                thumb = None  # changed or removed since it was indexed; the next search re-indexes it
            results.append(ImageResult(rank=rank, score=float(hit.score), id=hit.id, path=str(hit.path),
                                       thumbnail=thumb, metadata=meta))
        return results, summary
