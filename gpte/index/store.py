"""Persistence of indexes: versioned directories, a checksummed manifest, an atomic pointer switch.

Layout of an index directory::

    <dir>/
      .lock              writer lock (gpte.shared.fsio.writer_lock), held for the whole save
      CURRENT            one line: the name of the live version, e.g. "v000007"
      v000007/           the live version
        manifest.json    format, backend, spec, dim, metric, precision, count, rows, model, created,
                         backend fields (nprobe, ef_search, ...), files: {name: {sha256, bytes}}
        vectors.npy      exact backend: codes, np.load(mmap_mode="r")-able (int8 adds ranges.npy)
        index.faiss      faiss backend: faiss.write_index / write_index_binary output (read with IO_FLAG_MMAP_IFC)
        items.jsonl      one line per row, in row order: {"id": <str|int>, "metadata": <dict|null>}
        extras.json      (when ``index.extras`` is not empty) JSON the owner keeps in step with the vectors
      v000006/           the previous version, kept as a fallback: open_index(dir, version="previous")

A save writes the new version into a hidden temporary folder ``.tmp-v000008-*``, fsyncs every file and the folder,
renames it to ``v000008``, then atomically replaces ``CURRENT`` (write, fsync, rename), and only then deletes
versions other than the new and the previous one. A failure at any point removes the temporary folder and leaves
``CURRENT`` pointing at the intact previous version; folders left by a crash (``.tmp-*`` or unreferenced versions)
are ignored by readers and removed by the next save. Nothing is ever unpickled: ``.npy`` files are loaded with
``allow_pickle=False`` and metadata is JSON.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpte.index.errors import IndexConflictError, IndexCorruptError, IndexMismatchError
from gpte.shared.fsio import atomic_write_bytes, atomic_write_json, fsync_dir, umask_mode, writer_lock

if TYPE_CHECKING:
    from gpte.index.base import VectorIndex

__all__ = ["save_index", "open_index", "list_versions", "FORMAT", "MODEL_KEYS"]

logger = logging.getLogger(__name__)

FORMAT = "gpte.index/1"
MODEL_KEYS = ("name", "dim", "fingerprint")  # the model fields open_index(model=...) compares
_VERSION_RE = re.compile(r"^v(\d{6,})$")
_ITEMS = "items.jsonl"
_EXTRAS = "extras.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def list_versions(path: str | Path) -> list[str]:
    """Names of the complete version folders in ``path``, oldest first."""
    path = Path(path)
    if not path.is_dir():
        return []
    names = [p.name for p in path.iterdir() if p.is_dir() and _VERSION_RE.match(p.name)]
    return sorted(names, key=lambda n: int(n[1:]))


def _read_current(path: Path) -> str | None:
    try:
        name = (path / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    if not _VERSION_RE.match(name):
        raise IndexCorruptError(f"{path / 'CURRENT'} does not name a version (got {name[:40]!r})")
    return name


def save_index(index: VectorIndex, path: str | Path) -> Path:
    """Save ``index`` as a new version of directory ``path`` (see the module docstring); returns the version folder.

    Raises :class:`gpte.shared.fsio.LockedError` if another writer holds ``path``'s lock.
    """
    path = Path(path)
    with writer_lock(path):
        if index._n_dead:
            index.compact()
        try:
            previous = _read_current(path)
        except IndexCorruptError as exc:  # a damaged pointer: this save writes a good one
            logger.warning("%s; the new save replaces it", exc)
            previous = None
        base = getattr(index, "_opened_from", None)
        if base is not None and base[0] == path.resolve() and previous != base[1]:
            raise IndexConflictError(
                f"{path} changed since this index was opened from it (opened {base[1]}, now {previous}): another "
                "writer saved in between; reopen the index, re-apply the changes and save again"
            )
        existing = list_versions(path)
        number = max([int(n[1:]) for n in existing], default=0) + 1
        name = f"v{number:06d}"
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=path))
        os.chmod(tmp, umask_mode())  # a version folder is as readable as any other folder the user makes
        final = path / name
        try:
            fields = index._write_state(tmp)
            files = [*fields.pop("files"), _ITEMS]
            _write_items(tmp / _ITEMS, index)
            if index.extras:
                with open(tmp / _EXTRAS, "w", encoding="utf-8") as fh:
                    json.dump(index.extras, fh, ensure_ascii=False, allow_nan=False)
                files.append(_EXTRAS)
            checksums = {}
            for fname in files:
                _fsync_file(tmp / fname)
                checksums[fname] = {"sha256": _sha256(tmp / fname), "bytes": (tmp / fname).stat().st_size}
            manifest = {
                "format": FORMAT,
                **index.manifest_fields(),
                **fields,
                "rows": index.n_rows,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "files": checksums,
            }
            atomic_write_json(tmp / "manifest.json", manifest)
            fsync_dir(tmp)
            os.rename(tmp, final)
            fsync_dir(path)
            atomic_write_bytes(path / "CURRENT", (name + "\n").encode("utf-8"))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if final.exists() and _read_current(path) != name:
                shutil.rmtree(final, ignore_errors=True)
            raise
        _prune(path, keep={name, previous})
        index._opened_from = (path.resolve(), name)
    logger.info("saved %s (%d items) to %s", index.spec, len(index), final)
    return final


def _write_items(file: Path, index: VectorIndex) -> None:
    with open(file, "w", encoding="utf-8") as fh:
        for item_id, meta in zip(index._ids, index._meta, strict=True):
            fh.write(json.dumps({"id": item_id, "metadata": meta}, ensure_ascii=False, allow_nan=False))
            fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _prune(path: Path, keep: set[str | None]) -> None:
    for child in path.iterdir():
        stale_tmp = child.name.startswith(".tmp-") and child.is_dir()
        old_version = child.is_dir() and _VERSION_RE.match(child.name) and child.name not in keep
        if stale_tmp or old_version:
            shutil.rmtree(child, ignore_errors=True)


def _resolve_version(path: Path, version: str | int | None) -> str:
    if version in (None, "current"):
        try:
            current = _read_current(path)
        except IndexCorruptError as exc:
            raise IndexCorruptError(f"{exc}; load a version explicitly, e.g. version='previous' "
                                    f"(on disk: {list_versions(path)})") from exc
        if current is None:
            if list_versions(path):
                raise IndexCorruptError(
                    f"{path / 'CURRENT'} is missing; load a version explicitly: {list_versions(path)}"
                )
            raise FileNotFoundError(f"{path} is not a gpte index directory (no CURRENT file)")
        return current
    try:
        current = _read_current(path)
    except IndexCorruptError:  # a damaged pointer must not hide the versions on disk
        current = None
    if version == "previous":
        older = [n for n in list_versions(path) if current is None or int(n[1:]) < int(current[1:])]
        if not older:
            raise FileNotFoundError(f"{path} has no version older than {current}")
        return older[-1]
    if isinstance(version, int):
        return f"v{version:06d}"
    return str(version)


def check_model(manifest: dict[str, Any], model: dict[str, Any], where: str) -> None:
    """Raise :class:`IndexMismatchError` listing every field of ``model`` (name/dim/fingerprint) that differs."""
    saved = manifest.get("model") or {}
    diffs = []
    for key in MODEL_KEYS:
        if key not in model:
            continue
        have = manifest.get("dim") if key == "dim" else saved.get(key, "<not recorded>")
        if have != model[key]:
            diffs.append(f"{key}: index has {have!r}, model has {model[key]!r}")
    if diffs:
        raise IndexMismatchError(
            f"the index at {where} was built with a different model ({saved.get('name', '?')!r}):\n  "
            + "\n  ".join(diffs)
            + "\nre-encode the collection with this model, or open the index with the model it was built with"
        )


def open_index(
    path: str | Path,
    model: dict[str, Any] | None = None,
    mmap: bool = False,
    verify: bool = True,
    version: str | int | None = None,
) -> VectorIndex:
    """Load an index saved with :meth:`VectorIndex.save`.

    Args:
        path: the index directory.
        model: dict identifying the embedder that will query the index; its ``name``/``dim``/``fingerprint`` are
            compared with the manifest and any difference raises :class:`IndexMismatchError` listing each field.
        mmap: memory-map the vectors (exact ``.npy``; faiss Flat/IVF/HNSW/SQ files) instead of reading them into
            memory; the index is then read-only.
        verify: check every file's size and sha256 against the manifest (reads every byte once; pass False to
            skip for very large indexes).
        version: ``None``/``"current"``, ``"previous"`` (the fallback kept by the last save), a folder name such
            as ``"v000003"`` or its number.

    Raises:
        IndexCorruptError: naming the damaged file and how to load the previous version.
        IndexMismatchError: the index was built for another model.
    """
    from gpte.index.exact import ExactIndex
    from gpte.index.faiss_backend import FaissIndex

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no index directory at {path}")
    name = _resolve_version(path, version)
    vdir = path / name
    fallback = [n for n in list_versions(path) if n != name]
    hint = (
        f"; the previous version is still on disk: open_index({str(path)!r}, version={fallback[-1]!r})"
        if fallback
        else ""
    )
    mpath = vdir / "manifest.json"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise IndexCorruptError(f"{mpath} is missing{hint}") from exc
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{mpath} is unreadable ({exc}){hint}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise IndexCorruptError(f"{mpath} is not a {FORMAT} manifest{hint}")
    if model is not None:
        check_model(manifest, model, str(path))
    files = manifest.get("files") or {}
    for fname, info in files.items():
        fpath = vdir / fname
        if not fpath.is_file():
            raise IndexCorruptError(f"{fpath} is missing{hint}")
        if fpath.stat().st_size != info["bytes"]:
            raise IndexCorruptError(
                f"{fpath} is corrupt: {fpath.stat().st_size} bytes, the manifest says {info['bytes']}{hint}"
            )
        if verify and _sha256(fpath) != info["sha256"]:
            raise IndexCorruptError(f"{fpath} is corrupt: its sha256 does not match the manifest{hint}")
    backends = {ExactIndex.backend: ExactIndex, FaissIndex.backend: FaissIndex}
    cls = backends.get(manifest.get("backend"))
    if cls is None:
        raise IndexCorruptError(f"{mpath} names an unknown backend {manifest.get('backend')!r}")
    try:
        index = cls._read_state(vdir, manifest, mmap)
    except IndexCorruptError as exc:
        raise IndexCorruptError(f"{exc}{hint}") from exc
    _read_items(vdir / _ITEMS, index, manifest, hint)
    if _EXTRAS in files:
        try:
            index.extras = json.loads((vdir / _EXTRAS).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"{vdir / _EXTRAS} is unreadable ({exc}){hint}") from exc
    index.read_only = mmap
    index._opened_from = (path.resolve(), name)
    logger.info("opened %s (%d items) from %s", index.spec, len(index), vdir)
    return index


def _read_items(file: Path, index: VectorIndex, manifest: dict[str, Any], hint: str) -> None:
    import numpy as np

    ids, metas = [], []
    try:
        with open(file, encoding="utf-8") as fh:
            for line in fh:
                rec = json.loads(line)
                ids.append(rec["id"])
                metas.append(rec["metadata"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise IndexCorruptError(f"{file} is unreadable ({exc}){hint}") from exc
    if len(ids) != manifest["rows"] or len(set(ids)) != len(ids):
        raise IndexCorruptError(f"{file} holds {len(ids)} items, the manifest says {manifest['rows']}{hint}")
    index._ids = ids
    index._meta = metas
    index._alive = np.ones(len(ids), dtype=bool)
    index._row_of = {item: row for row, item in enumerate(ids)}
    index._n_dead = 0
