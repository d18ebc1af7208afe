"""Matryoshka representation learning: one loss, applied to nested prefixes of the embedding."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence

from torch import Tensor, nn

__all__ = ["Matryoshka", "EMBEDDING_ARGUMENTS"]

# The arguments of gpte's losses that hold embeddings (last axis = embedding dimension); guide embeddings, labels,
# scores, scale and bias pass through untouched.
EMBEDDING_ARGUMENTS: tuple[str, ...] = ("q", "d", "negatives", "a", "b", "docs")


class Matryoshka(nn.Module):
    r"""``Matryoshka(loss_fn, dims, weights)(...) = Σ_m w_m · loss_fn(... every embedding truncated to dims[m] ...)``.

    Matryoshka Representation Learning (Kusupati et al. 2022): the first ``m`` coordinates must be a good embedding
    on their own for every ``m`` in ``dims``, so an index can store short vectors. ``loss_fn`` is any loss of this
    package (function or module); its arguments named in :data:`EMBEDDING_ARGUMENTS` are cut to ``[..., :m]``. Losses
    with ``similarity="cosine"`` (and CoSENT, AnglE) normalise inside, so the truncated prefix is re-normalised;
    with ``similarity="dot"`` it is not, as the dot product of prefixes is what the short index will compute.
    Scale and temperature are those of ``loss_fn`` (``scale = 1/τ``). ``weights`` default to 1 each.
    """

    def __init__(
        self,
        loss_fn: Callable[..., Tensor],
        dims: Sequence[int] = (768, 512, 256, 128, 64),
        weights: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        if not dims or any(int(m) < 1 for m in dims):
            raise ValueError(f"Matryoshka dims must be positive integers, got {tuple(dims)}")
        if weights is not None and len(weights) != len(dims):
            raise ValueError(f"Matryoshka got {len(weights)} weights for {len(dims)} dims")
        self.loss_fn = loss_fn  # a module is registered as a submodule by nn.Module's __setattr__
        self.dims = tuple(int(m) for m in dims)
        self.weights = tuple(float(w) for w in weights) if weights is not None else (1.0,) * len(self.dims)
        target = loss_fn.forward if isinstance(loss_fn, nn.Module) else loss_fn
        self._signature = inspect.signature(target)

    def forward(self, *args: object, **kwargs: object) -> Tensor:
        bound = self._signature.bind(*args, **kwargs)
        names = [n for n in EMBEDDING_ARGUMENTS if isinstance(bound.arguments.get(n), Tensor)]
        if not names:
            raise ValueError(f"Matryoshka: none of {EMBEDDING_ARGUMENTS} was given to the wrapped loss")
        full = min(bound.arguments[n].shape[-1] for n in names)  # type: ignore[union-attr]
        too_long = [m for m in self.dims if m > full]
        if too_long:
            raise ValueError(f"Matryoshka dims {too_long} exceed the embedding dimension {full}")
        total: Tensor | None = None
        for m, w in zip(self.dims, self.weights, strict=True):
            call = dict(bound.arguments)
            for n in names:
                call[n] = bound.arguments[n][..., :m]  # type: ignore[index]  # [..., D] → [..., m]
            part = w * self.loss_fn(**call)
            total = part if total is None else total + part
        assert total is not None
        return total
