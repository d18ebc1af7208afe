"""Blockwise InfoNCE and sigmoid losses equal the dense forms (value and gradients) and never allocate B × B."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from gpte.shared.losses import info_nce, sigmoid_loss

B, D, H = 11, 6, 2
BLOCKS = [3, 4, 11, 16]  # 3 and 4 do not divide 11; 16 > B is a single tile (block 1: test_single_row_blocks)


def _batch(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, D), (B, D), (B, H, D)]
    return [torch.randn(*s, generator=g, dtype=torch.float64).to(dtype).requires_grad_() for s in shapes]


def _guide(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 4, generator=g), torch.randn(B, 4, generator=g), torch.randn(B, H, 4, generator=g)


INFO_NCE_CASES = {
    "plain": dict(),
    "symmetric-negatives": dict(symmetric=True, negatives=True),
    "dot": dict(similarity="dot", scale=0.4, negatives=True),
    "gte": dict(qq_negatives=True, dd_negatives=True, symmetric=True, negatives=True),
    "ids": dict(positive_ids=torch.tensor([0, 1, 0, 2, 3, 1, 4, 5, 6, 7, 0]), symmetric=True, qq_negatives=True),
    "margin": dict(fn_margin=0.05, symmetric=True, negatives=True),
    "guide": dict(guide=True, fn_margin=0.2, symmetric=True, negatives=True, dd_negatives=True),
}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _run(
    loss_fn, inputs: list[torch.Tensor], scale: torch.Tensor, extra: torch.Tensor | None, **kw
) -> list[torch.Tensor]:
    loss = loss_fn(*inputs, scale=scale, **({} if extra is None else {"bias": extra}), **kw)
    wrt = [*inputs, scale] + ([] if extra is None else [extra])
    return [loss.detach(), *torch.autograd.grad(loss, wrt)]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("name", list(INFO_NCE_CASES))
def test_blockwise_info_nce_equals_dense(name, dtype):
    case = dict(INFO_NCE_CASES[name])
    q, d, n = _batch(dtype)
    inputs = [q, d, n] if case.pop("negatives", False) else [q, d]
    if case.pop("guide", False):
        case["guide"] = tuple(t.to(dtype) for t in _guide())
    scale = torch.tensor(12.0 if case.get("similarity", "cosine") == "cosine" else 0.4, dtype=dtype, requires_grad=True)
    case.pop("scale", None)
    dense = _run(info_nce, inputs, scale, None, **case)
    for block in BLOCKS:
        blocked = _run(info_nce, inputs, scale, None, block_size=block, **case)
        for a, b in zip(blocked, dense, strict=True):
            torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype], msg=lambda m, k=block: f"block {k}: {m}")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["fp64", "fp32"])
@pytest.mark.parametrize("negatives", [False, True], ids=["in-batch", "hard-negatives"])
def test_blockwise_sigmoid_equals_dense(negatives, dtype):
    q, d, n = _batch(dtype, seed=3)
    inputs = [q, d, n] if negatives else [q, d]
    scale = torch.tensor(10.0, dtype=dtype, requires_grad=True)
    bias = torch.tensor(-3.0, dtype=dtype, requires_grad=True)  # not −10: keep the positive terms' gradients sizeable
    ids = torch.tensor([0, 1, 2, 3, 1, 4, 5, 6, 7, 8, 9])
    dense = _run(sigmoid_loss, inputs, scale, bias, positive_ids=ids)
    for block in BLOCKS:
        blocked = _run(sigmoid_loss, inputs, scale, bias, positive_ids=ids, block_size=block)
        for a, b in zip(blocked, dense, strict=True):
            torch.testing.assert_close(a, b, rtol=TOL[dtype], atol=TOL[dtype], msg=lambda m, k=block: f"block {k}: {m}")


def test_single_row_blocks():
    q, d, n = _batch(torch.float64, seed=5)
    scale = torch.tensor(15.0, dtype=torch.float64, requires_grad=True)
    for fn, extra in ((info_nce, None), (sigmoid_loss, torch.tensor(-2.0, dtype=torch.float64, requires_grad=True))):
        kw = dict(symmetric=True) if fn is info_nce else {}
        dense = _run(fn, [q, d, n], scale, extra, **kw)
        for a, b in zip(_run(fn, [q, d, n], scale, extra, block_size=1, **kw), dense, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


class LargestTensor(TorchDispatchMode):
    """Records the shape of the largest tensor any ATen op returns (forward and backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.numel, self.shape, self.op = 0, (), None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, tuple | list) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() > self.numel:
                self.numel, self.shape, self.op = t.numel(), tuple(t.shape), func
        return out


def _largest(loss_fn, **kw) -> LargestTensor:
    big, dim, block = 64, 4, 16
    g = torch.Generator().manual_seed(4)
    q, d = (torch.randn(big, dim, generator=g, requires_grad=True) for _ in range(2))
    negs = torch.randn(big, 1, dim, generator=g, requires_grad=True)
    gq, gd, gn = (
        torch.randn(big, dim, generator=g),
        torch.randn(big, dim, generator=g),
        torch.randn(big, 1, dim, generator=g),
    )
    extra = {"guide": (gq, gd, gn)} if kw.pop("guide", False) else {}
    with LargestTensor() as probe:
        loss = loss_fn(q, d, negs, block_size=kw.pop("block_size", block), **extra, **kw)
        loss.backward()
    return probe


@pytest.mark.parametrize(
    "loss_fn, kw",
    [
        (
            info_nce,
            dict(symmetric=True, qq_negatives=True, dd_negatives=True, guide=True, positive_ids=torch.arange(64) % 60),
        ),  # fmt: skip
        (sigmoid_loss, dict(scale=10.0, bias=-10.0, positive_ids=torch.arange(64) % 60)),
    ],
    ids=["info_nce", "sigmoid"],
)
def test_blockwise_never_allocates_batch_by_batch(loss_fn, kw):
    big = 64
    blocked = _largest(loss_fn, **dict(kw))
    # the largest tensors are [B, D] embeddings and their gradients (64 × 4) and 16 × 16 tiles: nowhere near B × B
    assert blocked.numel < big * big // 8, f"{blocked.op} returned {blocked.shape}"
    dense = _largest(loss_fn, **dict(kw), block_size=None)
    assert dense.numel >= big * big, "the probe must see the dense form's B × B matrix"
