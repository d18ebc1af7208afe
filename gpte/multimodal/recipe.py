"""Image–text recipes for ``gpte train``: build a dual-tower model end to end from a TOML file.

A recipe with ``kind = "image-text"`` (see ``recipes/lit-lite0-minilm.toml``)::

    kind = "image-text"
    image = "efficientnet-lite0"        # registry name or folder of the image tower
    text = "minilm"                     # registry name or folder of the text tower
    output_dir = "runs/lit-lite0-minilm"
    sources = ["openclipart", "twemoji", "noto-emoji"]
    install_data = true                 # apt-get / npm the sources that are missing
    compare_losses = true               # also train the other loss on the same features and report both

    [model]                             # gpte.multimodal.dual.DualConfig
    dim = 256
    [train]                             # gpte.multimodal.train.DualTrainConfig
    loss = "infonce"
    epochs = 30

The run: install and read the data (:mod:`gpte.data.image_text`), split by caption text, drop images that do not
load (reported), compute the frozen tower features once (cached in ``output_dir/features-*.safetensors``), train the
heads, evaluate on the held-out split (recall@1/5/10 both ways, zero-shot emoji-category accuracy), save the model
to ``output_dir/model`` and the figures to ``output_dir/metrics.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gpte.multimodal.dual import DualConfig, DualTower
from gpte.multimodal.train import (
    DualTrainConfig,
    embed_features,
    fit,
    precompute_features,
    retrieval_metrics,
    zero_shot_accuracy,
)
from gpte.shared.fsio import atomic_write_bytes, atomic_write_json
from gpte.shared.recipe import load_tables, recipe_kind

__all__ = ["ImageTextRecipe", "Prepared", "load_image_text_recipe", "is_image_text_recipe", "prepare",
           "train_and_evaluate", "run_image_text_recipe", "evaluate_dual", "loadable_pairs"]

logger = logging.getLogger(__name__)

CATEGORY_PROMPT = "an emoji from the category {}"


@dataclass
class ImageTextRecipe:
    image: str = "efficientnet-lite0"
    text: str = "minilm"
    output_dir: str = "runs/lit"
    sources: list[str] = field(default_factory=lambda: ["openclipart", "twemoji", "noto-emoji"])
    test_fraction: float = 0.1
    install_data: bool = False
    compare_losses: bool = False
    device: str | None = None
    kind: str = "image-text"
    model: DualConfig = field(default_factory=DualConfig)
    train: DualTrainConfig = field(default_factory=DualTrainConfig)


def is_image_text_recipe(path: str | os.PathLike[str]) -> bool:
    return recipe_kind(path) == "image-text"


def load_image_text_recipe(path: str | os.PathLike[str]) -> ImageTextRecipe:
    recipe = load_tables(path, ImageTextRecipe, {"model": DualConfig, "train": DualTrainConfig})
    if recipe.model.loss != recipe.train.loss:
        recipe.model.loss = recipe.train.loss  # the scale's initialisation follows the loss
    return recipe


def loadable_pairs(pairs: list[Any], cache: Path) -> tuple[list[Any], dict[str, str]]:
    """Pairs whose image loads, and path → reason for the others; the verdicts are cached by (path, size, mtime)."""
    from gpte.unimodal.image_io import ImageInputError, load_image

    file = cache / "image-check.json"
    try:
        seen = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    keep, bad, verdicts = [], {}, {}
    for p in pairs:
        try:
            st = os.stat(p.image)
            key = f"{p.image}|{st.st_size}|{st.st_mtime_ns}"
        except OSError as exc:
            bad[p.image] = f"unreadable ({exc.strerror})"
            continue
        if key not in seen:
            try:
                load_image(p.image)
                seen[key] = ""
            except ImageInputError as exc:
                seen[key] = exc.reason
        verdicts[key] = seen[key]
        if seen[key]:
            bad[p.image] = seen[key]
        else:
            keep.append(p)
    atomic_write_json(file, verdicts)
    return keep, bad


def _features(model: DualTower, pairs: list[Any], cache: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen tower features, cached by the towers' fingerprints and the exact list of items."""
    from safetensors.torch import load_file, save

    h = hashlib.blake2b(digest_size=8)
    h.update(model.image.identity()["fingerprint"].encode())
    h.update(model.text.identity()["fingerprint"].encode())
    h.update(model.config.text_template.encode())
    for p in pairs:
        h.update(f"{p.id}\0{p.image}\0{p.caption}\n".encode())
    file = cache / f"features-{h.hexdigest()}.safetensors"
    if file.is_file():
        data = load_file(str(file))
        return data["image"], data["text"]
    images, texts = precompute_features(model, [Path(p.image) for p in pairs], [p.caption for p in pairs])
    atomic_write_bytes(file, save({"image": images.contiguous(), "text": texts.contiguous()}))  # write, fsync, rename
    return images, texts


def evaluate_dual(model: DualTower, feats: tuple[torch.Tensor, torch.Tensor], pairs: list[Any]) -> dict[str, Any]:
    from gpte.data.image_text import EMOJI_CATEGORIES

    img, txt = embed_features(model, feats)
    out: dict[str, Any] = retrieval_metrics(img, txt, [p.caption for p in pairs])
    emoji = [i for i, p in enumerate(pairs) if p.source in ("twemoji", "noto-emoji") and p.category in EMOJI_CATEGORIES]
    if emoji:
        with torch.no_grad():
            cls = torch.nn.functional.normalize(
                model.embed_texts([CATEGORY_PROMPT.format(c.lower()) for c in EMOJI_CATEGORIES]).float().cpu(), dim=-1)
        out["emoji_category_zero_shot_acc"] = zero_shot_accuracy(img[emoji], [pairs[i].category for i in emoji], cls,
                                                                 EMOJI_CATEGORIES)
        out["emoji_category_n"] = len(emoji)
    return out


@dataclass
class Prepared:
    """Everything a recipe trains on: the frozen towers, the split and the cached tower features."""

    towers: tuple[Any, Any]
    train: list[Any]
    test: list[Any]
    train_features: tuple[torch.Tensor, torch.Tensor]
    test_features: tuple[torch.Tensor, torch.Tensor]
    left_out: dict[str, str]


def prepare(recipe: ImageTextRecipe) -> Prepared:
    """Install and read the data, split it by caption, load the towers and compute (or reuse) their features."""
    import gpte
    from gpte.data.image_text import image_caption_pairs, install_data, split_by_caption

    out = Path(recipe.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if recipe.install_data:
        install_data(recipe.sources)
    pairs, bad = loadable_pairs(image_caption_pairs(tuple(recipe.sources)), out)
    if bad:
        logger.warning("%d images do not load and are left out, e.g. %s", len(bad), next(iter(bad.items())))
    split = split_by_caption(pairs, test_fraction=recipe.test_fraction)
    logger.info("%d training and %d held-out pairs", len(split["train"]), len(split["test"]))
    kw = {"device": recipe.device} if recipe.device else {}
    towers = (gpte.load(recipe.image, **kw), gpte.load(recipe.text, **kw))
    probe = DualTower(towers[0], towers[1], recipe.model)
    return Prepared(towers, split["train"], split["test"], _features(probe, split["train"], out),
                    _features(probe, split["test"], out), bad)


def train_and_evaluate(recipe: ImageTextRecipe, data: Prepared, loss: str | None = None,
                       model_config: DualConfig | None = None,
                       train_config: DualTrainConfig | None = None) -> tuple[DualTower, dict[str, Any]]:
    """Train heads on ``data``'s cached features (overrides for ablations) and evaluate on the held-out split."""
    loss = loss or recipe.train.loss
    config = dataclasses.replace(model_config or recipe.model, loss=loss)
    torch.manual_seed(recipe.train.seed)
    model = DualTower(data.towers[0], data.towers[1], config).lock(image=True, text=True)
    log = fit(model, dataclasses.replace(train_config or recipe.train, loss=loss), features=data.train_features)
    metrics = evaluate_dual(model, data.test_features, data.test)
    return model, {"metrics": metrics, "train_seconds": log["seconds"], "steps": log["steps"],
                   "final_loss": log["log"][-1]["loss"] if log["log"] else None}


def run_image_text_recipe(recipe: ImageTextRecipe) -> dict[str, Any]:
    """Run ``recipe`` (see the module docstring); returns the metrics written to ``metrics.json``."""
    out = Path(recipe.output_dir)
    data = prepare(recipe)
    losses = [recipe.train.loss] + ([{"infonce": "sigmoid", "sigmoid": "infonce"}[recipe.train.loss]]
                                    if recipe.compare_losses else [])
    results: dict[str, Any] = {"n_train": len(data.train), "n_test": len(data.test), "left_out": len(data.left_out),
                               "sources": recipe.sources, "by_loss": {}}
    best = None
    for loss in losses:
        model, result = train_and_evaluate(recipe, data, loss)
        results["by_loss"][loss] = result
        logger.info("%s: %s", loss, result["metrics"])
        best = best or model
    assert best is not None
    best.save(out / "model")
    results["model"] = str(out / "model")
    results["recipe"] = dataclasses.asdict(recipe)
    atomic_write_json(out / "metrics.json", results)
    return results
