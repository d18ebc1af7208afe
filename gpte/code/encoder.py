"""Code encoders: a text encoder reading code with its structural header (:mod:`gpte.code.structure`).

Queries (natural language) go through the text encoder's query side unchanged; code goes through
:func:`gpte.code.structure.render` first, so the model sees the same input it was trained on. Saved as a folder with
``gpte-code.json`` (the structure settings and the tree-sitter grammar versions) and ``text/`` (the text encoder:
a LoRA adapter with the name of its base, or a full model).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpte.code.structure import StructureConfig, render
from gpte.shared.fsio import atomic_directory, atomic_write_json

__all__ = ["CodeEncoder", "CODE_CONFIG"]

CODE_CONFIG = "gpte-code.json"
FORMAT = "gpte-code-encoder"


class CodeEncoder:
    """``encode_query`` for natural language, ``encode_document`` / ``encode_chunks`` for code."""

    modality = "code"

    def __init__(self, text: Any, structure: StructureConfig | None = None, language: str = "python") -> None:
        self.text = text
        self.structure = structure or StructureConfig()
        self.language = language  # default language of bare code strings
        self.source = ""  # set by save/load or the registry; a code model built in-process has none to reload from

    @property
    def embed_dim(self) -> int:
        return int(self.text.embed_dim)

    def render(self, code: str, language: str | None = None, symbol: str = "", doc: str | None = None,
               scope: str | None = None) -> str:
        """The encoder's input for one piece of code (:func:`gpte.code.structure.render` with the saved settings)."""
        return render(code, language or self.language, symbol, self.structure, doc, scope)

    def encode_query(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.text.encode_query(texts, **kwargs)

    def encode(self, texts: str | Sequence[str], **kwargs: Any) -> np.ndarray:
        return self.text.encode(texts, **kwargs)

    def encode_document(self, codes: str | Sequence[str], language: str | None = None, **kwargs: Any) -> np.ndarray:
        """Embed code strings (all in ``language``, default ``self.language``) through the structural renderer."""
        single = isinstance(codes, str)
        items = [codes] if single else list(codes)
        out = self.text.encode_document([self.render(c, language) for c in items], **kwargs)
        return out[0] if single else out

    def encode_chunks(self, chunks: Sequence[Any], **kwargs: Any) -> np.ndarray:
        """Embed :class:`gpte.code.Chunk` objects: their language, symbol, enclosing type and doc comment are used."""
        texts = [self.render(c.code or c.text, c.language, c.symbol or "", c.doc, c.parent) for c in chunks]
        return self.text.encode_document(texts, **kwargs)

    def identity(self) -> dict[str, Any]:
        ident = dict(self.text.identity())
        h = hashlib.blake2b(digest_size=16)
        h.update(ident["fingerprint"].encode())
        h.update(json.dumps(self.structure.to_dict(), sort_keys=True).encode())
        # the code model, not its text encoder, is what reopening an index must load
        source = self.source or ident.get("source", "")
        ident.update(modality="code", fingerprint=h.hexdigest(), structure=self.structure.to_dict(), source=source,
                     name=Path(source).name if source else ident.get("name", "code-encoder"))
        return ident

    def save(self, path: str | os.PathLike[str], adapter_only: bool = True) -> Path:
        """``gpte-code.json`` + ``text/``; with an adapter attached, only the adapter is written by default."""
        from gpte.code.languages import grammar_versions
        from gpte.shared.adapters import has_adapter

        path = Path(path)
        with atomic_directory(path) as tmp:
            self.text.save(tmp / "text", adapter_only=adapter_only and has_adapter(self.text.backbone))
            atomic_write_json(tmp / CODE_CONFIG, {"format": FORMAT, "version": 1, "language": self.language,
                                                  "structure": self.structure.to_dict(),
                                                  "grammars": grammar_versions([self.language])})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> CodeEncoder:
        import gpte

        path = Path(path)
        meta = json.loads((path / CODE_CONFIG).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path / CODE_CONFIG} is not a {FORMAT} config")
        text = gpte.load(path / "text", **options)
        encoder = cls(text, StructureConfig(**meta["structure"]), meta.get("language", "python"))
        encoder.source = str(path.resolve())
        return encoder
