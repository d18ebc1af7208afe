"""Losses for graded similarity labels (STS-style pairs): CoSENT and AnglE."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from gpte.shared.losses._checks import check_pair

__all__ = ["cosent_loss", "angle_loss", "ranking_loss", "angle_similarity"]


def _check_labels(loss: str, labels: Tensor, batch: int) -> None:
    if labels.ndim != 1 or labels.shape[0] != batch:
        raise ValueError(f"{loss}: `labels` must have shape ({batch},), got {tuple(labels.shape)}")


def ranking_loss(scores: Tensor, labels: Tensor, scale: float) -> Tensor:
    """``log(1 + Σ_{labels_i > labels_j} exp(scale · (scores_j − scores_i)))`` for ``scores, labels [B]``."""
    diff = scale * (scores[None, :] - scores[:, None])  # [1, B] − [B, 1] → [B, B]: entry (i, j) = scale (s_j − s_i)
    ordered = labels[:, None] > labels[None, :]  # [B, B]: i should score above j
    diff = diff.masked_fill(~ordered, float("-inf")).flatten()
    zero = diff.new_zeros(1)  # the "1 +" inside the log
    return torch.logsumexp(torch.cat([zero, diff]), dim=0)


def cosent_loss(a: Tensor, b: Tensor, labels: Tensor, scale: float = 20.0) -> Tensor:
    r"""CoSENT (Su 2022): rank the pairs' cosines in the order of their graded labels.

    With ``s_k = cos(a_k, b_k)``::

        L = log(1 + Σ_{(i, j): y_i > y_j} exp(scale · (s_j − s_i)))

    Only the order of the labels matters (ties contribute nothing). ``scale = 1/τ``; the default 20 is ``τ = 0.05``
    (sentence-transformers' CoSENTLoss uses the same). Shapes ``a, b [B, D]``, ``labels [B]``.
    """
    check_pair("cosent_loss", a, b, names=("a", "b"))
    _check_labels("cosent_loss", labels, a.shape[0])
    a, b = a.float() if a.dtype in (torch.float16, torch.bfloat16) else a, b.to(a.dtype)
    scores = F.cosine_similarity(a, b, dim=-1)  # [B]
    return ranking_loss(scores, labels.to(scores.dtype), scale)


def angle_similarity(a: Tensor, b: Tensor) -> Tensor:
    r"""AnglE's angle score of each pair ``[B]`` (Li & Li 2023).

    Each ``[D]`` embedding is read as ``D/2`` complex numbers ``z = re + i·im`` (first half real parts, second half
    imaginary parts). Per coordinate the quotient ``u_t = z_t / w_t`` holds the angle difference of ``z_t`` and
    ``w_t``; dividing out the norm ratio ``‖z‖ / ‖w‖`` leaves the angle part, and the score is
    ``|Σ_t (Re u_t + Im u_t)|``. Unlike the cosine, its gradient does not vanish where the cosine saturates.
    """
    if a.shape[-1] % 2:
        raise ValueError(
            f"angle_loss: the embedding dimension must be even (real and imaginary halves), got {a.shape[-1]}"
        )
    a_re, a_im = a.chunk(2, dim=-1)  # [B, D] → 2 × [B, D/2]
    b_re, b_im = b.chunk(2, dim=-1)
    denom = b_re**2 + b_im**2  # |w_t|²
    u_re = (a_re * b_re + a_im * b_im) / denom  # Re(z / w)
    u_im = (a_im * b_re - a_re * b_im) / denom  # Im(z / w)
    ratio = a.norm(dim=-1, keepdim=True) / b.norm(dim=-1, keepdim=True)  # [B, 1] ‖z‖ / ‖w‖
    return ((u_re + u_im) / ratio).sum(dim=-1).abs()


def angle_loss(a: Tensor, b: Tensor, labels: Tensor, scale: float = 20.0) -> Tensor:
    r"""AnglE (Li & Li 2023, "AnglE-optimized text embeddings"): CoSENT's ranking objective on angle differences in
    complex space instead of cosines::

        L = log(1 + Σ_{(i, j): y_i > y_j} exp(scale · (s_j − s_i))),   s_k = angle_similarity(a_k, b_k)

    ``scale = 1/τ`` (default 20, ``τ = 0.05``). Shapes ``a, b [B, D]`` with ``D`` even, ``labels [B]``. The paper
    combines this with cosine and in-batch terms; combine :func:`cosent_loss` and :func:`info_nce` for that.
    """
    check_pair("angle_loss", a, b, names=("a", "b"))
    _check_labels("angle_loss", labels, a.shape[0])
    a, b = a.float() if a.dtype in (torch.float16, torch.bfloat16) else a, b.to(a.dtype)
    scores = angle_similarity(a, b)
    return ranking_loss(scores, labels.to(scores.dtype), scale)
