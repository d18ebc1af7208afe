"""Universal-embedder recipes for ``gpte train``: compose, train on fused-modal tasks, compare with the dual tower.

A recipe with ``kind = "universal"`` (see ``recipes/universal-lite0-minilm.toml``)::

    kind = "universal"
    output_dir = "runs/universal-lite0-minilm"
    sources = ["openclipart", "twemoji", "noto-emoji"]
    compare_with = "lit-lite0-minilm"   # a dual tower evaluated on the same held-out split
    [model]                             # gpte.multimodal.composed.ComposedConfig
    text_model = "minilm"
    image_model = "efficientnet-lite0"
    lora_r = 16
    [train]                             # gpte.multimodal.universal_train.UniversalTrainConfig
    epochs = 2

The run reads the data exactly as the image–text recipe does (same sources, same caption-disjoint split, so the
held-out set is the dual tower's), computes the frozen image tower's visual features once (cached in
``output_dir/visual-*.safetensors``), trains projector and adapter on the fused-modal tasks
(:func:`gpte.multimodal.universal_train.fused_modal_examples`), saves the model to ``output_dir/model``, reloads
it, evaluates the reloaded copy and the ``compare_with`` dual tower on the held-out split, and writes both to
``output_dir/metrics.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpte.multimodal.composed import ComposedConfig, ComposedVLM
from gpte.multimodal.universal_train import UniversalTrainConfig
from gpte.shared.fsio import atomic_write_bytes, atomic_write_json
from gpte.shared.recipe import load_tables

__all__ = ["UniversalRecipe", "load_universal_recipe", "run_universal_recipe",
           "visual_features"]

logger = logging.getLogger(__name__)


@dataclass
class UniversalRecipe:
    output_dir: str = "runs/universal"
    sources: list[str] = field(default_factory=lambda: ["openclipart", "twemoji", "noto-emoji"])
    test_fraction: float = 0.1  # the image–text recipe's split (caption-disjoint, deterministic)
    install_data: bool = False
    tasks: list[str] = field(default_factory=lambda: ["text-to-image", "image-to-text", "category", "emoji-name"])
    compare_with: str | None = "lit-lite0-minilm"  # dual tower evaluated on the same held-out split
    init_from: str | None = None  # a saved universal model whose projector starts this run (a second stage)
    feature_cache: str | None = None  # folder of the cached visual features (default: output_dir); share it
    feature_batch_size: int = 32
    device: str | None = None
    kind: str = "universal"
    model: ComposedConfig = field(default_factory=ComposedConfig)
    train: UniversalTrainConfig = field(default_factory=UniversalTrainConfig)


def load_universal_recipe(path: str | os.PathLike[str]) -> UniversalRecipe:
    return load_tables(path, UniversalRecipe, {"model": ComposedConfig, "train": UniversalTrainConfig})


def visual_features(model: ComposedVLM, images: list[str], cache: Path, batch_size: int = 32) -> torch.Tensor:
    """``[N, T, C]`` frozen visual features of image files (float16 on disk and in memory), cached by the image
    tower's fingerprint, the grid and the exact file list."""
    from safetensors.torch import load_file, save

    from gpte.unimodal.image_io import load_image

    h = hashlib.blake2b(digest_size=8)
    h.update(f"{model.config.image_fingerprint}|{model.config.grid}\n".encode())
    for path in images:
        h.update(f"{path}\n".encode())
    file = cache / f"visual-{h.hexdigest()}.safetensors"
    if file.is_file():
        return load_file(str(file))["features"]
    parts = []
    for start in range(0, len(images), batch_size):
        loaded = [load_image(p) for p in images[start:start + batch_size]]
        pixels = model.processor.image_processor.batch(loaded)  # [b, 3, H, W]
        parts.append(model.image_features(pixels).half().cpu())  # [b, T, C]
        if (start // batch_size) % 20 == 0:
            logger.info("visual features: %d/%d images", start + len(loaded), len(images))
    features = torch.cat(parts)
    atomic_write_bytes(file, save({"features": features.contiguous()}))  # write, fsync, rename
    return features


def _dual_baseline(name: str, pairs: list[Any], device: str | None) -> dict[str, Any]:
    import gpte
    from gpte.multimodal.recipe import evaluate_dual
    from gpte.multimodal.train import precompute_features

    model = gpte.load(name, **({"device": device} if device else {}))
    feats = precompute_features(model, [Path(p.image) for p in pairs], [p.caption for p in pairs])
    return evaluate_dual(model, feats, pairs)


def run_universal_recipe(recipe: UniversalRecipe) -> dict[str, Any]:
    """Run ``recipe`` (see the module docstring); returns the figures written to ``metrics.json``."""
    from gpte.data.image_text import image_caption_pairs, install_data, split_by_caption
    from gpte.multimodal.recipe import loadable_pairs
    from gpte.multimodal.universal import UniversalEmbedder
    from gpte.multimodal.universal_train import evaluate_universal, fit_universal, fused_modal_examples

    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.install_data:
        install_data(recipe.sources)
    pairs, bad = loadable_pairs(image_caption_pairs(tuple(recipe.sources)), out)
    split = split_by_caption(pairs, test_fraction=recipe.test_fraction)
    train, test = split["train"], split["test"]
    logger.info("%d training and %d held-out pairs (%d images left out)", len(train), len(test), len(bad))
    torch.manual_seed(recipe.train.seed)
    model = ComposedVLM.build(dataclasses.replace(recipe.model), device=recipe.device)
    if recipe.init_from:
        model.load_projector(recipe.init_from)
        logger.info("projector initialised from %s", recipe.init_from)
    embedder = UniversalEmbedder(model, model.processor, name=model.config.name)
    cache = Path(recipe.feature_cache) if recipe.feature_cache else out
    cache.mkdir(parents=True, exist_ok=True)
    train_feats = visual_features(model, [p.image for p in train], cache, recipe.feature_batch_size)
    test_feats = visual_features(model, [p.image for p in test], cache, recipe.feature_batch_size)
    examples = fused_modal_examples(train, recipe.tasks)
    logger.info("%d fused-modal training examples", len(examples))
    log = fit_universal(embedder, examples, lambda i: train_feats[i].float(), recipe.train)
    embedder.save(out / "model")
    reloaded = UniversalEmbedder.load(out / "model", device=recipe.device)
    results: dict[str, Any] = {
        "n_train": len(train), "n_test": len(test), "left_out": len(bad), "n_examples": len(examples),
        "train_seconds": log["seconds"], "steps": log["steps"],
        "final_loss": log["log"][-1]["loss"] if log["log"] else None,
        "universal": evaluate_universal(reloaded, test, lambda i: test_feats[i].float()),
        "model": str(out / "model"),
    }
    logger.info("universal: %s", results["universal"])
    if recipe.compare_with:
        results["dual"] = {"model": recipe.compare_with, **_dual_baseline(recipe.compare_with, test, recipe.device)}
        logger.info("dual tower %s: %s", recipe.compare_with, results["dual"])
    results["log"] = log["log"]
    results["recipe"] = dataclasses.asdict(recipe)
    atomic_write_json(out / "metrics.json", results)
    return results
