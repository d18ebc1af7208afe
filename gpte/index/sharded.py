"""Embedding a corpus across processes (``torchrun``): each rank embeds a shard, rank 0 merges the shards.

    torchrun --nproc_per_node 4 -m gpte index build corpus.jsonl --out my-index

Rank ``r`` of ``W`` embeds documents ``r, r + W, r + 2W, ...`` and writes its vectors (``.npy``) and ids and
metadata (``.jsonl``) atomically into a work folder inside the index directory; after a barrier, rank 0 adds the
shards to the collection in rank order and deletes them. Nothing is pickled between processes. With one process
(no process group) this is ``Collection.add``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpte.index.base import ItemId
from gpte.index.collection import Collection
from gpte.shared import distributed as dist
from gpte.shared.fsio import atomic_writer

__all__ = ["add_sharded"]

logger = logging.getLogger(__name__)


def add_sharded(
    coll: Collection,
    documents: Sequence[str],
    ids: Sequence[ItemId],
    metadata: Sequence[dict[str, Any] | None] | None,
    work_dir: str | Path,
    tag: str = "0",
    upsert: bool = False,
    on_error: str = "raise",
    **encode_options: Any,
) -> int:
    """Embed this rank's shard of ``documents`` and merge every rank's shard into ``coll`` on rank 0.

    Every rank must call this with the same arguments (the whole batch); returns how many items rank 0 added (0 on
    other ranks). ``tag`` separates successive calls that share ``work_dir``; the caller removes ``work_dir`` when
    done.
    """
    if not dist.is_distributed():
        return len(coll.add(documents, ids, metadata, upsert=upsert, on_error=on_error, **encode_options))
    rank, world = dist.rank(), dist.world_size()
    metas = list(metadata) if metadata is not None else [None] * len(documents)
    work = Path(work_dir)
    mine = list(range(rank, len(documents), world))
    texts, keep_ids, keep_metas = coll._prepare([documents[i] for i in mine], [ids[i] for i in mine],
                                                [metas[i] for i in mine], on_error)
    vectors = (coll.model.encode_document(texts, **encode_options) if texts
               else np.zeros((0, coll.index.dim), dtype=np.float32))
    stem = work / f"shard-{tag}-{rank:05d}"
    with atomic_writer(stem.with_suffix(".npy")) as fh:
        np.save(fh, np.asarray(vectors, dtype=np.float32), allow_pickle=False)
    with atomic_writer(stem.with_suffix(".jsonl"), "w") as fh:
        fh.writelines(json.dumps({"id": i, "metadata": m}, ensure_ascii=False) + "\n"
                      for i, m in zip(keep_ids, keep_metas, strict=True))
    dist.barrier()
    added = 0
    if rank == 0:
        for r in range(world):
            part = work / f"shard-{tag}-{r:05d}"
            vecs = np.load(part.with_suffix(".npy"), allow_pickle=False)
            rows = [json.loads(line) for line in part.with_suffix(".jsonl").read_text(encoding="utf-8").splitlines()]
            if rows:
                (coll.index.upsert if upsert else coll.index.add)([x["id"] for x in rows], vecs,
                                                                  [x["metadata"] for x in rows])
                added += len(rows)
        for r in range(world):
            for suffix in (".npy", ".jsonl"):
                (work / f"shard-{tag}-{r:05d}").with_suffix(suffix).unlink(missing_ok=True)
        logger.info("merged %d items from %d shards", added, world)
    dist.barrier()
    return added
