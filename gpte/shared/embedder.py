"""The one interface every gpte embedder (text, image, code, multimodal) implements."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Embedder"]


@runtime_checkable
class Embedder(Protocol):
    """``encode_query`` and ``encode_document`` may differ (instructions, prompts); ``encode`` applies neither."""

    modality: str  # "text", "image", "code" or "multimodal"

    @property
    def embed_dim(self) -> int: ...

    def encode(self, inputs: Any, **kwargs: Any) -> Any: ...

    def encode_query(self, inputs: Any, **kwargs: Any) -> Any: ...

    def encode_document(self, inputs: Any, **kwargs: Any) -> Any: ...

    def identity(self) -> dict[str, Any]: ...
