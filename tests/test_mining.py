"""Hard-negative mining: never the positive, rank windows and margins respected (hand-made vectors)."""

from __future__ import annotations

import numpy as np
import pytest

import gpte
from gpte.shared.data import ContrastiveDataset, Example
from gpte.shared.mining import mine_hard_negatives


class TableEncoder:
    """Embeds texts by looking them up: similarities are known exactly."""

    def __init__(self, table):
        self.table = table

    def encode(self, texts, **_):
        return np.stack([self.table[t] for t in texts]).astype(np.float32)


def _vec(angle_deg):
    a = np.deg2rad(angle_deg)
    return np.array([np.cos(a), np.sin(a), 0.0, 0.0])


def _setup():
    # query q at 0°; its positive at 20°; candidates at 5°, 10°, 30°, 40°, 60°, 90°
    table = {"q": _vec(0), "pos": _vec(20), "near": _vec(5), "close": _vec(10), "n30": _vec(30), "n40": _vec(40),
             "n60": _vec(60), "n90": _vec(90), "q2": _vec(180), "pos2": _vec(170)}
    ds = ContrastiveDataset([Example("q", "pos"), Example("q2", "pos2")], "t")
    corpus = ["pos", "near", "close", "n30", "n40", "n60", "n90", "pos2"]
    return TableEncoder(table), ds, corpus


def test_never_returns_the_positive_and_takes_the_hardest():
    model, ds, corpus = _setup()
    mined = mine_hard_negatives(model, ds, corpus + ["pos"], num_negatives=3)
    assert mined.examples[0].negatives == ("near", "close", "n30")  # ranks 0..: pos (skipped), near, close, n30
    for ex in mined.examples:
        assert ex.positive not in ex.negatives and ex.query not in ex.negatives


def test_rank_window_and_margins():
    model, ds, corpus = _setup()
    assert mine_hard_negatives(model, ds, corpus, num_negatives=2, rank_window=(3, 8)).examples[0].negatives == (
        "n30", "n40")
    # absolute margin 0.05: cos(q, n) <= cos(20°) - 0.05 = 0.890 → 30° (0.866) is the first allowed
    out = mine_hard_negatives(model, ds, corpus, num_negatives=2, margin=0.05).examples[0]
    assert out.negatives == ("n30", "n40")
    # relative margin 0.2: cos <= 0.940 * 0.8 = 0.752 → 40° (0.766) is too close, 60° (0.5) passes
    out = mine_hard_negatives(model, ds, corpus, num_negatives=1, relative_margin=0.2).examples[0]
    assert out.negatives == ("n60",)
    with pytest.raises(ValueError, match="rank_window"):
        mine_hard_negatives(model, ds, corpus, rank_window=(5, 5))


def test_mining_with_a_real_encoder_runs_through_the_index():
    model = gpte.load("test-bert", device="cpu")
    ds = ContrastiveDataset([Example(f"query {i}", f"document number {i}") for i in range(30)], "t")
    mined = mine_hard_negatives(model, ds, num_negatives=2, rank_window=(0, 10), backend="faiss")
    assert all(len(ex.negatives) == 2 and ex.positive not in ex.negatives for ex in mined.examples)
