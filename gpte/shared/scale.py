"""The learnable logit scale (inverse temperature) and bias that a model owns and hands to its loss."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["LogitScale"]


class LogitScale(nn.Module):
    r"""``forward() -> (scale, bias | None)`` with ``scale = min(exp(log_scale), max_scale)``.

    Contrastive logits are ``scale · sim``, so ``scale = 1/τ`` (temperature ``τ``). The scale is learnt in log
    space (CLIP, Radford et al. 2021: ``log(1/0.07)`` init, capped at 100); ``init_temperature=0.05`` starts at
    ``scale = 20``, the usual fixed value for text. ``bias_init`` adds a learnable logit bias, needed by the sigmoid
    loss (SigLIP, Zhai et al. 2023, initialises ``scale = 10``, ``bias = −10``: :meth:`for_sigmoid`). With
    ``learnable=False`` both are buffers, saved with the model but never trained. The model puts the pair into its
    output dict (``scale=..., bias=...``) and the loss reads it from there.
    """

    def __init__(
        self,
        init_temperature: float = 0.05,
        learnable: bool = True,
        max_scale: float = 100.0,
        bias_init: float | None = None,
    ) -> None:
        super().__init__()
        if init_temperature <= 0:
            raise ValueError(f"init_temperature must be > 0, got {init_temperature}")
        if max_scale <= 0:
            raise ValueError(f"max_scale must be > 0, got {max_scale}")
        self.max_scale = float(max_scale)
        self.learnable = learnable
        log_scale = torch.tensor(math.log(1.0 / init_temperature))
        bias = None if bias_init is None else torch.tensor(float(bias_init))
        if learnable:
            self.log_scale = nn.Parameter(log_scale)
            self.bias = None if bias is None else nn.Parameter(bias)
        else:
            self.register_buffer("log_scale", log_scale)
            self.register_buffer("bias", bias)

    @classmethod
    def for_sigmoid(cls, learnable: bool = True) -> LogitScale:
        """SigLIP's initialisation: ``scale = 10`` (``τ = 0.1``) and ``bias = −10``."""
        return cls(init_temperature=0.1, learnable=learnable, bias_init=-10.0)

    def forward(self) -> tuple[Tensor, Tensor | None]:
        return self.log_scale.exp().clamp(max=self.max_scale), self.bias

    @property
    def temperature(self) -> float:
        """The current ``τ = 1/scale``, for logging."""
        return 1.0 / float(self.forward()[0].detach())

    def extra_repr(self) -> str:
        return f"temperature={self.temperature:.4g}, max_scale={self.max_scale}, learnable={self.learnable}"
