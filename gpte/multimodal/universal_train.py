"""Training a universal embedder on fused-modal tasks through the shared contrastive core (VLM2Vec's recipe).

Each example is a (query, candidate) pair under a task of the instruction set; the query reads the task's
instruction, the candidate the plain prompt of its modality (:mod:`gpte.multimodal.instructions`). From
image–caption data (:mod:`gpte.data.image_text`), :func:`fused_modal_examples` makes four tasks:

* ``text-to-image``: caption → image;
* ``image-to-text``: image → caption;
* ``image-question`` "Which category is this?": image + question → category name (clip-art top folder, emoji group);
* ``image-question`` "What is this?": emoji image + question → the emoji's name.

A batch holds one task (VLM2Vec samples one dataset per batch, so in-batch negatives share a modality) and the loss
is the shared InfoNCE from queries to candidates,

    L = −(1/B) Σ_i log( exp(s·cos(q_i, c_i)) / Σ_j exp(s·cos(q_i, c_j)) ),

with the learnable scale ``s = 1/τ`` and ``positive_ids`` so that candidates equal to the positive (the same
category, the same caption) are never counted as negatives. With ``grad_cache_chunk`` a step goes through
:func:`gpte.shared.gradcache.cached_step` (GradCache, Gao et al. 2021): the batch is embedded in sub-batches without
graphs, the loss gradient is cached on the embeddings and pushed back sub-batch by sub-batch, giving the gradients of
the full batch in the memory of one sub-batch.

Images can be given as precomputed features of a frozen image tower (:meth:`gpte.multimodal.composed.ComposedVLM.
image_features`), which makes an epoch cost only the text encoder.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from gpte.shared.gradcache import Tower, cached_step, plain_step

__all__ = ["UniversalTrainConfig", "FusedExample", "fused_modal_examples", "fit_universal", "evaluate_universal",
           "CATEGORY_QUESTION", "NAME_QUESTION"]

logger = logging.getLogger(__name__)

CATEGORY_QUESTION = "Which category is this?"
NAME_QUESTION = "What is this?"
EMOJI_SOURCES = ("twemoji", "noto-emoji")


@dataclass
class UniversalTrainConfig:
    batch_size: int = 64  # pairs per step, all of one task
    epochs: int = 2
    learning_rate: float = 2e-4  # LoRA / text-encoder weights
    projector_learning_rate: float = 1e-3  # the projector starts from random
    weight_decay: float = 0.01
    warmup_ratio: float = 0.05  # linear warm-up, then cosine decay to 0
    init_temperature: float = 0.05  # learnable; scale = 1/τ
    grad_cache_chunk: int | None = None  # sub-batch of the gradient cache (None: plain steps)
    max_steps: int | None = None  # stop early (smoke runs, tests)
    seed: int = 0
    log_every: int = 25

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (got {self.batch_size})")
        if self.grad_cache_chunk is not None and self.grad_cache_chunk < 1:
            raise ValueError(f"grad_cache_chunk must be >= 1 (got {self.grad_cache_chunk})")


@dataclass(frozen=True)
class FusedExample:
    """One training pair; images are indices into the caller's image table (paths or cached features)."""

    task: str
    query_text: str | None
    query_image: int | None
    candidate_text: str | None
    candidate_image: int | None
    group: str  # candidates with the same group are the same answer (never negatives of each other)


def fused_modal_examples(pairs: Sequence[Any], tasks: Sequence[str] = ("text-to-image", "image-to-text", "category",
                                                                      "emoji-name")) -> list[FusedExample]:
    """The fused-modal examples of image–caption ``pairs`` (:class:`gpte.data.image_caption.ImageCaption`); image
    ``i`` of an example is ``pairs[i]``'s image."""
    from gpte.data.image_text import caption_key

    known = {"text-to-image", "image-to-text", "category", "emoji-name"}
    if set(tasks) - known:
        raise ValueError(f"unknown fused-modal task(s) {sorted(set(tasks) - known)}; known: {sorted(known)}")
    out: list[FusedExample] = []
    for i, p in enumerate(pairs):
        key = caption_key(p.caption)
        if "text-to-image" in tasks:
            out.append(FusedExample("text-to-image", p.caption, None, None, i, f"caption:{key}"))
        if "image-to-text" in tasks:
            out.append(FusedExample("image-to-text", None, i, p.caption, None, f"caption:{key}"))
        if "category" in tasks and p.category:
            out.append(FusedExample("image-question", CATEGORY_QUESTION, i, category_name(p), None,
                                    f"category:{category_name(p)}"))
        if "emoji-name" in tasks and p.source in EMOJI_SOURCES:
            out.append(FusedExample("image-question", NAME_QUESTION, i, p.caption, None, f"caption:{key}"))
    return out


def category_name(pair: Any) -> str:
    """The answer to "which category?": the emoji group, or the clip-art top folder in words."""
    return pair.category.replace("_", " ").replace("-", " ").lower()


def _item(text: str | None, image: int | None, image_table: Callable[[int], Any]) -> Any:
    if image is None:
        return text
    return image_table(image) if text is None else (image_table(image), text)


def _batches(examples: Sequence[FusedExample], batch_size: int, rng: random.Random) -> list[list[FusedExample]]:
    """One task per batch (its query task and candidate modality); batch order shuffled across tasks."""
    by_kind: dict[tuple[str, bool], list[FusedExample]] = {}
    for ex in examples:
        by_kind.setdefault((ex.task, ex.candidate_image is None), []).append(ex)
    batches = []
    for group in by_kind.values():
        group = list(group)
        rng.shuffle(group)
        batches += [group[s:s + batch_size] for s in range(0, len(group) - batch_size + 1, batch_size)]
    rng.shuffle(batches)
    return batches


def fit_universal(embedder: Any, examples: Sequence[FusedExample], image_table: Callable[[int], Any],
                  config: UniversalTrainConfig | None = None) -> dict[str, Any]:
    """Train ``embedder`` (a :class:`gpte.multimodal.universal.UniversalEmbedder`) on ``examples``; returns the log.

    ``image_table(i)`` gives image ``i`` as the backbone takes it (a PIL image, or a cached feature tensor for the
    composed backbone). Only parameters with ``requires_grad`` train (e.g. projector + LoRA).
    """
    from gpte.multimodal.train import warmup_cosine
    from gpte.shared.losses import info_nce
    from gpte.shared.scale import LogitScale

    config = config or UniversalTrainConfig()
    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    model = embedder.model
    scale = LogitScale(init_temperature=config.init_temperature).to(embedder.device)
    projector = {id(p) for p in getattr(model, "projector", torch.nn.Module()).parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("nothing to train: every parameter of the embedder's model is frozen")
    groups = [{"params": [p for p in params if id(p) not in projector], "lr": config.learning_rate},
              {"params": [p for p in params if id(p) in projector], "lr": config.projector_learning_rate},
              {"params": list(scale.parameters()), "lr": config.projector_learning_rate, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], weight_decay=config.weight_decay)
    epochs = [_batches(examples, config.batch_size, rng) for _ in range(config.epochs)]
    total = sum(map(len, epochs))
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    if total == 0:
        raise ValueError(f"{len(examples)} examples make no full batch of {config.batch_size} for any task")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, config.warmup_ratio))
    log: list[dict[str, Any]] = []
    model.train()
    t0, step = time.perf_counter(), 0
    try:
        for epoch, batches in enumerate(epochs):
            for batch in batches:
                if step >= total:
                    break
                optimizer.zero_grad(set_to_none=True)
                loss = _step(embedder, batch, image_table, scale, config, step, info_nce)
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                step += 1
                if step % config.log_every == 0 or step == total:
                    entry = {"step": step, "epoch": epoch, "task": batch[0].task, "loss": round(float(loss), 4),
                             "scale": round(float(scale()[0].detach()), 2), "seconds": round(time.perf_counter() - t0, 1)}
                    log.append(entry)
                    logger.info("step %d/%d %s loss %.4f scale %.1f", step, total, entry["task"], entry["loss"],
                                entry["scale"])
    finally:
        model.eval()
    return {"config": asdict(config), "steps": step, "seconds": round(time.perf_counter() - t0, 1), "log": log}


def _step(embedder: Any, batch: list[FusedExample], image_table: Callable[[int], Any], scale: Any,
          config: UniversalTrainConfig, step: int, info_nce: Callable[..., Tensor]) -> Tensor:
    task = batch[0].task
    groups = {g: i for i, g in enumerate(dict.fromkeys(ex.group for ex in batch))}
    ids = torch.tensor([groups[ex.group] for ex in batch], device=embedder.device)  # [B]
    towers = {
        "query": Tower(lambda items: embedder.embed_items(items, "query", task),
                       [_item(ex.query_text, ex.query_image, image_table) for ex in batch]),
        "candidate": Tower(lambda items: embedder.embed_items(items, "candidate", task),
                           [_item(ex.candidate_text, ex.candidate_image, image_table) for ex in batch]),
    }

    def loss_fn(reps: dict[str, Tensor]) -> Tensor:
        return info_nce(reps["query"], reps["candidate"], scale=scale()[0], positive_ids=ids)  # [B, D] × 2 → scalar

    if config.grad_cache_chunk:
        return cached_step(loss_fn, towers, config.grad_cache_chunk, step=step)
    return plain_step(loss_fn, towers, step=step)


@torch.no_grad()
def _embed(embedder: Any, items: list[Any], side: str, task: str | None, batch_size: int = 128) -> Tensor:
    parts = [embedder.embed_items(items[s:s + batch_size], side, task).float().cpu()  # type: ignore[arg-type]
             for s in range(0, len(items), batch_size)]
    return torch.nn.functional.normalize(torch.cat(parts), dim=-1)  # [n, D]


def evaluate_universal(embedder: Any, pairs: Sequence[Any], image_table: Callable[[int], Any]) -> dict[str, Any]:
    """Held-out figures: caption→image and image→caption recall@1/5/10 (instructions on the query side), and the
    accuracy of "which category?" over the categories present (emoji groups and clip-art folders separately)."""
    from gpte.multimodal.train import retrieval_metrics

    embedder.model.eval()
    captions = [p.caption for p in pairs]
    images = [image_table(i) for i in range(len(pairs))]
    cand_img = _embed(embedder, images, "candidate", "text-to-image")
    query_txt = _embed(embedder, captions, "query", "text-to-image")
    query_img = _embed(embedder, images, "query", "image-to-text")
    cand_txt = _embed(embedder, captions, "candidate", "image-to-text")
    t2i = retrieval_metrics(cand_img, query_txt, captions)
    i2t = retrieval_metrics(query_img, cand_txt, captions)
    out: dict[str, Any] = {k: v for k, v in t2i.items() if k.startswith("text_to_image")}
    out.update({k: v for k, v in i2t.items() if k.startswith("image_to_text")})
    out["n_images"], out["n_captions"] = t2i["n_images"], t2i["n_captions"]
    for name, keep in (("emoji", lambda p: p.source in EMOJI_SOURCES), ("clipart", lambda p: p.source == "openclipart")):
        rows = [i for i, p in enumerate(pairs) if keep(p) and p.category]
        if not rows:
            continue
        classes = sorted({category_name(pairs[i]) for i in rows})
        q = _embed(embedder, [(images[i], CATEGORY_QUESTION) for i in rows], "query", "image-question")
        c = _embed(embedder, classes, "candidate", "image-question")
        pred = (q @ c.T).argmax(1)  # [n]
        gold = torch.tensor([classes.index(category_name(pairs[i])) for i in rows])
        out[f"{name}_category_acc"] = round(float((pred == gold).float().mean()), 4)
        out[f"{name}_category_n"], out[f"{name}_category_classes"] = len(rows), len(classes)
    return out
