"""Embedding quantisation: float16, scalar int8/uint8 and 1-bit binary codes, with the inverse maps and scores.

The conventions follow what users of sentence-transformers' ``quantize_embeddings`` expect:

* **int8 / uint8** (scalar quantisation). Per-dimension ranges ``ranges = [[min_1..min_d], [max_1..max_d]]`` (shape
  ``(2, d)``) are computed from ``calibration`` embeddings, or from the embeddings themselves. With
  ``step_j = (max_j - min_j) / 255`` each value is mapped to one of 256 buckets::

      uint8:  q = clip(round((x - min) / step), 0, 255)
      int8:   q = clip(round((x - min) / step), 0, 255) - 128

  and :func:`dequantize_embeddings` maps a code back to ``x' = min + (q [+ 128]) * step`` (``|x - x'| <= step / 2``
  inside the range; values outside it are clipped). Unlike sentence-transformers, values are rounded to the nearest
  bucket and clipped instead of truncated (which wraps around for out-of-range values).
* **binary / ubinary** (sign bits). ``b = x > 0`` is packed eight dimensions per byte with ``np.packbits`` (big bit
  order, so ``d`` must be a multiple of 8): ``"ubinary"`` is the packed ``uint8``, ``"binary"`` the same bytes offset
  by -128 and stored as ``int8`` (exactly sentence-transformers' layout). For sign vectors ``s, t in {-1, +1}^d``,
  ``hamming(s, t) = (d - s . t) / 2``, which is how :func:`binary_scores` ranks with one matrix product.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

__all__ = [
    "Precision",
    "PRECISIONS",
    "compute_ranges",
    "quantize_embeddings",
    "dequantize_embeddings",
    "unpack_signs",
    "hamming_distance",
    "binary_scores",
    "bytes_per_vector",
]

Precision = Literal["float32", "float16", "int8", "uint8", "binary", "ubinary"]
PRECISIONS: tuple[str, ...] = ("float32", "float16", "int8", "uint8", "binary", "ubinary")


def _as_numpy(emb: Any) -> np.ndarray:
    """Accept numpy arrays, torch tensors (any device) and nested lists; return a 2-D float32 array."""
    if hasattr(emb, "detach"):  # torch.Tensor without importing torch
        emb = emb.detach().float().cpu().numpy()
    arr = np.asarray(emb, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"embeddings must be 1-D or 2-D, got shape {arr.shape}")
    return arr


def compute_ranges(calibration: Any) -> np.ndarray:
    """Per-dimension ``[min, max]`` of ``calibration`` embeddings (shape ``(n, d)``), returned as ``(2, d)`` float32.

    Dimensions where ``min == max`` (e.g. a single calibration vector) are widened by ``1e-6`` so the step is never
    zero.
    """
    cal = _as_numpy(calibration)
    if cal.shape[0] == 0:
        raise ValueError("calibration embeddings are empty: int8 ranges need at least one vector")
    if not np.isfinite(cal).all():
        raise ValueError("calibration embeddings contain NaN or inf")
    lo = cal.min(axis=0)
    hi = cal.max(axis=0)
    flat = hi - lo < 1e-6
    lo = np.where(flat, lo - 1e-6, lo)
    hi = np.where(flat, hi + 1e-6, hi)
    return np.stack([lo, hi]).astype(np.float32)  # (2, d)


def _check_ranges(ranges: Any, dim: int) -> np.ndarray:
    r = np.asarray(ranges, dtype=np.float32)
    if r.shape != (2, dim):
        raise ValueError(f"ranges must have shape (2, {dim}) = [mins, maxs], got {r.shape}")
    if not (r[1] > r[0]).all():
        raise ValueError("ranges must satisfy max > min in every dimension")
    return r


def quantize_embeddings(
    emb: Any,
    precision: Precision,
    ranges: np.ndarray | None = None,
    calibration: np.ndarray | None = None,
) -> np.ndarray:
    """Quantise embeddings ``emb`` (``(n, d)`` or ``(d,)``) to ``precision``; see the module docstring for formulas.

    Args:
        emb: float embeddings (numpy array, torch tensor or list).
        precision: ``"float32"``, ``"float16"``, ``"int8"``, ``"uint8"``, ``"binary"`` (int8 bytes) or
            ``"ubinary"`` (uint8 bytes).
        ranges: ``(2, d)`` per-dimension ``[mins, maxs]`` for int8/uint8. Takes precedence over ``calibration``.
        calibration: embeddings to compute ``ranges`` from (int8/uint8); default: ``emb`` itself.

    Returns:
        ``(n, d)`` float32/float16/int8/uint8 array, or ``(n, d / 8)`` int8/uint8 packed bits for binary precisions.
    """
    arr = _as_numpy(emb)
    if precision == "float32":
        return arr
    if precision == "float16":
        return np.clip(arr, -65504.0, 65504.0).astype(np.float16)
    if precision in ("int8", "uint8"):
        if ranges is None:
            ranges = compute_ranges(arr if calibration is None else calibration)
        r = _check_ranges(ranges, arr.shape[1])
        steps = (r[1] - r[0]) / 255.0  # (d,)
        buckets = np.clip(np.rint((arr - r[0]) / steps), 0, 255)  # (n, d) in [0, 255]
        if precision == "uint8":
            return buckets.astype(np.uint8)
        return (buckets - 128).astype(np.int8)
    if precision in ("binary", "ubinary"):
        if arr.shape[1] % 8:
            raise ValueError(
                f"binary quantisation packs 8 dimensions per byte; dim {arr.shape[1]} is not a multiple of 8"
            )
        packed = np.packbits(arr > 0, axis=-1)  # (n, d / 8) uint8
        if precision == "ubinary":
            return packed
        return (packed.astype(np.int16) - 128).astype(np.int8)
    raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")


def unpack_signs(codes: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Packed sign bits (``"ubinary"`` uint8 or ``"binary"`` int8, ``(n, d / 8)``) → ``(n, d)`` float32 in {-1, +1}."""
    codes = np.asarray(codes)
    if codes.dtype == np.int8:
        codes = (codes.astype(np.int16) + 128).astype(np.uint8)
    bits = np.unpackbits(codes, axis=-1, count=dim)  # (n, d) in {0, 1}
    return bits.astype(np.float32) * 2.0 - 1.0


def dequantize_embeddings(
    codes: np.ndarray, precision: Precision, ranges: np.ndarray | None = None, dim: int | None = None
) -> np.ndarray:
    """Approximate inverse of :func:`quantize_embeddings`, returning float32.

    int8/uint8: ``x' = min + (q [+ 128]) * step`` (needs ``ranges``); binary/ubinary: the signs ``{-1, +1}``.
    """
    codes = np.asarray(codes)
    if precision in ("float32", "float16"):
        return codes.astype(np.float32)
    if precision in ("int8", "uint8"):
        if ranges is None:
            raise ValueError(f"dequantising {precision} codes needs the ranges used to quantise them")
        r = _check_ranges(ranges, codes.shape[-1])
        steps = (r[1] - r[0]) / 255.0
        offset = 128.0 if precision == "int8" else 0.0
        return ((codes.astype(np.float32) + offset) * steps + r[0]).astype(np.float32)
    if precision in ("binary", "ubinary"):
        return unpack_signs(codes, dim)
    raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")


def hamming_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Hamming distances between packed codes ``a`` ``(m, B)`` and ``b`` ``(n, B)`` → ``(m, n)`` int32.

    Uses ``np.bitwise_count`` (popcount) of the XOR; memory is ``m * n * B`` bytes, so call it on blocks.
    """
    a = np.asarray(a).view(np.uint8)
    b = np.asarray(b).view(np.uint8)
    x = a[:, None, :] ^ b[None, :, :]  # (m, n, B)
    return np.bitwise_count(x).sum(axis=-1, dtype=np.int32)


def binary_scores(query_codes: np.ndarray, doc_codes: np.ndarray, dim: int) -> np.ndarray:
    """Similarity ``1 - 2 * hamming / d`` in ``[-1, 1]`` between packed query and document codes → ``(m, n)``.

    Computed as ``(s . t) / d`` on the unpacked signs (one BLAS product instead of a popcount per pair), which equals
    ``1 - 2 * hamming(s, t) / d`` because ``hamming = (d - s . t) / 2``.
    """
    qs = unpack_signs(query_codes, dim)  # (m, d)
    ds = unpack_signs(doc_codes, dim)  # (n, d)
    return (qs @ ds.T) / float(dim)  # (m, d) @ (d, n) -> (m, n)


def bytes_per_vector(dim: int, precision: str) -> int:
    """Storage bytes of one ``dim``-dimensional vector at ``precision`` (codes only, no index overhead)."""
    return {
        "float32": 4 * dim,
        "float16": 2 * dim,
        "int8": dim,
        "uint8": dim,
        "binary": dim // 8,
        "ubinary": dim // 8,
    }[precision]
