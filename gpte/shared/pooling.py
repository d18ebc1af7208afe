"""Pooling: token states → one vector, shared by every modality.

The survey (§3.1) writes every pooling as ``x = Σ_i α_i h_i`` over the token states ``h_i`` of the last layer (or an
average of the top-K layers, "multi-layer pooling", Su et al.). The modes here:

* ``cls``: ``α = 1`` on the first attended token (BERT's [CLS]).
* ``mean``: ``α_i = 1/n`` over the attended tokens (Sentence-BERT).
* ``max``: element-wise maximum over attended tokens (not a weighted sum).
* ``mean_sqrt_len``: ``Σ_i h_i / √n`` (sentence-transformers' ``mean_sqrt_len_tokens``).
* ``last``: ``α = 1`` on the last attended token (decoder LLMs; E5-Mistral, VLM2Vec). Correct under left and right
  padding: the position is found from the mask, never assumed to be ``L-1`` or ``n-1``.
* ``weighted_mean``: position-weighted mean, ``α_i = i / Σ_j j`` with ``i`` the 1-based position among attended
  tokens (SGPT, Muennighoff 2022). Positions are counted from the first real token, so left padding changes nothing.

Prompt exclusion: with ``include_prompt=False`` the first ``prompt_length`` attended tokens of each row (the
instruction and any leading special tokens) get ``α = 0`` in ``mean``, ``max``, ``mean_sqrt_len`` and
``weighted_mean`` (INSTRUCTOR, sentence-transformers' ``include_prompt``). ``cls`` and ``last`` are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal, get_args

import torch
from torch import Tensor, nn

__all__ = ["PoolingMode", "PoolingConfig", "Pooling", "pool", "average_top_layers", "pooling_mask"]

PoolingMode = Literal["cls", "mean", "max", "mean_sqrt_len", "last", "weighted_mean"]
POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)


@dataclass
class PoolingConfig:
    mode: PoolingMode = "mean"  # how token states become one vector (see module docstring)
    layers: int = 1  # average the top-K hidden layers before pooling tokens; 1 = last layer only
    include_prompt: bool = True  # False: prompt tokens get zero weight in mean/max/weighted pooling

    def __post_init__(self) -> None:
        if self.mode not in POOLING_MODES:
            raise ValueError(f"unknown pooling mode {self.mode!r}; choose one of {', '.join(POOLING_MODES)}")
        if self.layers < 1:
            raise ValueError(f"pooling layers must be >= 1 (got {self.layers})")

    def to_dict(self) -> dict:
        return asdict(self)


def average_top_layers(hidden_states: Sequence[Tensor], k: int) -> Tensor:
    """Mean of the last ``k`` entries of a backbone's ``hidden_states`` tuple, each ``[B, L, H]`` → ``[B, L, H]``."""
    if k > len(hidden_states):
        raise ValueError(f"cannot average the top {k} layers of a backbone that returns {len(hidden_states)} states")
    if k == 1:
        return hidden_states[-1]
    return torch.stack(list(hidden_states[-k:]), dim=0).mean(dim=0)


def pooling_mask(attention_mask: Tensor, prompt_lengths: Tensor | None = None) -> Tensor:
    """Boolean ``[B, L]`` mask of the tokens that pooling may use: attended and not part of the prompt.

    ``prompt_lengths[b]`` counts the leading attended tokens of row ``b`` to drop; works for left and right padding
    because it counts attended positions (``cumsum`` of the mask) rather than absolute positions.
    """
    mask = attention_mask.bool()
    if prompt_lengths is None:
        return mask
    rank = attention_mask.long().cumsum(dim=1)  # [B, L]: 1-based rank among attended tokens
    return mask & (rank > prompt_lengths.to(rank.device).view(-1, 1))


def _first_index(mask: Tensor) -> Tensor:
    # [B]: first position where mask is set (argmax returns the first maximum)
    return mask.long().argmax(dim=1)


def _last_index(mask: Tensor) -> Tensor:
    # [B]: last position where mask is set
    length = mask.shape[1]
    return (length - 1) - mask.long().flip(dims=[1]).argmax(dim=1)


def pool(
    hidden: Tensor,
    attention_mask: Tensor,
    mode: PoolingMode = "mean",
    prompt_lengths: Tensor | None = None,
) -> Tensor:
    """Pool token states ``hidden [B, L, H]`` under ``attention_mask [B, L]`` into ``[B, H]``.

    Padded positions are excluded with ``masked_fill`` rather than multiplication, so NaN or garbage in padded
    states (possible with fully masked rows under SDPA) never leaks into the result. Computed in float32 whatever the
    input dtype (the output is float32).
    """
    if hidden.dim() != 3 or attention_mask.shape != hidden.shape[:2]:
        raise ValueError(f"pool expects hidden [B, L, H] and mask [B, L]; got {tuple(hidden.shape)} and "
                         f"{tuple(attention_mask.shape)}")
    hidden = hidden.float()  # sums of position weights overflow float16 past ~360 tokens; pool in float32
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if mode == "cls":
        return hidden[rows, _first_index(attention_mask.bool())]
    if mode == "last":
        return hidden[rows, _last_index(attention_mask.bool())]

    mask = pooling_mask(attention_mask, prompt_lengths)  # [B, L]
    keep = mask.unsqueeze(-1)  # [B, L, 1]
    if mode == "max":
        neg = torch.finfo(hidden.dtype).min
        out = hidden.masked_fill(~keep, neg).max(dim=1).values  # [B, H]
        return out.masked_fill(~mask.any(dim=1, keepdim=True), 0.0)
    if mode == "weighted_mean":
        weights = (mask.long().cumsum(dim=1) * mask).to(hidden.dtype)  # [B, L]: 1..n over kept tokens, 0 elsewhere
    else:
        weights = mask.to(hidden.dtype)
    summed = (hidden.masked_fill(~keep, 0.0) * weights.unsqueeze(-1)).sum(dim=1)  # [B, H]
    if mode == "mean":
        return summed / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    if mode == "mean_sqrt_len":
        return summed / weights.sum(dim=1, keepdim=True).clamp(min=1.0).sqrt()
    if mode == "weighted_mean":
        return summed / weights.sum(dim=1, keepdim=True).clamp(min=1.0)
    raise ValueError(f"unknown pooling mode {mode!r}; choose one of {', '.join(POOLING_MODES)}")


class Pooling(nn.Module):
    """Module form of :func:`pool` with multi-layer averaging; holds no parameters."""

    def __init__(self, config: PoolingConfig | None = None) -> None:
        super().__init__()
        self.config = config or PoolingConfig()

    @property
    def needs_hidden_states(self) -> bool:
        """True when the backbone must return all layers (``output_hidden_states=True``)."""
        return self.config.layers > 1

    def forward(
        self,
        hidden_states: Tensor | Sequence[Tensor],
        attention_mask: Tensor,
        prompt_lengths: Tensor | None = None,
    ) -> Tensor:
        """``hidden_states``: the last layer ``[B, L, H]`` or the tuple of all layers; returns ``[B, H]``."""
        if isinstance(hidden_states, Tensor):
            if self.config.layers > 1:
                raise ValueError("multi-layer pooling needs the tuple of all hidden states")
            hidden = hidden_states
        else:
            hidden = average_top_layers(hidden_states, self.config.layers)
        lengths = None if self.config.include_prompt else prompt_lengths
        return pool(hidden, attention_mask, self.config.mode, lengths)

    def extra_repr(self) -> str:
        c = self.config
        return f"mode={c.mode}, layers={c.layers}, include_prompt={c.include_prompt}"
