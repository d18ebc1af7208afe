"""Parameter-efficient adapters (LoRA, Hu et al. 2021) through peft, for any gpte encoder's backbone.

LoRA adds ``ΔW = (α / r) · B A`` (``A ∈ R^{r×k}``, ``B ∈ R^{d×r}``, ``B`` initialised at 0) beside each adapted
weight ``W``; only ``A`` and ``B`` train. gpte saves the adapter alone (a few hundred KB for MiniLM) with a reference
to its base model, and merges it into the base weights when loading for inference (no extra latency).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["LoraSpec", "add_lora", "has_adapter", "merged_copy", "trainable_parameters"]

logger = logging.getLogger(__name__)


def _peft() -> Any:
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - peft is a core dependency
        raise ImportError("LoRA needs peft: pip install peft") from exc
    return peft


@dataclass
class LoraSpec:
    r: int = 16  # rank of the update
    alpha: float = 32.0  # scaling numerator: ΔW = (alpha / r) · B A
    dropout: float = 0.05  # dropout on the adapter's input
    target_modules: list[str] | None = None  # module names to adapt; None = peft's default for the model type

    def __post_init__(self) -> None:
        if self.r < 1:
            raise ValueError(f"LoRA rank r must be >= 1 (got {self.r})")


def has_adapter(backbone: nn.Module) -> bool:
    """True when ``backbone`` is a peft model (an adapter is attached)."""
    return type(backbone).__module__.startswith("peft")


def add_lora(backbone: nn.Module, spec: LoraSpec) -> nn.Module:
    """Wrap ``backbone`` with LoRA adapters; the base weights are frozen. Returns the peft model."""
    peft = _peft()
    config = peft.LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout,
                             target_modules=spec.target_modules, bias="none")
    try:
        model = peft.get_peft_model(backbone, config)
    except ValueError as exc:
        kind = getattr(getattr(backbone, "config", None), "model_type", "?")
        raise ValueError(f"cannot place LoRA on a {kind} backbone ({exc}); name target_modules explicitly, e.g. "
                         "['query', 'value'] for BERT or ['q_proj', 'v_proj'] for Llama-style models") from exc
    n_train, n_all = trainable_parameters(model)
    logger.info("LoRA r=%d on %s: %d of %d parameters train (%.2f%%)", spec.r, type(backbone).__name__, n_train,
                n_all, 100.0 * n_train / max(1, n_all))
    return model


def merged_copy(backbone: nn.Module) -> nn.Module:
    """A copy of a peft ``backbone`` with the adapter merged into the base weights (a plain transformers model)."""
    return copy.deepcopy(backbone).merge_and_unload()


def load_adapter(base_backbone: nn.Module, adapter_dir: str, merge: bool = True) -> nn.Module:
    """Attach the adapter saved in ``adapter_dir`` to ``base_backbone``; merged by default (inference)."""
    peft = _peft()
    model = peft.PeftModel.from_pretrained(base_backbone, adapter_dir)
    return model.merge_and_unload() if merge else model


def trainable_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in module.parameters())
    train = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return train, total
