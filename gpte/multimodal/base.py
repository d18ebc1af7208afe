"""The interface every image–text embedder shares (dual towers, open_clip models, universal VLM embedders).

Inputs are texts (``str``), images (a path as :class:`pathlib.Path`, a :class:`PIL.Image.Image`, an ``HxWxC`` uint8
array or raw ``bytes``) or an image with text (a ``(image, text)`` tuple, e.g. "this shirt, but in red"). A plain
``str`` is always text: pass image paths as ``Path`` objects to :meth:`encode`, or as strings to
:meth:`encode_image`.

Subclasses implement two batch methods, :meth:`embed_texts` and :meth:`embed_images` (pre-processed, loaded
images → ``[n, D]`` tensors); this base class does the rest: loading and validating images
(:func:`gpte.unimodal.image_io.load_image`), batching, normalisation, dispatch by input type and composed queries.
A composed ``(image, text)`` input is embedded as ``normalise(normalise(e_image) + normalise(e_text))`` by default
(the late-fusion baseline of composed image retrieval, e.g. Baldrati et al. 2022); a universal embedder that reads
both jointly overrides :meth:`embed_pairs`.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from gpte.shared.errors import InvalidInputError

__all__ = ["ImageTextEmbedder", "ImageLike", "is_image_like"]

ImageLike = Any  # Path | PIL.Image.Image | np.ndarray | bytes (and str for encode_image)
Output = Literal["numpy", "torch"]


def is_image_like(item: object) -> bool:
    """True for inputs :meth:`ImageTextEmbedder.encode` treats as an image (not ``str``, which is text)."""
    if isinstance(item, os.PathLike | bytes | bytearray | np.ndarray):
        return True
    return type(item).__module__.startswith("PIL.")


def _load_all(images: Sequence[ImageLike]) -> tuple[list[Any], dict[int, str]]:
    """Load each image as RGB; returns the loaded ones and position → reason for those that fail."""
    from gpte.unimodal.image_io import ImageInputError, load_image

    loaded, problems = [], {}
    for i, item in enumerate(images):
        try:
            loaded.append(load_image(item))
        except ImageInputError as exc:
            problems[i] = exc.reason
    return loaded, problems


class ImageTextEmbedder(ABC):
    """Texts and images into one space; see the module docstring for inputs and composed queries."""

    modality = "multimodal"
    source: str = ""
    text_batch_size = 256
    image_batch_size = 32

    # ------------------------------------------------------------------ what a subclass provides
    @property
    @abstractmethod
    def embed_dim(self) -> int: ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def embed_texts(self, texts: list[str]) -> Tensor:
        """``[n, D]`` embeddings of ``texts`` (any norm; gradients allowed)."""

    @abstractmethod
    def embed_images(self, images: list[Any]) -> Tensor:
        """``[n, D]`` embeddings of loaded RGB PIL images (any norm; gradients allowed)."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """name, source, modality, dim, fingerprint: what an index records about the model that filled it."""

    def embed_pairs(self, images: list[Any], texts: list[str]) -> Tensor:
        """``[n, D]`` embeddings of (image, text) inputs: the sum of the two normalised embeddings (the encode methods
        normalise it)."""
        fused = torch.nn.functional.normalize(self.embed_images(images).float(), dim=-1) + \
            torch.nn.functional.normalize(self.embed_texts(texts).float(), dim=-1)
        return fused

    # ------------------------------------------------------------------ encoding
    def load_images(self, images: Sequence[ImageLike]) -> list[Any]:
        """Load every image as RGB (:func:`gpte.unimodal.image_io.load_image`); raise naming every bad item."""
        loaded, problems = _load_all(images)
        if problems:
            raise InvalidInputError(problems, len(images))
        return loaded

    @torch.inference_mode()
    def encode_text(self, texts: str | Sequence[str], *, batch_size: int | None = None, normalize: bool = True,
                    output: Output = "numpy") -> np.ndarray | Tensor:
        """Embed texts (one string → one vector)."""
        from gpte.shared.inputs import validate_texts

        items, single = validate_texts(texts)
        out = self._batched(items, batch_size or self.text_batch_size, self.embed_texts)
        return self._finish(out, single, normalize, output)

    @torch.inference_mode()
    def encode_image(self, images: ImageLike | Sequence[ImageLike], *, batch_size: int | None = None,
                     normalize: bool = True, output: Output = "numpy") -> np.ndarray | Tensor:
        """Embed images: paths (``str`` or ``Path``), PIL images, uint8 arrays or encoded bytes."""
        single = isinstance(images, str | os.PathLike | bytes | bytearray) or is_image_like(images) and not (
            isinstance(images, np.ndarray) and images.ndim == 4)
        items = [images] if single else list(images)  # type: ignore[arg-type]
        loaded = self.load_images([Path(i) if isinstance(i, str) else i for i in items])
        out = self._batched(loaded, batch_size or self.image_batch_size, self.embed_images)
        return self._finish(out, single, normalize, output)

    @torch.inference_mode()
    def encode(self, inputs: Any, *, normalize: bool = True, output: Output = "numpy",
               **_: Any) -> np.ndarray | Tensor:
        """Embed a mix of texts (``str``), images (``Path``, PIL, arrays, bytes) and ``(image, text)`` pairs."""
        single = isinstance(inputs, str | tuple) or is_image_like(inputs)
        items = [inputs] if single else list(inputs)
        if not items:
            return self._finish(torch.zeros(0, self.embed_dim), False, normalize, output)
        kinds: dict[str, list[int]] = {"text": [], "image": [], "pair": []}
        problems: dict[int, str] = {}
        for i, item in enumerate(items):
            if isinstance(item, str):
                if item.strip():
                    kinds["text"].append(i)
                else:
                    problems[i] = "empty or whitespace-only text"
            elif isinstance(item, tuple) and len(item) == 2 and is_image_like(item[0]) and isinstance(item[1], str):
                kinds["pair"].append(i)
            elif is_image_like(item):
                kinds["image"].append(i)
            else:
                problems[i] = (f"expected a text (str), an image (Path, PIL image, array, bytes) or an (image, text) "
                               f"tuple, got {type(item).__name__}")
        images, bad = _load_all([items[i] for i in kinds["image"]])
        pair_images, bad_pairs = _load_all([items[i][0] for i in kinds["pair"]])
        problems.update({kinds["image"][j]: why for j, why in bad.items()})
        problems.update({kinds["pair"][j]: why for j, why in bad_pairs.items()})
        if problems:
            raise InvalidInputError(dict(sorted(problems.items())), len(items))
        out = torch.empty(len(items), self.embed_dim)
        if kinds["text"]:
            out[kinds["text"]] = self._batched([items[i] for i in kinds["text"]], self.text_batch_size,
                                               self.embed_texts)
        if kinds["image"]:
            out[kinds["image"]] = self._batched(images, self.image_batch_size, self.embed_images)
        if kinds["pair"]:
            pairs = [items[i] for i in kinds["pair"]]
            loaded = pair_images
            texts = [p[1] for p in pairs]
            parts = [self.embed_pairs(loaded[s:s + self.image_batch_size], texts[s:s + self.image_batch_size])
                     .float().cpu() for s in range(0, len(pairs), self.image_batch_size)]
            out[kinds["pair"]] = torch.cat(parts)
        return self._finish(out, single, normalize, output)

    def encode_query(self, inputs: Any, **kwargs: Any) -> np.ndarray | Tensor:
        """Queries and documents are embedded alike by a dual-tower model (see :meth:`encode`)."""
        return self.encode(inputs, **kwargs)

    def encode_document(self, inputs: Any, **kwargs: Any) -> np.ndarray | Tensor:
        return self.encode(inputs, **kwargs)

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _batched(items: list[Any], batch_size: int, fn: Any) -> Tensor:
        parts = [fn(items[s:s + batch_size]).float().cpu() for s in range(0, len(items), batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0, 0)

    def _finish(self, out: Tensor, single: bool, normalize: bool, output: Output) -> np.ndarray | Tensor:
        if output not in ("numpy", "torch"):
            raise ValueError(f"output must be 'numpy' or 'torch' (got {output!r})")
        if normalize and out.numel():
            out = torch.nn.functional.normalize(out, dim=-1)
        if single:
            out = out[0]
        return out.numpy() if output == "numpy" else out
