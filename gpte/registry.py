"""Named models and the one loading entry point, ``gpte.load``.

A registry in timm's manner: ``@register_model`` binds a name to a factory; tiny random test variants are registered
beside the real models so tests build them in-process. ``load`` also takes any local folder: a gpte save, a
sentence-transformers folder or a bare Hugging Face model folder. gpte never reaches a model hub.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpte.shared.errors import ModelNotFoundError

__all__ = ["ModelEntry", "register_model", "list_models", "load", "resolve_name"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelEntry:
    name: str  # canonical registry name
    factory: Callable[..., Any]  # (**options) -> embedder
    modality: str  # "text", "image", "code", "multimodal"
    description: str  # one line for `gpte info`
    source: str  # where the weights come from
    aliases: tuple[str, ...] = field(default=())
    test: bool = False  # tiny random model for tests


_REGISTRY: dict[str, ModelEntry] = {}
_ALIASES: dict[str, str] = {}


def register_model(
    name: str, *, modality: str, description: str, source: str, aliases: tuple[str, ...] = (), test: bool = False
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``factory(**options) -> embedder`` under ``name`` (and ``aliases``)."""

    def wrap(factory: Callable[..., Any]) -> Callable[..., Any]:
        for key in (name, *aliases):
            if key.lower() in _ALIASES:
                raise ValueError(f"model name {key!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, modality, description, source, tuple(aliases), test)
        for key in (name, *aliases):
            _ALIASES[key.lower()] = name
        return factory

    return wrap


def _ensure_builtins() -> None:
    import gpte.code.code_models  # noqa: F401  (registers the code models)
    import gpte.multimodal.models  # noqa: F401  (registers the image–text models; imports no timm)
    import gpte.unimodal.text_models  # noqa: F401  (registers the text models)

    try:
        import gpte.unimodal.image_models  # noqa: F401  (registers the image models; needs no timm to import)
    except ImportError as exc:  # pragma: no cover - a broken optional install must not break text models
        logger.warning("image models unavailable: %s", exc)


def list_models(include_test: bool = False) -> list[ModelEntry]:
    """Registered models, real ones first."""
    _ensure_builtins()
    return sorted((e for e in _REGISTRY.values() if include_test or not e.test), key=lambda e: (e.test, e.name))


def resolve_name(name: str) -> ModelEntry | None:
    _ensure_builtins()
    key = _ALIASES.get(name.lower())
    return _REGISTRY[key] if key else None


def load(name_or_path: str | os.PathLike[str], **options: Any) -> Any:
    """Load an embedder by registry name or from a local folder.

    Folders: a gpte save (``gpte.json``), a sentence-transformers folder (``modules.json``) or a Hugging Face model
    folder (``config.json``; encoders get mean pooling, decoders last-token pooling). ``options`` (``device``,
    ``dtype``, and config fields such as ``max_length`` or ``truncate_dim``) go to the factory.
    """
    entry = resolve_name(str(name_or_path))
    if entry is not None:
        model = entry.factory(**options)
        model.source = entry.name
        return model
    path = Path(name_or_path).expanduser()
    if path.is_dir():

        device, dtype = options.pop("device", None), options.pop("dtype", None)
        encoder = _load_folder(path, device, dtype, options)
        encoder.source = str(path.resolve())
        return encoder
    known = ", ".join(e.name for e in list_models())
    hub_like = "/" in str(name_or_path) and not path.exists()
    hint = (" gpte runs offline and never downloads from a model hub: fetch the model on a connected machine and "
            "pass its local folder." if hub_like else "")
    raise ModelNotFoundError(f"{str(name_or_path)!r} is neither a registered model ({known}) nor an existing "
                             f"folder.{hint}")


def _load_folder(path: Path, device: Any, dtype: Any, options: dict[str, Any]) -> Any:
    from gpte.unimodal.st_compat import is_sentence_transformers_folder, load_sentence_transformers
    from gpte.unimodal.text import CONFIG_NAME, TextEncoder

    if (path / "gpte-image.json").is_file():
        from gpte.unimodal.image import ImageEncoder

        return ImageEncoder.load(path, device=device, dtype=dtype)
    if (path / "gpte-dual.json").is_file():
        from gpte.multimodal.dual import DualTower

        return DualTower.load(path, device=device, dtype=dtype)
    if (path / "gpte-universal.json").is_file():
        from gpte.multimodal.universal import UniversalEmbedder

        return UniversalEmbedder.load(path, device=device)
    if (path / "gpte-code.json").is_file():
        from gpte.code.encoder import CodeEncoder

        return CodeEncoder.load(path, device=device, dtype=dtype, **options)
    if (path / "gpte-openclip.json").is_file():
        from gpte.multimodal.openclip import OpenCLIPEmbedder

        return OpenCLIPEmbedder.load(path, device=device)
    if (path / CONFIG_NAME).is_file():
        encoder = TextEncoder.load(path, device=device, dtype=dtype)
    elif is_sentence_transformers_folder(path):
        encoder = load_sentence_transformers(path, device=device, dtype=dtype)
    elif (path / "config.json").is_file():
        return TextEncoder.from_backbone(path, device=device, dtype=dtype, **options)
    else:
        raise ModelNotFoundError(f"{path} holds no model: expected gpte.json, modules.json or config.json")
    return encoder.configure(**options)
