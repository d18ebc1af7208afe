"""Distillation of a teacher's (e.g. a cross-encoder's) scores into the embedding model's similarities."""

from __future__ import annotations

import torch
from torch import Tensor

from gpte.shared.losses._checks import Similarity, as_scalar, check_finite, check_pair, check_similarity, prepare

__all__ = ["kl_distillation"]

_LOSS = "kl_distillation"


def kl_distillation(
    q: Tensor,
    docs: Tensor,
    teacher_scores: Tensor,
    *,
    scale: Tensor | float,
    teacher_temperature: float = 1.0,
    similarity: Similarity = "cosine",
) -> Tensor:
    r"""KL divergence from the teacher's distribution over each query's ``N`` documents to the student's.

    ::

        p_t = softmax(teacher_scores / teacher_temperature),   p_s = softmax(scale · sim(q_i, docs_in))
        L = (1/B) Σ_i Σ_n p_t,in (log p_t,in − log p_s,in)

    (Hinton et al. 2015; as in RocketQAv2, Ren et al. 2021, and the listwise distillation of many retrievers.) The
    student's ``scale = 1/τ``; ``teacher_temperature`` softens the teacher. Shapes ``q [B, D]``, ``docs [B, N, D]``
    (usually the positive and its hard negatives), ``teacher_scores [B, N]``.
    """
    check_similarity(similarity)
    if docs.ndim != 3 or docs.shape[0] != q.shape[0] or docs.shape[2] != q.shape[-1]:
        raise ValueError(f"{_LOSS}: `docs` must be [B, N, D] to match `q` {tuple(q.shape)}, got {tuple(docs.shape)}")
    if tuple(teacher_scores.shape) != tuple(docs.shape[:2]):
        raise ValueError(
            f"{_LOSS}: `teacher_scores` must be {tuple(docs.shape[:2])}, got {tuple(teacher_scores.shape)}"
        )
    if teacher_temperature <= 0:
        raise ValueError(f"{_LOSS}: teacher_temperature must be > 0, got {teacher_temperature}")
    check_pair(_LOSS, q, docs[:, 0, :], names=("q", "docs"))
    check_finite(_LOSS, "docs", docs)
    check_finite(_LOSS, "teacher_scores", teacher_scores)
    qp, dp = prepare(q, similarity), prepare(docs, similarity)
    student = as_scalar(scale, qp) * torch.einsum("bd,bnd->bn", qp, dp)  # [B, D] · [B, N, D] → [B, N]
    log_s = torch.log_softmax(student, dim=-1)
    log_t = torch.log_softmax(teacher_scores.to(student.dtype) / teacher_temperature, dim=-1)
    return (log_t.exp() * (log_t - log_s)).sum(dim=-1).mean()
