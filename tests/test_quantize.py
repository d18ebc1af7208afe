"""Embedding quantisation: formulas, inverse maps, Hamming scores, and parity with sentence-transformers."""

from __future__ import annotations

import numpy as np
import pytest

from gpte.shared.quantize import (
    binary_scores,
    bytes_per_vector,
    compute_ranges,
    dequantize_embeddings,
    hamming_distance,
    quantize_embeddings,
    unpack_signs,
)


@pytest.fixture
def emb() -> np.ndarray:
    x = np.random.default_rng(0).normal(size=(64, 32)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_float_precisions(emb: np.ndarray) -> None:
    assert quantize_embeddings(emb, "float32").dtype == np.float32
    half = quantize_embeddings(emb, "float16")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.astype(np.float32), emb, atol=1e-3)


def test_int8_formula_and_roundtrip(emb: np.ndarray) -> None:
    ranges = compute_ranges(emb)
    assert ranges.shape == (2, 32)
    q = quantize_embeddings(emb, "int8")  # ranges from the embeddings themselves
    assert q.dtype == np.int8
    assert q.min() == -128 and q.max() == 127  # the extremes land in the end buckets
    step = (ranges[1] - ranges[0]) / 255
    expected = np.clip(np.rint((emb - ranges[0]) / step), 0, 255) - 128
    np.testing.assert_array_equal(q, expected.astype(np.int8))
    back = dequantize_embeddings(q, "int8", ranges=ranges)
    assert np.all(np.abs(back - emb) <= step / 2 + 1e-6)
    u = quantize_embeddings(emb, "uint8", ranges=ranges)
    np.testing.assert_array_equal(u.astype(np.int16) - 128, q)


def test_int8_calibration_and_clipping(emb: np.ndarray) -> None:
    cal = emb[:32]
    a = quantize_embeddings(emb, "int8", calibration=cal)
    b = quantize_embeddings(emb, "int8", ranges=compute_ranges(cal))
    np.testing.assert_array_equal(a, b)
    far = quantize_embeddings(np.full((1, 32), 10.0), "int8", ranges=compute_ranges(cal))
    assert (far == 127).all()  # clipped, not wrapped around
    with pytest.raises(ValueError, match="shape"):
        quantize_embeddings(emb, "int8", ranges=np.zeros((3, 32)))
    with pytest.raises(ValueError, match="ranges"):
        dequantize_embeddings(a, "int8")


def test_binary_layout(emb: np.ndarray) -> None:
    ub = quantize_embeddings(emb, "ubinary")
    assert ub.dtype == np.uint8 and ub.shape == (64, 4)
    np.testing.assert_array_equal(ub, np.packbits(emb > 0, axis=-1))
    b = quantize_embeddings(emb, "binary")
    assert b.dtype == np.int8
    np.testing.assert_array_equal(b.astype(np.int16), ub.astype(np.int16) - 128)
    np.testing.assert_array_equal(unpack_signs(b, 32), unpack_signs(ub, 32))
    np.testing.assert_array_equal(unpack_signs(ub, 32), np.where(emb > 0, 1.0, -1.0))
    with pytest.raises(ValueError, match="multiple of 8"):
        quantize_embeddings(emb[:, :30], "binary")


def test_hamming_matches_binary_scores(emb: np.ndarray) -> None:
    ub = quantize_embeddings(emb, "ubinary")
    h = hamming_distance(ub[:5], ub)
    assert h.shape == (5, 64) and (np.diag(h[:, :5]) == 0).all()
    brute = (unpack_signs(ub[:5], 32)[:, None, :] != unpack_signs(ub, 32)[None, :, :]).sum(-1)
    np.testing.assert_array_equal(h, brute)
    np.testing.assert_allclose(binary_scores(ub[:5], ub, 32), 1 - 2 * h / 32, atol=1e-6)


def test_torch_input_and_errors(emb: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    np.testing.assert_array_equal(quantize_embeddings(torch.from_numpy(emb), "ubinary"), np.packbits(emb > 0, -1))
    with pytest.raises(ValueError, match="unknown precision"):
        quantize_embeddings(emb, "int4")  # type: ignore[arg-type]
    assert bytes_per_vector(384, "float32") == 1536
    assert bytes_per_vector(384, "int8") == 384
    assert bytes_per_vector(384, "binary") == 48


def test_parity_with_sentence_transformers(emb: np.ndarray) -> None:
    st = pytest.importorskip("sentence_transformers.quantization")
    for precision in ("binary", "ubinary"):
        np.testing.assert_array_equal(quantize_embeddings(emb, precision), st.quantize_embeddings(emb, precision))
    ranges = compute_ranges(emb)
    ours = quantize_embeddings(emb, "int8", ranges=ranges).astype(np.int16)
    theirs = st.quantize_embeddings(emb, "int8", ranges=ranges).astype(np.int16)
    assert np.abs(ours - theirs).max() <= 1  # we round to the nearest bucket, they truncate
