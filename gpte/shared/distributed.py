"""Negatives across devices through ``torch.distributed`` (launched with ``torchrun``).

Gradient convention (the one DDP needs). DDP *averages* parameter gradients over the ``W`` ranks. Every distributed
loss here returns, on rank ``r``, a ``loss_r`` whose mean over ranks is the loss of the global batch ``L``; the
collectives' backward sends each rank's gradient contributions back to the rank that owns the embeddings, so a
rank's local embeddings receive ``Σ_r ∂loss_r/∂e = W · ∂L/∂e``, and after DDP's average the parameters receive
exactly ``∂L/∂θ``, the single-process gradient of the global batch. (Without DDP, average the parameter gradients
with ``all_reduce(SUM) / W`` yourself.)

InfoNCE (:func:`distributed_info_nce`):

* ``mode="gather"``: every rank gathers all embeddings (with gradients) and computes the loss of the whole global
  batch, so ``loss_r = L`` on every rank. Simple; costs ``W×`` the loss compute.
* ``mode="local"`` (open_clip's ``local_loss``): each rank computes the loss of its *own* queries against the
  gathered documents (and, if symmetric, its own documents against the gathered queries); the mean over ranks of
  these per-rank means is ``L``. Same result at ``1/W`` of the compute; the default choice.

Sigmoid (:func:`distributed_sigmoid_loss`): the loss is a sum over rows, so rank ``r`` always sums its own rows and
divides by the local batch. ``mode="gather"`` gathers the documents; ``mode="ring"`` passes document blocks around
the ring with point-to-point send/recv (SigLIP's neighbour exchange): the positives lie in the rank's own block, every
received block is all negatives, and no rank ever holds more than two blocks.

Every rank must hold the same local batch size (checked). ``positive_ids`` must be global ids (e.g. a hash of the
document), so duplicates on different ranks are recognised. Outside an initialised process group (or with one
process) the functions fall back to the single-process losses.
"""

from __future__ import annotations

import logging
from typing import Literal, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor
from torch.autograd.function import FunctionCtx

from gpte.shared.losses._checks import (
    Similarity,
    as_negatives,
    as_scalar,
    check_pair,
    check_positive_ids,
    check_similarity,
    prepare,
)
from gpte.shared.losses.infonce import GuideVectors, info_nce, info_nce_rows, prepare_guide
from gpte.shared.losses.sigmoid import sigmoid_loss, sigmoid_sum

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "barrier",
    "shutdown",
    "average_gradients",
    "all_gather_with_grad",
    "all_gather_no_grad",
    "neighbour_exchange",
    "GatheredBatch",
    "gather_for_loss",
    "distributed_info_nce",
    "distributed_sigmoid_loss",
]

logger = logging.getLogger(__name__)

Group = dist.ProcessGroup | None


def is_distributed(group: Group = None) -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size(group) > 1


def rank(group: Group = None) -> int:
    """This process's rank in ``group`` (0 outside a process group)."""
    return dist.get_rank(group) if dist.is_available() and dist.is_initialized() else 0


def world_size(group: Group = None) -> int:
    """The number of processes in ``group`` (1 outside a process group)."""
    return dist.get_world_size(group) if dist.is_available() and dist.is_initialized() else 1


def barrier(group: Group = None) -> None:
    """Wait for every process of ``group``; a no-op outside a process group."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier(group)


def shutdown(*, completed: bool = True) -> None:
    """Leave the process group: when this rank ``completed`` its work, first wait for every rank, so no rank tears
    down its connections while a peer's last collective still runs (gloo aborts the process with SIGABRT when its
    worker threads lose a peer mid-operation); after an error, destroy at once, since a barrier could hang on a peer
    that will never reach it. A no-op outside a process group."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if completed:
        dist.barrier()
    dist.destroy_process_group()


def average_gradients(params: list[torch.nn.Parameter], group: Group = None) -> None:
    """Average ``.grad`` over the ranks, as DistributedDataParallel does (missing gradients count as zeros)."""
    if not is_distributed(group):
        return
    world = world_size(group)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad, group=group)
        p.grad.div_(world)


def all_gather_with_grad(x: Tensor, group: Group = None) -> Tensor:
    """``[B, ...]`` on each rank → ``[W·B, ...]`` in rank order; backward returns to every rank the sum over ranks
    of the gradients of its slice (``torch.distributed.nn.functional.all_gather``)."""
    if not is_distributed(group):
        return x
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(x.contiguous(), group=group), dim=0)  # W × [B, ...] → [W·B, ...]


def all_gather_no_grad(x: Tensor, group: Group = None) -> Tensor:
    """``[B, ...]`` on each rank → ``[W·B, ...]`` in rank order, detached (ids, guide embeddings)."""
    if not is_distributed(group):
        return x
    parts = [torch.empty_like(x) for _ in range(world_size(group))]
    dist.all_gather(parts, x.contiguous(), group=group)
    return torch.cat(parts, dim=0)  # W × [B, ...] → [W·B, ...]


def _global_rank(group: Group, group_rank: int) -> int:
    return group_rank if group is None else dist.get_global_rank(group, group_rank)


def _send_recv(x: Tensor, to_rank: int, from_rank: int, group: Group) -> Tensor:
    received = torch.empty_like(x)
    send = dist.isend(x.contiguous(), _global_rank(group, to_rank), group=group)
    recv = dist.irecv(received, _global_rank(group, from_rank), group=group)
    send.wait()
    recv.wait()
    return received


class _NeighbourExchange(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, to_rank: int, from_rank: int, group: Group, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.to_rank, ctx.from_rank, ctx.group = to_rank, from_rank, group
        return _send_recv(x, to_rank, from_rank, group)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor):  # type: ignore[override]
        # the gradient of what we received goes back to its sender; we receive the gradient of what we sent
        return None, None, None, _send_recv(grad, ctx.from_rank, ctx.to_rank, ctx.group)


def neighbour_exchange(x: Tensor, to_rank: int, from_rank: int, group: Group = None) -> Tensor:
    """Send ``x`` to ``to_rank`` and return the same-shaped tensor received from ``from_rank``; differentiable
    (backward sends the gradient back the way the tensor came). Ranks are ranks within ``group``."""
    return _NeighbourExchange.apply(to_rank, from_rank, group, x)


def _check_equal_batches(batch: int, group: Group) -> None:
    sizes = all_gather_no_grad(torch.tensor([batch]), group).tolist()
    if len(set(sizes)) != 1:
        raise ValueError(f"distributed losses need the same local batch size on every rank, got {sizes} by rank")


class GatheredBatch(NamedTuple):
    """A batch gathered over ranks (rank order); ``offset`` is the global position of this rank's first row."""

    q: Tensor  # [W·B, D]
    d: Tensor  # [W·B, D]
    negatives: Tensor | None  # [W·B, H, D]
    positive_ids: Tensor | None  # [W·B]
    guide: GuideVectors | None  # detached, gathered
    offset: int


def gather_for_loss(
    q: Tensor,
    d: Tensor,
    negatives: Tensor | None = None,
    positive_ids: Tensor | None = None,
    guide: GuideVectors | None = None,
    group: Group = None,
) -> GatheredBatch:
    """Gather every loss argument over ``group``: embeddings with gradients, ids and guide vectors without."""
    _check_equal_batches(q.shape[0], group)
    gathered_guide = None
    if guide is not None:
        gathered_guide = GuideVectors(
            all_gather_no_grad(guide.q, group), all_gather_no_grad(guide.d, group),
            None if guide.negatives is None else all_gather_no_grad(guide.negatives, group),
        )  # fmt: skip
    return GatheredBatch(
        q=all_gather_with_grad(q, group), d=all_gather_with_grad(d, group),
        negatives=None if negatives is None else all_gather_with_grad(negatives, group),
        positive_ids=None if positive_ids is None else all_gather_no_grad(positive_ids, group),
        guide=gathered_guide, offset=rank(group) * q.shape[0],
    )  # fmt: skip


def distributed_info_nce(
    q: Tensor,
    d: Tensor,
    negatives: Tensor | None = None,
    *,
    mode: Literal["gather", "local"] = "local",
    scale: Tensor | float = 20.0,
    similarity: Similarity = "cosine",
    symmetric: bool = False,
    qq_negatives: bool = False,
    dd_negatives: bool = False,
    positive_ids: Tensor | None = None,
    fn_margin: float | None = None,
    guide: tuple[Tensor, Tensor, Tensor | None] | None = None,
    block_size: int | None = None,
    group: Group = None,
) -> Tensor:
    """:func:`gpte.shared.losses.info_nce` over the global batch of all ranks (this rank's arguments are its shard);
    the formula, options and ``scale = 1/τ`` are those of ``info_nce``. ``mode`` and the gradient convention: see the
    module docstring. Every option (hard negatives, qq/dd, masking, blockwise) works in both modes."""
    if mode not in ("gather", "local"):
        raise ValueError(f"distributed_info_nce: mode must be 'gather' or 'local', got {mode!r}")
    options = dict(scale=scale, similarity=similarity, symmetric=symmetric, qq_negatives=qq_negatives,
                   dd_negatives=dd_negatives, positive_ids=positive_ids, fn_margin=fn_margin, guide=guide,
                   block_size=block_size)  # fmt: skip
    if not is_distributed(group):
        return info_nce(q, d, negatives, **options)  # type: ignore[arg-type]
    loss_name = "distributed_info_nce"
    check_similarity(similarity)
    check_pair(loss_name, q, d)
    negatives = as_negatives(loss_name, negatives, q)
    positive_ids = check_positive_ids(loss_name, positive_ids, q.shape[0])
    masking = guide is not None or fn_margin is not None
    guides = prepare_guide(loss_name, q, d, negatives, guide, similarity) if masking else None
    qp, dp = prepare(q, similarity), prepare(d, similarity)
    np_ = None if negatives is None else prepare(negatives, similarity)
    g = gather_for_loss(qp, dp, np_, positive_ids, guides, group)
    n_all = None if g.negatives is None else g.negatives.flatten(0, 1)  # [W·B, H, D] → [W·B·H, D]
    local = mode == "local"
    return info_nce_rows(
        qp if local else g.q, dp if local else g.d, g.q, g.d, n_all,
        offset=g.offset if local else 0, local=local, scale=as_scalar(scale, qp), symmetric=symmetric,
        qq_negatives=qq_negatives, dd_negatives=dd_negatives,
        ids_rows=positive_ids if local else g.positive_ids, ids_all=g.positive_ids,
        guide_rows=None if guides is None else ((guides.q, guides.d) if local else (g.guide.q, g.guide.d)),  # type: ignore[union-attr]
        guide_all=g.guide, fn_margin=0.0 if fn_margin is None else fn_margin, block_size=block_size,
    )  # fmt: skip


def distributed_sigmoid_loss(
    q: Tensor,
    d: Tensor,
    negatives: Tensor | None = None,
    *,
    mode: Literal["gather", "ring"] = "ring",
    scale: Tensor | float,
    bias: Tensor | float,
    similarity: Similarity = "cosine",
    positive_ids: Tensor | None = None,
    block_size: int | None = None,
    group: Group = None,
) -> Tensor:
    """:func:`gpte.shared.losses.sigmoid_loss` over the global batch (formula and ``scale = 1/τ`` there); this
    rank's rows against every rank's documents and hard negatives, divided by the local batch size. ``mode``:
    ``"gather"`` or ``"ring"`` (neighbour exchange); gradient convention in the module docstring."""
    if mode not in ("gather", "ring"):
        raise ValueError(f"distributed_sigmoid_loss: mode must be 'gather' or 'ring', got {mode!r}")
    if not is_distributed(group):
        return sigmoid_loss(q, d, negatives, scale=scale, bias=bias, similarity=similarity,
                            positive_ids=positive_ids, block_size=block_size)  # fmt: skip
    loss_name = "distributed_sigmoid_loss"
    check_similarity(similarity)
    check_pair(loss_name, q, d)
    negatives = as_negatives(loss_name, negatives, q)
    positive_ids = check_positive_ids(loss_name, positive_ids, q.shape[0])
    _check_equal_batches(q.shape[0], group)
    qp, dp = prepare(q, similarity), prepare(d, similarity)
    np_ = None if negatives is None else prepare(negatives, similarity).flatten(0, 1)  # [B, H, D] → [B·H, D]
    s, b = as_scalar(scale, qp), as_scalar(bias, qp, "bias")
    batch, me, w = q.shape[0], rank(group), world_size(group)
    common = dict(offset=me * batch, scale=s, bias=b, ids_rows=positive_ids, block_size=block_size)

    def block_terms(docs: Tensor, negs: Tensor | None, source: int, ids: Tensor | None) -> Tensor:
        total = sigmoid_sum(qp, docs, col_offset=source * batch, positives=source == me, ids_cols=ids, **common)  # type: ignore[arg-type]
        if negs is not None:
            total = total + sigmoid_sum(qp, negs, col_offset=0, positives=False, **{**common, "ids_rows": None},  # type: ignore[arg-type]
                                        ids_cols=None)  # fmt: skip
        return total

    if mode == "gather":
        d_all = all_gather_with_grad(dp, group)  # [W·B, D]
        n_all = None if np_ is None else all_gather_with_grad(np_, group)  # [W·B·H, D]
        ids_all = None if positive_ids is None else all_gather_no_grad(positive_ids, group)
        total = sigmoid_sum(qp, d_all, col_offset=0, positives=True, ids_cols=ids_all, **common)  # type: ignore[arg-type]
        if n_all is not None:
            total = total + sigmoid_sum(qp, n_all, col_offset=0, positives=False, **{**common, "ids_rows": None},  # type: ignore[arg-type]
                                        ids_cols=None)  # fmt: skip
        return total / batch

    # ring: pass [documents; hard negatives] one step to the right, W − 1 times
    packed = dp if np_ is None else torch.cat([dp, np_], dim=0)  # [B + B·H, D]
    ids = positive_ids
    total = block_terms(dp, np_, me, positive_ids)
    right, left = (me + 1) % w, (me - 1) % w
    for step in range(1, w):
        packed = neighbour_exchange(packed, right, left, group)
        if ids is not None:
            ids = _send_recv(ids, right, left, group)
        docs, negs = packed[:batch], (None if np_ is None else packed[batch:])  # [B, D], [B·H, D]
        total = total + block_terms(docs, negs, (me - step) % w, ids)
    return total / batch
