"""A persistent, searchable collection: an embedder and a vector index kept together.

>>> import gpte
>>> from gpte.index import Collection
>>> docs = Collection(gpte.load("minilm"))                      # doctest: +SKIP
>>> docs.add(["Return the lines of a file.", "Sort a list."], ids=["a", "b"])   # doctest: +SKIP
>>> docs.search("read a text file", k=1)[0].id                  # doctest: +SKIP
'a'
>>> docs.save("my-index"); docs = Collection.open("my-index")  # doctest: +SKIP

Documents are embedded with ``encode_document`` and queries with ``encode_query``, so asymmetric models get their
prompts. The manifest records the embedder's identity (name, where it loads from, dimension, weight fingerprint);
``Collection.open`` reloads that embedder and refuses a different one, naming each field that differs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gpte.index.base import Hit, ItemId, VectorIndex
from gpte.index.store import open_index
from gpte.shared.embedder import Embedder
from gpte.shared.inputs import text_problems

__all__ = ["Collection"]

logger = logging.getLogger(__name__)

TEXT_KEY = "text"  # metadata key under which the document text is kept (store_text=True)


class Collection:
    """An embedder plus a :class:`~gpte.index.VectorIndex`.

    Args:
        model: an embedder, or a name/path for :func:`gpte.load`.
        index: an existing index; by default a new one is created with ``backend``/``spec``/``precision``.
        store_text: keep each document's text in its metadata (``"text"``) so results can show it.
    """

    def __init__(
        self,
        model: Embedder | str | os.PathLike[str] = "minilm",
        index: VectorIndex | None = None,
        *,
        backend: Literal["faiss", "exact"] = "faiss",
        spec: str = "auto",
        precision: str = "float32",
        metric: str = "cosine",
        store_text: bool = True,
        **index_options: Any,
    ) -> None:
        if not hasattr(model, "encode_query"):
            import gpte

            model = gpte.load(model)  # type: ignore[arg-type]
        self.model: Embedder = model  # type: ignore[assignment]
        if index is None:
            from gpte.index import create_index

            index = create_index(self.model.embed_dim, metric=metric, backend=backend, spec=spec,  # type: ignore[arg-type]
                                 precision=precision, model=self.model.identity(), **index_options)  # type: ignore[arg-type]
        elif index.dim != self.model.embed_dim:
            raise ValueError(f"index dim {index.dim} differs from the model's embedding dim {self.model.embed_dim}")
        self.index = index
        self.store_text = store_text
        self._next_id = 0

    # ------------------------------------------------------------------ writing
    def _prepare(
        self, documents: Sequence[Any], ids: Sequence[ItemId] | None, metadata: Sequence[dict | None] | None,
        on_error: str,
    ) -> tuple[list[str], list[ItemId], list[dict[str, Any]]]:
        documents = list(documents)
        if ids is None:  # consecutive ints after the largest int id ever used (deleted ones included)
            start = max((i for i in self.index.ids() if isinstance(i, int) and not isinstance(i, bool)), default=-1)
            start = max(start + 1, self._next_id)
            ids = list(range(start, start + len(documents)))
            self._next_id = start + len(documents)
        ids = list(ids)
        if len(ids) != len(documents):
            raise ValueError(f"{len(ids)} ids for {len(documents)} documents")
        metas = list(metadata) if metadata is not None else [None] * len(documents)
        if len(metas) != len(documents):
            raise ValueError(f"{len(metas)} metadata entries for {len(documents)} documents")
        problems = text_problems(documents)
        if problems:
            shown = "; ".join(f"id {ids[i]!r}: {why}" for i, why in list(problems.items())[:10])
            if on_error == "raise":
                raise ValueError(f"{len(problems)} of {len(documents)} documents cannot be embedded: {shown} "
                                 "(pass on_error='skip' to index the rest)")
            logger.warning("skipping %d of %d documents: %s", len(problems), len(documents), shown)
        keep = [i for i in range(len(documents)) if i not in problems]
        texts = [documents[i] for i in keep]
        out_meta = []
        for i in keep:
            m = dict(metas[i] or {})
            if self.store_text:
                m.setdefault(TEXT_KEY, documents[i])
            out_meta.append(m)
        return texts, [ids[i] for i in keep], out_meta

    def add(
        self,
        documents: Sequence[str],
        ids: Sequence[ItemId] | None = None,
        metadata: Sequence[dict[str, Any] | None] | None = None,
        *,
        upsert: bool = False,
        on_error: Literal["raise", "skip"] = "raise",
        **encode_options: Any,
    ) -> list[ItemId]:
        """Embed and add ``documents``; returns the ids added (bad documents skipped when ``on_error='skip'``).

        ``ids`` default to consecutive integers; ``upsert=True`` replaces items whose ids exist.
        ``encode_options`` go to ``encode_document`` (``batch_size``, ``long_texts``, ``show_progress`` ...).
        """
        texts, keep_ids, metas = self._prepare(documents, ids, metadata, on_error)
        if not texts:
            return []
        vectors = self.model.encode_document(texts, **encode_options)
        (self.index.upsert if upsert else self.index.add)(keep_ids, vectors, metas)
        return keep_ids

    def upsert(self, documents: Sequence[str], ids: Sequence[ItemId], metadata: Sequence[dict | None] | None = None,
               **kwargs: Any) -> list[ItemId]:
        """:meth:`add` that replaces existing ids."""
        return self.add(documents, ids, metadata, upsert=True, **kwargs)

    def delete(self, ids: Sequence[ItemId]) -> int:
        return self.index.delete(ids)

    # ------------------------------------------------------------------ reading
    def search(
        self, queries: str | Sequence[str], k: int = 10, filter: Any = None,  # noqa: A002
        **encode_options: Any,
    ) -> list[Hit] | list[list[Hit]]:
        """Top-``k`` hits for one query (a list of :class:`Hit`) or for each of several queries."""
        single = isinstance(queries, str)
        q = np.atleast_2d(self.model.encode_query(queries, **encode_options))  # [Q, D]
        hits = self.index.search(q, k=k, filter=filter)
        return hits[0] if single else hits

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the index (atomically, under the directory's writer lock); the model is referenced, not copied."""
        return self.index.save(path)

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], model: Embedder | str | os.PathLike[str] | None = None, *,
        mmap: bool = False, **load_options: Any,
    ) -> Collection:
        """Open a saved collection; without ``model`` the embedder recorded in the manifest is loaded."""
        import gpte
        from gpte.index.store import check_model

        index = open_index(path, mmap=mmap)
        if model is None:
            saved = index.model or {}
            source = saved.get("source") or saved.get("name")
            if not source:
                raise ValueError(f"the index at {path} records no model; pass model=...")
            model = gpte.load(source, **load_options)
        elif not hasattr(model, "encode_query"):
            model = gpte.load(model, **load_options)  # type: ignore[arg-type]
        ident = model.identity()  # type: ignore[union-attr]
        check_model({"model": index.model or {}, "dim": index.dim}, {"dim": ident["dim"], "fingerprint": ident["fingerprint"]}, str(path))
        return cls(model, index)  # type: ignore[arg-type]
