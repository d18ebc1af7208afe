"""The model picker's choices (registered models of the right kind per tab) and the process-wide model cache."""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

import gpte
from gpte.demo.config import DemoError

__all__ = ["KINDS", "ModelCache", "model_choices"]

logger = logging.getLogger(__name__)

Kind = Literal["image", "code", "text"]
# registry modalities each tab can use: image search needs an image–text model; a text model also reads code
KINDS: dict[str, tuple[str, ...]] = {"image": ("multimodal",), "code": ("code", "text"), "text": ("text",)}


def model_choices(kind: Kind, include_test: bool = False) -> list[str]:
    """Registered model names for one tab: real models first, then (if asked) the tiny test models."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, not {kind!r}")
    return [e.name for e in gpte.list_models(include_test=include_test) if e.modality in KINDS[kind]]


class ModelCache:
    """Loads each registered model once per process (thread-safe) and hands the same object to every tab."""

    def __init__(self, device: str | None = None, include_test: bool = False) -> None:
        self.device = device
        self.include_test = include_test
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str | None, kind: Kind) -> Any:
        """The model ``name`` (which must be one of :func:`model_choices` for ``kind``), loaded on first use."""
        choices = model_choices(kind, self.include_test)
        if not name or name not in choices:
            raise DemoError(f"model {name!r} cannot be used for {kind} search; choose one of {', '.join(choices)}")
        with self._lock:
            model = self._models.get(name)
            if model is None:
                logger.info("loading model %s", name)
                try:
                    model = gpte.load(name, **({"device": self.device} if self.device else {}))
                except (ImportError, OSError, ValueError, LookupError, RuntimeError) as exc:
                    raise DemoError(f"model {name} could not be loaded: {exc}") from exc
                self._models[name] = model
            return model

    def loaded(self) -> list[str]:
        """Names of the models loaded so far."""
        with self._lock:
            return sorted(self._models)
