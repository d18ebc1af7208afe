"""Universal embedder over a vision-language model (VLM2Vec, Jiang et al. 2024).

Every input (a text, an image, or an ``(image, text)`` pair) becomes one prompt: the image placeholder of the backbone
family (:mod:`gpte.multimodal.vlm_adapters`) followed by the instruction text from
:meth:`gpte.multimodal.instructions.InstructionSet.prompt` — the task's query template on the query side, the
candidate prompt of the input's modality on the candidate side (and on both sides when no task is given). The model
reads the prompt and the image jointly; the embedding pools the last layer with the adapter's pooling mode. For
decoder VLMs that is the hidden state at the last real token,

    e = normalise(h^{(L)}_{t*}),   t* = max{t : mask_t = 1},

computed with :func:`gpte.shared.pooling.pool` (``mode="last"``), which finds ``t*`` from the attention mask, so the
left padding used for decoders (they read the batch right-aligned) is handled; the composed encoder backbone
(:mod:`gpte.multimodal.composed`) uses mean pooling over the mask and right padding.

Training: :meth:`UniversalEmbedder.embed_items` embeds loaded items with gradients; a step is any shared-core loss on
query and candidate embeddings, through :func:`gpte.shared.gradcache.cached_step` for batches larger than memory
(:mod:`gpte.multimodal.universal_train`).

Persistence: :meth:`UniversalEmbedder.save` writes ``gpte-universal.json`` (adapter, instruction set, settings), the
model (safetensors, LoRA merged) and the processor; :meth:`UniversalEmbedder.load` reads them back;
:meth:`UniversalEmbedder.from_pretrained` builds an embedder from a local transformers folder (no hub access).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from gpte.multimodal.base import ImageTextEmbedder, Output, is_image_like
from gpte.multimodal.instructions import InstructionSet
from gpte.multimodal.vlm_adapters import VLMAdapter, VLMAdapterError, adapter_for_model_type, get_vlm_adapter
from gpte.shared.errors import InvalidInputError, ModelNotFoundError
from gpte.shared.pooling import pool

__all__ = ["UniversalEmbedder", "MANIFEST"]

logger = logging.getLogger(__name__)

MANIFEST = "gpte-universal.json"
FORMAT_VERSION = 1
Side = Literal["query", "candidate"]


def _config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    if config is None:
        raise VLMAdapterError(f"{type(model).__name__} has no .config; pass a transformers vision-language model")
    return config


class UniversalEmbedder(ImageTextEmbedder):
    """Texts, images and image+text inputs through one decoder VLM; see the module docstring.

    ``adapter``: a registered adapter name or instance; ``None`` picks one by ``model.config.model_type``.
    The processor's tokenizer is switched to the adapter's padding side (left for decoders).
    """

    text_batch_size = 32
    image_batch_size = 16

    def __init__(self, model: nn.Module, processor: Any, instructions: InstructionSet | None = None,
                 adapter: str | VLMAdapter | None = None, *, name: str = "", source: str = "") -> None:
        config = _config(model)
        if adapter is None:
            adapter = adapter_for_model_type(getattr(config, "model_type", "?"))
        elif isinstance(adapter, str):
            adapter = get_vlm_adapter(adapter)
        if processor is None or getattr(processor, "tokenizer", None) is None or \
                getattr(processor, "image_processor", None) is None:
            raise VLMAdapterError(
                f"a universal embedder needs the backbone's processor (tokenizer + image processor), got "
                f"{type(processor).__name__}; load it with transformers.AutoProcessor.from_pretrained(<model folder>) "
                f"and pass processor=...")
        self.model = model
        self.processor = processor
        self.adapter = adapter
        self.instructions = instructions or InstructionSet()
        self.name = name or getattr(config, "_name_or_path", "") or type(model).__name__
        self.source = source
        processor.tokenizer.padding_side = adapter.padding_side  # decoders: left, so the last token sits at L-1

    # ------------------------------------------------------------------ ImageTextEmbedder
    @property
    def embed_dim(self) -> int:
        return int(_config(self.model).get_text_config().hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def embed_texts(self, texts: list[str]) -> Tensor:
        return self._embed([self._prompt("candidate", None, None, t) for t in texts], [[] for _ in texts])

    def embed_images(self, images: list[Any]) -> Tensor:
        return self._embed([self._prompt("candidate", None, img, None) for img in images], [[img] for img in images])

    def embed_pairs(self, images: list[Any], texts: list[str]) -> Tensor:
        """Image and text read jointly by the model (no late fusion)."""
        return self._embed([self._prompt("candidate", None, i, t) for i, t in zip(images, texts, strict=True)],
                           [[img] for img in images])

    def identity(self) -> dict[str, Any]:
        """name, source, modality, dim, fingerprint (blake2b-16 over config JSON, instruction set and weights)."""
        h = hashlib.blake2b(digest_size=16)
        h.update(_canonical_config(_config(self.model)).encode())
        h.update(json.dumps(self.instructions.to_dict(), sort_keys=True).encode())
        for key, tensor in sorted(self.model.state_dict().items()):
            h.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
            h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return {"name": self.name, "source": self.source, "modality": "multimodal", "dim": self.embed_dim,
                "fingerprint": h.hexdigest(), "adapter": self.adapter.name}

    # ------------------------------------------------------------------ queries and documents
    def encode_query(self, inputs: Any, *, task: str | None = None, normalize: bool = True,
                     output: Output = "numpy", batch_size: int | None = None, **_: Any) -> np.ndarray | Tensor:
        """Embed queries with ``task``'s instruction (no task: the candidate prompt of each input's modality)."""
        return self._encode(inputs, "query", task, normalize, output, batch_size)

    def encode_document(self, inputs: Any, *, task: str | None = None, normalize: bool = True,
                        output: Output = "numpy", batch_size: int | None = None, **_: Any) -> np.ndarray | Tensor:
        """Embed candidates with the candidate prompt; ``task`` only checks that they carry the modality it needs."""
        return self._encode(inputs, "candidate", task, normalize, output, batch_size)

    def embed_items(self, items: list[Any], side: Side = "candidate", task: str | None = None) -> Tensor:
        """``[n, D]`` pooled, unnormalised embeddings of already-loaded items (str, PIL image, ``(image, str)``; a
        backbone that accepts them, such as the composed one, also takes precomputed image-feature tensors in place
        of images), with gradients when enabled: the training entry point, and the encoder of a
        :class:`gpte.shared.gradcache.Tower` for gradient-cached steps."""
        prompts, images = self._prompts(items, side, task)
        return self._embed(prompts, images)

    def build_inputs(self, inputs: list[Any], side: Side = "candidate", task: str | None = None) -> dict[str, Any]:
        """The processor output for already-loaded inputs (str, PIL image or (PIL image, str)); for inspection."""
        prompts, images = self._prompts(inputs, side, task)
        return self.adapter.build_inputs(self.processor, prompts, images)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write manifest, model (safetensors; a LoRA adapter is merged in) and processor to ``path`` atomically."""
        from gpte.shared.adapters import has_adapter
        from gpte.shared.fsio import atomic_directory

        model = self.model.get_base_model() if has_adapter(self.model) else self.model
        with atomic_directory(path) as tmp:
            self.adapter.save_backbone(self.model, self.processor, tmp)
            manifest = {"format": FORMAT_VERSION, "adapter": self.adapter.name, "model_class": type(model).__name__,
                        "instructions": self.instructions.to_dict(),
                        "settings": {"name": self.name, "source": self.source}}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        logger.info("saved universal embedder %s to %s", self.name, path)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device | None = None) -> UniversalEmbedder:
        """Read an embedder written by :meth:`save`."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise ModelNotFoundError(f"{path} holds no {MANIFEST}; save one with UniversalEmbedder.save, or build "
                                     "from a transformers folder with UniversalEmbedder.from_pretrained")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"{manifest_path}: unsupported format {manifest.get('format')!r} "
                             f"(this gpte reads {FORMAT_VERSION})")
        adapter = get_vlm_adapter(manifest["adapter"])
        model, processor = adapter.load_backbone(path, manifest.get("model_class"))
        if device is not None:
            model = model.to(device)
        settings = manifest.get("settings", {})
        return cls(model, processor, InstructionSet.from_dict(manifest["instructions"]), adapter,
                   name=settings.get("name", ""), source=settings.get("source", str(path)))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike[str], adapter: str | None = None,
                        instructions: InstructionSet | None = None) -> UniversalEmbedder:
        """Build from a LOCAL transformers folder (config, weights, processor files); never contacts a hub."""
        path = Path(path)
        if not path.is_dir():
            raise ModelNotFoundError(f"{path} is not a local folder; UniversalEmbedder.from_pretrained reads local "
                                     "transformers folders only (download the model first)")
        if (path / MANIFEST).is_file():
            return cls.load(path)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, local_files_only=True)
        resolved = get_vlm_adapter(adapter) if adapter else adapter_for_model_type(config.model_type)
        model, processor = resolved.load_backbone(path, None)
        return cls(model, processor, instructions, resolved, source=str(path))

    # ------------------------------------------------------------------ internals
    def _prompt(self, side: Side, task: str | None, image: Any, text: str | None) -> str:
        has_image, has_text = image is not None, bool(text)
        words = self.instructions.prompt(side, task, has_image, has_text, text or "")
        return f"{self.adapter.image_token(self.processor)}{words}" if has_image else words

    def _prompts(self, inputs: list[Any], side: Side, task: str | None) -> tuple[list[str], list[list[Any]]]:
        prompts, images = [], []
        for item in inputs:
            if isinstance(item, str):
                image, text = None, item
            elif isinstance(item, tuple):
                image, text = item
            else:
                image, text = item, None
            prompts.append(self._prompt(side, task, image, text))
            images.append([] if image is None else [image])
        return prompts, images

    def _embed(self, prompts: list[str], images: list[list[Any]]) -> Tensor:
        """``[n, D]`` last-token states (unnormalised; gradients flow when enabled)."""
        batch = self.adapter.build_inputs(self.processor, prompts, images)
        device = self.device
        batch = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}
        out = self.model(**batch, **self.adapter.forward_kwargs, output_hidden_states=True, return_dict=True)
        return pool(out.hidden_states[-1], batch["attention_mask"], self.adapter.pooling)  # [n, D]

    @torch.inference_mode()
    def _encode(self, inputs: Any, side: Side, task: str | None, normalize: bool, output: Output,
                batch_size: int | None) -> np.ndarray | Tensor:
        single = isinstance(inputs, str | tuple) or is_image_like(inputs)
        items = [inputs] if single else list(inputs)
        problems: dict[int, str] = {}
        loaded: list[Any] = []
        for i, item in enumerate(items):
            try:
                loaded.append(self._load_item(item))
            except InvalidInputError as exc:
                problems[i] = next(iter(exc.problems.values()))
                loaded.append(None)
            except ValueError as exc:
                problems[i] = str(exc)
                loaded.append(None)
        if problems:
            raise InvalidInputError(problems, len(items))
        prompts, images = self._prompts(loaded, side, task)  # raises InstructionInputError on a wrong modality
        step = batch_size or self.image_batch_size
        parts = [self._embed(prompts[s:s + step], images[s:s + step]).float().cpu()
                 for s in range(0, len(prompts), step)]
        out = torch.cat(parts) if parts else torch.zeros(0, self.embed_dim)
        return self._finish(out, single, normalize, output)

    def _load_item(self, item: Any) -> Any:
        if isinstance(item, str):
            if not item.strip():
                raise ValueError("empty or whitespace-only text")
            return item
        if isinstance(item, tuple) and len(item) == 2 and is_image_like(item[0]) and isinstance(item[1], str):
            return self.load_images([item[0]])[0], item[1]
        if is_image_like(item):
            return self.load_images([item])[0]
        raise ValueError(f"expected a text (str), an image (Path, PIL image, array, bytes) or an (image, text) "
                         f"tuple, got {type(item).__name__}")


_VOLATILE_CONFIG_KEYS = frozenset({"_name_or_path", "dtype", "torch_dtype", "transformers_version"})


def _canonical_config(config: Any) -> str:
    """Config JSON without the keys that change on a save/load round trip (path, dtype, library version); the
    weights' dtypes enter the fingerprint with the tensors."""

    def strip(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items() if k not in _VOLATILE_CONFIG_KEYS}
        return obj

    return json.dumps(strip(config.to_dict()), sort_keys=True, default=str)
