"""Hard-negative mining with the current model or a teacher, through gpte's vector index.

For each query the corpus is ranked by the miner's similarity; a candidate becomes a hard negative when

* its rank lies in ``rank_window = (start, stop)`` (0-based, ranks above ``start`` are skipped: the very top is
  where unlabelled positives hide, as in NV-Retriever, Moreira et al. 2024), and
* it is not a positive of the query (by text), and
* its score leaves a margin to the positive's score: ``s(q, n) <= s(q, p) - margin`` (absolute) and/or
  ``s(q, n) <= s(q, p) · (1 - relative_margin)`` (relative; NV-Retriever's "TopK-PercPos" with 1 - 0.95 = 0.05).

The hardest ``num_negatives`` surviving candidates are kept. The corpus defaults to every positive and negative text
of the examples. Queries get the dataset's query instruction and documents its document instruction, as in training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from gpte.shared.data import ContrastiveDataset, Example

__all__ = ["mine_hard_negatives"]

logger = logging.getLogger(__name__)


def mine_hard_negatives(
    model: Any,
    dataset: ContrastiveDataset,
    corpus: Sequence[str] | None = None,
    *,
    num_negatives: int = 3,
    rank_window: tuple[int, int] = (0, 50),
    margin: float | None = None,
    relative_margin: float | None = None,
    backend: str = "exact",
    batch_size: int | None = None,
    keep_existing: bool = False,
) -> ContrastiveDataset:
    """Return a copy of ``dataset`` whose examples carry mined hard negatives (see the module docstring).

    Examples for which fewer than ``num_negatives`` candidates survive keep what was found (counted in the log).
    """
    start, stop = rank_window
    if not 0 <= start < stop:
        raise ValueError(f"rank_window must satisfy 0 <= start < stop (got {rank_window})")
    if num_negatives < 1:
        raise ValueError(f"num_negatives must be >= 1 (got {num_negatives})")
    from gpte.index import create_index

    examples = dataset.examples
    if corpus is None:
        corpus = list(dict.fromkeys(t for ex in examples for t in (ex.positive, *ex.negatives)))
    else:
        corpus = list(dict.fromkeys(corpus))
    qi, di = dataset.query_instruction, dataset.document_instruction
    enc = {"batch_size": batch_size} if batch_size else {}
    doc_vecs = model.encode([di + t for t in corpus], show_progress=None, **enc)  # [C, D]
    q_vecs = model.encode([qi + ex.query for ex in examples], show_progress=None, **enc)  # [Q, D]
    pos_vecs = model.encode([di + ex.positive for ex in examples], show_progress=None, **enc)  # [Q, D]
    index = create_index(doc_vecs.shape[1], metric="cosine", backend=backend)  # type: ignore[arg-type]
    index.add(list(range(len(corpus))), doc_vecs)
    pos_scores = np.einsum("qd,qd->q", _unit(q_vecs), _unit(pos_vecs))  # [Q] cosine of each query to its positive
    hits = index.search(q_vecs, k=min(stop, len(corpus)))
    positives_of: dict[str, set[str]] = {}
    for ex in examples:
        positives_of.setdefault(ex.query, set()).add(ex.positive)
    out: list[Example] = []
    short = 0
    for ex, row, pos_score in zip(examples, hits, pos_scores, strict=True):
        chosen: list[str] = list(ex.negatives) if keep_existing else []
        forbidden = positives_of[ex.query] | {ex.query}
        for rank, hit in enumerate(row):
            if len(chosen) >= num_negatives + (len(ex.negatives) if keep_existing else 0):
                break
            text = corpus[int(hit.id)]
            if rank < start or text in forbidden or text in chosen:
                continue
            if margin is not None and hit.score > pos_score - margin:
                continue
            if relative_margin is not None and hit.score > pos_score * (1.0 - relative_margin):
                continue
            chosen.append(text)
        if len(chosen) < num_negatives:
            short += 1
        out.append(replace(ex, negatives=tuple(chosen)))
    if short:
        logger.warning("%d of %d queries got fewer than %d hard negatives (window %s, margins %s/%s)",
                       short, len(examples), num_negatives, rank_window, margin, relative_margin)
    return ContrastiveDataset(out, dataset.name, dataset.query_instruction, dataset.document_instruction,
                              dataset.weight, dataset.source)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
