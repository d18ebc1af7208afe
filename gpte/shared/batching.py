"""Batching helpers shared by every encoder: length-sorted batches and background prefetch.

Sorting by length before batching keeps padding small (a batch pads to its longest item); prefetching builds the
next padded batch in a background thread while the model runs on the current one, which keeps tokenising and Python
out of the accelerator's critical path.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

__all__ = ["length_sorted_batches", "prefetch", "pad_batch"]

T = TypeVar("T")
_END = object()


def length_sorted_batches(lengths: np.ndarray, batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Split item indices into batches, longest first (an out-of-memory error shows up at once).

    A batch holds at most ``batch_size`` items and, when ``max_tokens`` is given, at most ``max_tokens`` padded
    tokens (items × its longest item), so batches of long items are smaller than batches of short ones.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 (got {batch_size})")
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    if max_tokens is None:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = []
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)  # sorted: the first item is the longest of the batch
        size = max(1, min(batch_size, max_tokens // longest))
        batches.append(order[start : start + size])
        start += size
    return batches


def pad_batch(sequences: list[list[int]], pad_id: int, side: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Pad token-id lists into ``ids [B, L]`` (int64) and ``mask [B, L]`` (int64), on the given side."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        n = len(seq)
        if side == "left":
            ids[row, width - n :] = seq
            mask[row, width - n :] = 1
        else:
            ids[row, :n] = seq
            mask[row, :n] = 1
    return ids, mask


def prefetch(items: Iterable[T], depth: int = 2, transform: Callable[[T], T] | None = None) -> Iterator[T]:
    """Iterate ``items`` (optionally mapped by ``transform``) produced by a background thread, ``depth`` ahead.

    Exceptions raised by the producer are re-raised in the consumer; abandoning the iterator stops the producer.
    """
    buf: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buf.put(transform(item) if transform is not None else item)
            buf.put(_END)
        except BaseException as exc:  # handed to the consumer
            buf.put(exc)

    worker = threading.Thread(target=produce, name="gpte-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = buf.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # drain so a blocked producer can see the stop flag
            try:
                buf.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
