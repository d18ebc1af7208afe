"""A small vision-language backbone composed from pretrained parts: image features as visual tokens in a text encoder.

The universal embedder (:mod:`gpte.multimodal.universal`) reads prompts in which an image stands among words. Where
no vision-language model is at hand, :class:`ComposedVLM` builds one from an image encoder and a text encoder, the
LLaVA recipe (Liu et al. 2023) on a bidirectional encoder:

* the frozen image encoder's last feature map ``F ∈ R^{C×h×w}`` becomes ``T = 1 + g²`` visual features: its global
  mean and its ``g×g`` adaptive average pool (``grid = g``), ``v ∈ R^{T×C}``;
* a trainable projector (two-layer MLP with GELU, or linear) maps each into the text encoder's input-embedding space,
  ``z_t = W_2 GELU(W_1 v_t)`` (``R^C → R^H``);
* the processor writes the image placeholder ``T`` times; the model swaps the word embeddings at those positions for
  ``z_1..z_T`` in order (``inputs_embeds``), so images and instruction text interleave freely; the text encoder adds
  its position and segment embeddings and reads the whole sequence jointly;
* the universal embedder pools the last layer (mean over the attention mask, as the text encoder was trained).

Only the projector trains, plus optionally a LoRA adapter on the text encoder (``lora_r``) or the whole text encoder
(``tune_text``); the image encoder stays frozen, so its
features (:meth:`ComposedVLM.image_features`) can be computed once per image and fed back as ``image_features``.

Storage (:meth:`ComposedVLM.save_pretrained`): ``composed.json`` (this config, with the fingerprints of both base
encoders) and ``composed.safetensors`` holding the projector, plus the text encoder's adapter weights, or the whole
text encoder when it was tuned without an adapter. The bases load from their registry names or folders, and their
fingerprints are checked, so a changed base is an error rather than silently different embeddings.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from gpte.shared.errors import GpteError, ModelNotFoundError

__all__ = ["ComposedConfig", "ComposedVLM", "ComposedProcessor", "ComposedModelError", "CONFIG_NAME",
           "WEIGHTS_NAME"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "composed.json"
WEIGHTS_NAME = "composed.safetensors"
PROCESSOR_NAME = "composed-processor.json"
FORMAT_VERSION = 1


class ComposedModelError(GpteError, ValueError):
    """A composed model that cannot be built or loaded as asked (the message names the fix)."""


@dataclass
class ComposedConfig:
    text_model: str = "minilm"  # registry name or folder of a gpte text encoder (the language side)
    image_model: str = "efficientnet-lite0"  # registry name or folder of a gpte image encoder (frozen)
    grid: int = 2  # visual tokens per image: 1 global + grid² pooled cells
    projector: Literal["mlp", "linear"] = "mlp"  # image feature → input embedding
    image_token: str = "[unused0]"  # a vocabulary entry that stands for one visual token
    max_length: int = 128  # tokens per prompt, visual tokens included
    lora_r: int = 0  # LoRA rank on the text encoder (0: no adapter)
    tune_text: bool = False  # without an adapter: train every text-encoder weight (False: the text encoder is frozen)
    lora_alpha: float = 32.0
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    storage_dtype: Literal["float32", "float16"] = "float32"  # dtype of the saved trainable tensors
    name: str = ""
    # filled when the model is built
    hidden_size: int = 0  # text encoder width (the embedding dimension)
    image_feature_dim: int = 0  # channels of the image encoder's last feature map
    text_fingerprint: str = ""
    image_fingerprint: str = ""

    model_type: ClassVar[str] = "gpte_composed"

    def __post_init__(self) -> None:
        if self.grid < 0:
            raise ValueError(f"grid must be >= 0 (got {self.grid})")
        if self.projector not in ("mlp", "linear"):
            raise ValueError(f"projector must be 'mlp' or 'linear' (got {self.projector!r})")
        if self.storage_dtype not in ("float32", "float16"):
            raise ValueError(f"storage_dtype must be 'float32' or 'float16' (got {self.storage_dtype!r})")
        if self.lora_r < 0:
            raise ValueError(f"lora_r must be >= 0 (got {self.lora_r})")

    @property
    def tokens_per_image(self) -> int:
        return 1 + self.grid * self.grid

    # the transformers-config surface the universal embedder reads
    @property
    def _name_or_path(self) -> str:
        return self.name

    def get_text_config(self) -> ComposedConfig:
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComposedConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ComposedModelError(f"composed config has unknown keys {sorted(unknown)}; written by a newer gpte?")
        return cls(**data)


class ComposedProcessor:
    """Prompts and images → model inputs: expands each image placeholder to the visual-token count, tokenises,
    and turns images into pixels (PIL images) or passes precomputed features (tensors ``[T, C]``) through."""

    def __init__(self, tokenizer: Any, image_processor: Any, image_token: str, tokens_per_image: int,
                 max_length: int) -> None:
        vocab = tokenizer.get_vocab()
        if image_token not in vocab:
            raise ComposedModelError(f"the image token {image_token!r} is not in the text model's vocabulary; pick "
                                     "an unused vocabulary entry (BERT vocabularies have [unused0]...)")
        tokenizer.add_special_tokens({"additional_special_tokens": [image_token]})  # never split or lower-cased
        if len(tokenizer) != len(vocab):
            raise ComposedModelError(f"registering {image_token!r} grew the vocabulary; use an existing entry")
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.image_token = image_token
        self.image_token_id = int(vocab[image_token])
        self.tokens_per_image = tokens_per_image
        self.max_length = max_length

    def __call__(self, text: list[str], images: list[Any] | None = None, padding: str | bool = "longest",
                 return_tensors: str = "pt") -> dict[str, Tensor]:
        images = list(images or [])
        placeholders = [t.count(self.image_token) for t in text]
        if sum(placeholders) != len(images):
            raise ComposedModelError(f"{sum(placeholders)} image placeholders in the prompts but {len(images)} "
                                     "images; give one image per placeholder")
        expanded = [t.replace(self.image_token, self.image_token * self.tokens_per_image) for t in text]
        batch = self.tokenizer(expanded, padding=padding, truncation=True, max_length=self.max_length,
                               return_tensors=return_tensors)
        found = (batch["input_ids"] == self.image_token_id).sum(1).tolist()
        for i, (n, want) in enumerate(zip(found, placeholders, strict=True)):
            if n != want * self.tokens_per_image:
                raise ComposedModelError(
                    f"item {i}: {want} image(s) need {want * self.tokens_per_image} visual tokens but only {n} fit in "
                    f"max_length={self.max_length}; give fewer images or a shorter text")
        out = dict(batch)
        if images:
            if all(isinstance(im, Tensor) for im in images):
                out["image_features"] = torch.stack(images)  # [n_images, T, C], precomputed
            elif any(isinstance(im, Tensor) for im in images):
                raise ComposedModelError("a batch mixes images and precomputed image features; use one kind")
            else:
                out["pixel_values"] = self.image_processor.batch(images)  # [n_images, 3, H, W]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"image_token": self.image_token, "tokens_per_image": self.tokens_per_image,
                "max_length": self.max_length, "preprocess": self.image_processor.to_dict()}

    def save_pretrained(self, folder: str | os.PathLike[str]) -> None:
        """Write the processor settings (the tokenizer itself comes with the base text model)."""
        Path(folder, PROCESSOR_NAME).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


class ComposedVLM(nn.Module):
    """Image encoder + projector + text encoder, read as one vision-language model (module docstring)."""

    def __init__(self, text_encoder: Any, image_encoder: Any, config: ComposedConfig | None = None) -> None:
        super().__init__()
        config = config or ComposedConfig()
        self.text = text_encoder.backbone  # the transformers encoder (BERT-like: accepts inputs_embeds)
        self.image = image_encoder
        self.image.requires_grad_(False)
        self.image.eval()
        hidden = int(self.text.config.hidden_size)
        channels = int(image_encoder.model.num_features)
        config.hidden_size, config.image_feature_dim = hidden, channels
        config.text_fingerprint = config.text_fingerprint or text_encoder.fingerprint()
        config.image_fingerprint = config.image_fingerprint or image_encoder.fingerprint()
        config.name = config.name or f"composed-{image_encoder.name}-{text_encoder.config.name}"
        self.config = config
        if config.projector == "mlp":
            self.projector: nn.Module = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        else:
            self.projector = nn.Linear(channels, hidden)
        self.processor = ComposedProcessor(text_encoder.tokenizer, image_encoder.preprocess, config.image_token,
                                           config.tokens_per_image, config.max_length)
        if config.lora_r:
            self._attach_lora()
        elif not config.tune_text:
            self.text.requires_grad_(False)
        self.eval()  # inference mode, as transformers models load; fit_universal switches to training and back

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, config: ComposedConfig | None = None, device: str | torch.device | None = None) -> ComposedVLM:
        """Load both bases by registry name or folder (``gpte.load``) and compose them; the projector is random."""
        import gpte

        config = config or ComposedConfig()
        kw = {"device": device} if device is not None else {}
        model = cls(gpte.load(config.text_model, **kw), gpte.load(config.image_model, **kw), config)
        return model.to(device) if device is not None else model

    def _attach_lora(self) -> None:
        from gpte.shared.adapters import LoraSpec, add_lora

        c = self.config
        self.text = add_lora(self.text, LoraSpec(r=c.lora_r, alpha=c.lora_alpha, dropout=c.lora_dropout,
                                                 target_modules=list(c.lora_targets)))

    def train(self, mode: bool = True) -> ComposedVLM:
        """Training mode for projector and text encoder (the image encoder stays in eval mode). A LoRA adapter is
        merged into the text encoder's weights in eval mode, so inference runs at the plain encoder's speed, and
        unmerged for training (peft ``merge_adapter``/``unmerge_adapter``; the adapter tensors never change)."""
        super().train(mode)
        self.image.eval()  # frozen: batch-norm statistics and dropout stay in inference mode
        self._merge_adapter(not mode)
        return self

    def _merge_adapter(self, merged: bool) -> None:
        from gpte.shared.adapters import has_adapter

        if not has_adapter(self.text):
            return
        layers = [m for m in self.text.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
        if merged and not all(m.merged for m in layers):
            self.text.base_model.merge_adapter()
        elif not merged and any(m.merged for m in layers):
            self.text.base_model.unmerge_adapter()

    # ------------------------------------------------------------------ compute
    @torch.no_grad()
    def image_features(self, pixel_values: Tensor) -> Tensor:
        """``[n, 3, H, W]`` pixels → ``[n, T, C]`` frozen visual features (global mean, then the g×g cells)."""
        fmap = self.image.model.forward_features(pixel_values.to(self.image.device, self.image.dtype))  # [n, C, h, w]
        parts = [fmap.mean(dim=(2, 3))[:, None, :]]  # [n, 1, C]
        g = self.config.grid
        if g:
            cells = nn.functional.adaptive_avg_pool2d(fmap, g)  # [n, C, g, g]
            parts.append(cells.flatten(2).transpose(1, 2))  # [n, g², C]
        return torch.cat(parts, dim=1).float()  # [n, T, C]

    def forward(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                pixel_values: Tensor | None = None, image_features: Tensor | None = None, **_: Any) -> Any:
        """Token ids with image placeholders (+ pixels or precomputed features, one image per placeholder run)
        → ``SimpleNamespace(hidden_states=(last_layer [B, L, H],))``."""
        base = self.text.get_base_model() if hasattr(self.text, "get_base_model") else self.text
        embeds = base.get_input_embeddings()(input_ids)  # [B, L, H]
        slots = input_ids == self.processor.image_token_id  # [B, L]
        n_slots = int(slots.sum())
        if image_features is None and pixel_values is not None:
            image_features = self.image_features(pixel_values)
        if n_slots:
            if image_features is None:
                raise ComposedModelError(f"the prompts hold {n_slots} visual-token slots but no image was given")
            visual = self.projector(image_features.to(embeds.device, self.projector_dtype))  # [n, T, H]
            if visual.shape[0] * visual.shape[1] != n_slots:
                raise ComposedModelError(f"{visual.shape[0]} images × {visual.shape[1]} tokens do not fill the "
                                         f"{n_slots} visual-token slots of the prompts")
            embeds = embeds.masked_scatter(slots[..., None], visual.to(embeds.dtype).reshape(-1, embeds.shape[-1]))
        kwargs: dict[str, Any] = {"inputs_embeds": embeds, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        out = self.text(**kwargs)
        return SimpleNamespace(hidden_states=(out.last_hidden_state,))

    @property
    def projector_dtype(self) -> torch.dtype:
        return next(self.projector.parameters()).dtype

    def load_projector(self, folder: str | os.PathLike[str]) -> None:
        """Start from the projector of a model saved by :meth:`save_pretrained` on the same bases and sizes (a second
        training stage, e.g. LoRA after projector-only alignment, LLaVA's two stages)."""
        from safetensors.torch import load_file

        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file():
            raise ModelNotFoundError(f"{folder} holds no {CONFIG_NAME}: not a saved composed model")
        saved = ComposedConfig.from_dict(json.loads((folder / CONFIG_NAME).read_text())["config"])
        for key in ("text_fingerprint", "image_fingerprint", "grid", "projector", "hidden_size", "image_feature_dim"):
            if getattr(saved, key) != getattr(self.config, key):
                raise ComposedModelError(f"{folder}: its {key} ({getattr(saved, key)!r}) differs from this model's "
                                         f"({getattr(self.config, key)!r}); its projector does not fit")
        state = {k.removeprefix("projector."): v for k, v in load_file(str(folder / WEIGHTS_NAME)).items()
                 if k.startswith("projector.")}
        self.projector.load_state_dict(state)  # strict: every projector tensor, cast to this model's dtype

    # ------------------------------------------------------------------ persistence
    def _saved_state(self) -> dict[str, Tensor]:
        from gpte.shared.adapters import has_adapter

        state = {f"projector.{k}": v for k, v in self.projector.state_dict().items()}
        adapter = has_adapter(self.text)
        if adapter or self.config.tune_text:  # a frozen text encoder is its base: nothing to store
            for k, v in self.text.state_dict().items():  # (a merged adapter leaves its lora_ tensors as they are)
                if not adapter or "lora_" in k:
                    state[f"text.{k}"] = v
        dtype = torch.float16 if self.config.storage_dtype == "float16" else torch.float32
        return {k: v.detach().cpu().to(dtype).contiguous() for k, v in state.items()}

    def save_pretrained(self, folder: str | os.PathLike[str], **_: Any) -> None:
        """``composed.json`` + ``composed.safetensors`` (projector and adapter, or the whole text encoder)."""
        from safetensors.torch import save_file

        from gpte.shared.adapters import has_adapter

        if not has_adapter(self.text) and self.config.lora_r:
            raise ComposedModelError("config.lora_r is set but the text encoder carries no adapter (merged?)")
        folder = Path(folder)
        save_file(self._saved_state(), str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
        meta = {"format": FORMAT_VERSION, "config": self.config.to_dict()}
        (folder / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike[str],
                        device: str | torch.device | None = None) -> tuple[ComposedVLM, ComposedProcessor]:
        """Rebuild a model saved by :meth:`save_pretrained` (bases from their names, checked by fingerprint)."""
        from safetensors.torch import load_file

        import gpte

        folder = Path(folder)
        if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
            raise ModelNotFoundError(f"{folder} is not a saved composed model ({CONFIG_NAME} and {WEIGHTS_NAME} "
                                     "are needed)")
        meta = json.loads((folder / CONFIG_NAME).read_text())
        if meta.get("format") != FORMAT_VERSION:
            raise ComposedModelError(f"{folder / CONFIG_NAME}: unsupported format {meta.get('format')!r}")
        config = ComposedConfig.from_dict(meta["config"])
        kw = {"device": device} if device is not None else {}
        text, image = gpte.load(config.text_model, **kw), gpte.load(config.image_model, **kw)
        for what, enc, want in (("text", text, config.text_fingerprint), ("image", image, config.image_fingerprint)):
            if enc.fingerprint() != want:
                raise ComposedModelError(
                    f"the {what} base {getattr(config, what + '_model')!r} is not the one this model was trained "
                    f"on (fingerprint {enc.fingerprint()} != {want}); install the matching base model")
        model = cls(text, image, config)
        state = load_file(str(folder / WEIGHTS_NAME))
        model._merge_adapter(False)  # load adapter tensors into an unmerged model, then merge them (eval)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise ComposedModelError(f"{folder / WEIGHTS_NAME} holds tensors this model lacks: {unexpected[:5]}")
        not_loaded = [k for k in missing if k.startswith("projector.") or "lora_" in k]
        if not_loaded:
            raise ComposedModelError(f"{folder / WEIGHTS_NAME} lacks {not_loaded[:5]}")
        model = model.to(device) if device is not None else model
        return model.eval(), model.processor
