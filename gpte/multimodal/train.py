"""Training dual towers through the shared contrastive core: locked-tower tuning (LiT) and full or partial tuning.

Each step embeds a batch of images and their captions and applies the shared loss
(:class:`gpte.shared.losses.InfoNCELoss`, symmetric as in CLIP, or :class:`gpte.shared.losses.SigmoidLoss` as in
SigLIP) with the model's learnable scale (and bias). Two paths, one loss:

* **frozen towers** (``DualTower.lock()``, LiT's "locked image, locked text" setting of Zhai et al. 2022 Table 1):
  the tower features ``f_I(x)``, ``f_T(t)`` never change, so :func:`precompute_features` computes them once and
  every epoch trains only the heads on the cached features; the whole run then costs one pass of each tower.
* **trainable towers** (unlocked blocks, LoRA): every step runs the towers; with ``grad_cache_chunk`` the step is
  :func:`gpte.shared.gradcache.cached_step` (batches larger than memory, same gradients), else
  :func:`gpte.shared.gradcache.plain_step`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from gpte.shared.gradcache import Tower, cached_step, plain_step

__all__ = ["DualTrainConfig", "precompute_features", "fit", "retrieval_metrics", "zero_shot_accuracy"]

logger = logging.getLogger(__name__)


@dataclass
class DualTrainConfig:
    loss: Literal["infonce", "sigmoid"] = "infonce"
    batch_size: int = 256  # pairs per step (in-batch negatives)
    epochs: int = 10
    learning_rate: float = 1e-3
    weight_decay: float = 0.1  # AdamW; not applied to the logit scale and bias
    warmup_ratio: float = 0.05  # linear warm-up, then cosine decay to 0
    grad_cache_chunk: int | None = None  # sub-batch of the gradient cache (trainable towers only)
    feature_batch_size: int = 64  # batch for computing frozen features
    seed: int = 0
    log_every: int = 50

    def __post_init__(self) -> None:
        if self.loss not in ("infonce", "sigmoid"):
            raise ValueError(f"loss must be 'infonce' or 'sigmoid' (got {self.loss!r})")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (got {self.batch_size})")


def _loss_module(name: str) -> torch.nn.Module:
    from gpte.shared.losses import InfoNCELoss, SigmoidLoss

    return InfoNCELoss(symmetric=True) if name == "infonce" else SigmoidLoss()


@torch.no_grad()
def precompute_features(model: Any, images: Sequence[Any], texts: Sequence[str],
                        batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """The frozen towers' outputs ``f_I`` ``[N, F_I]`` and ``f_T`` ``[N, F_T]`` (float32, CPU), in input order.

    ``images`` are anything :func:`gpte.unimodal.image_io.load_image` reads; every image is loaded (a bad one raises
    naming it: filter a dataset with ``load_image`` first).
    """
    model.eval()
    img, txt = [], []
    for start in range(0, len(images), batch_size):
        loaded = model.load_images(list(images[start:start + batch_size]))
        img.append(model.image_features(model.preprocess(loaded)).cpu())
    for start in range(0, len(texts), 256):
        txt.append(model.text_features(model.tokenize(list(texts[start:start + 256]))).cpu())
    return torch.cat(img), torch.cat(txt)


def warmup_cosine(total: int, warmup_ratio: float) -> Any:
    """Learning-rate factor for ``LambdaLR``: linear warm-up over ``warmup_ratio·total`` steps, then cosine to 0."""
    warm = max(1, int(total * warmup_ratio))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def fit(model: Any, config: DualTrainConfig, *, features: tuple[Tensor, Tensor] | None = None,
        images: Sequence[Any] | None = None, texts: Sequence[str] | None = None) -> dict[str, Any]:
    """Train ``model`` (a :class:`gpte.multimodal.dual.DualTower`) and return the log.

    Pass ``features`` (from :func:`precompute_features`) when both towers are locked, else ``images`` and ``texts``
    (the towers run every step).
    """
    towers_train = any(model.trainable_towers().values())
    if features is None and (images is None or texts is None):
        raise ValueError("fit needs features=(image_features, text_features) or images= and texts=")
    if features is not None and towers_train:
        raise ValueError("cached features are only valid for locked towers: lock() both, or pass images and texts")
    n = len(features[0]) if features is not None else len(images)  # type: ignore[arg-type]
    if features is None and len(texts) != n:  # type: ignore[arg-type]
        raise ValueError(f"{n} images but {len(texts)} texts")  # type: ignore[arg-type]
    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    loss_fn = _loss_module(config.loss)
    params = [p for p in model.parameters() if p.requires_grad]
    scale_params = {id(p) for p in model.logit_scale.parameters()}
    groups = [{"params": [p for p in params if id(p) not in scale_params], "weight_decay": config.weight_decay},
              {"params": [p for p in params if id(p) in scale_params], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    steps_per_epoch = max(1, n // config.batch_size)
    total = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, config.warmup_ratio))
    device = model.device

    def contrastive(reps: dict[str, Tensor]) -> Tensor:
        scale, bias = model.scale_and_bias()
        return loss_fn(reps["image"], reps["text"], scale=scale, bias=bias)

    log: list[dict[str, float]] = []
    model.train()
    t0 = time.perf_counter()
    step = 0
    for epoch in range(config.epochs):
        order = list(range(n))
        rng.shuffle(order)
        for b in range(steps_per_epoch):
            rows = order[b * config.batch_size:(b + 1) * config.batch_size]
            if features is not None:
                idx = torch.tensor(rows)
                towers = {"image": Tower(model.image_head, features[0][idx].to(device)),
                          "text": Tower(model.text_head, features[1][idx].to(device))}
            else:
                loaded = model.load_images([images[i] for i in rows])  # type: ignore[index]
                towers = {"image": Tower(model.forward_images, model.preprocess(loaded)),
                          "text": Tower(model.forward_texts, model.tokenize([texts[i] for i in rows]))}  # type: ignore[index]
            optimizer.zero_grad(set_to_none=True)
            if config.grad_cache_chunk and features is None:
                loss = cached_step(contrastive, towers, config.grad_cache_chunk, step=step)
            else:
                loss = plain_step(contrastive, towers, step=step)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            if step % config.log_every == 0 or step == total:
                scale, bias = (None if t is None else t.detach() for t in model.scale_and_bias())
                entry = {"step": step, "epoch": epoch, "loss": round(float(loss), 5),
                         "scale": round(float(scale), 3), "lr": scheduler.get_last_lr()[0],
                         "seconds": round(time.perf_counter() - t0, 2)}
                if bias is not None:
                    entry["bias"] = round(float(bias), 3)
                log.append(entry)
                logger.info("step %d/%d loss %.4f scale %.2f", step, total, float(loss), float(scale))
    model.eval()
    for name, trained in model.trainable_towers().items():  # weights changed: their fingerprints must follow
        tower = getattr(model, name)
        if trained and hasattr(tower, "refresh_fingerprint"):
            tower.refresh_fingerprint()
    return {"config": asdict(config), "steps": total, "seconds": round(time.perf_counter() - t0, 2), "log": log}


@torch.no_grad()
def embed_features(model: Any, features: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    """Normalised joint-space embeddings of cached tower features (images, texts)."""
    model.eval()
    device = model.device
    img = torch.nn.functional.normalize(model.image_head(features[0].to(device)).float(), dim=-1)
    txt = torch.nn.functional.normalize(model.text_head(features[1].to(device)).float(), dim=-1)
    return img.cpu(), txt.cpu()


def retrieval_metrics(image_emb: Tensor, text_emb: Tensor, captions: Sequence[str],
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k both ways over a held-out set where item ``i``'s image matches its caption.

    Items that share a caption text (two emoji styles, duplicate clip-art names) count as correct for each other:
    text→image ranks every image of that caption as relevant; image→text ranks the unique caption texts.
    """
    caps = list(captions)
    unique = sorted(set(caps))
    col = {c: j for j, c in enumerate(unique)}
    first = [caps.index(c) for c in unique]
    uniq_text = text_emb[first]  # one embedding per distinct caption
    target = torch.tensor([col[c] for c in caps])
    out: dict[str, float] = {}
    # image → text: rank the distinct captions for each image
    i2t = image_emb @ uniq_text.T
    rank_i2t = (i2t > i2t.gather(1, target[:, None])).sum(1)
    # text → image: for each distinct caption, the best-ranked image of that caption
    t2i = uniq_text @ image_emb.T  # [C, N]
    same = target[None, :] == torch.arange(len(unique))[:, None]
    best_pos = t2i.masked_fill(~same, float("-inf")).max(1).values
    rank_t2i = (t2i > best_pos[:, None]).sum(1)
    for k in ks:
        out[f"image_to_text_R@{k}"] = round(float((rank_i2t < k).float().mean()), 4)
        out[f"text_to_image_R@{k}"] = round(float((rank_t2i < k).float().mean()), 4)
    out["n_images"], out["n_captions"] = float(len(caps)), float(len(unique))
    return out


def zero_shot_accuracy(image_emb: Tensor, labels: Sequence[str], class_emb: Tensor, classes: Sequence[str]) -> float:
    """Top-1 accuracy of assigning each image the class whose prompt embedding is closest (CLIP zero-shot)."""
    pred = (image_emb @ class_emb.T).argmax(1)
    index = {c: i for i, c in enumerate(classes)}
    gold = torch.tensor([index[label] for label in labels])
    return round(float((pred == gold).float().mean()), 4)
