"""The cross-modal retrieval index: one small interface, an exact oracle, faiss, metadata filters, safe persistence.

>>> from gpte.index import create_index, open_index
>>> idx = create_index(dim=384, metric="cosine", backend="faiss", spec="auto", model={"name": "minilm", "dim": 384})
>>> idx.add(["a", "b"], vectors, metadata=[{"lang": "python"}, {"lang": "go"}])  # doctest: +SKIP
>>> idx.search(query, k=5, filter={"lang": "python"})  # doctest: +SKIP
>>> idx.save("my-index"); idx = open_index("my-index", model={"name": "minilm", "dim": 384})  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Literal

from gpte.index.base import INDEX_PRECISIONS, METRICS, Hit, IndexPrecision, Metric, VectorIndex
from gpte.index.collection import Collection
from gpte.index.errors import (
    IndexConflictError,
    IndexCorruptError,
    IndexInputError,
    IndexMismatchError,
    IndexReadOnlyError,
    LockedError,
)
from gpte.index.exact import ExactIndex
from gpte.index.faiss_backend import AUTO_FLAT_MAX, FaissIndex, auto_spec
from gpte.index.filters import compile_filter
from gpte.index.store import list_versions, open_index, save_index

__all__ = [
    "Collection",
    "VectorIndex",
    "ExactIndex",
    "FaissIndex",
    "Hit",
    "create_index",
    "open_index",
    "save_index",
    "list_versions",
    "compile_filter",
    "auto_spec",
    "AUTO_FLAT_MAX",
    "METRICS",
    "INDEX_PRECISIONS",
    "Metric",
    "IndexPrecision",
    "IndexInputError",
    "IndexMismatchError",
    "IndexCorruptError",
    "IndexConflictError",
    "IndexReadOnlyError",
    "LockedError",
]


def create_index(
    dim: int,
    metric: Metric = "cosine",
    backend: Literal["exact", "faiss"] = "faiss",
    spec: str = "auto",
    precision: IndexPrecision = "float32",
    model: dict[str, Any] | None = None,
    **options: Any,
) -> VectorIndex:
    """Create an empty index.

    Args:
        dim: vector dimension.
        metric: ``"cosine"`` (the index normalises), ``"ip"`` or ``"l2"`` (scores are negated squared distances).
        backend: ``"faiss"`` (approximate for large collections) or ``"exact"`` (brute force, the recall oracle).
        spec: faiss only: ``"auto"`` (Flat below 50k vectors, IVF above; see :mod:`gpte.index.faiss_backend`) or
            any faiss factory string.
        precision: ``"float32"``, ``"float16"``, ``"int8"`` or ``"binary"``.
        model: free dict identifying the embedder (``name``, ``dim``, ``fingerprint``), stored in the manifest.
        **options: backend options (faiss: ``nprobe``, ``ef_search``, ``use_gpu``; exact: ``device``).
    """
    if backend == "exact":
        if spec not in ("auto", "exact", "Flat"):
            raise IndexInputError(f"the exact backend takes no faiss spec (got {spec!r}); use backend='faiss'")
        return ExactIndex(dim, metric, precision, model, **options)
    if backend == "faiss":
        return FaissIndex(dim, metric, precision, model, spec=spec, **options)
    raise IndexInputError(f"unknown backend {backend!r}; expected 'exact' or 'faiss'")
