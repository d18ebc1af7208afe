"""Training recipes: small dataclasses, read from TOML or JSON, with an error naming every unknown key.

A recipe file (``gpte train RECIPE``)::

    model = "minilm"                 # registry name or folder of the encoder to fine-tune
    output_dir = "runs/code-search"
    batch_size = 64
    epochs = 1
    learning_rate = 1e-4

    [loss]                           # LossSpec
    name = "infonce"
    temperature = 0.05

    [lora]                           # LoraSpec; omit the table for full fine-tuning
    r = 16

    [[data]]                         # DatasetSpec, one table per dataset
    path = "train.jsonl"
    query_instruction = ""

    [mining]                         # MiningSpec; omit for in-batch negatives only
    num_negatives = 1

    [eval]                           # EvalSpec: retrieval on held-out pairs before and after training
    path = "test.jsonl"

Relative paths are relative to the working directory, as for every other command-line path. Command-line flags
become fields of these dataclasses at the edge (``gpte.cli``); the trainer only ever sees a :class:`TrainConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gpte.shared.adapters import LoraSpec
from gpte.shared.data import DatasetSpec

__all__ = ["RecipeError", "build_section", "LossSpec", "MiningSpec", "EvalSpec", "TrainConfig", "load_recipe",
           "recipe_kind", "load_tables"]


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the key or value."""


@dataclass
class LossSpec:
    name: Literal["infonce", "sigmoid", "cosent", "angle"] = "infonce"  # the objective
    temperature: float = 0.05  # τ: logits = sim / τ (scale = 1/τ); the initial value when learnable
    learnable_scale: bool = False  # learn log(1/τ) (CLIP); the sigmoid loss always learns scale and bias
    symmetric: bool = False  # add the document→query direction (CLIP-style)
    qq_negatives: bool = False  # other queries as negatives (GTE)
    dd_negatives: bool = False  # other documents scored against the positive (GTE)
    fn_margin: float | None = None  # mask in-batch candidates scoring above positive − margin (false negatives)
    matryoshka_dims: list[int] | None = None  # sum the loss over these truncated dimensions (MRL)
    block_size: int | None = None  # blockwise loss: never materialise the batch × batch scores
    graded_scale: float = 20.0  # CoSENT/AnglE scale

    def __post_init__(self) -> None:
        if self.name not in ("infonce", "sigmoid", "cosent", "angle"):
            raise RecipeError(f"loss.name {self.name!r} is not one of infonce, sigmoid, cosent, angle")
        if self.temperature <= 0:
            raise RecipeError(f"loss.temperature must be > 0 (got {self.temperature})")


@dataclass
class MiningSpec:
    num_negatives: int = 1  # hard negatives mined per query
    rank_window: list[int] = field(default_factory=lambda: [3, 50])  # [start, stop) of candidate ranks
    margin: float | None = None  # keep s(q, n) <= s(q, p) - margin
    relative_margin: float | None = 0.05  # keep s(q, n) <= s(q, p) * (1 - relative_margin)
    teacher: str | None = None  # model that mines (registry name or folder); default: the model being trained
    backend: str = "exact"  # index backend used to rank the corpus


@dataclass
class EvalSpec:
    path: str  # JSONL pairs: each query's positive is its relevant document; all positives form the corpus
    k_values: list[int] = field(default_factory=lambda: [1, 5, 10, 100])  # cut-offs for recall/MRR/nDCG
    limit: int | None = None  # use the first N pairs (N candidates)
    before: bool = True  # also evaluate the model before training (zero-shot)


@dataclass
class TrainConfig:
    data: list[DatasetSpec]  # training datasets (mixed in proportion to weight × size)
    model: str = "minilm"  # registry name or folder of the encoder to fine-tune
    output_dir: str = "runs/train"  # checkpoint/, model/, train_log.jsonl, metrics.json go here
    batch_size: int = 32  # pairs per step (in-batch negatives come from the same batch)
    grad_cache_chunk: int | None = None  # sub-batch of the gradient cache; None = plain step
    epochs: int = 1  # passes over the data
    max_steps: int | None = None  # stop after this many steps (overrides epochs)
    learning_rate: float = 2e-5  # peak learning rate (AdamW)
    weight_decay: float = 0.01  # AdamW weight decay
    warmup_ratio: float = 0.1  # linear warm-up over this fraction of the steps, then linear decay to 0
    max_grad_norm: float = 1.0  # gradient clipping
    precision: Literal["fp32", "bf16"] = "fp32"  # autocast dtype for the towers (bf16 needs no loss scaling)
    gradient_checkpointing: bool = False  # recompute activations in backward (less memory, ~30% slower)
    max_length: int | None = None  # token window while training (evaluation and the saved model keep their own)
    group_by_task: bool = True  # one task per batch
    seed: int = 0  # data order, initialisation of new layers, dropout
    log_every: int = 10  # steps between log lines
    save_every: int | None = None  # steps between checkpoints (None: only at the end)
    device: str | None = None  # cpu, cuda, ... (default: cuda when present)
    loss: LossSpec = field(default_factory=LossSpec)
    lora: LoraSpec | None = None  # train a LoRA adapter only
    mining: MiningSpec | None = None  # mine hard negatives with the model before training
    eval: EvalSpec | None = None  # held-out retrieval evaluation
    save_adapter_only: bool = True  # with LoRA: save the adapter and a reference to the base model
    # save a code model (gpte.code.encoder.CodeEncoder) whose documents are rendered with this structure mode
    # ("text", "ast" or "text+ast"); the training data must be rendered the same way (gpte data stdlib-code)
    code_structure: str | None = None

    def __post_init__(self) -> None:
        if not self.data:
            raise RecipeError("a recipe needs at least one [[data]] table")
        if self.batch_size < 2:
            raise RecipeError(f"batch_size must be >= 2 (got {self.batch_size})")
        if self.code_structure not in (None, "text", "ast", "text+ast"):
            raise RecipeError(f"code_structure {self.code_structure!r}: use 'text', 'ast' or 'text+ast'")
        if self.precision not in ("fp32", "bf16"):
            raise RecipeError(f"precision {self.precision!r}: use 'fp32' or 'bf16' (fp16 would need loss scaling)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_NESTED: dict[str, type] = {"loss": LossSpec, "lora": LoraSpec, "mining": MiningSpec, "eval": EvalSpec}


def build_section(cls: type, data: Any, where: str) -> Any:
    """``cls(**data)`` for one recipe table (a dataclass), naming ``where`` on any unknown key or bad value."""
    if not isinstance(data, dict):
        raise RecipeError(f"{where} must be a table, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in {where}; "
                          f"known: {', '.join(sorted(known))}")
    try:
        return cls(**data)
    except RecipeError:
        raise
    except (TypeError, ValueError) as exc:  # a missing key, or a value the dataclass refuses
        raise RecipeError(f"{where}: {exc}") from None


def recipe_kind(path: str | os.PathLike[str]) -> str | None:
    """The ``kind`` key of a TOML recipe (``"image-text"``, ``"universal"``; None for text recipes, which have
    none, and for anything that is not a readable TOML file)."""
    path = Path(path)
    if path.suffix != ".toml" or not path.is_file():
        return None
    try:
        kind = tomllib.loads(path.read_text(encoding="utf-8")).get("kind")
    except tomllib.TOMLDecodeError:
        return None
    return kind if isinstance(kind, str) else None


def load_tables(path: str | os.PathLike[str], cls: type, tables: dict[str, type]) -> Any:
    """A recipe whose top level is the dataclass ``cls`` and whose ``[name]`` tables are the dataclasses in
    ``tables`` (set as attributes of the same name); every key is checked by :func:`build_section`."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    built = {name: build_section(table, data.pop(name, {}), f"[{name}]") for name, table in tables.items()}
    recipe = build_section(cls, data, "the recipe's top level")
    for name, value in built.items():
        setattr(recipe, name, value)
    return recipe


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from plain data (a parsed recipe), naming any unknown key."""
    data = dict(data)
    raw_data = data.pop("data", None)
    if not isinstance(raw_data, list) or not raw_data:
        raise RecipeError("a recipe needs at least one [[data]] table (a list of datasets)")
    datasets = [build_section(DatasetSpec, d, f"[[data]] #{i + 1}") for i, d in enumerate(raw_data)]
    nested = {}
    for key, cls in _NESTED.items():
        if key in data and data[key] is not None:
            nested[key] = build_section(cls, data.pop(key), f"[{key}]")
    config = build_section(TrainConfig, {**data, "data": datasets}, "the recipe's top level")
    for key, value in nested.items():
        setattr(config, key, value)
    return config


def load_recipe(path: str | os.PathLike[str]) -> TrainConfig:
    """Read a ``.toml`` or ``.json`` recipe."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"no recipe file at {path}")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RecipeError(f"{path}: {exc}") from None
    return config_from_dict(data)
