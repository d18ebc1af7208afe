"""gpte: general-purpose embeddings of text, images and code.

One contrastive core, pretrained encoders behind one interface (``encode_query`` / ``encode_document``), and a
cross-modal retrieval index. Start with::

    import gpte
    model = gpte.load("minilm")                 # all-MiniLM-L6-v2, shipped on PyPI, no model hub
    vectors = model.encode_document(["first text", "second text"])
"""

from __future__ import annotations

from gpte.registry import list_models, load, register_model

__version__ = "0.1.0"
__all__ = ["__version__", "load", "list_models", "register_model"]
