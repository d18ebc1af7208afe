"""Each pooling mode against a hand computation, under right and left padding, with and without prompts."""

from __future__ import annotations

import pytest
import torch

from gpte.shared.pooling import Pooling, PoolingConfig, average_top_layers, pool

# one row of 3 real tokens with 2-d states, padded to length 5 with garbage (NaN) in the padded slots
REAL = torch.tensor([[1.0, 2.0], [3.0, -4.0], [5.0, 0.0]])


def _batch(side: str) -> tuple[torch.Tensor, torch.Tensor]:
    pad = torch.full((2, 2), float("nan"))
    if side == "right":
        hidden, mask = torch.cat([REAL, pad]), torch.tensor([1, 1, 1, 0, 0])
    else:
        hidden, mask = torch.cat([pad, REAL]), torch.tensor([0, 0, 1, 1, 1])
    return hidden[None], mask[None]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("cls", [1.0, 2.0]),
        ("last", [5.0, 0.0]),
        ("mean", [3.0, -2.0 / 3.0]),
        ("max", [5.0, 2.0]),
        ("mean_sqrt_len", [9.0 / 3**0.5, -2.0 / 3**0.5]),
        # SGPT weights 1,2,3 over the real tokens: (1*h1 + 2*h2 + 3*h3) / 6
        ("weighted_mean", [(1 + 6 + 15) / 6.0, (2 - 8 + 0) / 6.0]),
    ],
)
def test_pooling_by_hand(side, mode, expected):
    hidden, mask = _batch(side)
    out = pool(hidden, mask, mode)
    torch.testing.assert_close(out, torch.tensor([expected]))


@pytest.mark.parametrize("side", ["right", "left"])
def test_prompt_tokens_excluded(side):
    hidden, mask = _batch(side)
    # the first real token is the prompt: mean over tokens 2 and 3 only
    out = pool(hidden, mask, "mean", prompt_lengths=torch.tensor([1]))
    torch.testing.assert_close(out, torch.tensor([[4.0, -2.0]]))
    # weighted mean restarts its positions after the prompt: (1*h2 + 2*h3) / 3
    out = pool(hidden, mask, "weighted_mean", prompt_lengths=torch.tensor([1]))
    torch.testing.assert_close(out, torch.tensor([[13.0 / 3.0, -4.0 / 3.0]]))
    # cls and last ignore prompt lengths
    torch.testing.assert_close(pool(hidden, mask, "last", prompt_lengths=torch.tensor([1])), torch.tensor([[5.0, 0.0]]))


def test_rows_of_different_lengths():
    hidden = torch.arange(2 * 3 * 1, dtype=torch.float32).view(2, 3, 1)  # [[0,1,2],[3,4,5]]
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    torch.testing.assert_close(pool(hidden, mask, "mean"), torch.tensor([[0.5], [4.0]]))
    torch.testing.assert_close(pool(hidden, mask, "last"), torch.tensor([[1.0], [5.0]]))


def test_top_layer_average_module():
    layers = tuple(torch.full((1, 2, 2), float(v)) for v in (0.0, 1.0, 2.0, 6.0))
    mask = torch.tensor([[1, 1]])
    torch.testing.assert_close(average_top_layers(layers, 2), torch.full((1, 2, 2), 4.0))
    module = Pooling(PoolingConfig(mode="mean", layers=3))
    assert module.needs_hidden_states
    torch.testing.assert_close(module(layers, mask), torch.full((1, 2), 3.0))
    with pytest.raises(ValueError, match="top 5 layers"):
        Pooling(PoolingConfig(layers=5))(layers, mask)


def test_bad_pooling_config():
    with pytest.raises(ValueError, match="unknown pooling mode 'avg'"):
        PoolingConfig(mode="avg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="layers"):
        PoolingConfig(layers=0)


def test_half_precision_long_inputs_do_not_overflow():
    hidden = torch.randn(1, 400, 8)
    mask = torch.ones(1, 400, dtype=torch.long)
    for mode in ("weighted_mean", "mean", "mean_sqrt_len"):
        ref = pool(hidden, mask, mode)
        half = pool(hidden.half(), mask, mode)
        assert half.dtype == torch.float32
        torch.testing.assert_close(half, ref, atol=2e-3, rtol=2e-3)
