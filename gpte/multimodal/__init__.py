"""Image–text and universal embedders: dual towers (LiT/CLIP-style), open_clip models, image–text search.

Every embedder here implements :class:`gpte.multimodal.base.ImageTextEmbedder` (texts, images and (image, text)
pairs into one space) and trains through the shared contrastive core (:mod:`gpte.shared.losses`,
:mod:`gpte.shared.gradcache`).
"""

from __future__ import annotations

from gpte.multimodal.base import ImageTextEmbedder, is_image_like
from gpte.multimodal.search import ImageHit, ImageIndexReport, ImageSearch

__all__ = ["ImageTextEmbedder", "ImageHit", "ImageIndexReport", "ImageSearch", "is_image_like"]
