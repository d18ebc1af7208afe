"""Score matrices one block at a time: which entries are positives, excluded or masked, and the two reductions the
contrastive losses need (a row/column log-sum-exp for InfoNCE, a row sum of log-sigmoids for SigLIP).

Every loss here is built from *groups*: a matrix of row vectors ``A [R, D]`` scored against a matrix of candidates
``K [C, D]`` (``logits = scale · A Kᵀ``) together with a :class:`Pairing`, the rules saying which entries are the
positive, which are excluded (the row itself in query–query negatives, duplicates by ``positive_ids``, false
negatives by a guide model) and which are ordinary negatives.

Each reduction exists twice: ``dense_*`` builds the full ``[R, C]`` matrices and lets autograd differentiate them
(the readable reference), and ``Block*`` is a :class:`torch.autograd.Function` that visits ``block × block`` tiles in
forward, keeps only per-row (and per-column) statistics, and recomputes the tiles in backward. Neither the forward
nor the backward of the block form allocates anything of size ``R × C``; the largest temporary is one tile.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

__all__ = ["Pairing", "Group", "dense_lse", "dense_sigmoid", "BlockLSE", "BlockSigmoid", "spans"]

Diagonal = Literal["positive", "exclude", "none"]


def spans(n: int, block: int) -> Iterator[slice]:
    """Consecutive slices of length ``block`` covering ``range(n)``; the last one may be shorter."""
    for start in range(0, n, block):
        yield slice(start, min(start + block, n))


@dataclass(frozen=True)
class Pairing:
    """The rules of one ``rows × candidates`` score matrix; positions are global batch positions (long tensors).

    An entry ``(i, c)`` is on the *diagonal* when the candidate's global position ``col_offset + c`` equals
    ``row_index[i]``. The diagonal is the row's positive (``"positive"``: never masked), the row itself
    (``"exclude"``: always masked, query–query and document–document negatives) or nothing special (``"none"``:
    hard negatives, or document blocks of other ranks). Off the diagonal an entry is masked when the two
    ``positive_ids`` are equal (duplicates of one positive) or when the guide score exceeds the row's threshold
    (false-negative filtering, GISTEmbed).
    """

    row_index: Tensor  # [R] global position of each row; with diagonal="positive", the column of its positive
    col_offset: int = 0  # global position of candidate 0
    diagonal: Diagonal = "none"  # what the diagonal entries are (see above)
    row_ids: Tensor | None = None  # [R] positive_ids of the rows
    col_ids: Tensor | None = None  # [C] positive_ids of the candidates
    guide_rows: Tensor | None = None  # [R, G] guide vectors of the rows (detached)
    guide_cols: Tensor | None = None  # [C, G] guide vectors of the candidates (detached)
    threshold: Tensor | None = None  # [R] candidates whose guide score is above this are masked

    def diag(self, rs: slice, cs: slice) -> Tensor:
        """``[r, c]`` boolean: the entries of the tile ``rows[rs] × cols[cs]`` that lie on the diagonal."""
        cols = torch.arange(cs.start + self.col_offset, cs.stop + self.col_offset, device=self.row_index.device)
        return self.row_index[rs, None] == cols[None, :]  # [r, 1] == [1, c] → [r, c]

    def mask(self, rs: slice, cs: slice) -> Tensor | None:
        """``[r, c]`` boolean, True where the tile's entry is excluded from the loss; None when nothing is."""
        masked: Tensor | None = None
        if self.row_ids is not None and self.col_ids is not None:
            masked = self.row_ids[rs, None] == self.col_ids[None, cs]  # [r, 1] == [1, c] → [r, c]
        if self.guide_rows is not None and self.guide_cols is not None and self.threshold is not None:
            scores = self.guide_rows[rs] @ self.guide_cols[cs].T  # [r, G] @ [G, c] → [r, c]
            above = scores > self.threshold[rs, None]
            masked = above if masked is None else masked | above
        if self.diagonal == "none" or (self.diagonal == "positive" and masked is None):
            return masked
        on_diag = self.diag(rs, cs)
        if self.diagonal == "exclude":
            return on_diag if masked is None else masked | on_diag
        return masked & ~on_diag  # "positive": the positive itself is never masked


@dataclass(frozen=True)
class Group:
    """Rows ``inputs[rows]`` scored against candidates ``inputs[cols]`` under ``pairing``.

    With ``col_pairing`` the same scores also feed a log-sum-exp down each *column* (the document→query direction of
    a symmetric loss); ``col_pairing`` holds the rules of the transposed matrix (candidates as rows).
    """

    rows: int  # index of the row vectors among the inputs
    cols: int  # index of the candidate vectors among the inputs
    pairing: Pairing  # rules of the rows × candidates matrix
    col_pairing: Pairing | None = None  # rules of the transposed matrix, when columns are reduced too

    def col_mask(self, rs: slice, cs: slice) -> Tensor | None:
        assert self.col_pairing is not None
        masked = self.col_pairing.mask(cs, rs)  # [c, r]
        return None if masked is None else masked.T  # [r, c]


def _masked(s: Tensor, mask: Tensor | None, fill: float) -> Tensor:
    return s if mask is None else s.masked_fill(mask, fill)


def _n_cols(groups: Sequence[Group], inputs: Sequence[Tensor]) -> int:
    sizes = {inputs[g.cols].shape[0] for g in groups if g.col_pairing is not None}
    if len(sizes) > 1:
        raise ValueError(f"column reductions over candidate sets of different sizes {sorted(sizes)}")
    return sizes.pop() if sizes else 0


# ---------------------------------------------------------------------------------------------------------- InfoNCE


def dense_lse(groups: Sequence[Group], scale: Tensor, inputs: Sequence[Tensor]) -> tuple[Tensor, Tensor | None]:
    """Row log-sum-exp over all groups' candidates ``[R]``, and the column log-sum-exp ``[C]`` (or None); dense."""
    row_parts: list[Tensor] = []
    col_lse: Tensor | None = None
    for g in groups:
        a, k = inputs[g.rows], inputs[g.cols]
        everything_r, everything_c = slice(0, a.shape[0]), slice(0, k.shape[0])
        s = scale * (a @ k.T)  # [R, D] @ [D, C] → [R, C]
        row_parts.append(_masked(s, g.pairing.mask(everything_r, everything_c), float("-inf")))
        if g.col_pairing is not None:
            col_lse = torch.logsumexp(_masked(s, g.col_mask(everything_r, everything_c), float("-inf")), dim=0)
    return torch.logsumexp(torch.cat(row_parts, dim=1), dim=1), col_lse  # [R, ΣC] → [R]


class BlockLSE(torch.autograd.Function):
    """:func:`dense_lse` tile by tile: ``apply(groups, block, scale, *inputs) -> (row_lse [R], col_lse [C] or [0])``.

    Forward keeps running log-sum-exps (``lse ← log(e^lse + Σ_tile e^s)``). Backward recomputes each tile and uses
    ``∂lse_i/∂s_ic = softmax_ic = exp(s_ic − lse_i)`` (and the column analogue), so with upstream gradients ``g``:
    ``∂s = g_row,i · exp(s − lse_row,i) + g_col,c · exp(s − lse_col,c)``; ``∂A = scale · ∂s K``,
    ``∂K = scale · ∂sᵀ A``, ``∂scale = Σ ∂s ⊙ (A Kᵀ)``.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, groups: Sequence[Group], block: int, scale: Tensor, *inputs: Tensor):  # type: ignore[override]
        n_rows = inputs[groups[0].rows].shape[0]
        ref = inputs[groups[0].rows]
        row_lse = torch.full((n_rows,), float("-inf"), dtype=ref.dtype, device=ref.device)
        col_lse = torch.full((_n_cols(groups, inputs),), float("-inf"), dtype=ref.dtype, device=ref.device)
        for g in groups:
            a, k = inputs[g.rows], inputs[g.cols]
            for rs in spans(a.shape[0], block):
                for cs in spans(k.shape[0], block):
                    s = scale * (a[rs] @ k[cs].T)  # [r, D] @ [D, c] → [r, c]
                    tile = torch.logsumexp(_masked(s, g.pairing.mask(rs, cs), float("-inf")), dim=1)  # [r]
                    row_lse[rs] = torch.logaddexp(row_lse[rs], tile)
                    if g.col_pairing is not None:
                        tile = torch.logsumexp(_masked(s, g.col_mask(rs, cs), float("-inf")), dim=0)  # [c]
                        col_lse[cs] = torch.logaddexp(col_lse[cs], tile)
        ctx.groups, ctx.block = groups, block
        ctx.save_for_backward(scale, row_lse, col_lse, *inputs)
        return row_lse, col_lse

    @staticmethod
    def backward(ctx: FunctionCtx, grad_row: Tensor, grad_col: Tensor):  # type: ignore[override]
        scale, row_lse, col_lse, *inputs = ctx.saved_tensors
        grads = [torch.zeros_like(x) for x in inputs]
        grad_scale = torch.zeros((), dtype=row_lse.dtype, device=row_lse.device)
        for g in ctx.groups:
            a, k = inputs[g.rows], inputs[g.cols]
            for rs in spans(a.shape[0], ctx.block):
                for cs in spans(k.shape[0], ctx.block):
                    sim = a[rs] @ k[cs].T  # [r, D] @ [D, c] → [r, c]
                    s = scale * sim
                    ds = torch.exp(_masked(s, g.pairing.mask(rs, cs), float("-inf")) - row_lse[rs, None])
                    ds = ds * grad_row[rs, None]  # [r, c] · [r, 1]
                    if g.col_pairing is not None:
                        p_col = torch.exp(_masked(s, g.col_mask(rs, cs), float("-inf")) - col_lse[None, cs])
                        ds = ds + p_col * grad_col[None, cs]  # [r, c] · [1, c]
                    grads[g.rows][rs] += scale * (ds @ k[cs])  # [r, c] @ [c, D] → [r, D]
                    grads[g.cols][cs] += scale * (ds.T @ a[rs])  # [c, r] @ [r, D] → [c, D]
                    grad_scale += (ds * sim).sum()
        out_scale = grad_scale if ctx.needs_input_grad[2] else None
        out_inputs = [gr if ctx.needs_input_grad[3 + i] else None for i, gr in enumerate(grads)]
        return (None, None, out_scale, *out_inputs)


# ---------------------------------------------------------------------------------------------------------- sigmoid


def _signs(pairing: Pairing, rs: slice, cs: slice, like: Tensor) -> Tensor:
    """``z``: +1 on the positive diagonal, −1 elsewhere (``[r, c]``, or a scalar −1 without positives)."""
    if pairing.diagonal != "positive":
        return torch.full((), -1.0, dtype=like.dtype, device=like.device)
    return pairing.diag(rs, cs).to(like.dtype) * 2.0 - 1.0


def dense_sigmoid(groups: Sequence[Group], scale: Tensor, bias: Tensor, inputs: Sequence[Tensor]) -> Tensor:
    """``Σ_c −log σ(z_ic (scale · a_i·k_c + bias))`` per row ``[R]``, masked entries left out; dense."""
    total: Tensor | None = None
    for g in groups:
        a, k = inputs[g.rows], inputs[g.cols]
        everything_r, everything_c = slice(0, a.shape[0]), slice(0, k.shape[0])
        x = scale * (a @ k.T) + bias  # [R, D] @ [D, C] → [R, C]
        nll = -torch.nn.functional.logsigmoid(_signs(g.pairing, everything_r, everything_c, x) * x)
        part = _masked(nll, g.pairing.mask(everything_r, everything_c), 0.0).sum(dim=1)  # [R]
        total = part if total is None else total + part
    assert total is not None
    return total


class BlockSigmoid(torch.autograd.Function):
    """:func:`dense_sigmoid` tile by tile: ``apply(groups, block, scale, bias, *inputs) -> row sums [R]``.

    With ``x = z (scale · sim + bias)``, ``∂(−log σ(x))/∂x = σ(x) − 1``, so per tile
    ``∂sim = g · (σ(x) − 1) · z · scale``, ``∂bias = Σ g (σ(x) − 1) z``, ``∂scale = Σ g (σ(x) − 1) z · sim``.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, groups: Sequence[Group], block: int, scale: Tensor, bias: Tensor, *inputs: Tensor):  # type: ignore[override]
        ref = inputs[groups[0].rows]
        total = torch.zeros(ref.shape[0], dtype=ref.dtype, device=ref.device)
        for g in groups:
            a, k = inputs[g.rows], inputs[g.cols]
            for rs in spans(a.shape[0], block):
                for cs in spans(k.shape[0], block):
                    x = scale * (a[rs] @ k[cs].T) + bias  # [r, D] @ [D, c] → [r, c]
                    nll = -torch.nn.functional.logsigmoid(_signs(g.pairing, rs, cs, x) * x)
                    total[rs] += _masked(nll, g.pairing.mask(rs, cs), 0.0).sum(dim=1)
        ctx.groups, ctx.block = groups, block
        ctx.save_for_backward(scale, bias, *inputs)
        return total

    @staticmethod
    def backward(ctx: FunctionCtx, grad_rows: Tensor):  # type: ignore[override]
        scale, bias, *inputs = ctx.saved_tensors
        grads = [torch.zeros_like(x) for x in inputs]
        grad_scale = torch.zeros((), dtype=grad_rows.dtype, device=grad_rows.device)
        grad_bias = torch.zeros((), dtype=grad_rows.dtype, device=grad_rows.device)
        for g in ctx.groups:
            a, k = inputs[g.rows], inputs[g.cols]
            for rs in spans(a.shape[0], ctx.block):
                for cs in spans(k.shape[0], ctx.block):
                    sim = a[rs] @ k[cs].T  # [r, D] @ [D, c] → [r, c]
                    z = _signs(g.pairing, rs, cs, sim)
                    dx = (
                        (torch.sigmoid(z * (scale * sim + bias)) - 1.0) * z * grad_rows[rs, None]
                    )  # ∂/∂(scale·sim+bias)
                    dx = _masked(dx, g.pairing.mask(rs, cs), 0.0)
                    grads[g.rows][rs] += scale * (dx @ k[cs])  # [r, c] @ [c, D] → [r, D]
                    grads[g.cols][cs] += scale * (dx.T @ a[rs])  # [c, r] @ [r, D] → [c, D]
                    grad_scale += (dx * sim).sum()
                    grad_bias += dx.sum()
        out_scale = grad_scale if ctx.needs_input_grad[2] else None
        out_bias = grad_bias if ctx.needs_input_grad[3] else None
        out_inputs = [gr if ctx.needs_input_grad[4 + i] else None for i, gr in enumerate(grads)]
        return (None, None, out_scale, out_bias, *out_inputs)
