"""Backbone adapters for universal embedders: what differs between vision-language model families, as data.

A universal (VLM2Vec-style, Jiang et al. 2024) embedder feeds one prompt per input to a decoder vision-language
model; the families differ in two things only, and an adapter holds both:

* the text that stands for one image in the prompt (:meth:`VLMAdapter.image_token`): Qwen2-VL writes
  ``<|vision_start|><|image_pad|><|vision_end|>`` and its processor expands ``<|image_pad|>`` to one token per merged
  patch group; Idefics3/SmolVLM writes ``<image>`` and its processor expands it to
  ``<fake_token_around_image><global-img><image>×image_seq_len<fake_token_around_image>``;
* how a batch that mixes items with and without an image reaches the processor (:meth:`VLMAdapter.build_inputs`).
  Both families here accept mixed batches in one call, so no batch is split: Qwen2-VL takes the flat list of the
  batch's images (matched to the placeholders in order), Idefics3 a list of image lists, one per item (empty for a
  text-only item; its processor pads with all-zero images, which the model drops).

Adapters are chosen by ``config.model_type`` (:attr:`VLMAdapter.model_types`), never by if/elif on class names;
:func:`register_vlm_adapter` adds a family. An unknown model type raises :class:`VLMAdapterError` listing the
registered adapters and how to add one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from gpte.shared.errors import GpteError

__all__ = ["VLMAdapter", "VLMAdapterError", "register_vlm_adapter", "get_vlm_adapter", "adapter_for_model_type",
           "registered_vlm_adapters", "Qwen2VLAdapter", "Idefics3Adapter", "ComposedAdapter"]

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[VLMAdapter]] = {}


class VLMAdapterError(GpteError, ValueError):
    """A backbone that no registered adapter serves, or one given without its processor."""


class VLMAdapter:
    """What a universal embedder needs to know about one family of vision-language models."""

    name: ClassVar[str] = ""
    model_types: ClassVar[tuple[str, ...]] = ()  # matched against ``config.model_type``
    model_class: ClassVar[str] = ""  # transformers class that loads the family (used by ``from_pretrained``)
    dropped_inputs: ClassVar[tuple[str, ...]] = ("token_type_ids",)  # processor outputs the model must not get
    # extra forward arguments: logits for the last position only (the LM head is unused; a vocabulary-sized
    # projection of every position would dominate the cost)
    forward_kwargs: ClassVar[dict[str, Any]] = {"logits_to_keep": 1}
    pooling: ClassVar[str] = "last"  # gpte.shared.pooling mode over the last layer (decoders: the last real token)
    padding_side: ClassVar[str] = "left"  # decoders read the batch right-aligned

    def save_backbone(self, model: Any, processor: Any, folder: Path) -> None:
        """Write model and processor into ``folder`` (transformers files; a LoRA adapter is merged into a copy)."""
        import inspect

        from gpte.shared.adapters import has_adapter, merged_copy

        model = merged_copy(model) if has_adapter(model) else model
        kwargs = {"safe_serialization": True} if "safe_serialization" in \
            inspect.signature(model.save_pretrained).parameters else {}  # transformers 5 always writes safetensors
        model.save_pretrained(folder, **kwargs)
        processor.save_pretrained(folder)

    def load_backbone(self, folder: Path, model_class: str | None) -> tuple[Any, Any]:
        """Model (eval mode) and processor from a local transformers folder; the class is the recorded one, else
        :attr:`model_class`."""
        import transformers

        cls_name = model_class or self.model_class
        model_cls = getattr(transformers, cls_name, None)
        if model_cls is None or not issubclass(model_cls, transformers.PreTrainedModel):
            raise VLMAdapterError(f"transformers {transformers.__version__} has no model class {cls_name!r} "
                                  f"(adapter {self.name!r}); upgrade transformers")
        model = model_cls.from_pretrained(folder, local_files_only=True).eval()
        try:
            processor = transformers.AutoProcessor.from_pretrained(folder, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise VLMAdapterError(f"{folder} has no usable processor files ({exc}); save the processor beside the "
                                  "model with processor.save_pretrained(<folder>)") from exc
        return model, processor

    def image_token(self, processor: Any) -> str:
        """The text that stands for one image in a prompt (the processor expands it)."""
        raise NotImplementedError

    def build_inputs(self, processor: Any, texts: list[str], images_per_item: list[list[Any]]) -> dict[str, Any]:
        """Processor output (``return_tensors="pt"``, padded) for ``texts``; ``images_per_item[i]`` are item i's
        images, in the order of their placeholders in ``texts[i]`` (empty for a text-only item)."""
        raise NotImplementedError

    def _finish(self, batch: Any) -> dict[str, Any]:
        return {k: v for k, v in dict(batch).items() if k not in self.dropped_inputs}


def register_vlm_adapter(name: str) -> Callable[[type[VLMAdapter]], type[VLMAdapter]]:
    """Class decorator: register an adapter under ``name`` (its ``model_types`` select it automatically)."""

    def wrap(cls: type[VLMAdapter]) -> type[VLMAdapter]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a VLM adapter named {name!r} is already registered ({_REGISTRY[name].__name__})")
        if not cls.model_types:
            raise ValueError(f"VLM adapter {name!r} declares no model_types")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def registered_vlm_adapters() -> dict[str, tuple[str, ...]]:
    """Adapter name → the ``config.model_type`` values it serves."""
    return {name: cls.model_types for name, cls in sorted(_REGISTRY.items())}


def _known() -> str:
    return "; ".join(f"{n} ({', '.join(t)})" for n, t in registered_vlm_adapters().items())


def get_vlm_adapter(name: str) -> VLMAdapter:
    """The adapter registered as ``name``."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise VLMAdapterError(f"no VLM adapter named {name!r}; registered: {_known()}. Add one with "
                              "@register_vlm_adapter(name) on a VLMAdapter subclass") from None


def adapter_for_model_type(model_type: str) -> VLMAdapter:
    """The adapter whose ``model_types`` holds ``model_type``."""
    for cls in _REGISTRY.values():
        if model_type in cls.model_types:
            return cls()
    raise VLMAdapterError(f"no VLM adapter serves model_type {model_type!r}; registered adapters (model types): "
                          f"{_known()}. Pass adapter=<name> to use one of these, or register one with "
                          "@register_vlm_adapter(name) on a VLMAdapter subclass")


def _images_or_none(images_per_item: list[list[Any]]) -> bool:
    return any(len(imgs) for imgs in images_per_item)


@register_vlm_adapter("qwen2-vl")
class Qwen2VLAdapter(VLMAdapter):
    """Qwen2-VL: a placeholder wrapped in vision start/end tokens; the processor takes a flat image list
    and expands ``<|image_pad|>`` to ``t·h·w / merge_size²`` tokens (``image_grid_thw``)."""

    model_types = ("qwen2_vl",)
    model_class = "Qwen2VLForConditionalGeneration"

    def image_token(self, processor: Any) -> str:
        pad = getattr(processor, "image_token", "<|image_pad|>")
        return f"<|vision_start|>{pad}<|vision_end|>"

    def build_inputs(self, processor: Any, texts: list[str], images_per_item: list[list[Any]]) -> dict[str, Any]:
        flat = [img for imgs in images_per_item for img in imgs]
        batch = processor(text=texts, images=flat or None, padding="longest", return_tensors="pt")
        return self._finish(batch)


@register_vlm_adapter("idefics3")
class Idefics3Adapter(VLMAdapter):
    """Idefics3 (SmolVLM's predecessor; register ``smolvlm`` separately once tested): ``<image>`` in the text; the processor takes one image list per item (empty lists for
    text-only items are padded with zero images that the model skips)."""

    model_types = ("idefics3",)
    model_class = "Idefics3ForConditionalGeneration"

    def image_token(self, processor: Any) -> str:
        return getattr(processor, "image_token", "<image>")

    def build_inputs(self, processor: Any, texts: list[str], images_per_item: list[list[Any]]) -> dict[str, Any]:
        images = [list(imgs) for imgs in images_per_item] if _images_or_none(images_per_item) else None
        batch = processor(text=texts, images=images, padding="longest", return_tensors="pt")
        return self._finish(batch)


@register_vlm_adapter("composed")
class ComposedAdapter(VLMAdapter):
    """gpte's composed backbone (:class:`gpte.multimodal.composed.ComposedVLM`): an image encoder's features as
    visual tokens in a bidirectional text encoder. Its processor repeats the placeholder once per visual token and
    takes one flat image list (PIL images, or precomputed feature tensors); mean pooling, right padding."""

    model_types = ("gpte_composed",)
    model_class = "ComposedVLM"
    forward_kwargs: ClassVar[dict[str, Any]] = {}
    pooling: ClassVar[str] = "mean"  # the text encoder was trained with mean pooling
    padding_side: ClassVar[str] = "right"  # absolute positions: keep the text where the encoder expects it

    def image_token(self, processor: Any) -> str:
        return processor.image_token

    def build_inputs(self, processor: Any, texts: list[str], images_per_item: list[list[Any]]) -> dict[str, Any]:
        return dict(processor(text=texts, images=[img for imgs in images_per_item for img in imgs]))

    def save_backbone(self, model: Any, processor: Any, folder: Path) -> None:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)

    def load_backbone(self, folder: Path, model_class: str | None) -> tuple[Any, Any]:
        from gpte.multimodal.composed import ComposedVLM

        return ComposedVLM.from_pretrained(folder)
