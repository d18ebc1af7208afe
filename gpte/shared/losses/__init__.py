"""The contrastive core's losses: pure functions of embeddings, and thin modules around them.

The learnable logit scale (``scale = 1/τ``) and the sigmoid bias are the model's (:mod:`gpte.shared.scale`); every
loss takes them as arguments. InfoNCE and the sigmoid loss have a blockwise form (``block_size=``) that never
materialises the batch × batch score matrix, and distributed forms in :mod:`gpte.shared.distributed`.
"""

from __future__ import annotations

from gpte.shared.losses.distill import kl_distillation
from gpte.shared.losses.graded import angle_loss, angle_similarity, cosent_loss
from gpte.shared.losses.infonce import info_nce
from gpte.shared.losses.matryoshka import Matryoshka
from gpte.shared.losses.modules import AnglELoss, CoSENTLoss, InfoNCELoss, KLDistillationLoss, SigmoidLoss
from gpte.shared.losses.sigmoid import sigmoid_loss

__all__ = [
    "info_nce",
    "sigmoid_loss",
    "cosent_loss",
    "angle_loss",
    "angle_similarity",
    "kl_distillation",
    "Matryoshka",
    "InfoNCELoss",
    "SigmoidLoss",
    "CoSENTLoss",
    "AnglELoss",
    "KLDistillationLoss",
]
