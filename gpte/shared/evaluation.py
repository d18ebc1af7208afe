"""Evaluators: embed a task's inputs with any gpte embedder and score them with :mod:`gpte.shared.metrics`.

Each evaluator is built once from the task data (validated on construction) and called on a model::

    ev = RetrievalEvaluator(queries, corpus, qrels, k_values=(1, 10, 100))
    scores = ev(model, output_dir="eval/retrieval")   # {"ndcg@10": ..., "mrr@10": ..., "main_score": ...}
    all_scores = evaluate(model, {"code-search": ev, "sts": STSEvaluator(pairs, gold)}, output_dir="eval")

A call returns a flat, JSON-serialisable ``dict[str, float]`` (counts are ints) with a ``"main_score"`` key. With
``output_dir`` it also writes ``results.json`` atomically and, where a picture says more and matplotlib is installed,
PNG figures (recall@k curve for retrieval; similarity histograms for pair classification and STS). Without
matplotlib the scores and ``results.json`` are still produced and a warning names the package to install.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gpte.shared import metrics as M
from gpte.shared.fsio import atomic_write_json

__all__ = [
    "EncodeWith",
    "Evaluator",
    "RetrievalEvaluator",
    "STSEvaluator",
    "ClassificationEvaluator",
    "ClusteringEvaluator",
    "PairClassificationEvaluator",
    "BitextMiningEvaluator",
    "evaluate",
]

logger = logging.getLogger(__name__)

EncodeWith = Literal["encode", "encode_query", "encode_document"]


def _check_nonempty(x: Any, what: str, cls: str) -> int:
    try:
        n = len(x)
    except TypeError as exc:
        raise TypeError(f"{cls}: {what} must be a sized sequence, got {type(x).__name__}") from exc
    if isinstance(x, (str, bytes)):
        raise TypeError(f"{cls}: {what} is a single string; give a sequence of inputs")
    if n == 0:
        raise ValueError(f"{cls}: {what} is empty")
    return n


def _check_same_length(cls: str, **seqs: Any) -> None:
    lengths = {name: len(s) for name, s in seqs.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}={v}" for k, v in lengths.items())
        raise ValueError(f"{cls}: inputs must have equal lengths, got {shown}")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


class Evaluator(ABC):
    """Base class: ``__call__(model, output_dir=None, plots=True) -> dict[str, float]`` with a ``"main_score"``."""

    main_metric: str = ""  # the key copied to "main_score"
    encode_kwargs: dict[str, Any]

    def __init__(self, encode_kwargs: Mapping[str, Any] | None = None) -> None:
        self.encode_kwargs = dict(encode_kwargs or {})

    # -- encoding -------------------------------------------------------------------------------------------------

    def _encode(self, model: Any, method: EncodeWith, inputs: Sequence[Any], what: str) -> np.ndarray:
        """Embed ``inputs`` with ``model.<method>``; check shape and finiteness, naming the evaluator and inputs."""
        cls = type(self).__name__
        fn = getattr(model, method, None)
        if fn is None:
            raise TypeError(f"{cls}: the model has no {method}() method; gpte embedders implement encode, "
                            "encode_query and encode_document")
        items = list(inputs)
        unique: list[Any] | None = None
        if all(isinstance(t, str) for t in items):  # embed each distinct text once
            unique = list(dict.fromkeys(items))
        emb = fn(unique if unique is not None else items, **self.encode_kwargs)
        if hasattr(emb, "detach"):  # torch.Tensor, without importing torch
            emb = emb.detach().float().cpu().numpy()
        emb = np.asarray(emb, dtype=np.float32)
        n = len(unique) if unique is not None else len(items)
        if emb.ndim != 2 or emb.shape[0] != n:
            raise ValueError(f"{cls}: model.{method} returned shape {emb.shape} for {n} {what}; expected [{n}, D]")
        bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
        if bad.size:
            raise ValueError(f"{cls}: model.{method} returned NaN or infinite embeddings for {bad.size} of {n} "
                             f"{what} (first positions: {bad[:5].tolist()})")
        if unique is not None and len(unique) != len(items):
            pos = {t: i for i, t in enumerate(unique)}
            emb = emb[[pos[t] for t in items]]  # [N_unique, D] -> [N, D]
        return emb

    # -- the call -------------------------------------------------------------------------------------------------

    @abstractmethod
    def compute(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        """Return ``(scores, figure_data)``; ``figure_data`` is whatever :meth:`write_figures` needs."""

    def write_figures(self, output_dir: Path, figure_data: dict[str, Any]) -> list[str]:
        """Draw this evaluator's PNG figures into ``output_dir``; return their file names (none by default)."""
        return []

    def __call__(
        self, model: Any, output_dir: str | os.PathLike[str] | None = None, plots: bool = True
    ) -> dict[str, float]:
        """Evaluate ``model``. With ``output_dir``: write ``results.json`` and, if ``plots``, PNG figures."""
        start = time.perf_counter()
        scores, figure_data = self.compute(model)
        scores["main_score"] = scores[self.main_metric]
        for key, value in scores.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{type(self).__name__}: metric {key} is {value}")
        seconds = time.perf_counter() - start
        logger.info("%s: %s = %.4f (%.1f s)", type(self).__name__, self.main_metric, scores["main_score"], seconds)
        if output_dir is not None:
            out = Path(output_dir)
            figures: list[str] = []
            if plots:
                from gpte.shared import plots as P

                if P.matplotlib_available():
                    figures = self.write_figures(out, figure_data)
                else:
                    logger.warning("%s: no figures written; %s", type(self).__name__, P.MATPLOTLIB_HINT)
            identity = None
            if callable(getattr(model, "identity", None)):
                try:
                    identity = _jsonable(model.identity())
                except Exception as exc:  # noqa: BLE001 - provenance is best effort
                    logger.warning("could not record model.identity(): %s", exc)
            atomic_write_json(out / "results.json", {
                "task": type(self).__name__,
                "main_metric": self.main_metric,
                "model": identity,
                "scores": scores,
                "figures": figures,
                "seconds": round(seconds, 3),
            })
        return scores


# ----------------------------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------------------------

_METRIC_KEY = re.compile(r"^(ndcg|mrr|map|recall|precision|hit_rate)@(\d+)$")


class RetrievalEvaluator(Evaluator):
    """Retrieval: queries embedded with ``encode_query``, the corpus with ``encode_document``, exact top-k search.

    ``qrels`` maps a query id to ``{doc_id: grade}`` (grade > 0 is relevant; graded gains for nDCG). Only queries
    that appear in both ``queries`` and ``qrels`` are embedded and scored. Qrels naming unknown queries are dropped
    and qrels naming documents missing from the corpus are kept (those documents can never be retrieved, so they
    lower recall), both with a warning and counts in the result (``n_qrels_unknown_queries``,
    ``n_qrels_unknown_docs``). Scores: MRR, nDCG, MAP, recall, precision and hit rate at every k of ``k_values``
    (see :func:`gpte.shared.metrics.retrieval_metrics`); main score ``main_metric`` (default ``ndcg@10``, BEIR/MTEB's,
    or nDCG at the largest k when 10 is not among ``k_values``). Figure: ``recall_at_k.png``.
    """

    def __init__(
        self,
        queries: Mapping[Hashable, Any],
        corpus: Mapping[Hashable, Any],
        qrels: Mapping[Hashable, Mapping[Hashable, float]],
        k_values: Sequence[int] = M.DEFAULT_K_VALUES,
        main_metric: str | None = None,
        similarity: Literal["cosine", "dot"] = "cosine",
        chunk_size: int = 1024,
        encode_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encode_kwargs)
        cls = type(self).__name__
        for what, m in (("queries", queries), ("corpus", corpus), ("qrels", qrels)):
            if not isinstance(m, Mapping):
                raise TypeError(f"{cls}: {what} must be a dict keyed by id, got {type(m).__name__}")
            if not m:
                raise ValueError(f"{cls}: {what} is empty")
        self.k_values = tuple(sorted({int(k) for k in k_values}))
        if not self.k_values or self.k_values[0] < 1:
            raise ValueError(f"{cls}: k_values must be positive integers, got {tuple(k_values)}")
        if main_metric is None:
            main_metric = "ndcg@10" if 10 in self.k_values else f"ndcg@{self.k_values[-1]}"
        m = _METRIC_KEY.match(main_metric)
        if m is None or int(m.group(2)) not in self.k_values:
            raise ValueError(f"{cls}: main_metric {main_metric!r} must be '<ndcg|mrr|map|recall|precision|hit_rate>@k' "
                             f"with k in k_values {self.k_values}")
        if similarity not in ("cosine", "dot"):
            raise ValueError(f"{cls}: similarity must be 'cosine' or 'dot', got {similarity!r}")
        self.main_metric = main_metric
        self.similarity = similarity
        self.chunk_size = chunk_size

        unknown_q = [q for q in qrels if q not in queries]
        if unknown_q:
            logger.warning("%s: %d of %d qrels queries are not in `queries` and are ignored (first: %r)",
                           cls, len(unknown_q), len(qrels), unknown_q[0])
        self.qrels = {q: dict(r) for q, r in qrels.items() if q in queries}
        if not self.qrels:
            raise ValueError(f"{cls}: none of the {len(qrels)} qrels query ids is in `queries`")
        M._validate_qrels(self.qrels)
        unknown_d = {d for r in self.qrels.values() for d in r if d not in corpus}
        n_unknown_judgements = sum(1 for r in self.qrels.values() for d in r if d not in corpus)
        if unknown_d:
            logger.warning("%s: qrels name %d documents (%d judgements) that are not in the corpus (first: %r); "
                           "they can never be retrieved", cls, len(unknown_d), n_unknown_judgements,
                           next(iter(unknown_d)))
        self.n_unknown_queries = len(unknown_q)
        self.n_unknown_docs = len(unknown_d)
        self.query_ids = list(self.qrels)
        self.queries = [queries[q] for q in self.query_ids]
        self.doc_ids = list(corpus)
        self.corpus = [corpus[d] for d in self.doc_ids]
        self.n_queries_without_qrels = sum(1 for q in queries if q not in qrels)

    def compute(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        q = self._encode(model, "encode_query", self.queries, "queries")  # [Q, D]
        d = self._encode(model, "encode_document", self.corpus, "documents")  # [N, D]
        if q.shape[1] != d.shape[1]:
            raise ValueError(f"{type(self).__name__}: query dim {q.shape[1]} != document dim {d.shape[1]}")
        max_k = self.k_values[-1]
        _, idx = M.top_k_similarity(q, d, max_k, self.similarity, self.chunk_size)  # [Q, min(max_k, N)]
        rankings = {qid: [self.doc_ids[j] for j in row] for qid, row in zip(self.query_ids, idx.tolist(), strict=True)}
        scores = M.retrieval_metrics(rankings, self.qrels, self.k_values)
        scores["n_documents"] = len(self.doc_ids)
        scores["n_qrels_unknown_queries"] = self.n_unknown_queries
        scores["n_qrels_unknown_docs"] = self.n_unknown_docs
        scores["n_queries_without_qrels"] = self.n_queries_without_qrels
        curve = M.recall_curve(rankings, self.qrels, max_k)
        return scores, {"recall_curve": curve}

    def write_figures(self, output_dir: Path, figure_data: dict[str, Any]) -> list[str]:
        from gpte.shared.plots import plot_recall_curve

        path = plot_recall_curve(figure_data["recall_curve"], output_dir / "recall_at_k.png",
                                 title=f"Recall@k ({len(self.query_ids)} queries, {len(self.doc_ids)} documents)",
                                 marks=self.k_values)
        return [path.name]


# ----------------------------------------------------------------------------------------------------------------
# STS
# ----------------------------------------------------------------------------------------------------------------


class STSEvaluator(Evaluator):
    """Semantic textual similarity: Spearman and Pearson correlation of ``sim(a, b)`` with gold ``scores``.

    ``pairs`` is a sequence of ``(a, b)``; both sides are embedded with ``encode_with`` (default ``encode_query``:
    symmetric tasks use the query side of instruction-tuned models). Main score ``cosine_spearman`` (MTEB).
    Figure: ``sts.png`` (gold against cosine, and similarity histograms of the upper and lower gold halves).
    """

    main_metric = "cosine_spearman"

    def __init__(
        self,
        pairs: Sequence[tuple[Any, Any]],
        scores: Sequence[float],
        similarities: Sequence[M.Similarity] = ("cosine", "dot", "euclidean"),
        encode_with: EncodeWith = "encode_query",
        encode_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encode_kwargs)
        cls = type(self).__name__
        _check_nonempty(pairs, "pairs", cls)
        _check_nonempty(scores, "scores", cls)
        _check_same_length(cls, pairs=pairs, scores=scores)
        bad = [i for i, p in enumerate(pairs) if not isinstance(p, (tuple, list)) or len(p) != 2]
        if bad:
            raise ValueError(f"{cls}: every pair must be (a, b); {len(bad)} are not (first: position {bad[0]})")
        gold = np.asarray(scores, dtype=np.float64)
        nan = np.flatnonzero(~np.isfinite(gold))
        if nan.size:
            raise ValueError(f"{cls}: {nan.size} gold scores are NaN or infinite (first positions: {nan[:5].tolist()})")
        if len(gold) < 2 or np.all(gold == gold[0]):
            raise ValueError(f"{cls}: gold scores need at least 2 distinct values (correlation is undefined otherwise)")
        if "cosine" not in similarities:
            similarities = ("cosine", *similarities)
        self.similarities = tuple(similarities)
        self.a = [p[0] for p in pairs]
        self.b = [p[1] for p in pairs]
        self.gold = gold
        self.encode_with = encode_with

    def compute(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        a = self._encode(model, self.encode_with, self.a, "first sentences")
        b = self._encode(model, self.encode_with, self.b, "second sentences")
        scores = M.sts_correlations(a, b, self.gold, self.similarities)
        scores["n_pairs"] = len(self.gold)
        return scores, {"cosine": M.pairwise_similarity(a, b, "cosine"), "spearman": scores["cosine_spearman"]}

    def write_figures(self, output_dir: Path, figure_data: dict[str, Any]) -> list[str]:
        from gpte.shared.plots import plot_sts

        path = plot_sts(figure_data["cosine"], self.gold, output_dir / "sts.png",
                        title=f"STS ({len(self.gold)} pairs)", spearman=figure_data["spearman"])
        return [path.name]


# ----------------------------------------------------------------------------------------------------------------
# Classification and clustering
# ----------------------------------------------------------------------------------------------------------------


class ClassificationEvaluator(Evaluator):
    """Linear probe: logistic regression on the training embeddings; ``accuracy`` (main score, as MTEB) and
    ``f1_macro`` on the test embeddings (:func:`gpte.shared.metrics.linear_probe`). Deterministic for ``seed``."""

    main_metric = "accuracy"

    def __init__(
        self,
        train_texts: Sequence[Any],
        train_labels: Sequence[Hashable],
        test_texts: Sequence[Any],
        test_labels: Sequence[Hashable],
        seed: int = 42,
        max_iter: int = 1000,
        encode_with: EncodeWith = "encode_query",
        encode_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encode_kwargs)
        cls = type(self).__name__
        for what, x in (("train_texts", train_texts), ("train_labels", train_labels),
                        ("test_texts", test_texts), ("test_labels", test_labels)):
            _check_nonempty(x, what, cls)
        _check_same_length(cls, train_texts=train_texts, train_labels=train_labels)
        _check_same_length(cls, test_texts=test_texts, test_labels=test_labels)
        if len(set(train_labels)) < 2:
            raise ValueError(f"{cls}: train_labels must contain at least 2 classes")
        self.train_texts, self.train_labels = list(train_texts), list(train_labels)
        self.test_texts, self.test_labels = list(test_texts), list(test_labels)
        self.seed, self.max_iter, self.encode_with = seed, max_iter, encode_with

    def compute(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        xtr = self._encode(model, self.encode_with, self.train_texts, "training inputs")
        xte = self._encode(model, self.encode_with, self.test_texts, "test inputs")
        scores = M.linear_probe(xtr, self.train_labels, xte, self.test_labels, seed=self.seed, max_iter=self.max_iter)
        scores["n_train"] = len(self.train_texts)
        scores["n_test"] = len(self.test_texts)
        return scores, {}


class ClusteringEvaluator(Evaluator):
    """k-means with ``k`` = number of gold labels, scored by V-measure (main score, as MTEB); seeded."""

    main_metric = "v_measure"

    def __init__(
        self,
        texts: Sequence[Any],
        labels: Sequence[Hashable],
        seed: int = 42,
        algorithm: Literal["kmeans", "minibatch"] = "kmeans",
        encode_with: EncodeWith = "encode_query",
        encode_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encode_kwargs)
        cls = type(self).__name__
        _check_nonempty(texts, "texts", cls)
        _check_nonempty(labels, "labels", cls)
        _check_same_length(cls, texts=texts, labels=labels)
        k = len(set(labels))
        if k < 2:
            raise ValueError(f"{cls}: labels must contain at least 2 clusters, got {k}")
        self.texts, self.labels = list(texts), list(labels)
        self.seed, self.algorithm, self.encode_with = seed, algorithm, encode_with

    def compute(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        x = self._encode(model, self.encode_with, self.texts, "texts")
        scores = M.clustering_v_measure(x, self.labels, seed=self.seed, algorithm=self.algorithm)
        scores["n_texts"] = len(self.texts)
        return scores, {}


# ----------------------------------------------------------------------------------------------------------------
# Pair classification and bitext mining
# ----------------------------------------------------------------------------------------------------------------


class PairClassificationEvaluator(Evaluator):
    """Binary pair classification (duplicates, paraphrases): average precision of the cosine similarity (main score
    ``cosine_ap``, MTEB's) plus best-threshold accuracy / F1 (:func:`gpte.shared.metrics.pair_classification_metrics`).
    Figure: ``pair_scores.png``, histograms of positive and negative pair similarities with the best-F1 threshold.
    """

    main_metric = "cosine_ap"

    def __init__(
        self,
        a: Sequence[Any],
        b: Sequence[Any],
        labels: Sequence[int | bool],
        similarities: Sequence[M.Similarity] = ("cosine",),
        encode_with: EncodeWith = "encode_query",
        encode_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encode_kwargs)
        cls = type(self).__name__
        for what, x in (("a", a), ("b", b), ("labels", labels)):
            _check_nonempty(x, what, cls)
        _check_same_length(cls, a=a, b=b, labels=labels)
        y = np.asarray(labels)
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError(f"{cls}: labels contain NaN")
        bad = np.flatnonzero(~np.isin(y, [0, 1]))
        if bad.size:
            raise ValueError(f"{cls}: labels must be 0/1; {bad.size} are not (first: position {bad[0]}, {y[bad[0]]!r})")
        if y.astype(bool).all() or not y.astype(bool).any():
            raise ValueError(f"{cls}: labels must contain both positive (1) and negative (0) pairs")
        if "cosine" not in similarities:
            similarities = ("cosine", *similarities)
        self.a, self.b, self.labels = list(a), list(b), y.astype(bool)
        self.similarities, self.encode_with = tuple(similarities), encode_with

    def compute(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        ea = self._encode(model, self.encode_with, self.a, "first inputs")
        eb = self._encode(model, self.encode_with, self.b, "second inputs")
        scores = M.pair_classification_metrics(ea, eb, self.labels, self.similarities)
        scores["n_pairs"] = len(self.labels)
        scores["n_positive"] = int(self.labels.sum())
        cos = M.pairwise_similarity(ea, eb, "cosine")
        return scores, {"cosine": cos, "threshold": scores["cosine_f1_threshold"]}

    def write_figures(self, output_dir: Path, figure_data: dict[str, Any]) -> list[str]:
        from gpte.shared.plots import plot_score_histogram

        cos = figure_data["cosine"]
        path = plot_score_histogram(cos[self.labels], cos[~self.labels], output_dir / "pair_scores.png",
                                    title="Pair classification: cosine similarity", threshold=figure_data["threshold"])
        return [path.name]


class BitextMiningEvaluator(Evaluator):
    """Bitext mining: source ``i``'s translation is target ``gold[i]`` (default ``i``); each source retrieves its
    nearest target by cosine or, with ``scoring="margin"``, by ratio margin (Artetxe & Schwenk 2019). Scores
    ``accuracy``, ``precision``, ``recall`` and ``f1`` (main score, MTEB's); see
    :func:`gpte.shared.metrics.bitext_mining_metrics`. Both sides use ``encode_with`` (default ``encode_query``)."""

    main_metric = "f1"

    def __init__(
        self,
        src: Sequence[Any],
        tgt: Sequence[Any],
        gold: Sequence[int] | None = None,
        scoring: Literal["cosine", "margin"] = "cosine",
        margin_k: int = 4,
        encode_with: EncodeWith = "encode_query",
        encode_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(encode_kwargs)
        cls = type(self).__name__
        _check_nonempty(src, "src", cls)
        _check_nonempty(tgt, "tgt", cls)
        if gold is None:
            _check_same_length(cls, src=src, tgt=tgt)
        else:
            _check_same_length(cls, src=src, gold=gold)
            g = np.asarray(gold)
            if g.dtype.kind not in "iu" or g.min() < 0 or g.max() >= len(tgt):
                raise ValueError(f"{cls}: gold must hold target indices in [0, {len(tgt)})")
        if scoring not in ("cosine", "margin"):
            raise ValueError(f"{cls}: scoring must be 'cosine' or 'margin', got {scoring!r}")
        self.src, self.tgt = list(src), list(tgt)
        self.gold = None if gold is None else [int(i) for i in gold]
        self.scoring, self.margin_k, self.encode_with = scoring, margin_k, encode_with

    def compute(self, model: Any) -> tuple[dict[str, float], dict[str, Any]]:
        x = self._encode(model, self.encode_with, self.src, "source sentences")
        y = self._encode(model, self.encode_with, self.tgt, "target sentences")
        scores = M.bitext_mining_metrics(x, y, self.gold, scoring=self.scoring, margin_k=self.margin_k)
        scores["n_sources"] = len(self.src)
        scores["n_targets"] = len(self.tgt)
        return scores, {}


# ----------------------------------------------------------------------------------------------------------------


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def evaluate(
    model: Any,
    evaluators: Mapping[str, Evaluator],
    output_dir: str | os.PathLike[str] | None = None,
    plots: bool = True,
) -> dict[str, dict[str, float]]:
    """Run each evaluator on ``model``; return ``{name: scores}``.

    With ``output_dir``, evaluator ``name`` writes into ``output_dir/name/`` and a summary
    ``output_dir/results.json`` (``{"model": identity, "results": {name: scores}}``) is written atomically.
    Names must be plain file names (letters, digits, ``._-``).
    """
    if not evaluators:
        raise ValueError("evaluate: no evaluators given")
    for name, ev in evaluators.items():
        if not isinstance(name, str) or not _SAFE_NAME.match(name):
            raise ValueError(f"evaluate: evaluator name {name!r} must be a plain file name (letters, digits, ._-)")
        if not isinstance(ev, Evaluator):
            raise TypeError(f"evaluate: {name!r} is a {type(ev).__name__}, not an Evaluator")
    results: dict[str, dict[str, float]] = {}
    for name, ev in evaluators.items():
        sub = None if output_dir is None else Path(output_dir) / name
        results[name] = ev(model, output_dir=sub, plots=plots)
    if output_dir is not None:
        identity = None
        if callable(getattr(model, "identity", None)):
            try:
                identity = _jsonable(model.identity())
            except Exception as exc:  # noqa: BLE001 - provenance is best effort
                logger.warning("could not record model.identity(): %s", exc)
        atomic_write_json(Path(output_dir) / "results.json", {"model": identity, "results": results})
    return results
