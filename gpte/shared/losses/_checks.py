"""Input checks and preparation shared by every loss: shapes, finite values, similarity, negatives, scale."""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Similarity",
    "check_finite",
    "check_pair",
    "check_positive_ids",
    "check_similarity",
    "prepare",
    "as_negatives",
    "as_scalar",
]

Similarity = Literal["cosine", "dot"]
SIMILARITIES: tuple[str, ...] = get_args(Similarity)


def check_similarity(similarity: str) -> None:
    if similarity not in SIMILARITIES:
        raise ValueError(f"unknown similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}")


def check_finite(loss: str, name: str, x: Tensor) -> None:
    """Raise ``ValueError`` naming the loss, the argument and the rows (first index) holding NaN or ±inf."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        rows = bad.reshape(x.shape[0], -1).any(dim=1).nonzero().flatten().tolist()
        shown = ", ".join(map(str, rows[:20])) + (f" (and {len(rows) - 20} more)" if len(rows) > 20 else "")
        raise ValueError(f"{loss}: `{name}` holds NaN or infinite values in rows {shown} of shape {tuple(x.shape)}")


def check_pair(loss: str, q: Tensor, d: Tensor, names: tuple[str, str] = ("q", "d")) -> None:
    """Both ``[B, D]`` with the same ``B`` and ``D``; finite."""
    if q.ndim != 2 or d.ndim != 2:
        raise ValueError(
            f"{loss}: `{names[0]}` and `{names[1]}` must be [B, D] matrices, got shapes {tuple(q.shape)} and {tuple(d.shape)}"
        )
    if q.shape != d.shape:
        raise ValueError(
            f"{loss}: batch mismatch between `{names[0]}` {tuple(q.shape)} and `{names[1]}` {tuple(d.shape)}; "
            "every query needs exactly one positive of the same dimension"
        )
    if q.shape[0] == 0:
        raise ValueError(f"{loss}: empty batch")
    check_finite(loss, names[0], q)
    check_finite(loss, names[1], d)


def as_negatives(loss: str, negatives: Tensor | None, q: Tensor) -> Tensor | None:
    """``[B, H, D]`` (or ``[B, D]``, read as ``H = 1``) → the same, checked; ``H == 0`` → None."""
    if negatives is None:
        return None
    if negatives.ndim == 2:
        negatives = negatives[:, None, :]  # [B, D] → [B, 1, D]
    if negatives.ndim != 3 or negatives.shape[0] != q.shape[0] or negatives.shape[2] != q.shape[1]:
        raise ValueError(
            f"{loss}: `negatives` must be [B, H, D] = [{q.shape[0]}, H, {q.shape[1]}] to match `q` {tuple(q.shape)}, "
            f"got {tuple(negatives.shape)}"
        )
    if negatives.shape[1] == 0:
        return None
    check_finite(loss, "negatives", negatives)
    return negatives


def check_positive_ids(loss: str, positive_ids: Tensor | None, batch: int) -> Tensor | None:
    if positive_ids is None:
        return None
    if positive_ids.ndim != 1 or positive_ids.shape[0] != batch:
        raise ValueError(f"{loss}: `positive_ids` must have shape ({batch},), got {tuple(positive_ids.shape)}")
    return positive_ids


def prepare(x: Tensor, similarity: Similarity) -> Tensor:
    """Half precision is computed in fp32 (log-sum-exp over thousands of logits); cosine → unit rows."""
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    return F.normalize(x, dim=-1) if similarity == "cosine" else x


def as_scalar(value: Tensor | float, like: Tensor, name: str = "scale") -> Tensor:
    """A 0-d tensor in ``like``'s dtype and device; keeps the autograd graph of a learnable tensor."""
    t = torch.as_tensor(value, dtype=like.dtype, device=like.device)
    if t.numel() != 1:
        raise ValueError(f"`{name}` must be a scalar, got shape {tuple(t.shape)}")
    return t.reshape(())
