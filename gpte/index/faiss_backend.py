"""faiss backend: Flat, IVF, HNSW, scalar-quantised and binary indexes behind the :class:`VectorIndex` interface.

faiss stores vectors at sequential labels ``0..ntotal-1``, which are exactly the base class's rows; faiss keeps no
ids or metadata, and gpte adds them. Deletes are tombstones (excluded at search time, reclaimed by compaction, which
rebuilds the index from its reconstructed vectors keeping the trained quantisers), so every index type, HNSW
included, supports delete and upsert.

``spec="auto"`` picks the structure from the collection size ``n`` (the first batch, re-checked as it grows):

* ``n < AUTO_FLAT_MAX`` (50,000): ``Flat`` (exact; at 384-d a flat scan of 50k vectors takes a few milliseconds).
* otherwise ``IVF{nlist},Flat`` with ``nlist = 4 * sqrt(n)`` (about 1,260 at 100k, 4,000 at 1M), trained on a
  sample of ``AUTO_TRAIN_PER_LIST * nlist`` vectors, searched with ``nprobe = max(16, nlist / 32)``. IVF rather than
  HNSW because it builds in a fraction of the time on few cores, memory-maps from disk and supports filtered search
  with full recall (``nprobe = nlist`` on the filtered subset). An auto Flat index that grows past the threshold is
  rebuilt as IVF automatically. Pass ``spec="HNSW32"`` for the fastest queries when build time does not matter.

The storage precision rewrites simple specs: ``float16`` → ``SQfp16``, ``int8`` → ``SQ8`` (per-dimension min/max
scalar quantiser), ``binary`` → ``BFlat`` / ``BIVF{nlist}`` / ``BHNSW{M}`` (Hamming distance on sign bits). Any other
faiss factory string is passed to ``faiss.index_factory`` as is (``IDMap`` prefixes are rejected: gpte manages ids).

Filtered search uses ``IDSelectorBitmap`` search parameters where the index supports them (Flat, SQ, IVF, HNSW on
CPU), so a filter never shrinks the result list (IVF probes ``nprobe / f`` lists, capped at ``nlist``, when the
filter passes a fraction ``f`` of the rows, so selective filters keep their recall); elsewhere (GPU, binary IVF/HNSW, PQ) it over-fetches and
post-filters. Any query still short of ``k`` hits falls back to IVF with ``nprobe = nlist`` or to scoring the
allowed rows exactly. With ``faiss.get_num_gpus() > 0``, Flat and IVF indexes are copied to the GPUs for unfiltered
search; the CPU index stays the master copy and is what :meth:`save` writes.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from gpte.index.base import IndexPrecision, Metric, VectorIndex
from gpte.index.errors import IndexCorruptError, IndexInputError
from gpte.index.scoring import block_topk, empty_topk, float_scores, merge_topk
from gpte.shared.quantize import binary_scores, quantize_embeddings

__all__ = ["FaissIndex", "auto_spec", "import_faiss", "AUTO_FLAT_MAX"]

logger = logging.getLogger(__name__)

AUTO_FLAT_MAX = 50_000  # auto: Flat below this many vectors, IVF from here on
AUTO_TRAIN_PER_LIST = 40  # auto IVF trains on this many sampled vectors per list (faiss wants >= 39)
_BRUTE_MAX = 4096  # filters matching at most this many rows are scored exactly (faster and exact)
_GPU_MAX_K = 2048  # faiss GPU search limit on k


def import_faiss() -> Any:
    """Import faiss lazily, with an install hint when it is missing."""
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - faiss-cpu is a core dependency
        raise ImportError(
            "the faiss index backend needs faiss: `pip install faiss-cpu` (or `pip install gpte[gpu]` for "
            "faiss-gpu), or use create_index(backend='exact')"
        ) from exc
    return faiss


def auto_spec(n: int, precision: str = "float32") -> str:
    """The factory string ``spec="auto"`` resolves to for a collection of ``n`` vectors (see module docstring)."""
    if n < AUTO_FLAT_MAX:
        return apply_precision("Flat", precision)
    nlist = max(1, int(round(4 * math.sqrt(n))))
    return apply_precision(f"IVF{nlist},Flat", precision)


def apply_precision(spec: str, precision: str) -> str:
    """Rewrite a simple float spec (``Flat``, ``IVF{n}[,Flat]``, ``HNSW{M}[,Flat]``) for ``precision``."""
    if precision == "float32" or re.search(r"SQ|PQ|LSH|^B", spec):
        return spec
    m = re.fullmatch(r"(Flat|IVF(\d+)(,Flat)?|HNSW(\d+)(,Flat)?)", spec)
    if m is None:
        if precision == "binary":
            raise IndexInputError(
                f"precision 'binary' needs a binary faiss spec (BFlat, BIVF<n>, BHNSW<M>), got {spec!r}"
            )
        return spec
    kind = "Flat" if m.group(1) == "Flat" else ("IVF" if m.group(2) else "HNSW")
    param = m.group(2) or m.group(4) or ""
    if precision == "binary":
        return {"Flat": "BFlat", "IVF": f"BIVF{param}", "HNSW": f"BHNSW{param}"}[kind]
    code = "SQ8" if precision == "int8" else "SQfp16"
    return {"Flat": code, "IVF": f"IVF{param},{code}", "HNSW": f"HNSW{param}_{code}"}[kind]


class FaissIndex(VectorIndex):
    """A faiss index with stable ids, metadata, filters, deletes and persistence.

    Args:
        dim, metric, precision, model: see :class:`~gpte.index.base.VectorIndex`.
        spec: ``"auto"`` or a faiss factory string (``"Flat"``, ``"IVF1024,Flat"``, ``"HNSW32"``, ``"SQ8"``...).
        nprobe: IVF lists probed per query (default: ``max(16, nlist / 32)``).
        ef_search: HNSW search breadth (default 64; at least ``k`` is used).
        use_gpu: copy Flat/IVF indexes to the GPUs for search when faiss has GPUs (``None``: when available).
    """

    backend = "faiss"

    def __init__(
        self,
        dim: int,
        metric: Metric = "cosine",
        precision: IndexPrecision = "float32",
        model: dict[str, Any] | None = None,
        spec: str = "auto",
        nprobe: int | None = None,
        ef_search: int = 64,
        use_gpu: bool | None = None,
    ) -> None:
        super().__init__(dim, metric, precision, model)
        self._faiss = import_faiss()
        if not isinstance(spec, str) or not spec.strip():
            raise IndexInputError(f"spec must be 'auto' or a faiss factory string, got {spec!r}")
        if "IDMap" in spec:
            raise IndexInputError(f"spec {spec!r}: drop the IDMap prefix, gpte maps external ids itself")
        self.requested_spec = spec.strip()
        self.auto = self.requested_spec == "auto"
        if not self.auto:
            apply_precision(self.requested_spec, precision)  # validate early
        self.nprobe = nprobe
        self.ef_search = int(ef_search)
        self.use_gpu = use_gpu
        self._index: Any = None
        self._resolved = ""
        self._gpu_index: Any = None
        self._gpu_failed = False
        self._selector_ok = True
        self._k = 10  # k of the search in progress (HNSW efSearch is at least k)

    # ----------------------------------------------------------------- structure
    @property
    def spec(self) -> str:
        return self._resolved or self.requested_spec

    @property
    def faiss_index(self) -> Any:
        """The underlying CPU faiss index (None before the first add or train)."""
        return self._index

    @property
    def _binary(self) -> bool:
        return self.precision == "binary"

    def _faiss_metric(self) -> int:
        return self._faiss.METRIC_L2 if self.metric == "l2" else self._faiss.METRIC_INNER_PRODUCT

    def _ivf(self) -> Any:
        if self._index is None:
            return None
        if self._binary:
            return (
                self._faiss.downcast_IndexBinary(self._index)
                if isinstance(self._index, self._faiss.IndexBinaryIVF)
                else None
            )
        return self._faiss.try_extract_index_ivf(self._index)

    def _is_hnsw(self) -> bool:
        return isinstance(self._index, self._faiss.IndexHNSW | self._faiss.IndexBinaryHNSW)

    def _build(self, spec: str) -> Any:
        faiss = self._faiss
        try:
            if self._binary:
                return faiss.index_binary_factory(self.dim, spec)
            return faiss.index_factory(self.dim, spec, self._faiss_metric())
        except RuntimeError as exc:
            raise IndexInputError(f"faiss cannot build index {spec!r} for dim {self.dim}: {exc}") from exc

    def _configure(self) -> None:
        ivf = self._ivf()
        if ivf is not None:
            if self.nprobe is None:
                self.nprobe = max(16, ivf.nlist // 32)
            ivf.nprobe = min(int(self.nprobe), ivf.nlist)
        if isinstance(self._index, self._faiss.IndexHNSW | self._faiss.IndexBinaryHNSW):
            self._index.hnsw.efSearch = self.ef_search

    def _enable_direct_map(self) -> None:
        ivf = self._ivf()
        if ivf is not None and not self.read_only:
            try:
                if ivf.direct_map.type == self._faiss.DirectMap.NoMap:
                    ivf.make_direct_map()
            except (RuntimeError, AttributeError) as exc:  # pragma: no cover - exotic IVF variants
                logger.debug("no direct map for %s: %s", self._resolved, exc)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        return quantize_embeddings(x, "ubinary") if self._binary else x

    # ----------------------------------------------------------------- training and adding
    @property
    def is_trained(self) -> bool:
        return self._index is not None and bool(self._index.is_trained)

    def _train_rows(self, x: np.ndarray) -> None:
        spec = auto_spec(len(x), self.precision) if self.auto else apply_precision(self.requested_spec, self.precision)
        index = self._build(spec)
        if not index.is_trained:
            sample = x
            ivf = None if self._binary else self._faiss.try_extract_index_ivf(index)
            if self.auto and ivf is not None:  # bounded k-means cost: 40 points per list, 10 iterations
                ivf.cp.niter = 10
                cap = AUTO_TRAIN_PER_LIST * ivf.nlist
                if len(x) > cap:
                    sample = x[np.sort(np.random.default_rng(0).choice(len(x), cap, replace=False))]
            try:
                index.train(self._encode(sample))
            except RuntimeError as exc:
                raise IndexInputError(
                    f"training faiss index {spec!r} on {len(sample)} vectors failed ({str(exc).strip()[-200:]}); "
                    "call train() with more (representative) vectors, or use a smaller spec"
                ) from exc
        self._index = index
        self._resolved = spec
        self._configure()
        self._enable_direct_map()
        self._gpu_index = None
        self._selector_ok = True

    def _add_rows(self, x: np.ndarray) -> None:
        self._index.add(self._encode(x))
        self._gpu_index = None
        if self.auto and self._resolved in ("Flat", "SQ8", "SQfp16", "BFlat") and self._index.ntotal >= AUTO_FLAT_MAX:
            self._grow()

    def _grow(self) -> None:
        """auto: rebuild a Flat index that crossed ``AUTO_FLAT_MAX`` as IVF (rows keep their numbers)."""
        n = self._index.ntotal
        old = self._index
        logger.info("auto index reached %d vectors: rebuilding Flat as %s", n, auto_spec(n, self.precision))
        data = self._reconstruct(np.arange(n, dtype=np.int64), old)
        self._train_rows(data.astype(np.float32) if not self._binary else self._decode_for_training(data))
        for start in range(0, n, 65536):
            self._index.add(data[start : start + 65536])

    def _decode_for_training(self, codes: np.ndarray) -> np.ndarray:
        from gpte.shared.quantize import unpack_signs

        return unpack_signs(codes, self.dim)

    def _reconstruct(self, rows: np.ndarray, index: Any = None) -> np.ndarray:
        """Stored (decoded) vectors of ``rows``; binary indexes return packed codes."""
        index = self._index if index is None else index
        if self._binary:
            all_codes = index.reconstruct_n(0, index.ntotal)  # (ntotal, d / 8), small
            return all_codes[rows]
        return index.reconstruct_batch(rows)

    def _packed_codes(self, rows: np.ndarray) -> np.ndarray:
        return self._reconstruct(rows)

    def _compact_rows(self, keep: np.ndarray) -> None:
        faiss = self._faiss
        fresh = faiss.clone_binary_index(self._index) if self._binary else faiss.clone_index(self._index)
        fresh.reset()  # keeps the trained quantisers
        for start in range(0, len(keep), 65536):
            fresh.add(self._reconstruct(keep[start : start + 65536]))
        self._index = fresh
        self._configure()
        self._enable_direct_map()
        self._gpu_index = None

    def nbytes(self) -> int:
        index = self._index
        if index is None:
            return 0
        faiss = self._faiss
        if self._is_hnsw():
            storage = faiss.downcast_IndexBinary(index.storage) if self._binary else faiss.downcast_index(index.storage)
            links = index.hnsw.neighbors.size() * 4 + index.ntotal * 12  # neighbours + offsets + levels
            return int(index.ntotal * storage.code_size + links)
        ivf = self._ivf()
        if ivf is not None:
            centroids = ivf.nlist * self.dim * 4
            return int(ivf.ntotal * (ivf.code_size + 8) + centroids)  # codes + int64 ids per vector
        return int(index.ntotal * index.code_size)

    # ----------------------------------------------------------------- search
    def _scores(self, distances: np.ndarray) -> np.ndarray:
        if self._binary:
            return (1.0 - 2.0 * distances.astype(np.float32) / self.dim).astype(np.float32)
        if self.metric == "l2":
            return -distances
        return distances

    def _params(self, sel: Any, nprobe: int | None = None) -> Any:
        faiss = self._faiss
        ivf = self._ivf()
        if ivf is not None and not self._binary:
            return faiss.SearchParametersIVF(sel=sel, nprobe=int(nprobe or ivf.nprobe))
        if isinstance(self._index, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(self.ef_search, self._k))
        return faiss.SearchParameters(sel=sel)

    def _gpu(self) -> Any:
        faiss = self._faiss
        if self._gpu_index is not None or self._gpu_failed or self.use_gpu is False or self._binary:
            return self._gpu_index
        if self._is_hnsw() or not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
            return None
        try:
            self._gpu_index = faiss.index_cpu_to_all_gpus(self._index)
        except (RuntimeError, AttributeError) as exc:
            logger.warning("could not move %s to the GPU, searching on CPU: %s", self._resolved, exc)
            self._gpu_failed = True
        return self._gpu_index

    def _search_rows(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        self._k = k
        qc = self._encode(q)
        if self._index.ntotal == 0:
            return empty_topk(len(q), k)
        if allowed is None:
            gpu = self._gpu() if k <= _GPU_MAX_K else None
            if self._is_hnsw():
                self._index.hnsw.efSearch = max(self.ef_search, k)
            distances, rows = (gpu or self._index).search(qc, k)
            scores = self._scores(distances)
        elif int(allowed.sum()) <= _BRUTE_MAX:
            return self._search_exact(q, k, allowed)
        elif self._gpu() is not None:
            scores, rows = self._search_overfetch(self._gpu(), qc, k, allowed, cap=_GPU_MAX_K)
        else:
            scores, rows = self._search_selector(qc, k, allowed)
        rows = np.where(np.isfinite(scores), rows, -1)
        short = (rows >= 0).sum(axis=1) < k
        if short.any():  # k <= number of allowed rows, so a short list is a miss of the approximate search
            scores[short], rows[short] = self._search_fallback(q[short], qc[short], k, allowed)
        return scores, rows

    def _search_selector(self, qc: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        faiss = self._faiss
        if self._selector_ok:
            bitmap = np.packbits(allowed, bitorder="little")  # bit r of byte r // 8 = row r allowed
            sel = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
            ivf = self._ivf()
            nprobe = None
            if ivf is not None:
                # a filter passing a fraction f of the rows leaves ~f of each probed list usable: probe 1/f as many
                # lists (capped at nlist) so a selective filter sees as many candidates as an unfiltered search
                fraction = max(float(allowed.mean()), 1e-9)
                nprobe = min(int(ivf.nlist), int(np.ceil(ivf.nprobe / fraction)))
            try:
                distances, rows = self._index.search(qc, k, params=self._params(sel, nprobe=nprobe))
                return self._scores(distances), rows
            except RuntimeError as exc:
                logger.debug("%s has no selector support (%s); over-fetching instead", self._resolved, exc)
                self._selector_ok = False
        return self._search_overfetch(self._index, qc, k, allowed, cap=self._index.ntotal)

    def _search_overfetch(
        self, index: Any, qc: np.ndarray, k: int, allowed: np.ndarray, cap: int
    ) -> tuple[np.ndarray, np.ndarray]:
        n_allowed = max(1, int(allowed.sum()))
        kk = min(cap, index.ntotal, max(2 * k, int(1.5 * k * len(allowed) / n_allowed) + k))
        while True:
            distances, rows = index.search(qc, kk)
            ok = (rows >= 0) & allowed[np.maximum(rows, 0)]
            if (ok.sum(axis=1) >= k).all() or kk >= min(cap, index.ntotal):
                break
            kk = min(cap, index.ntotal, kk * 4)
        scores = np.where(ok, self._scores(distances), -np.inf).astype(np.float32)
        return merge_topk(empty_topk(len(qc), 0), (scores, np.where(ok, rows, -1)), k, final=True)

    def _search_fallback(
        self, q: np.ndarray, qc: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        ivf = self._ivf()
        if ivf is not None and not self._binary and self._selector_ok:
            mask = allowed if allowed is not None else np.ones(self._index.ntotal, dtype=bool)
            bitmap = np.packbits(mask, bitorder="little")
            sel = self._faiss.IDSelectorBitmap(len(mask), self._faiss.swig_ptr(bitmap))
            distances, rows = self._index.search(qc, k, params=self._params(sel, nprobe=ivf.nlist))
            scores = self._scores(distances)
            return scores, np.where(np.isfinite(scores) & (rows >= 0), rows, -1)
        return self._search_exact(q, k, allowed)

    def _search_exact(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Score the allowed rows exactly from their stored (decoded) vectors."""
        rows_all = np.flatnonzero(allowed) if allowed is not None else np.arange(self._index.ntotal)
        best = empty_topk(len(q), 0)
        qc = self._encode(q)
        all_codes = self._index.reconstruct_n(0, self._index.ntotal) if self._binary else None  # (n, d / 8)
        for start in range(0, len(rows_all), 65536):
            rows = rows_all[start : start + 65536]
            stored = all_codes[rows] if all_codes is not None else self._reconstruct(rows)
            if self._binary:
                s = binary_scores(qc, stored, self.dim)  # (m, b)
            else:
                s = float_scores(q, stored, self.metric)  # (m, b)
            top_s, top_pos = block_topk(s, k)
            best = merge_topk(best, (top_s, rows[top_pos]), k)
        return merge_topk(best, empty_topk(len(q), 0), k, final=True)

    # ----------------------------------------------------------------- persistence
    def _write_state(self, directory: Path) -> dict[str, Any]:
        faiss = self._faiss
        if self._index is None:
            self._resolved = apply_precision("Flat" if self.auto else self.requested_spec, self.precision)
            self._index = self._build(self._resolved)
        path = str(directory / "index.faiss")
        if self._binary:
            faiss.write_index_binary(self._index, path)
        else:
            faiss.write_index(self._index, path)  # always the CPU master copy, never a GPU index
        return {
            "files": ["index.faiss"],
            "faiss_spec": self._resolved,
            "requested_spec": self.requested_spec,
            "nprobe": self.nprobe,
            "ef_search": self.ef_search,
            "faiss_version": getattr(faiss, "__version__", "?"),
        }

    @classmethod
    def _read_state(cls, directory: Path, manifest: dict[str, Any], mmap: bool) -> FaissIndex:
        idx = cls(
            manifest["dim"],
            manifest["metric"],
            manifest["precision"],
            manifest.get("model"),
            spec=manifest.get("requested_spec", "auto"),
            nprobe=manifest.get("nprobe"),
            ef_search=manifest.get("ef_search", 64),
        )
        faiss = idx._faiss
        path = directory / "index.faiss"
        flags = (faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY) if mmap else 0
        try:
            if idx._binary:
                index = faiss.read_index_binary(str(path), flags)
            else:
                index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            raise IndexCorruptError(f"faiss cannot read {path}: {str(exc).strip()[-200:]}") from exc
        if index.ntotal != manifest["rows"] or index.d != manifest["dim"]:
            raise IndexCorruptError(
                f"{path} holds {index.ntotal} vectors of dim {index.d}; the manifest says "
                f"{manifest['rows']} of dim {manifest['dim']}"
            )
        idx._index = index
        idx._resolved = manifest.get("faiss_spec", "")
        idx.read_only = mmap
        idx._configure()
        idx._enable_direct_map()
        return idx
