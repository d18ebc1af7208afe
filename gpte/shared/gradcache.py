"""Gradient cache (Gao, Zhang, Han & Callan 2021, "Scaling Deep Contrastive Learning Batch Size under Memory
Limited Setup"): contrastive batches far larger than memory allows, with exactly the gradients of the full batch.

A contrastive loss couples every item of a batch, so it cannot be split into independent micro-batches. But the loss
depends on the encoder parameters θ only through the embeddings e = f_θ(x), so

    ∂L/∂θ = Σ_i (∂L/∂e_i) · (∂e_i/∂θ).

The step runs in three passes:

1. embed every sub-batch (``chunk_size`` items) without building a graph, keeping only the embeddings;
2. compute the loss on the full batch of embeddings (made leaf tensors) and back-propagate to them: the cache
   ``g_i = ∂L/∂e_i``; parameters used directly by the loss (logit scale, bias) get their gradients here;
3. re-embed every sub-batch with a graph and back-propagate ``g_i`` into θ (``e.backward(g)``), one sub-batch at a
   time, so only one sub-batch's activations are ever alive.

The random state (CPU and CUDA generators) of each sub-batch's first pass is recorded and restored for its second
pass, so dropout masks are identical and the gradients equal those of the uncached step. Towers whose embeddings
do not require grad (frozen encoders) skip pass 3. Works with any loss written as a function of embeddings and any
encoder that maps a batch (a dict of tensors, or a sequence, sliced along its first dimension) to embeddings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Tower", "cached_step", "plain_step", "split_batch"]

Batch = Any  # a dict of tensors sharing their first dimension, a tensor, or a sequence of items
Encoder = Callable[[Batch], Tensor]
LossFn = Callable[[dict[str, Tensor]], Tensor]


@dataclass
class Tower:
    """One argument of the loss: the encoder that embeds it and the batch it embeds (``len`` = items)."""

    encoder: Encoder  # batch -> [n, D] embeddings
    batch: Batch  # dict of tensors [n, ...], a tensor [n, ...] or a list of n items


def _batch_len(batch: Batch) -> int:
    if isinstance(batch, Mapping):
        return int(next(iter(batch.values())).shape[0])
    if isinstance(batch, Tensor):
        return int(batch.shape[0])
    return len(batch)


def _trim_padding(chunk: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop columns that are padding in every row of a tokenised chunk (left or right padding)."""
    mask = chunk.get("attention_mask")
    if mask is None or mask.dim() != 2:
        return chunk
    used = mask.bool().any(dim=0).nonzero().flatten()  # [L'] columns with at least one real token
    if used.numel() == 0:
        return chunk
    lo, hi = int(used[0]), int(used[-1]) + 1
    if lo == 0 and hi == mask.shape[1]:
        return chunk
    length = mask.shape[1]
    return {k: (v[:, lo:hi] if isinstance(v, Tensor) and v.dim() == 2 and v.shape[1] == length else v)
            for k, v in chunk.items()}


def split_batch(batch: Batch, chunk_size: int) -> list[Batch]:
    """Slice a batch into sub-batches of ``chunk_size`` items (tokenised dicts lose all-padding columns)."""
    n = _batch_len(batch)
    out = []
    for lo in range(0, n, chunk_size):
        if isinstance(batch, Mapping):
            chunk = {k: (v[lo : lo + chunk_size] if isinstance(v, Tensor) and v.dim() > 0 else v)
                     for k, v in batch.items()}
            out.append(_trim_padding(chunk))
        else:
            out.append(batch[lo : lo + chunk_size])
    return out


@dataclass
class _RngState:
    cpu: Tensor
    cuda: list[Tensor] | None

    @classmethod
    def capture(cls) -> _RngState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
        return cls(torch.get_rng_state(), cuda)

    @contextlib.contextmanager
    def replay(self) -> Iterator[None]:
        devices = list(range(len(self.cuda))) if self.cuda is not None else []
        with torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state_all(self.cuda)
            yield


def _check_finite(name: str, emb: Tensor, step: int | None) -> None:
    if not torch.isfinite(emb).all():
        rows = (~torch.isfinite(emb)).any(dim=-1).nonzero().flatten()[:10].tolist()
        where = f" at step {step}" if step is not None else ""
        raise FloatingPointError(f"non-finite embeddings for '{name}'{where} (rows {rows}); lower the learning "
                                 "rate, use bf16 instead of fp16, or check the inputs")


def cached_step(
    loss_fn: LossFn,
    towers: Mapping[str, Tower],
    chunk_size: int,
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    step: int | None = None,
) -> Tensor:
    """One gradient-cached step: accumulates into ``.grad`` exactly what ``plain_step`` would; returns the loss.

    ``loss_fn`` receives ``{name: embeddings [n, D]}`` for every tower and returns a scalar. Call
    ``optimizer.zero_grad()`` before and ``optimizer.step()`` after, as for a plain ``loss.backward()``.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 (got {chunk_size})")
    ctx = autocast or contextlib.nullcontext
    chunks = {name: split_batch(t.batch, chunk_size) for name, t in towers.items()}
    states: dict[str, list[_RngState]] = {name: [] for name in towers}
    reps: dict[str, Tensor] = {}
    # pass 1: embeddings without graphs, recording the random state of every sub-batch
    for name, tower in towers.items():
        parts = []
        with torch.no_grad():
            for chunk in chunks[name]:
                states[name].append(_RngState.capture())
                with ctx():
                    parts.append(tower.encoder(chunk).float())
        emb = torch.cat(parts, dim=0)  # [n, D]
        _check_finite(name, emb, step)
        reps[name] = emb.detach().requires_grad_(True)
    # pass 2: the loss over the whole batch, back to the embeddings (and to parameters the loss uses directly)
    loss = loss_fn(reps)
    loss.backward()
    # pass 3: re-embed each sub-batch with a graph, same random state, and push the cached gradient into it
    for name, tower in towers.items():
        grad = reps[name].grad
        if grad is None:  # the loss ignored this tower
            continue
        lo = 0
        for chunk, state in zip(chunks[name], states[name], strict=True):
            with state.replay(), ctx():
                emb = tower.encoder(chunk).float()  # [c, D]
            if not emb.requires_grad:  # a frozen tower: nothing to back-propagate into
                break
            n = emb.shape[0]
            emb.backward(grad[lo : lo + n])
            lo += n
    return loss.detach()


def plain_step(
    loss_fn: LossFn,
    towers: Mapping[str, Tower],
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    step: int | None = None,
    chunk_size: int | None = None,
) -> Tensor:
    """The uncached step: embed every tower with a graph, compute the loss, back-propagate; returns the loss.

    With ``chunk_size`` the towers are embedded in the same sub-batches as :func:`cached_step` (all graphs kept), so
    random draws such as dropout masks come out identical and the two steps can be compared exactly.
    """
    ctx = autocast or contextlib.nullcontext
    reps = {}
    for name, tower in towers.items():
        parts = split_batch(tower.batch, chunk_size) if chunk_size else [tower.batch]
        with ctx():
            reps[name] = torch.cat([tower.encoder(part).float() for part in parts], dim=0)  # [n, D]
        _check_finite(name, reps[name].detach(), step)
    loss = loss_fn(reps)
    loss.backward()
    return loss.detach()
