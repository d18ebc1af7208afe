"""One modality-agnostic contrastive training loop, run from a :class:`~gpte.shared.recipe.TrainConfig`.

Per step: a batch of distinct examples (:class:`~gpte.shared.data.BatchSampler`) is tokenised into towers (queries,
positives, and hard negatives when every example of the batch has some), embedded with or without the gradient
cache (:mod:`gpte.shared.gradcache`), scored by one loss of :mod:`gpte.shared.losses` with the model's logit scale
(:class:`~gpte.shared.scale.LogitScale`), and stepped with AdamW under a linear warm-up / linear decay schedule,
gradient clipping and optional bf16 autocast.

The run directory holds ``train_log.jsonl`` (step, mean loss since the previous line, learning rate, temperature,
throughput),
``checkpoint/`` (trainable weights in safetensors, optimizer and scheduler state, data position and every random
state, written atomically), ``mined.jsonl`` (hard negatives mined once, reused on resume), ``metrics.json`` and the
final ``model/`` with its model card. Resuming from ``checkpoint/`` continues with the next batch and the same random
state, so an interrupted run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from gpte.shared.data import BatchSampler, ContrastiveDataset, Example, load_jsonl
from gpte.shared.distributed import barrier
from gpte.shared.fsio import atomic_directory, atomic_write_json, atomic_writer
from gpte.shared.gradcache import Tower, cached_step, plain_step
from gpte.shared.recipe import TrainConfig

__all__ = ["Trainer", "train"]

logger = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Fine-tune a text encoder contrastively; see the module docstring. ``train()`` returns the run's metrics."""

    def __init__(self, config: TrainConfig, model: Any | None = None) -> None:
        import gpte

        self.config = config
        self.out = Path(config.output_dir)
        _seed_everything(config.seed)
        self.device = torch.device(config.device) if config.device else (
            torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu"))
        self.encoder = model if model is not None else gpte.load(config.model, device=self.device)
        self.encoder.to(self.device)
        self._max_length = self.encoder.config.max_length  # evaluation and the saved model keep the model's window
        from gpte.shared.scale import LogitScale

        loss = config.loss
        if loss.name == "sigmoid":
            self.scale = LogitScale(init_temperature=loss.temperature, learnable=True, bias_init=-10.0)
        else:
            self.scale = LogitScale(init_temperature=loss.temperature, learnable=loss.learnable_scale)
        self.scale.to(self.device)
        self.datasets = [load_jsonl(spec) for spec in config.data]
        self._set_prompts()
        self._loss: nn.Module | None = None  # built in train(), once the process group (if any) is known

    # ------------------------------------------------------------------ set-up
    def _set_prompts(self) -> None:
        """Give the model the datasets' instructions when they agree, so encode_query/encode_document match training."""
        pairs = {(d.query_instruction, d.document_instruction) for d in self.datasets}
        if len(pairs) == 1:
            q, d = pairs.pop()
            if q or d:
                self.encoder.configure(query_prompt=q, document_prompt=d)
        else:
            logger.warning("datasets use different instructions; the saved model keeps its own prompts")

    def _attach_adapter(self) -> None:
        if self.config.lora is None:
            return
        from gpte.shared.adapters import add_lora, has_adapter

        if not has_adapter(self.encoder.backbone):
            self.encoder.backbone = add_lora(self.encoder.backbone, self.config.lora)
        if self.encoder.projection is not None:
            self.encoder.projection.requires_grad_(True)

    def _mine(self) -> None:
        """Mine hard negatives once (rank 0) into ``mined.jsonl``; every rank, and every resume, reads that file."""
        spec = self.config.mining
        if spec is None:
            return
        cache = self.out / "mined.jsonl"
        if self._main and not cache.is_file():
            import gpte
            from gpte.shared.mining import mine_hard_negatives

            teacher = gpte.load(spec.teacher, device=self.device) if spec.teacher else self.encoder
            t0 = time.perf_counter()
            mined = [mine_hard_negatives(
                teacher, ds, num_negatives=spec.num_negatives, rank_window=tuple(spec.rank_window),  # type: ignore[arg-type]
                margin=spec.margin, relative_margin=spec.relative_margin, backend=spec.backend)
                for ds in self.datasets]
            _write_mined(cache, mined)
            logger.info("mined hard negatives in %.1f s", time.perf_counter() - t0)
        barrier()
        self.datasets = _read_mined(cache, self.datasets)

    def _parameters(self) -> list[nn.Parameter]:
        params = [p for p in self.encoder.parameters() if p.requires_grad]
        params += [p for p in self.scale.parameters() if p.requires_grad]
        if not params:
            raise ValueError("nothing to train: every parameter is frozen")
        return params

    # ------------------------------------------------------------------ the loss
    def _build_loss(self) -> nn.Module:
        """The recipe's loss as one of :mod:`gpte.shared.losses`' modules (distributed across ranks under torchrun)."""
        from gpte.shared import losses
        from gpte.shared.distributed import is_distributed

        spec = self.config.loss
        multi = is_distributed()
        if spec.name == "infonce":  # under torchrun: negatives from every rank, open_clip's local loss
            return losses.InfoNCELoss(symmetric=spec.symmetric, qq_negatives=spec.qq_negatives,
                                      dd_negatives=spec.dd_negatives, fn_margin=spec.fn_margin,
                                      block_size=spec.block_size, distributed="local" if multi else None)
        if spec.name == "sigmoid":  # under torchrun: document blocks travel around the ring of ranks
            return losses.SigmoidLoss(block_size=spec.block_size, distributed="ring" if multi else None)
        return (losses.CoSENTLoss if spec.name == "cosent" else losses.AnglELoss)(scale=spec.graded_scale)

    def _loss_fn(self, batch: list[Example], n_neg: int) -> Callable[[dict[str, Tensor]], Tensor]:
        from gpte.shared import losses

        spec = self.config.loss
        graded = spec.name in ("cosent", "angle")
        labels = None
        if graded:
            if any(ex.score is None for ex in batch):
                raise ValueError(f"the {spec.name} loss needs a 'score' on every example")
            labels = torch.tensor([ex.score for ex in batch], dtype=torch.float32, device=self.device)
        module = self._loss

        def base(q: Tensor, d: Tensor, negatives: Tensor | None = None) -> Tensor:
            if graded:
                return module(q, d, labels)
            scale, bias = self.scale()  # the model's learnable (or fixed) logit scale and bias
            return module(q, d, negatives, scale=scale, bias=bias)

        loss: Callable[..., Tensor] = base
        if spec.matryoshka_dims:
            loss = losses.Matryoshka(base, dims=tuple(spec.matryoshka_dims))

        def loss_fn(reps: dict[str, Tensor]) -> Tensor:
            q, d = reps["q"], reps["d"]
            if q.shape[0] != d.shape[0]:
                raise ValueError(f"{q.shape[0]} query embeddings but {d.shape[0]} positives in one batch")
            negatives = reps["n"].view(q.shape[0], n_neg, -1) if "n" in reps else None  # [B, H, D]
            return loss(q, d, negatives) if negatives is not None else loss(q, d)

        return loss_fn

    def _towers(self, dataset: ContrastiveDataset, batch: list[Example]) -> tuple[dict[str, Tower], int]:
        enc = self.encoder

        def embed(tokens: dict[str, Tensor]) -> Tensor:
            return enc(**{k: v.to(self.device, non_blocking=True) for k, v in tokens.items()})

        qi, di = dataset.query_instruction, dataset.document_instruction
        towers = {"q": Tower(embed, enc.tokenize([ex.query for ex in batch], prompt=qi)),
                  "d": Tower(embed, enc.tokenize([ex.positive for ex in batch], prompt=di))}
        n_neg = min(len(ex.negatives) for ex in batch)
        if n_neg and self.config.loss.name in ("infonce", "sigmoid"):
            flat = [neg for ex in batch for neg in ex.negatives[:n_neg]]  # [B * H], query-major
            towers["n"] = Tower(embed, enc.tokenize(flat, prompt=di))
        return towers, n_neg

    # ------------------------------------------------------------------ several processes (torchrun)
    def _local(self, examples: list[Example]) -> list[Example]:
        """This rank's share of a global batch (rank r takes items r, r + W, ...)."""
        from gpte.shared import distributed as dist

        if not dist.is_distributed():
            return examples
        world = dist.world_size()
        if len(examples) % world:
            raise ValueError(f"batch_size {len(examples)} is not a multiple of the {world} processes")
        return examples[dist.rank()::world]

    def _all_reduce_gradients(self) -> None:
        """Average gradients over ranks (the losses are scaled for DDP's convention)."""
        from gpte.shared.distributed import average_gradients

        average_gradients(self._parameters())

    @property
    def _main(self) -> bool:
        from gpte.shared import distributed as dist

        return dist.rank() == 0

    # ------------------------------------------------------------------ checkpoints
    def _trainable_state(self) -> dict[str, Tensor]:
        state = {f"encoder.{n}": p.detach().cpu().contiguous()
                 for n, p in self.encoder.named_parameters() if p.requires_grad}
        state.update({f"scale.{n}": t.detach().cpu().contiguous() for n, t in self.scale.state_dict().items()
                      if t is not None})
        return state

    def _save_checkpoint(self, step: int, epoch: int, position: int, optimizer: Any, scheduler: Any) -> None:
        from safetensors.torch import save_file

        if not self._main:  # every rank holds the same weights; rank 0 writes
            barrier()
            return

        with atomic_directory(self.out / CHECKPOINT) as tmp:
            save_file(self._trainable_state(), str(tmp / "trainable.safetensors"))
            torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                        "rng": _rng_state_tensors()}, tmp / "state.pt")
            atomic_write_json(tmp / "progress.json", {
                "step": step, "epoch": epoch, "position": position, "python_rng": _py_rng_json(),
                "recipe": self.config.to_dict()})
        logger.info("checkpoint at step %d", step)
        barrier()

    def _load_checkpoint(self, optimizer: Any, scheduler: Any) -> tuple[int, int, int]:
        from safetensors.torch import load_file

        ckpt = self.out / CHECKPOINT
        progress = json.loads((ckpt / "progress.json").read_text(encoding="utf-8"))
        if progress.get("recipe") != json.loads(json.dumps(self.config.to_dict())):
            raise ValueError(f"{ckpt} was written by a different recipe; delete it or use another output_dir")
        state = load_file(str(ckpt / "trainable.safetensors"), device="cpu")
        params = dict(self.encoder.named_parameters())
        with torch.no_grad():
            for key, value in state.items():
                if key.startswith("encoder."):
                    params[key.removeprefix("encoder.")].copy_(value)
        self.scale.load_state_dict({k.removeprefix("scale."): v for k, v in state.items() if k.startswith("scale.")},
                                   strict=False)
        extra = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(extra["optimizer"])
        scheduler.load_state_dict(extra["scheduler"])
        _restore_rng(extra["rng"], progress["python_rng"])
        logger.info("resumed from %s at step %d", ckpt, progress["step"])
        return int(progress["step"]), int(progress["epoch"]), int(progress["position"])

    # ------------------------------------------------------------------ evaluation
    def evaluate(self) -> dict[str, float]:
        """Retrieval on the recipe's held-out pairs (every positive is a candidate)."""
        spec = self.config.eval
        if spec is None:
            return {}
        from gpte.shared.data import DatasetSpec
        from gpte.shared.evaluation import RetrievalEvaluator

        ds = load_jsonl(DatasetSpec(spec.path, limit=spec.limit))
        queries = {f"q{i}": ex.query for i, ex in enumerate(ds.examples)}
        corpus = {f"d{i}": ex.positive for i, ex in enumerate(ds.examples)}
        qrels = {f"q{i}": {f"d{i}": 1.0} for i in range(len(ds.examples))}
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            self.encoder.configure(max_length=self._max_length)
            result = RetrievalEvaluator(queries, corpus, qrels, k_values=spec.k_values,
                                        main_metric="mrr@10" if 10 in spec.k_values else None)(self.encoder)
        finally:
            self.encoder.train(was_training)
        return {k: float(v) for k, v in result.items() if isinstance(v, int | float)}

    # ------------------------------------------------------------------ the loop
    def train(self, resume: bool = True) -> dict[str, Any]:
        from tqdm.auto import tqdm

        cfg = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        metrics: dict[str, Any] = {}
        resuming = resume and (self.out / CHECKPOINT / "progress.json").is_file()
        if cfg.eval is not None and cfg.eval.before and not resuming and self._main:
            metrics["before"] = self.evaluate()
            logger.info("before training: %s", _short(metrics["before"]))
        self._mine()
        self._attach_adapter()
        self._loss = self._build_loss()
        if cfg.gradient_checkpointing:
            _enable_checkpointing(self.encoder.backbone)
        sampler = BatchSampler(self.datasets, cfg.batch_size, seed=cfg.seed, group_by_task=cfg.group_by_task)
        per_epoch = [len(sampler.batches(e)) for e in range(cfg.epochs)]
        total = cfg.max_steps or sum(per_epoch)
        if total < 1:
            raise ValueError(f"no full batch of {cfg.batch_size} distinct examples in the data")
        optimizer = torch.optim.AdamW(self._parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        warmup = int(cfg.warmup_ratio * total)

        def schedule(step: int) -> float:  # linear warm-up to 1, then linear decay to 0
            if step < warmup:
                return (step + 1) / max(1, warmup)
            return max(0.0, (total - step) / max(1, total - warmup))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        step, epoch, position = 0, 0, 0
        if resuming:
            step, epoch, position = self._load_checkpoint(optimizer, scheduler)
        elif (self.out / "train_log.jsonl").exists():
            (self.out / "train_log.jsonl").unlink()
        autocast = self._autocast()
        if cfg.max_length:  # the training window (shorter windows train faster; evaluation uses the model's own)
            self.encoder.configure(max_length=cfg.max_length)
        self.encoder.train()
        bar = tqdm(total=total, initial=step, unit="step", desc="train", disable=not sys.stderr.isatty())
        t_start, seen = time.perf_counter(), 0
        window: list[float] = []  # losses since the last log line (the log shows their mean)
        log = (self.out / "train_log.jsonl").open("a", encoding="utf-8") if self._main else open(os.devnull, "w")
        try:
            while step < total:  # epochs until the step budget is spent (max_steps may exceed one epoch)
                batches = sampler.batches(epoch)
                while position < len(batches) and step < total:
                    b = batches[position]
                    dataset = self.datasets[b.dataset]
                    examples = self._local(b.examples(self.datasets))
                    towers, n_neg = self._towers(dataset, examples)
                    loss_fn = self._loss_fn(examples, n_neg)
                    optimizer.zero_grad(set_to_none=True)
                    if cfg.grad_cache_chunk:
                        loss = cached_step(loss_fn, towers, cfg.grad_cache_chunk, autocast=autocast, step=step)
                    else:
                        loss = plain_step(loss_fn, towers, autocast=autocast, step=step)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"loss is {float(loss)} at step {step}; lower the learning rate")
                    self._all_reduce_gradients()
                    torch.nn.utils.clip_grad_norm_(self._parameters(), cfg.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    step += 1
                    position += 1
                    seen += len(examples)
                    window.append(float(loss))
                    bar.update(1)
                    if step % cfg.log_every == 0 or step == total:
                        elapsed = time.perf_counter() - t_start
                        record = {"step": step, "epoch": epoch, "loss": round(sum(window) / len(window), 6),
                                  "lr": scheduler.get_last_lr()[0], "temperature": round(self.scale.temperature, 5),
                                  "pairs_per_s": round(seen / max(elapsed, 1e-9), 2), "elapsed_s": round(elapsed, 2)}
                        log.write(json.dumps(record) + "\n")
                        log.flush()
                        window.clear()
                        bar.set_postfix(loss=f"{float(loss):.4f}")
                    if cfg.save_every and step % cfg.save_every == 0 and step < total:
                        self._save_checkpoint(step, epoch, position, optimizer, scheduler)
                if position >= len(batches):
                    epoch, position = epoch + 1, 0
        finally:
            log.close()
            bar.close()
        train_seconds = time.perf_counter() - t_start
        self._save_checkpoint(step, epoch, position, optimizer, scheduler)
        self.encoder.configure(max_length=self._max_length)
        self.encoder.eval()
        if not self._main:
            barrier()
            return metrics
        if cfg.eval is not None:
            metrics["after"] = self.evaluate()
            logger.info("after training: %s", _short(metrics["after"]))
        metrics.update({"steps": step, "train_seconds": round(train_seconds, 1), "examples": sum(map(len, self.datasets)),
                        "device": str(self.device), "torch_threads": torch.get_num_threads(),
                        "platform": platform.platform()})
        self._save_model(metrics)
        atomic_write_json(self.out / "metrics.json", metrics)
        barrier()
        return metrics

    def _autocast(self) -> Callable[[], contextlib.AbstractContextManager] | None:
        if self.config.precision == "bf16":
            return lambda: torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return None

    def _save_model(self, metrics: dict[str, Any]) -> Path:
        from gpte.shared.adapters import has_adapter
        from gpte.shared.model_card import write_model_card

        path = self.out / "model"
        adapter_only = self.config.save_adapter_only and has_adapter(self.encoder.backbone)
        if self.config.code_structure is not None:  # a code model: the text encoder plus its structural input
            from gpte.code.encoder import CodeEncoder
            from gpte.code.structure import StructureConfig

            code = CodeEncoder(self.encoder, StructureConfig(mode=self.config.code_structure))  # type: ignore[arg-type]
            code.save(path, adapter_only=adapter_only)
        else:
            self.encoder.save(path, adapter_only=adapter_only)
        write_model_card(path, self.config, self.datasets, metrics)
        return path


def _enable_checkpointing(backbone: nn.Module) -> None:
    """Recompute activations in backward (non-reentrant, so frozen inputs and LoRA work)."""
    new_api = getattr(backbone, "activation_checkpointing_enable", None)  # transformers >= 5
    if new_api is not None:
        new_api(activation_checkpointing_kwargs={"use_reentrant": False})
    else:  # pragma: no cover - transformers 4
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def train(config: TrainConfig, resume: bool = True) -> dict[str, Any]:
    """Run a recipe: ``Trainer(config).train(resume)``."""
    return Trainer(config).train(resume=resume)


def _short(result: dict[str, float]) -> str:
    keys = [k for k in ("mrr@10", "recall@10", "ndcg@10") if k in result]
    return ", ".join(f"{k} {result[k]:.4f}" for k in keys)


def _rng_state_tensors() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": torch.from_numpy(
        np.random.get_state()[1].astype(np.int64))}
    np_state = np.random.get_state()
    state["numpy_pos"] = torch.tensor([np_state[2], np_state[3]], dtype=torch.int64)
    state["numpy_gauss"] = torch.tensor([np_state[4]], dtype=torch.float64)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_rng_json() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _restore_rng(tensors: dict[str, Any], py_state: list[Any]) -> None:
    torch.set_rng_state(tensors["torch"])
    pos, has_gauss = (int(x) for x in tensors["numpy_pos"].tolist())
    np.random.set_state(("MT19937", tensors["numpy"].numpy().astype(np.uint32), pos, has_gauss,
                         float(tensors["numpy_gauss"][0])))
    if "cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(tensors["cuda"])
    random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))


def _write_mined(path: Path, datasets: list[ContrastiveDataset]) -> None:
    with atomic_writer(path, "w") as fh:
        for d, ds in enumerate(datasets):
            for ex in ds.examples:
                fh.write(json.dumps({"dataset": d, **asdict(ex)}, ensure_ascii=False) + "\n")


def _read_mined(path: Path, datasets: list[ContrastiveDataset]) -> list[ContrastiveDataset]:
    rows: list[list[Example]] = [[] for _ in datasets]
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            d = rec.pop("dataset")
            rec["negatives"] = tuple(rec["negatives"])
            rows[d].append(Example(**rec))
    if [len(r) for r in rows] != [len(ds) for ds in datasets]:
        raise ValueError(f"{path} does not match the recipe's data; delete it to mine again")
    return [replace(ds, examples=r) for ds, r in zip(datasets, rows, strict=True)]
