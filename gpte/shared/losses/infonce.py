"""InfoNCE, the contrastive loss every gpte modality trains with (one implementation, also used across devices)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from gpte.shared.losses._blocks import BlockLSE, Group, Pairing, dense_lse
from gpte.shared.losses._checks import (
    Similarity,
    as_negatives,
    as_scalar,
    check_finite,
    check_pair,
    check_positive_ids,
    check_similarity,
    prepare,
)

__all__ = ["info_nce", "GuideVectors", "prepare_guide", "info_nce_rows"]

_LOSS = "info_nce"


class GuideVectors(NamedTuple):
    """Detached, prepared vectors whose dot products decide false negatives (a guide model's, or the model's own)."""

    q: Tensor  # [B, G]
    d: Tensor  # [B, G]
    negatives: Tensor | None  # [B·H, G]


def prepare_guide(
    loss: str,
    q: Tensor,
    d: Tensor,
    negatives: Tensor | None,
    guide: tuple[Tensor, Tensor, Tensor | None] | None,
    similarity: Similarity,
) -> GuideVectors:
    """The vectors false-negative masking compares: the guide's, unit-normalised (guide scores are always cosine),
    or without a guide the model's own prepared embeddings; all detached. ``negatives`` is ``[B, H, D]`` or None."""
    if guide is None:
        gq, gd = prepare(q, similarity).detach(), prepare(d, similarity).detach()
        gn = None if negatives is None else prepare(negatives, similarity).detach().flatten(0, 1)  # [B·H, D]
        return GuideVectors(gq, gd, gn)
    if not isinstance(guide, tuple | list) or len(guide) != 3:
        raise ValueError(f"{loss}: `guide` must be a tuple (guide_q, guide_d, guide_negatives or None)")
    guide_q, guide_d, guide_n = guide
    check_pair(loss, guide_q, guide_d, names=("guide[0]", "guide[1]"))
    if guide_q.shape[0] != q.shape[0]:
        raise ValueError(f"{loss}: `guide` embeds {guide_q.shape[0]} queries but the batch has {q.shape[0]}")
    gn = None
    if negatives is not None:
        if guide_n is None:
            raise ValueError(f"{loss}: hard negatives were given but `guide[2]` (their guide embeddings) is None")
        expected = (negatives.shape[0], negatives.shape[1], guide_q.shape[1])
        if tuple(guide_n.shape) != expected:
            raise ValueError(f"{loss}: `guide[2]` must have shape {expected}, got {tuple(guide_n.shape)}")
        check_finite(loss, "guide[2]", guide_n)
        gn = prepare(guide_n, "cosine").detach().flatten(0, 1)  # [B, H, G] → [B·H, G]
    return GuideVectors(prepare(guide_q, "cosine").detach(), prepare(guide_d, "cosine").detach(), gn)


def info_nce(
    q: Tensor,
    d: Tensor,
    negatives: Tensor | None = None,
    *,
    scale: Tensor | float = 20.0,
    similarity: Similarity = "cosine",
    symmetric: bool = False,
    qq_negatives: bool = False,
    dd_negatives: bool = False,
    positive_ids: Tensor | None = None,
    fn_margin: float | None = None,
    guide: tuple[Tensor, Tensor, Tensor | None] | None = None,
    block_size: int | None = None,
) -> Tensor:
    r"""InfoNCE with in-batch and hard negatives; the mean loss over the batch (a scalar).

    Query ``i`` scores every candidate ``c`` with ``s_ic = scale · sim(q_i, c)`` (``sim`` is the cosine or the dot
    product) and the loss is the cross-entropy of picking its positive ``d_i``::

        L = −(1/B) Σ_i log( exp(s(q_i, d_i)) / Σ_{c ∈ C_i} exp(s(q_i, c)) )

    ``C_i`` holds every in-batch positive ``d_j`` (``j ≠ i`` act as negatives) and the hard negatives of *every*
    query (``B·H`` of them); with ``qq_negatives`` also ``q_j`` (``j ≠ i``), with ``dd_negatives`` also the scores
    ``s(d_i, d_j)`` (``j ≠ i``): the "improved contrastive loss" of GTE (Li et al. 2023; GTE's partition function
    also has ``s(q_j, d_i)``, which ``symmetric=True`` covers as its own direction). ``symmetric`` adds the
    document→query direction (each ``d_i`` against all ``q_j``, positive ``q_i``; hard negatives and qq/dd terms belong
    to the query direction only) and averages the two, as CLIP does (Radford et al. 2021).

    References: van den Oord et al. 2018 (CPC, InfoNCE); the survey's Eq. 1; Sentence-BERT's
    MultipleNegativesRankingLoss (Henderson et al. 2017). **Scale and temperature:** ``scale = 1/τ``; the default
    ``scale=20`` is ``τ = 0.05``. A learnable scale is the model's (:class:`gpte.shared.scale.LogitScale`); pass the
    tensor it returns.

    Masking (a masked candidate gets logit ``−inf``; the positive itself is never masked):

    * ``positive_ids [B]``: rows with equal ids share one positive, so ``d_j`` (and ``q_j``, ``d_j`` in the qq/dd
      terms) with ``ids[j] == ids[i]``, ``j ≠ i``, are not negatives of query ``i``.
    * False negatives (GISTEmbed, Solatorio 2024): candidate ``c`` is masked for query ``i`` when
      ``g(i, c) > g(q_i, d_i) − fn_margin``, where ``g`` is the cosine between ``guide = (gq [B, G], gd [B, G],
      gneg [B, H, G] or None)``, a guide model's embeddings of the same items (``fn_margin`` defaults to 0 then), or
      without a guide the model's own detached similarity (only when ``fn_margin`` is given). For qq (dd) candidates
      ``g`` compares the two queries (documents); in the document direction ``g(d_i, q_j) > g(d_i, q_i) − margin``.

    ``block_size`` selects the blockwise form: scores are visited in ``block × block`` tiles, with row and column
    log-sum-exps accumulated in forward and tiles recomputed in backward, so no ``B × B`` matrix is ever allocated;
    every option above is supported there too and agrees with the dense form.

    Shapes: ``q, d [B, D]``; ``negatives [B, H, D]`` (``H == 0`` is read as None). Half precision is computed in fp32.
    Raises ``ValueError`` on mismatched shapes, NaN/inf embeddings (naming argument and rows) and bad ``positive_ids``.
    """
    check_similarity(similarity)
    check_pair(_LOSS, q, d)
    negatives = as_negatives(_LOSS, negatives, q)
    positive_ids = check_positive_ids(_LOSS, positive_ids, q.shape[0])
    masking = guide is not None or fn_margin is not None
    guides = prepare_guide(_LOSS, q, d, negatives, guide, similarity) if masking else None
    qp, dp = prepare(q, similarity), prepare(d, similarity)
    np_ = None if negatives is None else prepare(negatives, similarity).flatten(0, 1)  # [B, H, D] → [B·H, D]
    return info_nce_rows(
        qp, dp, qp, dp, np_,
        offset=0, local=False, scale=as_scalar(scale, qp), symmetric=symmetric, qq_negatives=qq_negatives,
        dd_negatives=dd_negatives, ids_rows=positive_ids, ids_all=positive_ids,
        guide_rows=None if guides is None else (guides.q, guides.d), guide_all=guides,
        fn_margin=0.0 if fn_margin is None else fn_margin, block_size=block_size,
    )  # fmt: skip


def lse(groups: list[Group], scale: Tensor, inputs: list[Tensor], block_size: int | None) -> tuple[Tensor, Tensor]:
    """Row and column log-sum-exps of ``groups``, dense or blockwise."""
    if block_size is None:
        row, col = dense_lse(groups, scale, inputs)
        return row, row.new_empty(0) if col is None else col
    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size}")
    return BlockLSE.apply(groups, int(block_size), scale, *inputs)


def info_nce_rows(
    q_rows: Tensor,
    d_rows: Tensor,
    q_all: Tensor,
    d_all: Tensor,
    n_all: Tensor | None,
    *,
    offset: int,
    local: bool,
    scale: Tensor,
    symmetric: bool,
    qq_negatives: bool,
    dd_negatives: bool,
    ids_rows: Tensor | None,
    ids_all: Tensor | None,
    guide_rows: tuple[Tensor, Tensor] | None,
    guide_all: GuideVectors | None,
    fn_margin: float,
    block_size: int | None,
) -> Tensor:
    """The loss of the rows ``q_rows [R, D]`` (global positions ``offset … offset+R−1``) against the candidates
    ``q_all, d_all [B, D]``, ``n_all [B·H, D]``, embeddings already prepared. ``local=False`` requires the rows to be
    the whole batch (the document direction then reuses the same score tiles column-wise); ``local=True`` scores
    the document direction as its own rows ``d_rows`` against ``q_all`` (open_clip's local loss)."""
    n_rows = q_rows.shape[0]
    row_index = torch.arange(offset, offset + n_rows, device=q_rows.device)
    thr = None
    gq_r = gd_r = gq_a = gd_a = gn_a = None
    if guide_rows is not None and guide_all is not None:
        gq_r, gd_r = guide_rows
        gq_a, gd_a, gn_a = guide_all
        thr = (gq_r * gd_r).sum(dim=-1) - fn_margin  # [R] the positive's guide score, less the margin

    def pairing(diagonal: str, g_rows: Tensor | None, g_cols: Tensor | None, ids: bool = True) -> Pairing:
        return Pairing(
            row_index=row_index, diagonal=diagonal,  # type: ignore[arg-type]
            row_ids=ids_rows if ids else None, col_ids=ids_all if ids else None,
            guide_rows=g_rows, guide_cols=g_cols, threshold=thr,
        )  # fmt: skip

    inputs = [q_rows, d_rows, q_all, d_all]  # indices 0..3
    columns = None
    if symmetric and not local:  # the transposed matrix: documents as rows, queries as candidates
        columns = Pairing(
            row_index=row_index, diagonal="positive", row_ids=ids_all, col_ids=ids_all,
            guide_rows=gd_a, guide_cols=gq_a, threshold=thr,
        )  # fmt: skip
    groups = [Group(0, 3, pairing("positive", gq_r, gd_a), col_pairing=columns)]
    if n_all is not None:
        inputs.append(n_all)
        groups.append(Group(0, 4, pairing("none", gq_r, gn_a, ids=False)))
    if qq_negatives:
        groups.append(Group(0, 2, pairing("exclude", gq_r, gq_a)))
    if dd_negatives:
        groups.append(Group(1, 3, pairing("exclude", gd_r, gd_a)))

    positive = scale * (q_rows * d_rows).sum(dim=-1)  # [R]
    row_lse, col_lse = lse(groups, scale, inputs, block_size)
    loss = (row_lse - positive).mean()
    if not symmetric:
        return loss
    if local:
        back = [Group(0, 1, pairing("positive", gd_r, gq_a))]
        col_lse, _ = lse(back, scale, [d_rows, q_all], block_size)
    return 0.5 * (loss + (col_lse - positive).mean())
