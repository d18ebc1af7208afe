"""PNG figures for evaluation results; matplotlib is optional and imported only when a figure is drawn.

Figures are drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure`` on the Agg canvas), never
through ``pyplot``, so no global figure state or interactive backend is touched, and are written atomically.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpte.shared.fsio import atomic_write_bytes

__all__ = ["MATPLOTLIB_HINT", "matplotlib_available", "plot_recall_curve", "plot_score_histogram", "plot_sts"]

logger = logging.getLogger(__name__)

MATPLOTLIB_HINT = "evaluation figures need matplotlib: `pip install matplotlib` (or pass plots=False)"


def _figure(**kwargs: Any) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(MATPLOTLIB_HINT) from exc
    return Figure(**kwargs)


def matplotlib_available() -> bool:
    """Whether figures can be drawn (matplotlib importable)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    logger.info("wrote figure %s", path)
    return path


def plot_recall_curve(
    recall: Sequence[float], path: str | os.PathLike[str], title: str = "Recall@k", marks: Sequence[int] = ()
) -> Path:
    """Mean recall@k against k (``recall[i]`` is recall@(i+1)), log-scaled k axis; ``marks`` are k values to
    annotate (e.g. the evaluator's ``k_values``). Returns ``path``."""
    r = np.asarray(recall, dtype=np.float64)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"recall must be a non-empty 1-D sequence, got shape {r.shape}")
    ks = np.arange(1, r.size + 1)
    fig = _figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    ax.plot(ks, r, marker="." if r.size <= 20 else None, color="tab:blue")
    shown = [k for k in marks if 1 <= k <= r.size]
    if shown:
        ax.plot(shown, [r[k - 1] for k in shown], "o", color="tab:red", markersize=4)
        table = "\n".join(f"R@{k:<4d} {r[k - 1]:.3f}" for k in shown)
        ax.text(0.98, 0.03, table, transform=ax.transAxes, ha="right", va="bottom", family="monospace", fontsize=8,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8})
    if r.size > 1:
        ax.set_xscale("log")
    ax.set_xlabel("k (documents retrieved)")
    ax.set_ylabel("mean recall@k")
    ax.set_ylim(0.0, 1.02)
    ax.grid(True, alpha=0.3)
    ax.set_title(title)
    return _save(fig, path)


def plot_score_histogram(
    positive: Sequence[float],
    negative: Sequence[float],
    path: str | os.PathLike[str],
    title: str = "Similarity of positive and negative pairs",
    xlabel: str = "cosine similarity",
    threshold: float | None = None,
    labels: tuple[str, str] = ("positive", "negative"),
) -> Path:
    """Overlaid histograms (shared bins, density-normalised) of positive- and negative-pair similarities, with an
    optional vertical line at a decision ``threshold``. Returns ``path``."""
    pos = np.asarray(positive, dtype=np.float64)
    neg = np.asarray(negative, dtype=np.float64)
    if pos.size + neg.size == 0:
        raise ValueError("no scores to plot")
    both = np.r_[pos, neg]
    lo, hi = float(both.min()), float(both.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1e-6, 41)
    fig = _figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    if pos.size:
        ax.hist(pos, bins=bins, alpha=0.55, density=True, color="tab:green", label=f"{labels[0]} (n={pos.size})")
    if neg.size:
        ax.hist(neg, bins=bins, alpha=0.55, density=True, color="tab:red", label=f"{labels[1]} (n={neg.size})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_sts(
    similarity: Sequence[float], gold: Sequence[float], path: str | os.PathLike[str], title: str = "STS",
    spearman: float | None = None,
) -> Path:
    """Two panels: predicted similarity against the gold score (scatter), and histograms of the predicted
    similarity for pairs whose gold score is in the upper half of the gold range against the lower half."""
    s = np.asarray(similarity, dtype=np.float64)
    g = np.asarray(gold, dtype=np.float64)
    if s.shape != g.shape or s.size == 0:
        raise ValueError(f"similarity {s.shape} and gold {g.shape} must be non-empty and equally long")
    fig = _figure(figsize=(10.0, 4.0))
    ax1, ax2 = fig.subplots(1, 2)
    ax1.scatter(g, s, s=8, alpha=0.5)
    ax1.set_xlabel("gold score")
    ax1.set_ylabel("cosine similarity")
    ax1.set_title(title if spearman is None else f"{title} (Spearman {spearman:.3f})")
    ax1.grid(True, alpha=0.3)
    mid = (g.min() + g.max()) / 2.0
    hi, lo = s[g > mid], s[g <= mid]
    bins = np.linspace(s.min(), s.max() if s.max() > s.min() else s.min() + 1e-6, 31)
    if hi.size:
        ax2.hist(hi, bins=bins, alpha=0.55, density=True, color="tab:green", label=f"gold > {mid:.2f} (n={hi.size})")
    if lo.size:
        ax2.hist(lo, bins=bins, alpha=0.55, density=True, color="tab:red", label=f"gold <= {mid:.2f} (n={lo.size})")
    ax2.set_xlabel("cosine similarity")
    ax2.set_ylabel("density")
    ax2.legend(fontsize=8)
    ax2.set_title("similarity by gold half")
    return _save(fig, path)
