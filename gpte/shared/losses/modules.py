"""``nn.Module`` wrappers: each stores only hyper-parameters; ``forward`` takes the embeddings (and the model's
scale and bias), so a model's output dict can be splatted in: ``loss = InfoNCELoss()(**model(batch))``."""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from gpte.shared.losses._checks import Similarity, check_similarity
from gpte.shared.losses.distill import kl_distillation
from gpte.shared.losses.graded import angle_loss, cosent_loss
from gpte.shared.losses.infonce import info_nce
from gpte.shared.losses.sigmoid import sigmoid_loss

__all__ = ["InfoNCELoss", "SigmoidLoss", "CoSENTLoss", "AnglELoss", "KLDistillationLoss"]


class InfoNCELoss(nn.Module):
    """:func:`gpte.shared.losses.info_nce` as a module (formula, reference and ``scale = 1/τ`` there).

    ``scale`` here is the fixed fallback used when ``forward`` gets none (``20`` = ``τ 0.05``); a model with a
    learnable :class:`gpte.shared.scale.LogitScale` passes its own. ``distributed``: None (this process's batch),
    ``"gather"`` (every rank scores the global batch) or ``"local"`` (each rank scores its own rows against the
    gathered candidates; open_clip's local loss) — see :mod:`gpte.shared.distributed`.
    """

    def __init__(
        self,
        scale: float = 20.0,
        similarity: Similarity = "cosine",
        symmetric: bool = False,
        qq_negatives: bool = False,
        dd_negatives: bool = False,
        fn_margin: float | None = None,
        block_size: int | None = None,
        distributed: Literal["gather", "local"] | None = None,
    ) -> None:
        super().__init__()
        check_similarity(similarity)
        if distributed not in (None, "gather", "local"):
            raise ValueError(f"InfoNCELoss: distributed must be None, 'gather' or 'local', got {distributed!r}")
        self.scale, self.similarity, self.symmetric = scale, similarity, symmetric
        self.qq_negatives, self.dd_negatives, self.fn_margin = qq_negatives, dd_negatives, fn_margin
        self.block_size, self.distributed = block_size, distributed

    def forward(
        self,
        q: Tensor,
        d: Tensor,
        negatives: Tensor | None = None,
        scale: Tensor | float | None = None,
        bias: Tensor | float | None = None,
        positive_ids: Tensor | None = None,
        guide: tuple[Tensor, Tensor, Tensor | None] | None = None,
    ) -> Tensor:
        """``bias`` is accepted and ignored: a constant added to every logit leaves a softmax unchanged."""
        del bias
        kwargs = dict(
            scale=self.scale if scale is None else scale, similarity=self.similarity, symmetric=self.symmetric,
            qq_negatives=self.qq_negatives, dd_negatives=self.dd_negatives, positive_ids=positive_ids,
            fn_margin=self.fn_margin, guide=guide, block_size=self.block_size,
        )  # fmt: skip
        if self.distributed is None:
            return info_nce(q, d, negatives, **kwargs)  # type: ignore[arg-type]
        from gpte.shared.distributed import distributed_info_nce  # lazy: distributed imports this package

        return distributed_info_nce(q, d, negatives, mode=self.distributed, **kwargs)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale}, similarity={self.similarity!r}, symmetric={self.symmetric}, "
            f"qq_negatives={self.qq_negatives}, dd_negatives={self.dd_negatives}, fn_margin={self.fn_margin}, "
            f"block_size={self.block_size}, distributed={self.distributed!r}"
        )


class SigmoidLoss(nn.Module):
    """:func:`gpte.shared.losses.sigmoid_loss` as a module. ``scale``/``bias`` come from the model (SigLIP init:
    ``log scale = log 10``, ``bias = −10``); the constructor values are fixed fallbacks. ``distributed``: None,
    ``"gather"`` or ``"ring"`` (neighbour exchange of document blocks) — see :mod:`gpte.shared.distributed`."""

    def __init__(
        self,
        scale: float | None = None,
        bias: float | None = None,
        similarity: Similarity = "cosine",
        block_size: int | None = None,
        distributed: Literal["gather", "ring"] | None = None,
    ) -> None:
        super().__init__()
        check_similarity(similarity)
        if distributed not in (None, "gather", "ring"):
            raise ValueError(f"SigmoidLoss: distributed must be None, 'gather' or 'ring', got {distributed!r}")
        self.scale, self.bias, self.similarity = scale, bias, similarity
        self.block_size, self.distributed = block_size, distributed

    def forward(
        self,
        q: Tensor,
        d: Tensor,
        negatives: Tensor | None = None,
        scale: Tensor | float | None = None,
        bias: Tensor | float | None = None,
        positive_ids: Tensor | None = None,
    ) -> Tensor:
        scale = self.scale if scale is None else scale
        bias = self.bias if bias is None else bias
        if scale is None or bias is None:
            raise ValueError("SigmoidLoss needs `scale` and `bias`: from the model's LogitScale, or fixed in __init__")
        kwargs = dict(scale=scale, bias=bias, similarity=self.similarity, positive_ids=positive_ids,
                      block_size=self.block_size)  # fmt: skip
        if self.distributed is None:
            return sigmoid_loss(q, d, negatives, **kwargs)  # type: ignore[arg-type]
        from gpte.shared.distributed import distributed_sigmoid_loss  # lazy: distributed imports this package

        return distributed_sigmoid_loss(q, d, negatives, mode=self.distributed, **kwargs)  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return (
            f"scale={self.scale}, bias={self.bias}, similarity={self.similarity!r}, block_size={self.block_size}, "
            f"distributed={self.distributed!r}"
        )


class CoSENTLoss(nn.Module):
    """:func:`gpte.shared.losses.cosent_loss` as a module; ``scale = 1/τ`` (default 20)."""

    def __init__(self, scale: float = 20.0) -> None:
        super().__init__()
        self.scale = scale

    def forward(self, a: Tensor, b: Tensor, labels: Tensor) -> Tensor:
        return cosent_loss(a, b, labels, scale=self.scale)

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


class AnglELoss(CoSENTLoss):
    """:func:`gpte.shared.losses.angle_loss` as a module; ``scale = 1/τ`` (default 20)."""

    def forward(self, a: Tensor, b: Tensor, labels: Tensor) -> Tensor:
        return angle_loss(a, b, labels, scale=self.scale)


class KLDistillationLoss(nn.Module):
    """:func:`gpte.shared.losses.kl_distillation` as a module; ``scale`` (``1/τ``) is the fallback when the model
    passes none."""

    def __init__(
        self, scale: float = 20.0, teacher_temperature: float = 1.0, similarity: Similarity = "cosine"
    ) -> None:
        super().__init__()
        check_similarity(similarity)
        self.scale, self.teacher_temperature, self.similarity = scale, teacher_temperature, similarity

    def forward(self, q: Tensor, docs: Tensor, teacher_scores: Tensor, scale: Tensor | float | None = None) -> Tensor:
        return kl_distillation(q, docs, teacher_scores, scale=self.scale if scale is None else scale,
                               teacher_temperature=self.teacher_temperature, similarity=self.similarity)  # fmt: skip

    def extra_repr(self) -> str:
        return f"scale={self.scale}, teacher_temperature={self.teacher_temperature}, similarity={self.similarity!r}"
