"""Exact (brute-force) backend: every query is scored against every stored vector. It is the recall oracle.

Scores are computed block by block (``_BLOCK_ELEMS`` query×row scores at a time) with a running top-k merge, so
memory stays bounded and memory-mapped ``vectors.npy`` files are streamed from disk. With a CUDA device visible to
torch, float32/float16 vectors are scored on the GPU (numpy otherwise).

Storage per precision (``vectors.npy``): float32 ``(n, d)``, float16 ``(n, d)``, int8 codes ``(n, d)`` plus
``ranges.npy`` ``(2, d)`` (scored asymmetrically: float queries against dequantised codes, see
:mod:`gpte.shared.quantize`), binary packed sign bits ``(n, d / 8)`` uint8 (scored ``1 - 2 * hamming / d``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from gpte.index.base import IndexPrecision, Metric, VectorIndex
from gpte.index.errors import IndexCorruptError, IndexInputError
from gpte.index.scoring import block_topk, empty_topk, float_scores, merge_topk
from gpte.shared.quantize import compute_ranges, dequantize_embeddings, quantize_embeddings, unpack_signs

__all__ = ["ExactIndex"]

logger = logging.getLogger(__name__)

_BLOCK_ELEMS = 1 << 24  # query x row scores per block (64 MiB of float32)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return bool(torch.cuda.is_available())


class ExactIndex(VectorIndex):
    """Brute-force index over numpy arrays (torch on CUDA when present); exact top-k, the oracle for ANN recall.

    Args: see :class:`~gpte.index.base.VectorIndex`; ``device``: ``"cpu"``, ``"cuda"`` or ``None`` (CUDA when
    torch sees one, for float32/float16 storage).
    """

    backend = "exact"

    def __init__(
        self,
        dim: int,
        metric: Metric = "cosine",
        precision: IndexPrecision = "float32",
        model: dict[str, Any] | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(dim, metric, precision, model)
        self._chunks: list[np.ndarray] = []
        self._data = np.zeros((0, self._code_width()), dtype=self._code_dtype())
        self._ranges: np.ndarray | None = None
        if device not in (None, "cpu", "cuda"):
            raise IndexInputError(f"device must be 'cpu', 'cuda' or None (got {device!r})")
        if device == "cuda" and precision not in ("float32", "float16"):
            raise IndexInputError(f"the exact backend searches {precision} codes on the CPU; use device=None or 'cpu'")
        use_gpu = device == "cuda" or (device is None and precision in ("float32", "float16") and _cuda_available())
        self._device = "cuda" if use_gpu else "cpu"
        self._gpu_data: Any = None  # torch tensor cache of self._data on the GPU

    def _code_dtype(self) -> type:
        return {"float32": np.float32, "float16": np.float16, "int8": np.int8, "binary": np.uint8}[self.precision]

    def _code_width(self) -> int:
        return self.dim // 8 if self.precision == "binary" else self.dim

    @property
    def data(self) -> np.ndarray:
        """The stored codes ``(n_rows, d)`` (``(n_rows, d / 8)`` for binary), tombstoned rows included."""
        if self._chunks:
            self._data = np.concatenate([self._data, *self._chunks])
            self._chunks = []
        return self._data

    @property
    def ranges(self) -> np.ndarray | None:
        """int8 per-dimension ``[mins, maxs]`` ``(2, d)``, or None."""
        return self._ranges

    @property
    def is_trained(self) -> bool:
        return self.precision != "int8" or self._ranges is not None

    def _train_rows(self, x: np.ndarray) -> None:
        if self.precision == "int8":
            if len(x) < 100:
                logger.warning("int8 ranges trained on only %d vectors; pass more to train() for accuracy", len(x))
            self._ranges = compute_ranges(x)

    def _encode(self, x: np.ndarray) -> np.ndarray:
        if self.precision == "int8":
            return quantize_embeddings(x, "int8", ranges=self._ranges)
        if self.precision == "binary":
            return quantize_embeddings(x, "ubinary")
        return x.astype(self._code_dtype())

    def _add_rows(self, x: np.ndarray) -> None:
        self._chunks.append(self._encode(x))
        self._gpu_data = None

    def _compact_rows(self, keep: np.ndarray) -> None:
        self._data = np.ascontiguousarray(self.data[keep])
        self._gpu_data = None

    def _packed_codes(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.data[rows])

    def _vectors_of_rows(self, rows: np.ndarray) -> np.ndarray | None:
        if self.precision not in ("float32", "float16"):
            return None  # quantised codes do not give the vectors back
        return np.asarray(self.data[rows], dtype=np.float32)  # (n, d); float16 → float32 is exact

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        if self.precision == "int8":
            return dequantize_embeddings(codes, "int8", ranges=self._ranges)
        if self.precision == "binary":
            return unpack_signs(codes, self.dim)
        return np.asarray(codes, dtype=np.float32)

    def _block_scores(self, q: np.ndarray, codes: np.ndarray) -> np.ndarray:
        if self.precision == "binary":
            # q: (m, d) signs in {-1, +1}; 1 - 2 * hamming / d == (q . x) / d for sign vectors.
            return (q @ unpack_signs(codes, self.dim).T) / np.float32(self.dim)  # (m, d) @ (d, b) -> (m, b)
        return float_scores(q, self._decode(codes), self.metric)

    def _search_rows(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        data = self.data
        if self.precision == "binary":
            q = unpack_signs(quantize_embeddings(q, "ubinary"), self.dim)  # (m, d) in {-1, +1}
        if self._device == "cuda":
            return self._search_torch(q, k, allowed)
        m = len(q)
        block = max(1024, _BLOCK_ELEMS // max(m, 1))
        best = empty_topk(m, 0)
        for start in range(0, len(data), block):
            stop = min(start + block, len(data))
            if allowed is not None and not allowed[start:stop].any():
                continue
            s = self._block_scores(q, np.asarray(data[start:stop]))  # (m, b)
            if allowed is not None:
                s[:, ~allowed[start:stop]] = -np.inf
            best = merge_topk(best, block_topk(s, k, start), k)
        return merge_topk(best, empty_topk(m, 0), k, final=True)

    def _search_torch(self, q: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        import torch

        if self._gpu_data is None:
            self._gpu_data = torch.from_numpy(np.ascontiguousarray(self.data)).to("cuda")
        x = self._gpu_data  # (n, d) float32 / float16
        qt = torch.from_numpy(q).to("cuda", dtype=x.dtype)
        mask = torch.from_numpy(~allowed).to("cuda") if allowed is not None else None
        xn = (x.float() * x.float()).sum(1) if self.metric == "l2" else None  # (n,)
        out_s, out_r = [], []
        step = max(1, _BLOCK_ELEMS // max(len(x), 1))
        for start in range(0, len(q), step):
            qb = qt[start : start + step]
            s = (qb @ x.T).float()  # (b, d) @ (d, n) -> (b, n)
            if xn is not None:
                s = 2 * s - (qb.float() * qb.float()).sum(1, keepdim=True) - xn[None, :]
            if mask is not None:
                s[:, mask] = float("-inf")
            top_s, top_r = torch.topk(s, k, dim=1)  # (b, k), sorted
            out_s.append(top_s.cpu().numpy())
            out_r.append(top_r.cpu().numpy().astype(np.int64))
        scores, rows = np.concatenate(out_s), np.concatenate(out_r)
        rows[~np.isfinite(scores)] = -1
        return scores, rows

    def nbytes(self) -> int:
        return int(self.data.nbytes) + (int(self._ranges.nbytes) if self._ranges is not None else 0)

    # ----------------------------------------------------------------- persistence
    def _write_state(self, directory: Path) -> dict[str, Any]:
        np.save(directory / "vectors.npy", np.ascontiguousarray(self.data), allow_pickle=False)
        fields: dict[str, Any] = {"files": ["vectors.npy"]}
        if self._ranges is not None:
            np.save(directory / "ranges.npy", self._ranges, allow_pickle=False)
            fields["files"].append("ranges.npy")
        return fields

    @classmethod
    def _read_state(cls, directory: Path, manifest: dict[str, Any], mmap: bool) -> ExactIndex:
        idx = cls(manifest["dim"], manifest["metric"], manifest["precision"], manifest.get("model"))
        path = directory / "vectors.npy"
        try:
            data = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            if (directory / "ranges.npy").exists():
                idx._ranges = np.load(directory / "ranges.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise IndexCorruptError(f"cannot read {path}: {exc}") from exc
        expected = (manifest["rows"], idx._code_width())
        if data.shape != expected or data.dtype != idx._code_dtype():
            raise IndexCorruptError(
                f"{path} holds {data.dtype}{data.shape}, the manifest expects {np.dtype(idx._code_dtype())}{expected}"
            )
        if idx.precision == "int8" and idx._ranges is None:
            raise IndexCorruptError(f"{directory / 'ranges.npy'} is missing: int8 indexes need their ranges")
        idx._data = data
        return idx
