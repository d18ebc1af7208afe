"""The pairwise sigmoid loss of SigLIP: every (query, candidate) pair is its own binary decision."""

from __future__ import annotations

import torch
from torch import Tensor

from gpte.shared.losses._blocks import BlockSigmoid, Group, Pairing, dense_sigmoid
from gpte.shared.losses._checks import (
    Similarity,
    as_negatives,
    as_scalar,
    check_pair,
    check_positive_ids,
    check_similarity,
    prepare,
)

__all__ = ["sigmoid_loss", "sigmoid_sum"]

_LOSS = "sigmoid_loss"


def sigmoid_loss(
    q: Tensor,
    d: Tensor,
    negatives: Tensor | None = None,
    *,
    scale: Tensor | float,
    bias: Tensor | float,
    similarity: Similarity = "cosine",
    positive_ids: Tensor | None = None,
    block_size: int | None = None,
) -> Tensor:
    r"""Sigmoid pairwise loss (SigLIP, Zhai et al. 2023); a scalar.

    ::

        L = −(1/B) Σ_i Σ_j log σ( z_ij · (scale · sim(q_i, d_j) + bias) ),   z_ij = +1 if j = i else −1

    summed over the ``B`` in-batch documents and, as extra ``z = −1`` columns, the hard negatives of every query
    (``B·H``). Unlike InfoNCE there is no softmax over the batch: each pair is a logistic regression, so the loss of
    a row needs no global normaliser, which makes blockwise and neighbour-exchange forms exact and cheap.

    **Scale and temperature:** ``scale = 1/τ`` multiplies the similarity, ``bias`` shifts the logit; both are
    learnable and belong to the model (:class:`gpte.shared.scale.LogitScale`), which SigLIP initialises at
    ``log scale = log 10`` and ``bias = −10`` so that the many negatives start with a small loss.

    ``positive_ids [B]``: ``d_j`` with ``ids[j] == ids[i]`` (``j ≠ i``) duplicates ``i``'s positive; that pair is left
    out of the sum rather than pushed apart (it is neither a negative nor a second positive). ``block_size`` selects
    the blockwise form (``block × block`` tiles, recomputed in backward; never a ``B × B`` matrix), equal to the dense
    one. Shapes and errors as :func:`gpte.shared.losses.info_nce`.
    """
    check_similarity(similarity)
    check_pair(_LOSS, q, d)
    negatives = as_negatives(_LOSS, negatives, q)
    positive_ids = check_positive_ids(_LOSS, positive_ids, q.shape[0])
    qp, dp = prepare(q, similarity), prepare(d, similarity)
    s, b = as_scalar(scale, qp), as_scalar(bias, qp, "bias")
    total = sigmoid_sum(qp, dp, offset=0, col_offset=0, positives=True, scale=s, bias=b,
                        ids_rows=positive_ids, ids_cols=positive_ids, block_size=block_size)  # fmt: skip
    if negatives is not None:
        np_ = prepare(negatives, similarity).flatten(0, 1)  # [B, H, D] → [B·H, D]
        total = total + sigmoid_sum(qp, np_, offset=0, col_offset=0, positives=False, scale=s, bias=b,
                                    ids_rows=None, ids_cols=None, block_size=block_size)  # fmt: skip
    return total / q.shape[0]


def sigmoid_sum(
    q_rows: Tensor,
    cols: Tensor,
    *,
    offset: int,
    col_offset: int,
    positives: bool,
    scale: Tensor,
    bias: Tensor,
    ids_rows: Tensor | None,
    ids_cols: Tensor | None,
    block_size: int | None,
) -> Tensor:
    """``Σ_i Σ_c −log σ(z_ic (scale · q_i·c + bias))`` (a scalar) for prepared rows ``[R, D]`` (global positions
    from ``offset``) against candidates ``[C, D]`` (from ``col_offset``); ``positives`` marks the diagonal ``z = +1``."""
    pairing = Pairing(
        row_index=torch.arange(offset, offset + q_rows.shape[0], device=q_rows.device), col_offset=col_offset,
        diagonal="positive" if positives else "none", row_ids=ids_rows, col_ids=ids_cols,
    )  # fmt: skip
    groups = [Group(0, 1, pairing)]
    if block_size is None:
        return dense_sigmoid(groups, scale, bias, [q_rows, cols]).sum()
    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size}")
    return BlockSigmoid.apply(groups, int(block_size), scale, bias, q_rows, cols).sum()
