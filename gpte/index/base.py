"""The :class:`VectorIndex` interface shared by every backend, and the bookkeeping they all need.

A backend stores vectors in *rows* ``0..n_rows-1`` in insertion order. The base class maps each row to a stable
external id (``str`` or ``int``) and a JSON metadata dict, keeps a tombstone (``alive``) flag per row, validates all
input, and turns filters and tombstones into a boolean ``allowed`` mask over rows. Backends implement five hooks:
``_train_rows``, ``_add_rows``, ``_search_rows``, ``_compact_rows`` and the persistence pair ``_write_state`` /
``_read_state``.

Deleting (or replacing with :meth:`VectorIndex.upsert`) only tombstones a row; the space is reclaimed by
:meth:`VectorIndex.compact`, which runs automatically when more than half the rows are dead and before every save.
That is also how HNSW indexes, which cannot remove graph nodes, support deletes.

Scores are "higher is better" for every metric: cosine similarity, inner product, and for ``"l2"`` the *negated
squared* Euclidean distance. With ``precision="binary"`` the score is ``1 - 2 * hamming / dim`` in ``[-1, 1]``.
"""

from __future__ import annotations

import json
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from gpte.index.errors import IndexInputError, IndexReadOnlyError
from gpte.index.filters import Filter, compile_filter

__all__ = ["Hit", "VectorIndex", "Metric", "IndexPrecision", "METRICS", "INDEX_PRECISIONS", "ItemId"]

logger = logging.getLogger(__name__)

Metric = Literal["cosine", "ip", "l2"]
IndexPrecision = Literal["float32", "float16", "int8", "binary"]
METRICS: tuple[str, ...] = ("cosine", "ip", "l2")
INDEX_PRECISIONS: tuple[str, ...] = ("float32", "float16", "int8", "binary")
ItemId = str | int

# Automatic compaction once dead rows exceed this fraction of all rows (amortised O(1) per delete).
AUTO_COMPACT_FRACTION = 0.5


@dataclass(frozen=True)
class Hit:
    """One search result: the item's external id, its score (higher is better) and a copy of its metadata."""

    id: ItemId
    score: float
    metadata: dict[str, Any] | None


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


class VectorIndex(ABC):
    """A vector collection with stable ids, metadata, filters, deletes and atomic persistence.

    Args:
        dim: vector dimension.
        metric: ``"cosine"`` (the index L2-normalises vectors and queries), ``"ip"`` or ``"l2"``.
        precision: storage precision, ``"float32"``, ``"float16"``, ``"int8"`` (per-dimension scalar quantisation,
            ranges trained on the first batch or :meth:`train`) or ``"binary"`` (sign bits, Hamming ranking).
        model: free dict identifying the embedder (``name``, ``dim``, ``fingerprint``...), stored in the manifest
            and checked by :func:`gpte.index.open_index`.

    Attribute ``rescore`` (binary precision only, default 4): fetch ``k * rescore`` candidates by Hamming distance and
    re-rank them by the cosine between the float query and each stored sign vector; 1 turns re-ranking off.
    """

    backend: ClassVar[str] = "abstract"

    def __init__(
        self,
        dim: int,
        metric: Metric = "cosine",
        precision: IndexPrecision = "float32",
        model: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(dim, int | np.integer) or isinstance(dim, bool) or dim <= 0:
            raise IndexInputError(f"dim must be a positive integer, got {dim!r}")
        if metric not in METRICS:
            raise IndexInputError(f"unknown metric {metric!r}; expected one of {METRICS}")
        if precision not in INDEX_PRECISIONS:
            raise IndexInputError(f"unknown precision {precision!r}; expected one of {INDEX_PRECISIONS}")
        if precision == "binary" and dim % 8:
            raise IndexInputError(f"precision 'binary' packs 8 dimensions per byte; dim {dim} is not a multiple of 8")
        if model is not None:
            if not isinstance(model, dict):
                raise IndexInputError(f"model must be a dict identifying the embedder, got {type(model).__name__}")
            if "dim" in model and model["dim"] != dim:
                raise IndexInputError(
                    f"model {model.get('name', '?')!r} has dim {model['dim']} but the index has {dim}"
                )
            _check_json(model, "model")
        self.dim = int(dim)
        self.metric: Metric = metric
        self.precision: IndexPrecision = precision
        self.model: dict[str, Any] | None = dict(model) if model is not None else None
        self.read_only = False
        self._opened_from: tuple[Path, str] | None = None  # (directory, version) this index was loaded from / saved as
        # JSON data saved in the same version as the vectors (so they commit together), e.g. a code index's file table
        self.extras: dict[str, Any] = {}
        self.rescore = 4  # binary precision: Hamming candidates per hit, re-ranked by the float query (1 = off)
        self._ids: list[ItemId] = []
        self._meta: list[dict[str, Any] | None] = []
        self._alive = np.zeros(0, dtype=bool)
        self._row_of: dict[ItemId, int] = {}
        self._n_dead = 0

    # ----------------------------------------------------------------- backend hooks
    @property
    @abstractmethod
    def is_trained(self) -> bool:
        """Whether the index can accept vectors (int8 ranges / faiss training done)."""

    @abstractmethod
    def _train_rows(self, x: np.ndarray) -> None:
        """Train on prepared float32 vectors ``x`` ``(n, dim)``."""

    @abstractmethod
    def _add_rows(self, x: np.ndarray) -> None:
        """Append prepared float32 vectors ``x`` ``(n, dim)`` as rows ``n_rows..n_rows+n-1``; all or nothing."""

    @abstractmethod
    def _search_rows(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows among ``allowed`` (bool ``(n_rows,)``, None = all) for prepared queries ``q`` ``(m, dim)``.

        Returns ``(scores, rows)``, both ``(m, k)``, best first, rows ``-1`` (score ``-inf``) where fewer exist.
        """

    @abstractmethod
    def _compact_rows(self, keep: np.ndarray) -> None:
        """Keep only rows ``keep`` (sorted int64), renumbered ``0..len(keep)-1`` in the same order."""

    @abstractmethod
    def _write_state(self, directory: Path) -> dict[str, Any]:
        """Write the vector data into ``directory``; return backend fields for the manifest."""

    @classmethod
    @abstractmethod
    def _read_state(cls, directory: Path, manifest: dict[str, Any], mmap: bool) -> VectorIndex:
        """Build an index (without ids/metadata) from files written by :meth:`_write_state`."""

    @abstractmethod
    def nbytes(self) -> int:
        """Approximate bytes held in memory for the vectors (codes plus index structure, not metadata)."""

    # ----------------------------------------------------------------- properties
    @property
    def n_rows(self) -> int:
        """Rows stored, including tombstoned ones."""
        return len(self._ids)

    def __len__(self) -> int:
        return len(self._ids) - self._n_dead

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row_of

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(dim={self.dim}, metric={self.metric!r}, precision={self.precision!r}, "
            f"count={len(self)}, spec={self.spec!r})"
        )

    @property
    def spec(self) -> str:
        """Backend-specific description of the index structure."""
        return "exact"

    def ids(self) -> list[ItemId]:
        """External ids of the live items, in insertion order."""
        if not self._n_dead:
            return list(self._ids)
        return [i for i, a in zip(self._ids, self._alive, strict=True) if a]

    def get(self, item_id: ItemId) -> dict[str, Any] | None:
        """Metadata of ``item_id`` (a copy; ``None`` if it has none); raises :class:`IndexInputError` if unknown."""
        row = self._row_of.get(item_id)
        if row is None:
            raise IndexInputError(f"unknown id {item_id!r}: not in the index")
        meta = self._meta[row]
        return json.loads(json.dumps(meta)) if meta is not None else None

    def vectors(self, ids: Sequence[ItemId]) -> np.ndarray | None:
        """The stored vectors of ``ids`` as float32 ``(n, dim)`` (normalised under the cosine metric), or None when
        this backend or precision cannot give them back exactly (int8 and binary codes, faiss structures); raises
        :class:`IndexInputError` for an unknown id."""
        rows = []
        for item_id in ids:
            row = self._row_of.get(item_id)
            if row is None:
                raise IndexInputError(f"unknown id {item_id!r}: not in the index")
            rows.append(row)
        return self._vectors_of_rows(np.asarray(rows, dtype=np.int64))

    def _vectors_of_rows(self, rows: np.ndarray) -> np.ndarray | None:
        """Backend hook for :meth:`vectors`: float32 ``(len(rows), dim)``, or None if not recoverable exactly."""
        return None

    # ----------------------------------------------------------------- validation
    def _check_writable(self) -> None:
        if self.read_only:
            raise IndexReadOnlyError(
                "this index was opened with mmap=True and is read-only; open it with mmap=False to modify it"
            )

    @staticmethod
    def _check_ids(ids: Iterable[Any]) -> list[ItemId]:
        if isinstance(ids, str | int | np.integer):
            raise IndexInputError(f"ids must be a sequence of ids, got a single id {ids!r}; wrap it in a list")
        out: list[ItemId] = []
        seen: set[ItemId] = set()
        for i in ids:
            if isinstance(i, bool) or not isinstance(i, str | int | np.integer | np.str_):
                raise IndexInputError(f"id {i!r} has type {type(i).__name__}; ids must be str or int")
            item: ItemId = int(i) if isinstance(i, int | np.integer) else str(i)
            if item in seen:
                raise IndexInputError(f"duplicate id {item!r} in this batch; each id may appear once")
            seen.add(item)
            out.append(item)
        return out

    def _check_vectors(self, vectors: Any, ids: Sequence[ItemId], what: str = "vector") -> np.ndarray:
        x = _to_numpy(vectors)
        if x.ndim == 1 and x.shape[0] == self.dim and len(ids) == 1:
            x = x[None, :]
        if x.ndim != 2:
            raise IndexInputError(f"{what}s must be a 2-D array (n, {self.dim}), got shape {x.shape}")
        if x.shape[1] != self.dim:
            raise IndexInputError(f"{what} dimension {x.shape[1]} does not match the index dimension {self.dim}")
        if x.shape[0] != len(ids):
            raise IndexInputError(f"got {len(ids)} ids but {x.shape[0]} {what}s")
        if not np.issubdtype(x.dtype, np.number) or np.iscomplexobj(x):
            raise IndexInputError(f"{what}s must be real numbers, got dtype {x.dtype}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        finite = np.isfinite(x).all(axis=1)
        if not finite.all():
            bad = int(np.flatnonzero(~finite)[0])
            name = f"query {bad}" if what == "query" else f"{what} for id {ids[bad]!r} (row {bad} of the batch)"
            raise IndexInputError(f"{name} contains NaN or inf")
        return x

    @staticmethod
    def _check_metadata(metadata: Sequence[Any] | None, ids: Sequence[ItemId]) -> list[dict[str, Any] | None]:
        if metadata is None:
            return [None] * len(ids)
        if isinstance(metadata, dict):
            raise IndexInputError("metadata must be a sequence with one dict (or None) per id, got a single dict")
        metadata = list(metadata)
        if len(metadata) != len(ids):
            raise IndexInputError(f"got {len(ids)} ids but {len(metadata)} metadata entries")
        out: list[dict[str, Any] | None] = []
        for item_id, meta in zip(ids, metadata, strict=True):
            if meta is None:
                out.append(None)
                continue
            if not isinstance(meta, dict):
                raise IndexInputError(f"metadata for id {item_id!r} must be a dict or None, got {type(meta).__name__}")
            out.append(_check_json(meta, f"metadata for id {item_id!r}"))
        return out

    def _prepare(self, x: np.ndarray, ids: Sequence[Any] | None = None, what: str = "vector") -> np.ndarray:
        """Normalise for cosine (rejecting zero vectors); other metrics pass through."""
        if self.metric != "cosine":
            return x
        norms = np.linalg.norm(x, axis=1, keepdims=True)  # (n, 1)
        zero = norms[:, 0] == 0
        if zero.any():
            bad = int(np.flatnonzero(zero)[0])
            name = f"id {ids[bad]!r}" if ids is not None else f"query {bad}"
            raise IndexInputError(f"{what} for {name} has zero norm; the cosine metric needs non-zero vectors")
        return x / norms

    # ----------------------------------------------------------------- writes
    def train(self, vectors: Any) -> None:
        """Train quantiser ranges / faiss coarse quantisers on representative ``vectors`` ``(n, dim)``."""
        self._check_writable()
        x = _to_numpy(vectors)
        x = x[None, :] if x.ndim == 1 else x
        x = self._check_vectors(x, list(range(len(x))))
        self._train_rows(self._prepare(x))

    def add(self, ids: Sequence[ItemId], vectors: Any, metadata: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Add new items; raises :class:`IndexInputError` (naming the id) if an id already exists.

        Args:
            ids: one ``str`` or ``int`` id per vector, unique.
            vectors: ``(n, dim)`` array (numpy or torch); 1-D for a single id.
            metadata: one JSON-serialisable dict (or None) per id.
        """
        self._check_writable()
        id_list = self._check_ids(ids)
        for item in id_list:
            if item in self._row_of:
                raise IndexInputError(f"id {item!r} is already in the index; use upsert() to replace it")
        self._append(id_list, self._check_vectors(vectors, id_list), self._check_metadata(metadata, id_list))

    def upsert(
        self, ids: Sequence[ItemId], vectors: Any, metadata: Sequence[dict[str, Any] | None] | None = None
    ) -> None:
        """Add items, replacing (vector and metadata) those whose id already exists."""
        self._check_writable()
        id_list = self._check_ids(ids)
        x = self._check_vectors(vectors, id_list)
        meta = self._check_metadata(metadata, id_list)
        prepared = self._prepare(x, id_list)
        old_rows = [self._row_of[i] for i in id_list if i in self._row_of]
        self._append(id_list, prepared, meta, prepared=True, replace_rows=old_rows)

    def _append(
        self,
        ids: list[ItemId],
        x: np.ndarray,
        meta: list[dict[str, Any] | None],
        prepared: bool = False,
        replace_rows: list[int] | None = None,
    ) -> None:
        if not ids:
            return
        if not prepared:
            x = self._prepare(x, ids)
        if not self.is_trained:
            logger.info("training the %s index on the first batch of %d vectors", self.spec, len(x))
            self._train_rows(x)
        self._add_rows(x)  # all or nothing; bookkeeping below only after success
        for row in replace_rows or []:
            self._kill(row)
        start = len(self._ids)
        self._ids.extend(ids)
        self._meta.extend(meta)
        self._alive = np.concatenate([self._alive, np.ones(len(ids), dtype=bool)])
        for offset, item in enumerate(ids):
            self._row_of[item] = start + offset
        self._maybe_compact()

    def _kill(self, row: int) -> None:
        if self._alive[row]:
            self._alive[row] = False
            self._n_dead += 1
            del self._row_of[self._ids[row]]

    def delete(self, ids: Sequence[ItemId]) -> int:
        """Delete items by id; returns how many were deleted. Unknown ids raise before anything is deleted."""
        self._check_writable()
        id_list = self._check_ids(ids)
        unknown = [i for i in id_list if i not in self._row_of]
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise IndexInputError(f"cannot delete {len(unknown)} unknown id(s): {shown}")
        for item in id_list:
            self._kill(self._row_of[item])
        self._maybe_compact()
        return len(id_list)

    def _maybe_compact(self) -> None:
        if self._n_dead and self._n_dead > AUTO_COMPACT_FRACTION * len(self._ids):
            self.compact()

    def compact(self) -> None:
        """Physically remove tombstoned rows (rebuilds HNSW graphs); ids and metadata are unchanged."""
        self._check_writable()
        if not self._n_dead:
            return
        keep = np.flatnonzero(self._alive).astype(np.int64)
        logger.info("compacting %s: dropping %d deleted rows, keeping %d", self.spec, self._n_dead, len(keep))
        self._compact_rows(keep)
        self._ids = [self._ids[r] for r in keep]
        self._meta = [self._meta[r] for r in keep]
        self._alive = np.ones(len(keep), dtype=bool)
        self._row_of = {item: row for row, item in enumerate(self._ids)}
        self._n_dead = 0

    # ----------------------------------------------------------------- search
    def search(self, queries: Any, k: int = 10, filter: Filter | None = None) -> list[list[Hit]]:  # noqa: A002
        """Top-``k`` hits per query, best first.

        Args:
            queries: ``(m, dim)`` array, or ``(dim,)`` for one query (the result is still a list of one list).
            k: hits per query, ``k >= 1``; fewer are returned when fewer items (matching the filter) exist.
            filter: Mongo-like dict on the metadata (see :mod:`gpte.index.filters`) or ``callable(metadata) -> bool``.

        Returns:
            ``hits[i]`` is the list of :class:`Hit` for query ``i``.
        """
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k <= 0:
            raise IndexInputError(f"k must be a positive integer, got {k!r}")
        q = _to_numpy(queries)
        if q.ndim == 1:
            q = q[None, :]
        q = self._check_vectors(q, list(range(len(q))), what="query")
        q = self._prepare(q, what="query")
        allowed = self._allowed(filter)
        n_allowed = len(self) if allowed is None else int(allowed.sum())
        if n_allowed == 0 or len(q) == 0:
            return [[] for _ in range(len(q))]
        k = min(int(k), n_allowed)
        if self.precision == "binary" and self.rescore > 1:
            # Hamming candidates, then asymmetric rescoring: float query against the stored sign vectors
            scores, rows = self._search_rows(q, min(k * self.rescore, n_allowed), allowed)
            scores, rows = self._rescore_binary(q, rows, k)
        else:
            scores, rows = self._search_rows(q, k, allowed)
        out: list[list[Hit]] = []
        for srow, rrow in zip(scores, rows, strict=True):
            hits = []
            for s, r in zip(srow, rrow, strict=True):
                if r < 0 or not math.isfinite(s):
                    continue
                meta = self._meta[r]
                hits.append(Hit(self._ids[r], float(s), dict(meta) if meta is not None else None))
            out.append(hits)
        return out

    def _rescore_binary(self, q: np.ndarray, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank Hamming candidates ``rows (m, kk)`` by ``q · sign(x) / √d`` and keep the best ``k``.

        ``q · sign(x) / √d`` is the cosine between the (unit) float query and the stored sign vector: the asymmetric
        distance of binary-quantised retrieval (sentence-transformers' ``rescore``), far closer to the float ranking
        than symmetric Hamming distance, at no extra storage.
        """
        from gpte.shared.quantize import unpack_signs

        valid = rows >= 0
        flat = np.where(valid, rows, 0).reshape(-1)
        signs = unpack_signs(self._packed_codes(flat), self.dim).reshape(*rows.shape, self.dim)  # (m, kk, d)
        scores = np.einsum("md,mkd->mk", q.astype(np.float32), signs) / np.float32(np.sqrt(self.dim))  # (m, kk)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (m, k)
        scores = np.take_along_axis(scores, order, axis=1)
        rows = np.where(np.isfinite(scores), np.take_along_axis(rows, order, axis=1), -1)
        return scores, rows

    def _packed_codes(self, rows: np.ndarray) -> np.ndarray:
        """Stored packed sign bits ``(len(rows), dim / 8)`` of a binary index (backends override)."""
        raise NotImplementedError(f"{type(self).__name__} cannot return its binary codes")

    def _allowed(self, filter_spec: Filter | None) -> np.ndarray | None:
        pred = compile_filter(filter_spec)
        if pred is None:
            return self._alive.copy() if self._n_dead else None
        mask = np.zeros(len(self._ids), dtype=bool)
        for row in np.flatnonzero(self._alive):
            meta = self._meta[row]
            try:
                mask[row] = pred(meta if meta is not None else {})
            except Exception as exc:
                raise IndexInputError(f"filter raised {type(exc).__name__} on id {self._ids[row]!r}: {exc}") from exc
        return mask

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """Save atomically to directory ``path`` under its writer lock (see :mod:`gpte.index.store`)."""
        from gpte.index.store import save_index

        return save_index(self, path)

    def manifest_fields(self) -> dict[str, Any]:
        """Fields every manifest carries (the store adds files, checksums and time)."""
        return {
            "backend": self.backend,
            "spec": self.spec,
            "dim": self.dim,
            "metric": self.metric,
            "precision": self.precision,
            "count": len(self),
            "model": self.model,
        }


def _check_json(obj: Any, what: str) -> Any:
    """Return a JSON round-tripped copy of ``obj``; raise :class:`IndexInputError` naming ``what`` if impossible."""
    try:
        return json.loads(json.dumps(obj, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise IndexInputError(f"{what} is not JSON-serialisable: {exc}") from exc
