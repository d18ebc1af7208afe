"""Dual-tower image–text embedders (CLIP, Radford et al. 2021; LiT, Zhai et al. 2022; SigLIP, Zhai et al. 2023).

Any image encoder (:class:`gpte.unimodal.image.ImageEncoder`) and any text encoder
(:class:`gpte.unimodal.text.TextEncoder`) become one space through two trained heads::

    e_image = normalise(h_I(f_I(x)))        e_text = normalise(h_T(f_T(t)))
    logits  = scale · e_image · e_textᵀ (+ bias for the sigmoid loss)

``h`` is a linear map (CLIP's projection) or a two-layer MLP (``"mlp"``: Linear → GELU → Linear, the small adapter
of LiT-style heads); ``scale`` (and ``bias``) is a :class:`gpte.shared.scale.LogitScale` the loss reads. Towers can
be locked (LiT: frozen, only the heads train), partly unlocked (the last ``n`` blocks train), or given a LoRA
adapter through peft; :mod:`gpte.multimodal.train` trains the whole thing with the shared losses and gradient cache.

Saved as a folder: ``gpte-dual.json`` (settings and how to get each tower), ``heads.safetensors`` (heads and logit
scale), and ``image/`` / ``text/`` only for towers whose weights changed; an untouched registered tower (e.g.
``efficientnet-lite0``, ``minilm``) is saved as its registry name and loaded from its own package.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from gpte.multimodal.base import ImageTextEmbedder
from gpte.shared.fsio import atomic_directory, atomic_write_json
from gpte.shared.scale import LogitScale

__all__ = ["DualConfig", "DualTower", "DUAL_CONFIG", "make_head"]

DUAL_CONFIG = "gpte-dual.json"
FORMAT = "gpte-dual-tower"
HeadKind = Literal["linear", "mlp", "identity"]


@dataclass
class DualConfig:
    name: str = "dual-tower"  # what identity() and model cards call it
    dim: int = 256  # the joint space
    image_head: HeadKind = "linear"
    text_head: HeadKind = "linear"
    hidden: int = 1024  # width of an "mlp" head
    loss: Literal["infonce", "sigmoid"] = "infonce"  # decides the logit scale's initialisation (and bias)
    init_temperature: float = 0.07  # CLIP's τ (InfoNCE); the sigmoid loss starts at SigLIP's scale 10, bias -10
    text_template: str = "{}"  # applied to every text, e.g. "a picture of {}."

    def __post_init__(self) -> None:
        for side in ("image_head", "text_head"):
            if getattr(self, side) not in ("linear", "mlp", "identity"):
                raise ValueError(f"{side} must be 'linear', 'mlp' or 'identity' (got {getattr(self, side)!r})")
        if self.loss not in ("infonce", "sigmoid"):
            raise ValueError(f"loss must be 'infonce' or 'sigmoid' (got {self.loss!r})")
        if "{}" not in self.text_template:
            raise ValueError(f"text_template must contain '{{}}' (got {self.text_template!r})")


def make_head(kind: HeadKind, in_dim: int, out_dim: int, hidden: int = 1024) -> nn.Module:
    """``linear``: ``W x`` (no bias); ``mlp``: ``W₂ GELU(W₁ x + b₁) + b₂``; ``identity`` needs ``in_dim == out_dim``."""
    if kind == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if kind == "mlp":
        return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, out_dim))
    if in_dim != out_dim:
        raise ValueError(f"an identity head needs the tower's dimension ({in_dim}) to equal dim ({out_dim})")
    return nn.Identity()


def _blocks(module: nn.Module) -> nn.ModuleList | nn.Sequential | None:
    """The tower's stack of blocks: timm's ``blocks``, Hugging Face's ``encoder.layer`` / ``layers``."""
    best = None
    for name, child in module.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("blocks", "layer", "layers", "resblocks") and isinstance(child, nn.ModuleList | nn.Sequential):
            if best is None or len(child) > len(best):
                best = child
    return best


def lock_tower(tower: nn.Module, unlocked_blocks: int = 0) -> None:
    """Freeze ``tower``; then let its last ``unlocked_blocks`` blocks (and the layers after them) train again."""
    for p in tower.parameters():
        p.requires_grad_(False)
    if unlocked_blocks <= 0:
        return
    blocks = _blocks(tower)
    if blocks is None:
        raise ValueError(f"cannot find the blocks of a {type(tower).__name__} to unlock; lock it fully or unlock "
                         "parameters yourself")
    first = blocks[max(0, len(blocks) - unlocked_blocks)]
    reached = False
    for module in tower.modules():  # registration order: the chosen blocks, then what follows them (heads, norms)
        reached = reached or module is first
        if reached:
            for p in module.parameters(recurse=False):
                p.requires_grad_(True)


class DualTower(nn.Module, ImageTextEmbedder):
    """An image tower and a text tower with heads into one space; see the module docstring."""

    def __init__(self, image: nn.Module, text: nn.Module, config: DualConfig | None = None) -> None:
        nn.Module.__init__(self)
        self.config = config or DualConfig()
        self.image = image
        self.text = text
        c = self.config
        self.image_head = make_head(c.image_head, int(image.embed_dim), c.dim, c.hidden)
        self.text_head = make_head(c.text_head, int(text.embed_dim), c.dim, c.hidden)
        self.logit_scale = (LogitScale.for_sigmoid() if c.loss == "sigmoid"
                            else LogitScale(init_temperature=c.init_temperature))
        self.source = ""
        self._heads_to(image)

    def _heads_to(self, like: nn.Module) -> None:
        device = next(like.parameters()).device
        for m in (self.image_head, self.text_head, self.logit_scale):
            m.to(device)

    # ------------------------------------------------------------------ ImageTextEmbedder
    @property
    def embed_dim(self) -> int:
        return int(self.config.dim)

    @property
    def device(self) -> torch.device:
        return next(self.image_head.parameters(), next(self.parameters())).device

    def _tower_grad(self, tower: nn.Module) -> Any:
        trainable = self.training and any(p.requires_grad for p in tower.parameters())
        return torch.enable_grad() if trainable else torch.no_grad()

    def image_features(self, pixels: Tensor) -> Tensor:
        """The image tower's output ``f_I(x)`` for pre-processed pixels ``[n, 3, H, W]``."""
        with self._tower_grad(self.image):
            return self.image(pixels.to(self.image.device)).float()

    def text_features(self, tokens: dict[str, Tensor]) -> Tensor:
        """The text tower's output ``f_T(t)`` for a tokenised batch (:meth:`tokenize`)."""
        with self._tower_grad(self.text):
            return self.text(**{k: v.to(self.text.device) for k, v in tokens.items()}).float()

    def forward_images(self, pixels: Tensor) -> Tensor:
        """``h_I(f_I(x))``, not normalised (the losses normalise for cosine similarity)."""
        return self.image_head(self.image_features(pixels).to(self.device))

    def forward_texts(self, tokens: dict[str, Tensor]) -> Tensor:
        return self.text_head(self.text_features(tokens).to(self.device))

    def tokenize(self, texts: list[str]) -> dict[str, Tensor]:
        return self.text.tokenize([self.config.text_template.format(t) for t in texts])

    def preprocess(self, images: list[Any]) -> Tensor:
        return self.image.preprocess.batch(images)

    def embed_texts(self, texts: list[str]) -> Tensor:
        return self.forward_texts(self.tokenize(texts))

    def embed_images(self, images: list[Any]) -> Tensor:
        return self.forward_images(self.preprocess(images))

    def scale_and_bias(self) -> tuple[Tensor, Tensor | None]:
        return self.logit_scale()

    # ------------------------------------------------------------------ locking and adapters
    def lock(self, image: bool | int = True, text: bool | int = True) -> DualTower:
        """Freeze towers (LiT). ``True``: the whole tower; an int ``n``: all but the last ``n`` blocks; ``False``:
        leave it trainable."""
        for tower, how in ((self.image, image), (self.text, text)):
            if how is False:
                for p in tower.parameters():
                    p.requires_grad_(True)
            else:
                lock_tower(tower, 0 if how is True else int(how))
        return self

    def add_lora(self, tower: Literal["image", "text"], spec: Any) -> DualTower:
        """Attach a LoRA adapter (:class:`gpte.shared.adapters.LoraSpec`) to one tower's backbone; only it trains."""
        from gpte.shared.adapters import add_lora

        if tower == "text":
            self.text.backbone = add_lora(self.text.backbone, spec)
        elif tower == "image":
            if not spec.target_modules:
                raise ValueError("LoRA on the image tower needs target_modules (e.g. ['conv_pwl'] or ['qkv'])")
            self.image.model = add_lora(self.image.model, spec)
        else:
            raise ValueError(f"tower must be 'image' or 'text' (got {tower!r})")
        return self

    def trainable_towers(self) -> dict[str, bool]:
        return {name: any(p.requires_grad for p in t.parameters()) for name, t in (("image", self.image),
                                                                                   ("text", self.text))}

    # ------------------------------------------------------------------ identity and persistence
    def identity(self) -> dict[str, Any]:
        h = hashlib.blake2b(digest_size=16)
        h.update(self.image.identity()["fingerprint"].encode())
        h.update(self.text.identity()["fingerprint"].encode())
        h.update(json.dumps(asdict(self.config), sort_keys=True).encode())
        for key, value in sorted(self._head_state().items()):
            h.update(key.encode())
            h.update(value.detach().float().cpu().contiguous().numpy().tobytes())
        return {"name": self.config.name, "source": self.source, "modality": self.modality, "dim": self.embed_dim,
                "normalize": True, "fingerprint": h.hexdigest()}

    def _head_state(self) -> dict[str, Tensor]:
        state = {}
        for prefix, module in (("image_head", self.image_head), ("text_head", self.text_head),
                               ("logit_scale", self.logit_scale)):
            for key, value in module.state_dict().items():
                if value is not None:
                    state[f"{prefix}.{key}"] = value
        return state

    def save(self, path: str | os.PathLike[str], towers: Literal["auto", "reference", "copy"] = "auto") -> Path:
        """Write the folder (atomically). ``towers="auto"``: a tower loaded from a registry name and never made
        trainable is saved as that name; any other tower is copied into ``image/`` or ``text/``."""
        from safetensors.torch import save_file

        path = Path(path)
        trainable = self.trainable_towers()
        refs = {}
        with atomic_directory(path) as tmp:
            for name, tower in (("image", self.image), ("text", self.text)):
                source = getattr(tower, "source", "")
                registered = bool(source) and _is_registered(source)
                if towers == "reference" or (towers == "auto" and registered and not trainable[name]):
                    if not registered:
                        raise ValueError(f"the {name} tower ({source or 'built in-process'}) has no registry name "
                                         "to reference: save with towers='copy'")
                    refs[name] = {"registry": source}
                else:
                    tower.save(tmp / name)
                    refs[name] = {"folder": name}
            save_file({k: v.detach().cpu().contiguous() for k, v in self._head_state().items()},
                      str(tmp / "heads.safetensors"))
            atomic_write_json(tmp / DUAL_CONFIG, {"format": FORMAT, "version": 1, "config": asdict(self.config),
                                                  "towers": refs})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: Any = None, dtype: Any = None) -> DualTower:
        from safetensors.torch import load_file

        import gpte

        path = Path(path)
        meta = json.loads((path / DUAL_CONFIG).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path / DUAL_CONFIG} is not a {FORMAT} config")
        towers = {}
        for name in ("image", "text"):
            ref = meta["towers"][name]
            where = ref.get("registry") or path / ref["folder"]
            towers[name] = gpte.load(where, device=device, **({"dtype": dtype} if dtype is not None else {}))
        model = cls(towers["image"], towers["text"], DualConfig(**meta["config"]))
        state = load_file(str(path / "heads.safetensors"))
        for prefix, module in (("image_head", model.image_head), ("text_head", model.text_head),
                               ("logit_scale", model.logit_scale)):
            own = {k[len(prefix) + 1:]: v for k, v in state.items() if k.startswith(prefix + ".")}
            missing, unexpected = module.load_state_dict(own, strict=False)
            if missing or unexpected:
                raise ValueError(f"{path / 'heads.safetensors'}: {prefix} does not match the config (missing "
                                 f"{missing[:3]}, unexpected {unexpected[:3]})")
        model._heads_to(model.image)
        model.eval()
        model.source = str(path.resolve())
        return model


def _is_registered(name: str) -> bool:
    from gpte.registry import resolve_name

    return resolve_name(name) is not None
