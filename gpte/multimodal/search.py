"""Image–text search: index a folder (or any images you hand it) and search by text, by image, or by both.

>>> from gpte.multimodal import ImageSearch
>>> search = ImageSearch("photos/")                 # doctest: +SKIP
>>> report = search.index()                         # first run: every image; later runs: only what changed
>>> for hit in search.search("a red car", k=5):     # doctest: +SKIP
...     print(hit.path, round(hit.score, 3))
>>> search.search(Path("query.jpg"))                # by image       # doctest: +SKIP
>>> search.search((Path("shirt.jpg"), "in red"))    # image plus text # doctest: +SKIP

The index lives in ``<folder>/.gpte/image-index/`` (or ``index_dir``): one vector per image file, its metadata
holding the path (relative to the folder), size and content hash, and the file table (size, modification time and
hash of every file) saved in the same index version. :meth:`ImageSearch.index` re-embeds only files whose size or
modification time changed and whose content hash differs; files with the same bytes are embedded once, reported as
duplicates, and come back as one hit whose metadata lists the other paths under ``duplicates``. Unreadable, truncated or corrupt images, decompression bombs and
non-image files are skipped and reported with their path and reason; huge images are downscaled on load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ImageSearch", "ImageHit", "ImageIndexReport", "DEFAULT_IMAGE_MODEL"]

logger = logging.getLogger(__name__)

DEFAULT_IMAGE_MODEL = "lit-lite0-minilm"
INDEX_DIR = Path(".gpte") / "image-index"
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ImageHit:
    id: str  # the item id (for a folder: the path relative to it)
    score: float  # cosine similarity to the query
    path: str | None  # absolute path of the image, when it came from a file
    metadata: dict[str, Any]


@dataclass
class ImageIndexReport:
    images_indexed: int = 0  # embedded in this run
    images_unchanged: int = 0
    images_removed: int = 0
    duplicates: dict[str, str] = field(default_factory=dict)  # path -> the path whose embedding it shares
    skipped: dict[str, str] = field(default_factory=dict)  # path or id -> reason
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        return self.images_indexed / self.seconds if self.seconds else 0.0


class ImageSearch:
    """Index and search images; see the module docstring.

    Args:
        folder: the image folder to index (``None``: only images added with :meth:`add`; then ``index_dir`` is
            required).
        model: an image–text embedder, or a registry name / folder for :func:`gpte.load` (default: the shipped
            ``lit-lite0-minilm``).
        index_dir: where the index lives (default ``<folder>/.gpte/image-index``).
        batch_size: images embedded per batch.
        follow_symlinks: also index files that are symbolic links to images outside the folder (by default they are
            skipped and reported: the index reads only what lies inside the folder you named).
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, model: Any = DEFAULT_IMAGE_MODEL, *,
                 index_dir: str | os.PathLike[str] | None = None, batch_size: int = 32,
                 follow_symlinks: bool = False) -> None:
        if folder is None and index_dir is None:
            raise ValueError("ImageSearch needs a folder to index or an index_dir to keep added images in")
        self.folder = Path(folder).resolve() if folder is not None else None
        if self.folder is not None and not self.folder.is_dir():
            raise NotADirectoryError(f"{folder} is not a folder")
        self.dir = Path(index_dir) if index_dir is not None else self.folder / INDEX_DIR  # type: ignore[operator]
        self.batch_size = batch_size
        self.follow_symlinks = follow_symlinks
        self._model_arg = model
        self._coll: Any = None
        self._files: dict[str, dict[str, Any]] = {}
        if (self.dir / "CURRENT").is_file():
            self._files = dict(self.collection.index.extras.get("image_files", {}))

    # ------------------------------------------------------------------ state
    @property
    def collection(self) -> Any:
        if self._coll is None:
            from gpte.index import Collection

            if (self.dir / "CURRENT").is_file():
                model = None if self._model_arg == DEFAULT_IMAGE_MODEL else self._model_arg
                self._coll = Collection.open(self.dir, model=model)
            else:
                self._coll = Collection(self._model_arg, backend="exact", store_text=False)
        return self._coll

    @property
    def model(self) -> Any:
        return self.collection.model

    def __len__(self) -> int:
        return len(self.collection)

    def save(self) -> None:
        """Save vectors, metadata and the file table as one index version (atomic; under the writer lock)."""
        index = self.collection.index
        index.extras = {**index.extras, "image_files": self._files}
        self.collection.save(self.dir)

    # ------------------------------------------------------------------ indexing a folder
    def list_files(self) -> tuple[list[str], dict[str, str]]:
        """Image files under the folder (relative POSIX paths) and the other files with the reason they are left."""
        if self.folder is None:
            return [], {}
        found, skipped = [], {}
        seen: set[tuple[int, int]] = set()

        def onerror(exc: OSError) -> None:
            where = Path(exc.filename).relative_to(self.folder).as_posix() if exc.filename else "?"
            skipped[where] = f"unreadable folder ({exc.strerror})"

        for dirpath, dirs, files in os.walk(self.folder, onerror=onerror, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            for name in sorted(files):
                rel = (Path(dirpath) / name).relative_to(self.folder).as_posix()
                if name.startswith("."):
                    continue
                if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                    found.append(rel)
                else:
                    skipped[rel] = "not an image file (extension)"
        return found, skipped

    def index(self, progress: Callable[[int, int, str], None] | None = None) -> ImageIndexReport:
        """Bring the index up to date with the folder: embed new and changed images, drop deleted ones.

        ``progress(done, total, path)`` is called after each embedded batch: ``done`` files looked at (unchanged
        ones included) of the ``total`` listed, ``path`` the last one."""
        if self.folder is None:
            raise ValueError("this ImageSearch has no folder: use add()")
        t0 = time.perf_counter()
        report = ImageIndexReport()
        paths, report.skipped = self.list_files()
        gone = set(self._files) - set(paths)
        for rel in sorted(gone):
            self._drop(rel)
            report.images_removed += 1
        touched = 0  # files whose stat changed but whose bytes did not: only their table entry changes
        first_of: dict[str, str] = {}  # content hash -> first path with those bytes
        for rel, info in sorted(self._files.items()):
            first_of.setdefault(info["sha256"], rel)
        todo: list[tuple[str, bytes, dict[str, Any]]] = []  # read but not yet embedded: one batch at most in memory
        embedded = 0
        for position, rel in enumerate(paths, start=1):
            full = self.folder / rel
            try:
                if not self.follow_symlinks and full.is_symlink() and not full.resolve().is_relative_to(self.folder):
                    report.skipped[rel] = "symbolic link leaving the folder"
                    continue
                st = full.stat()
                old = self._files.get(rel)
                if old and old["size"] == st.st_size and old["mtime_ns"] == st.st_mtime_ns:
                    report.images_unchanged += 1
                    continue
                data = full.read_bytes()
            except FileNotFoundError:
                report.skipped[rel] = "vanished while indexing"
                continue
            except OSError as exc:
                report.skipped[rel] = f"unreadable ({exc.strerror or exc})"
                continue
            digest = hashlib.sha256(data).hexdigest()
            info = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
            if old and old["sha256"] == digest:  # touched, same bytes
                self._files[rel] = info
                report.images_unchanged += 1
                touched += 1
                continue
            if old:
                self._drop(rel)
            twin = first_of.setdefault(digest, rel)
            if twin != rel:
                report.duplicates[rel] = twin
            todo.append((rel, data, info))
            if len(todo) == self.batch_size:
                self._embed_files(todo, report)
                embedded, todo = embedded + len(todo), []
                if progress is not None:
                    progress(position, len(paths), rel)
        if todo:
            self._embed_files(todo, report)
            embedded += len(todo)
        if progress is not None:
            progress(len(paths), len(paths), paths[-1] if paths else "")
        if embedded or gone or touched:
            self.save()
        report.seconds = round(time.perf_counter() - t0, 3)
        for rel, why in list(report.skipped.items())[:20]:
            logger.info("skipped %s: %s", rel, why)
        return report

    def _embed_files(self, batch: list[tuple[str, bytes, dict[str, Any]]], report: ImageIndexReport) -> None:
        """Embed a batch of files (bytes read once); files with equal bytes share one embedding."""
        from gpte.unimodal.image_io import ImageInputError, load_image

        loaded, keep, seen = [], [], {}
        for rel, data, info in batch:
            if info["sha256"] in seen:
                continue
            try:
                loaded.append(load_image(data))
                keep.append((rel, info))
                seen[info["sha256"]] = len(loaded) - 1
            except ImageInputError as exc:
                report.skipped[rel] = exc.reason
        vectors = self._embed_loaded(loaded) if loaded else np.zeros((0, self.model.embed_dim), np.float32)
        ids, rows, metas = [], [], []
        for rel, _, info in batch:
            row = seen.get(info["sha256"])
            if row is None or rel in report.skipped:
                continue
            im = loaded[row]
            ids.append(rel)
            rows.append(row)
            metas.append({"path": rel, "width": im.width, "height": im.height, "bytes": info["size"],
                          "sha256": info["sha256"]})
            self._files[rel] = info
        if ids:
            self.collection.index.upsert(ids, vectors[rows], metas)
        report.images_indexed += len(ids)

    def _embed_loaded(self, images: list[Any]) -> np.ndarray:
        return np.asarray(self.model.encode_image(images, batch_size=self.batch_size), dtype=np.float32)

    def _drop(self, rel: str) -> None:
        self._files.pop(rel, None)
        if rel in self.collection.index:
            self.collection.index.delete([rel])

    # ------------------------------------------------------------------ images handed over directly
    def add(self, images: Sequence[Any], ids: Sequence[str], metadata: Sequence[dict[str, Any] | None] | None = None,
            *, save: bool = True) -> ImageIndexReport:
        """Add (or replace) images under ``ids``: paths, PIL images, arrays or bytes. Bad images are skipped and
        reported by id; the rest are added."""
        from gpte.unimodal.image_io import ImageInputError, load_image

        if len(ids) != len(images):
            raise ValueError(f"{len(ids)} ids for {len(images)} images")
        metas = list(metadata) if metadata is not None else [None] * len(images)
        if len(metas) != len(images):
            raise ValueError(f"{len(metas)} metadata entries for {len(images)} images")
        t0 = time.perf_counter()
        report = ImageIndexReport()
        for start in range(0, len(images), self.batch_size):
            loaded, keep = [], []
            for i in range(start, min(start + self.batch_size, len(images))):
                try:
                    loaded.append(load_image(images[i]))
                    keep.append(i)
                except ImageInputError as exc:
                    report.skipped[str(ids[i])] = exc.reason
            if not loaded:
                continue
            vectors = self._embed_loaded(loaded)
            meta = []
            for i in keep:
                m = dict(metas[i] or {})
                if isinstance(images[i], str | os.PathLike):
                    m.setdefault("path", str(Path(images[i]).resolve()))
                meta.append(m)
            self.collection.index.upsert([str(ids[i]) for i in keep], vectors, meta)
            report.images_indexed += len(keep)
        if save and report.images_indexed:
            self.save()
        report.seconds = round(time.perf_counter() - t0, 3)
        return report

    def remove(self, ids: Sequence[str], *, save: bool = True) -> int:
        """Delete items by id; returns how many were present."""
        present = [i for i in ids if i in self.collection.index]
        if present:
            self.collection.index.delete(present)
            if save:
                self.save()
        return len(present)

    # ------------------------------------------------------------------ search
    def search(self, query: Any, k: int = 10, filter: Any = None) -> list[ImageHit]:  # noqa: A002
        """Top-``k`` images for a text (``str``), an image (``Path``, PIL image, array, bytes) or an ``(image,
        text)`` pair. ``filter``: a metadata filter as for :meth:`gpte.index.VectorIndex.search`."""
        if len(self.collection) == 0:
            return []
        vec = np.atleast_2d(self.model.encode_query(query, **_query_task(self.model, query)))
        hits = self.collection.index.search(vec, k=2 * k, filter=filter)[0]  # room for collapsed duplicates
        out: list[ImageHit] = []
        by_hash: dict[str, ImageHit] = {}
        for h in hits:
            meta = dict(h.metadata or {})
            digest = meta.get("sha256")
            if digest is not None and digest in by_hash:  # same bytes: one hit listing every path
                by_hash[digest].metadata.setdefault("duplicates", []).append(self._absolute(meta.get("path")))
                continue
            hit = ImageHit(id=str(h.id), score=float(h.score), path=self._absolute(meta.get("path")), metadata=meta)
            if digest is not None:
                by_hash[digest] = hit
            out.append(hit)
        return out[:k]

    def _absolute(self, path: str | None) -> str | None:
        if path is not None and self.folder is not None and not Path(path).is_absolute():
            return str(self.folder / path)
        return path

    def stats(self) -> dict[str, Any]:
        return {"folder": str(self.folder) if self.folder else None, "images": len(self.collection),
                "files": len(self._files), "index": str(self.dir)}


def _query_task(model: Any, query: Any) -> dict[str, str]:
    """The instruction of a query for models that take one (universal embedders): a text asks for an image
    (``text-to-image``), an (image, text) pair for a changed image (``composed-image``); an image alone takes no task
    (the candidate prompt on both sides: image-to-image similarity). Other models get nothing."""
    if getattr(model, "instructions", None) is None:
        return {}
    if isinstance(query, str):
        return {"task": "text-to-image"}
    if isinstance(query, tuple):
        return {"task": "composed-image"}
    return {}
