"""Contrastive training data: pairs, triplets and grouped hard negatives from JSONL, and the batch sampler.

One JSONL row per example::

    {"query": "...", "positive": "..."}                                  a pair
    {"query": "...", "positive": "...", "negative": "..."}               a triplet
    {"query": "...", "positive": "...", "negatives": ["...", "..."]}    grouped hard negatives
    {"query": "...", "positive": "...", "score": 0.8}                    a graded pair (CoSENT, AnglE)

``anchor`` is accepted for ``query``; an optional ``"task"`` overrides the dataset's task. Instructions are
prefixes per dataset (E5/INSTRUCTOR style): ``query_instruction`` is prepended to every query,
``document_instruction`` to positives and negatives.

The sampler keeps duplicate texts out of a batch (an in-batch duplicate of a positive would be scored as a
negative; only two queries sharing a hard negative is harmless and allowed), optionally draws each batch from one task (so instructions and negatives stay comparable, as in E5 and
GTE), and mixes datasets in proportion to ``weight × size``. Batches depend only on ``(seed, epoch)``, which is
what makes an exact resume possible.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Example", "ContrastiveDataset", "DatasetSpec", "load_jsonl", "BatchSampler", "DataError"]


class DataError(ValueError):
    """A data row or file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Example:
    query: str  # the anchor (a question, a docstring, a caption)
    positive: str  # its matching document
    negatives: tuple[str, ...] = ()  # hard negatives for this query
    task: str = "default"  # batches can be grouped by task
    score: float | None = None  # graded similarity (CoSENT/AnglE data)


@dataclass
class DatasetSpec:
    path: str  # JSONL file
    task: str | None = None  # task name (default: the file's stem)
    query_instruction: str = ""  # prepended to every query
    document_instruction: str = ""  # prepended to every positive and negative
    weight: float = 1.0  # sampling weight when mixing datasets (batches ∝ weight × size)
    limit: int | None = None  # use only the first N rows


@dataclass
class ContrastiveDataset:
    examples: list[Example]
    name: str
    query_instruction: str = ""
    document_instruction: str = ""
    weight: float = 1.0
    source: str = ""

    def __len__(self) -> int:
        return len(self.examples)


def _text(row: dict[str, Any], keys: Sequence[str], where: str, required: bool = True) -> str | None:
    for key in keys:
        if key in row:
            value = row[key]
            if not isinstance(value, str) or not value.strip():
                raise DataError(f"{where}: '{key}' must be a non-empty string")
            return value
    if required:
        raise DataError(f"{where}: missing field '{keys[0]}'" + (f" (or '{keys[1]}')" if len(keys) > 1 else ""))
    return None


def parse_row(row: Any, where: str, task: str) -> Example:
    """One JSONL object → :class:`Example`; raise :class:`DataError` naming ``where`` (file:line)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    query = _text(row, ("query", "anchor"), where)
    positive = _text(row, ("positive", "pos"), where)
    negatives: list[str] = []
    single = _text(row, ("negative", "neg"), where, required=False)
    if single is not None:
        negatives.append(single)
    if "negatives" in row:
        many = row["negatives"]
        if not isinstance(many, list) or not all(isinstance(n, str) and n.strip() for n in many):
            raise DataError(f"{where}: 'negatives' must be a list of non-empty strings")
        negatives.extend(many)
    score = row.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        raise DataError(f"{where}: 'score' must be a number")
    row_task = row.get("task", task)
    if not isinstance(row_task, str):
        raise DataError(f"{where}: 'task' must be a string")
    return Example(query, positive, tuple(negatives), row_task, None if score is None else float(score))  # type: ignore[arg-type]


def load_jsonl(spec: DatasetSpec | str | os.PathLike[str]) -> ContrastiveDataset:
    """Read a JSONL dataset; every bad row raises :class:`DataError` with ``file:line`` and the reason."""
    if not isinstance(spec, DatasetSpec):
        spec = DatasetSpec(path=str(spec))
    path = Path(spec.path)
    if not path.is_file():
        raise DataError(f"{path}: no such data file")
    task = spec.task or path.stem
    examples: list[Example] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not JSON ({exc.msg})") from None
            examples.append(parse_row(row, where, task))
            if spec.limit is not None and len(examples) >= spec.limit:
                break
    if not examples:
        raise DataError(f"{path}: no examples")
    return ContrastiveDataset(examples, task, spec.query_instruction, spec.document_instruction, spec.weight, str(path))


@dataclass
class Batch:
    """One training batch: examples of one dataset (so one set of instructions)."""

    dataset: int  # index into the sampler's datasets
    indices: list[int]  # example indices within that dataset

    def examples(self, datasets: Sequence[ContrastiveDataset]) -> list[Example]:
        return [datasets[self.dataset].examples[i] for i in self.indices]


@dataclass
class BatchSampler:
    """Deterministic batches of distinct texts from several datasets; see the module docstring.

    Every batch comes from one dataset (instructions are per dataset); with ``group_by_task`` it also holds one
    ``task`` value only (rows of a file may name different tasks). Datasets are interleaved at random, each
    contributing batches in proportion to ``weight × size``.
    """

    datasets: Sequence[ContrastiveDataset]
    batch_size: int
    seed: int = 0
    group_by_task: bool = True
    drop_last: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"contrastive batches need at least 2 examples (batch_size={self.batch_size})")

    def _fill(self, d: int, order: list[int]) -> list[Batch]:
        """Batches over ``order``; an example whose texts already occur in the batch is deferred to a later one.

        One pass: deferred examples are retried first whenever a new batch starts, so the cost stays linear when
        duplicates are rare; examples that never fit (duplicates to the end) are dropped with the last batch.
        """
        examples = self.datasets[d].examples
        batches: list[Batch] = []
        deferred: list[int] = []
        current: list[int] = []
        anchors: set[str] = set()  # queries and positives in the batch
        negatives: set[str] = set()  # hard negatives in the batch

        def offer(idx: int) -> bool:
            ex = examples[idx]
            own = {ex.query, ex.positive}
            # a text may not be one example's query/positive and another's anything; two queries may share a negative
            if own & anchors or own & negatives or anchors.intersection(ex.negatives):
                return False
            current.append(idx)
            anchors.update(own)
            negatives.update(ex.negatives)
            return True

        for idx in order:
            if not offer(idx):
                deferred.append(idx)
            while len(current) == self.batch_size:  # a full batch: close it, then let deferred examples in first
                batches.append(Batch(d, current))
                current, anchors, negatives = [], set(), set()
                retry, deferred = deferred, []
                for r in retry:
                    if len(current) == self.batch_size or not offer(r):
                        deferred.append(r)
        if current and (len(current) == self.batch_size or not self.drop_last):
            batches.append(Batch(d, current))
        return batches

    def _dataset_batches(self, d: int, rng: random.Random) -> list[Batch]:
        examples = self.datasets[d].examples
        order = list(range(len(examples)))
        rng.shuffle(order)
        if not self.group_by_task:
            return self._fill(d, order)
        groups: dict[str, list[int]] = {}
        for idx in order:
            groups.setdefault(examples[idx].task, []).append(idx)
        batches = [b for task in sorted(groups) for b in self._fill(d, groups[task])]
        rng.shuffle(batches)
        return batches

    def batches(self, epoch: int) -> list[Batch]:
        """All batches of ``epoch`` in order (identical for the same seed and epoch)."""
        rng = random.Random(f"{self.seed}:{epoch}")
        per_dataset = [self._dataset_batches(d, rng) for d in range(len(self.datasets))]
        weights = [ds.weight * max(1, len(ds)) for ds in self.datasets]
        out: list[Batch] = []
        cursors = [0] * len(per_dataset)
        while True:
            live = [d for d in range(len(per_dataset)) if cursors[d] < len(per_dataset[d])]
            if not live:
                return out
            d = rng.choices(live, weights=[weights[i] for i in live])[0]
            out.append(per_dataset[d][cursors[d]])
            cursors[d] += 1

    def __len__(self) -> int:
        return len(self.batches(0))
