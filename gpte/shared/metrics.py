"""Evaluation metrics as pure functions of rankings, scores and numpy embeddings.

Every function here takes plain Python containers or numpy arrays and returns floats; nothing embeds text. The
evaluators in :mod:`gpte.shared.evaluation` encode with a model and call these. Conventions:

* **Retrieval** follows TREC / ``trec_eval`` as used by BEIR and MTEB (Thakur et al. 2021, "BEIR";
  Muennighoff et al. 2023, "MTEB"): a document is *relevant* when its qrels grade is ``> 0``; documents absent from
  the qrels have grade 0; ``precision@k`` divides by ``k`` even when fewer than ``k`` documents were retrieved;
  ``map@k`` divides by the number of relevant documents of the query. Queries without any relevant document are
  skipped and counted (``n_queries_skipped``), never silently dropped.
* **Similarities** are "higher is more similar": euclidean and manhattan similarities are negated distances.
* scikit-learn (linear probe, k-means, V-measure) is imported lazily, with an install hint.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

__all__ = [
    "Similarity",
    "SIMILARITIES",
    "DEFAULT_K_VALUES",
    "reciprocal_rank",
    "dcg_at_k",
    "ndcg_at_k",
    "recall_at_k",
    "precision_at_k",
    "average_precision_at_k",
    "hit_at_k",
    "retrieval_metrics",
    "recall_curve",
    "top_k_similarity",
    "pairwise_similarity",
    "pearson",
    "spearman",
    "sts_correlations",
    "linear_probe",
    "clustering_v_measure",
    "average_precision",
    "best_threshold_metrics",
    "pair_classification_metrics",
    "margin_scores_argmax",
    "bitext_mining_metrics",
]

logger = logging.getLogger(__name__)

Similarity = Literal["cosine", "dot", "euclidean", "manhattan"]
SIMILARITIES: tuple[str, ...] = ("cosine", "dot", "euclidean", "manhattan")
DEFAULT_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100)

_SKLEARN_HINT = "this metric needs scikit-learn: `pip install scikit-learn`"


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:  # pragma: no cover - sklearn is present in the dev environment
        raise ImportError(_SKLEARN_HINT) from exc
    return sklearn


# ----------------------------------------------------------------------------------------------------------------
# Retrieval (one query)
# ----------------------------------------------------------------------------------------------------------------


def _check_k(k: int) -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")


def _relevant(relevance: Mapping[Hashable, float]) -> set[Hashable]:
    return {d for d, g in relevance.items() if g > 0}


def reciprocal_rank(ranked: Sequence[Hashable], relevance: Mapping[Hashable, float], k: int) -> float:
    """Reciprocal rank at ``k``: ``1 / r`` where ``r`` is the 1-based rank of the first relevant document within the
    top ``k``, or 0 when none is there. Averaged over queries this is MRR@k (Voorhees 1999, TREC-8 QA track).
    """
    _check_k(k)
    rel = _relevant(relevance)
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in rel:
            return 1.0 / rank
    return 0.0


def dcg_at_k(gains: Sequence[float], k: int) -> float:
    """Discounted cumulative gain of a gain list in rank order: ``DCG@k = sum_{i=1..k} g_i / log2(i + 1)``.

    Linear gains, as in ``trec_eval``'s ``ndcg_cut`` (used by BEIR and MTEB); Järvelin & Kekäläinen 2002.
    Negative grades count as 0.
    """
    _check_k(k)
    g = np.clip(np.asarray(list(gains)[:k], dtype=np.float64), 0.0, None)
    if g.size == 0:
        return 0.0
    return float(np.sum(g / np.log2(np.arange(2, g.size + 2))))


def ndcg_at_k(ranked: Sequence[Hashable], relevance: Mapping[Hashable, float], k: int) -> float:
    """Normalised DCG at ``k`` with graded relevance: ``nDCG@k = DCG@k(ranking) / DCG@k(ideal)``.

    ``DCG@k(ranking) = sum_{i=1..k} rel(d_i) / log2(i + 1)`` where ``rel`` is the qrels grade (0 if unjudged); the
    ideal ranking sorts *all* of the query's qrels grades in decreasing order (so relevant documents that were not
    retrieved still lower the score). 0 when the query has no relevant document. Järvelin & Kekäläinen 2002;
    definition as in ``trec_eval`` ``ndcg_cut`` / BEIR / MTEB.
    """
    _check_k(k)
    ideal = dcg_at_k(sorted((g for g in relevance.values() if g > 0), reverse=True), k)
    if ideal == 0.0:
        return 0.0
    return dcg_at_k([relevance.get(d, 0.0) for d in ranked[:k]], k) / ideal


def recall_at_k(ranked: Sequence[Hashable], relevance: Mapping[Hashable, float], k: int) -> float:
    """``recall@k = |relevant ∩ top_k| / |relevant|`` (0 when the query has no relevant document)."""
    _check_k(k)
    rel = _relevant(relevance)
    if not rel:
        return 0.0
    return sum(1 for d in ranked[:k] if d in rel) / len(rel)


def precision_at_k(ranked: Sequence[Hashable], relevance: Mapping[Hashable, float], k: int) -> float:
    """``precision@k = |relevant ∩ top_k| / k`` (divides by ``k`` even if fewer documents were retrieved, as in
    ``trec_eval`` ``P_k``)."""
    _check_k(k)
    rel = _relevant(relevance)
    return sum(1 for d in ranked[:k] if d in rel) / k


def average_precision_at_k(ranked: Sequence[Hashable], relevance: Mapping[Hashable, float], k: int) -> float:
    """Average precision at ``k``: ``AP@k = (1 / |R|) * sum_{i <= k, d_i in R} precision@i``.

    ``R`` is the query's set of relevant documents (all of them, retrieved or not), as in ``trec_eval``
    ``map_cut_k`` used by BEIR and MTEB. Averaged over queries this is MAP@k. 0 when ``R`` is empty.
    """
    _check_k(k)
    rel = _relevant(relevance)
    if not rel:
        return 0.0
    hits, total = 0, 0.0
    for i, d in enumerate(ranked[:k], start=1):
        if d in rel:
            hits += 1
            total += hits / i
    return total / len(rel)


def hit_at_k(ranked: Sequence[Hashable], relevance: Mapping[Hashable, float], k: int) -> float:
    """1 if at least one relevant document is in the top ``k``, else 0 (averaged: the hit rate, or "success@k")."""
    _check_k(k)
    rel = _relevant(relevance)
    return float(any(d in rel for d in ranked[:k]))


_PER_QUERY = {
    "ndcg": ndcg_at_k,
    "mrr": reciprocal_rank,
    "map": average_precision_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "hit_rate": hit_at_k,
}


def _validate_rankings(rankings: Mapping[Hashable, Sequence[Hashable]]) -> None:
    for qid, ranked in rankings.items():
        if isinstance(ranked, (str, bytes)):
            raise TypeError(f"the ranking of query {qid!r} is a string; give a sequence of document ids")
        seen: set[Hashable] = set()
        for d in ranked:
            if d in seen:
                raise ValueError(f"the ranking of query {qid!r} lists document {d!r} more than once")
            seen.add(d)


def _validate_qrels(qrels: Mapping[Hashable, Mapping[Hashable, float]]) -> None:
    for qid, rels in qrels.items():
        if not isinstance(rels, Mapping):
            raise TypeError(f"qrels[{qid!r}] must be a mapping {{doc_id: relevance}}, got {type(rels).__name__}")
        for d, g in rels.items():
            try:
                ok = math.isfinite(float(g))
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ValueError(f"qrels[{qid!r}][{d!r}] = {g!r} is not a finite number")


def retrieval_metrics(
    rankings: Mapping[Hashable, Sequence[Hashable]],
    qrels: Mapping[Hashable, Mapping[Hashable, float]],
    k_values: Iterable[int] = DEFAULT_K_VALUES,
) -> dict[str, float]:
    """MRR@k, nDCG@k, MAP@k, recall@k, precision@k and hit rate@k averaged over the evaluated queries.

    ``rankings`` maps a query id to its ranked document ids (best first); ``qrels`` maps a query id to
    ``{doc_id: grade}``. The evaluated queries are those of ``qrels`` with at least one grade ``> 0``; the others are
    skipped and counted in ``n_queries_skipped`` (with a warning). An evaluated query missing from ``rankings``
    scores 0 on every metric and is counted in ``n_queries_without_ranking``. Queries in ``rankings`` that are not in
    ``qrels`` are ignored (counted in ``n_rankings_without_qrels``).

    Returns keys ``"{metric}@{k}"`` for metric in ``ndcg, mrr, map, recall, precision, hit_rate`` (each the mean of
    the per-query functions of this module) plus the three counts and ``n_queries``.
    """
    ks = sorted({int(k) for k in k_values})
    if not ks:
        raise ValueError("k_values is empty")
    for k in ks:
        _check_k(k)
    if not qrels:
        raise ValueError("qrels is empty: no query has relevance judgements")
    _validate_qrels(qrels)
    _validate_rankings(rankings)

    evaluated = [q for q, rels in qrels.items() if any(g > 0 for g in rels.values())]
    skipped = len(qrels) - len(evaluated)
    if skipped:
        logger.warning("%d of %d queries in qrels have no relevant document (grade > 0) and are skipped",
                       skipped, len(qrels))
    if not evaluated:
        raise ValueError(f"none of the {len(qrels)} queries in qrels has a relevant document (grade > 0)")
    missing = [q for q in evaluated if q not in rankings]
    if missing:
        logger.warning("%d of %d evaluated queries have no ranking and score 0 (first: %r)",
                       len(missing), len(evaluated), missing[0])
    extra = sum(1 for q in rankings if q not in qrels)

    out: dict[str, float] = {}
    for name, fn in _PER_QUERY.items():
        for k in ks:
            out[f"{name}@{k}"] = float(np.mean([fn(rankings.get(q, ()), qrels[q], k) for q in evaluated]))
    out["n_queries"] = len(evaluated)
    out["n_queries_skipped"] = skipped
    out["n_queries_without_ranking"] = len(missing)
    out["n_rankings_without_qrels"] = extra
    return out


def recall_curve(
    rankings: Mapping[Hashable, Sequence[Hashable]],
    qrels: Mapping[Hashable, Mapping[Hashable, float]],
    max_k: int,
) -> np.ndarray:
    """Mean recall@k for every ``k = 1..max_k`` (array of length ``max_k``) over queries with a relevant document."""
    _check_k(max_k)
    curves = []
    for q, rels in qrels.items():
        rel = _relevant(rels)
        if not rel:
            continue
        hits = np.array([d in rel for d in list(rankings.get(q, ()))[:max_k]], dtype=np.float64)
        hits = np.pad(hits, (0, max_k - hits.size))
        curves.append(np.cumsum(hits) / len(rel))
    if not curves:
        raise ValueError("no query in qrels has a relevant document (grade > 0)")
    return np.mean(curves, axis=0)


# ----------------------------------------------------------------------------------------------------------------
# Similarities and exact top-k
# ----------------------------------------------------------------------------------------------------------------


def _as_2d(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch
        x = x.detach().float().cpu().numpy()
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [N, D], got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{name} has NaN or infinite values in {rows.size} rows (first rows: {rows[:5].tolist()})")
    return arr


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def top_k_similarity(
    queries: Any, docs: Any, k: int, similarity: Literal["cosine", "dot"] = "cosine", chunk_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` documents for each query by cosine or dot product, in query chunks of ``chunk_size``.

    Returns ``(scores, indices)``, both ``[Q, min(k, N)]``, best first; ties are broken by the lower document index.
    Memory is ``O(chunk_size * N)``, so 10k × 10k runs in about 40 MB.
    """
    _check_k(k)
    q = _as_2d(queries, "query embeddings")
    d = _as_2d(docs, "document embeddings")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != document dim {d.shape[1]}")
    if similarity == "cosine":
        q, d = _normalize(q), _normalize(d)
    elif similarity != "dot":
        raise ValueError(f"similarity must be 'cosine' or 'dot', got {similarity!r}")
    k = min(k, d.shape[0])
    all_scores = np.empty((q.shape[0], k), dtype=np.float32)
    all_idx = np.empty((q.shape[0], k), dtype=np.int64)
    for start in range(0, q.shape[0], chunk_size):
        s = q[start:start + chunk_size] @ d.T  # [c, D] @ [D, N] -> [c, N]
        if k < s.shape[1]:
            part = np.argpartition(-s, k - 1, axis=1)[:, :k]  # [c, k] unordered
        else:
            part = np.broadcast_to(np.arange(s.shape[1]), s.shape)
        ps = np.take_along_axis(s, part, axis=1)  # [c, k]
        order = np.lexsort((part, -ps), axis=1)  # by score desc, then index asc
        all_idx[start:start + chunk_size] = np.take_along_axis(part, order, axis=1)
        all_scores[start:start + chunk_size] = np.take_along_axis(ps, order, axis=1)
    return all_scores, all_idx


def pairwise_similarity(a: Any, b: Any, similarity: Similarity = "cosine") -> np.ndarray:
    """Row-wise similarity of two ``[N, D]`` arrays: ``cos(a_i, b_i)``, ``a_i · b_i``, ``-||a_i - b_i||_2`` or
    ``-||a_i - b_i||_1`` (distances are negated so that higher always means more similar)."""
    a = _as_2d(a, "embeddings a")
    b = _as_2d(b, "embeddings b")
    if a.shape != b.shape:
        raise ValueError(f"embeddings a {a.shape} and b {b.shape} must have the same shape")
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if similarity == "cosine":
        return np.sum(_normalize(a64) * _normalize(b64), axis=1)
    if similarity == "dot":
        return np.sum(a64 * b64, axis=1)
    if similarity == "euclidean":
        return -np.linalg.norm(a64 - b64, axis=1)
    if similarity == "manhattan":
        return -np.abs(a64 - b64).sum(axis=1)
    raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")


# ----------------------------------------------------------------------------------------------------------------
# STS
# ----------------------------------------------------------------------------------------------------------------


def _as_1d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise ValueError(f"{name} has {bad.size} NaN or infinite values (first positions: {bad[:5].tolist()})")
    return arr


def _rankdata(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (as ``scipy.stats.rankdata(method="average")``)."""
    order = np.argsort(x, kind="mergesort")
    sx = x[order]
    # boundaries of runs of equal values
    starts = np.r_[0, np.flatnonzero(sx[1:] != sx[:-1]) + 1]
    ends = np.r_[starts[1:], sx.size]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1..end
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def pearson(x: Any, y: Any) -> float:
    """Pearson correlation ``r = sum((x - x̄)(y - ȳ)) / sqrt(sum((x - x̄)^2) sum((y - ȳ)^2))``.

    Raises ``ValueError`` on mismatched lengths, fewer than 2 values or NaN; returns 0.0 (with a warning) when one
    side is constant, where ``r`` is undefined.
    """
    x, y = _as_1d(x, "x"), _as_1d(y, "y")
    if x.size != y.size:
        raise ValueError(f"x has {x.size} values but y has {y.size}")
    if x.size < 2:
        raise ValueError("a correlation needs at least 2 values")
    xc, yc = x - x.mean(), y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if den == 0.0:
        logger.warning("correlation undefined: one of the inputs is constant; reporting 0.0")
        return 0.0
    return float(np.clip((xc @ yc) / den, -1.0, 1.0))


def spearman(x: Any, y: Any) -> float:
    """Spearman rank correlation: the Pearson correlation of the average ranks (ties share their mean rank)."""
    x, y = _as_1d(x, "x"), _as_1d(y, "y")
    if x.size != y.size:
        raise ValueError(f"x has {x.size} values but y has {y.size}")
    return pearson(_rankdata(x), _rankdata(y))


def sts_correlations(
    a: Any, b: Any, gold: Any, similarities: Sequence[Similarity] = ("cosine",)
) -> dict[str, float]:
    """Semantic textual similarity: Spearman and Pearson correlation between ``sim(a_i, b_i)`` and gold scores.

    Returns ``"{sim}_spearman"`` and ``"{sim}_pearson"`` for each similarity (cosine, dot, euclidean, manhattan;
    distances negated). MTEB's STS main score is ``cosine_spearman`` (Reimers et al. 2016, "Task-oriented intrinsic
    evaluation of semantic textual similarity"). Gold scores must be finite and not all equal.
    """
    g = _as_1d(gold, "gold scores")
    a2 = _as_2d(a, "embeddings a")
    if a2.shape[0] != g.size:
        raise ValueError(f"{a2.shape[0]} embedding pairs but {g.size} gold scores")
    if g.size < 2:
        raise ValueError("STS needs at least 2 scored pairs")
    if np.all(g == g[0]):
        raise ValueError(f"all {g.size} gold scores equal {g[0]}: correlation is undefined")
    out: dict[str, float] = {}
    for sim in similarities:
        s = pairwise_similarity(a2, b, sim)
        out[f"{sim}_spearman"] = spearman(s, g)
        out[f"{sim}_pearson"] = pearson(s, g)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Classification (linear probe) and clustering
# ----------------------------------------------------------------------------------------------------------------


def _labels(x: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(list(x) if not isinstance(x, np.ndarray) else x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} labels but there are {n} embeddings")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinite labels")
    if arr.dtype == object and any(v is None for v in arr):
        raise ValueError(f"{name} contains None labels")
    return arr


def linear_probe(
    train_emb: Any,
    train_labels: Sequence[Hashable],
    test_emb: Any,
    test_labels: Sequence[Hashable],
    seed: int = 42,
    max_iter: int = 1000,
) -> dict[str, float]:
    """Classification by a linear probe: multinomial logistic regression (L2, ``C = 1``, lbfgs, scikit-learn) fitted
    on ``train_emb``; returns ``accuracy`` and ``f1_macro`` (unweighted mean of per-class F1 over the classes of
    ``test_labels`` and of the predictions) on ``test_emb``. Deterministic for a given ``seed``. As in MTEB's
    classification tasks (without their repeated undersampling of the training set).
    """
    _sklearn()
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score

    xtr, xte = _as_2d(train_emb, "train embeddings"), _as_2d(test_emb, "test embeddings")
    if xtr.shape[1] != xte.shape[1]:
        raise ValueError(f"train dim {xtr.shape[1]} != test dim {xte.shape[1]}")
    ytr = _labels(train_labels, "train labels", xtr.shape[0])
    yte = _labels(test_labels, "test labels", xte.shape[0])
    classes = np.unique(ytr)
    if classes.size < 2:
        raise ValueError(f"the training set has {classes.size} class; a probe needs at least 2")
    unseen = set(np.unique(yte).tolist()) - set(classes.tolist())
    if unseen:
        logger.warning("%d test classes never occur in training (always misclassified): %s",
                       len(unseen), sorted(map(str, unseen))[:5])
    clf = LogisticRegression(max_iter=max_iter, random_state=seed)
    clf.fit(xtr, ytr)
    pred = clf.predict(xte)
    return {
        "accuracy": float(accuracy_score(yte, pred)),
        "f1_macro": float(f1_score(yte, pred, average="macro", zero_division=0)),
    }


def clustering_v_measure(
    emb: Any,
    labels: Sequence[Hashable],
    seed: int = 42,
    algorithm: Literal["kmeans", "minibatch"] = "kmeans",
    batch_size: int = 1024,
) -> dict[str, float]:
    """Cluster with k-means, ``k`` = number of distinct gold labels, and score with the V-measure.

    ``V = 2 h c / (h + c)`` with homogeneity ``h = 1 - H(C|K) / H(C)`` and completeness ``c = 1 - H(K|C) / H(K)``
    (Rosenberg & Hirschberg 2007). ``algorithm="kmeans"`` runs scikit-learn ``KMeans`` (k-means++, 10 restarts);
    ``"minibatch"`` runs ``MiniBatchKMeans`` as MTEB does, for large sets. Seeded: deterministic.
    """
    _sklearn()
    from sklearn.cluster import KMeans, MiniBatchKMeans
    from sklearn.metrics import v_measure_score

    x = _as_2d(emb, "embeddings")
    y = _labels(labels, "labels", x.shape[0])
    k = np.unique(y).size
    if k < 2:
        raise ValueError(f"clustering needs at least 2 gold labels, got {k}")
    if algorithm == "kmeans":
        km: Any = KMeans(n_clusters=k, n_init=10, random_state=seed)
    elif algorithm == "minibatch":
        km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, n_init=3, random_state=seed)
    else:
        raise ValueError(f"algorithm must be 'kmeans' or 'minibatch', got {algorithm!r}")
    pred = km.fit_predict(x)
    return {"v_measure": float(v_measure_score(y, pred)), "n_clusters": int(k)}


# ----------------------------------------------------------------------------------------------------------------
# Pair classification
# ----------------------------------------------------------------------------------------------------------------


def _binary_labels(labels: Any, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.size != n:
        raise ValueError(f"got {y.size} labels for {n} scores")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("labels contain NaN or infinite values")
    bad = np.flatnonzero(~np.isin(y, [0, 1]))
    if bad.size:
        raise ValueError(f"labels must be 0 or 1 (or bool); {bad.size} are not (first: position {bad[0]}, {y[bad[0]]!r})")
    y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError("labels must contain both positives (1) and negatives (0)")
    return y


def _sorted_runs(scores: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores sorted descending; for each distinct score, the TP and FP counts when predicting ``score >= s``."""
    order = np.argsort(-scores, kind="mergesort")
    s, t = scores[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each run of equal scores
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    return s[last], tp, fp


def average_precision(scores: Any, labels: Any) -> float:
    """Average precision of a scored binary task: ``AP = sum_n (R_n - R_{n-1}) P_n`` over the distinct score
    thresholds in decreasing order (recall ``R_n`` and precision ``P_n`` when predicting ``score >= t_n``); tied
    scores form one step. Equal to scikit-learn's ``average_precision_score``; MTEB's pair-classification main score.
    """
    s = _as_1d(scores, "scores")
    y = _binary_labels(labels, s.size)
    _, tp, fp = _sorted_runs(s, y)
    precision = tp / (tp + fp)
    recall = tp / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_threshold_metrics(scores: Any, labels: Any) -> dict[str, float]:
    """Best accuracy and best F1 over all thresholds ``t`` of the rule "positive iff score >= t" (MTEB style).

    Candidate thresholds are the distinct scores (plus "all negative"). Reported thresholds are midpoints between
    the chosen score and the next lower one (the lowest score itself when everything is positive; just above the
    highest score for "all negative"). ``F1 = 2 TP / (2 TP + FP + FN)``; precision and recall are those of the best-F1
    threshold.
    """
    s = _as_1d(scores, "scores")
    y = _binary_labels(labels, s.size)
    vals, tp, fp = _sorted_runs(s, y)
    n_pos, n = int(y.sum()), y.size
    # prepend the "nothing positive" operating point
    tp = np.r_[0, tp]
    fp = np.r_[0, fp]
    fn = n_pos - tp
    tn = (n - n_pos) - fp
    acc = (tp + tn) / n
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1)
    # threshold for operating point j (j = 0: nothing positive; j >= 1: scores >= vals[j-1])
    below = np.r_[vals[1:], vals[-1]]  # next lower distinct score (the lowest score itself at the end)
    thr = np.r_[np.nextafter(vals[0], np.inf), (vals + below) / 2.0]
    ia, i_f = int(np.argmax(acc)), int(np.argmax(f1))
    prec = tp[i_f] / (tp[i_f] + fp[i_f]) if tp[i_f] + fp[i_f] else 0.0
    return {
        "accuracy": float(acc[ia]),
        "accuracy_threshold": float(thr[ia]),
        "f1": float(f1[i_f]),
        "f1_threshold": float(thr[i_f]),
        "precision": float(prec),
        "recall": float(tp[i_f] / n_pos),
    }


def pair_classification_metrics(
    a: Any, b: Any, labels: Any, similarities: Sequence[Similarity] = ("cosine",)
) -> dict[str, float]:
    """Pair classification (duplicate / paraphrase detection): for each similarity, ``"{sim}_ap"`` (average
    precision, the MTEB main score with cosine) and the best-threshold accuracy, F1, precision, recall and
    thresholds of :func:`best_threshold_metrics`, prefixed ``"{sim}_"``."""
    a2 = _as_2d(a, "embeddings a")
    y = _binary_labels(labels, a2.shape[0])
    out: dict[str, float] = {}
    for sim in similarities:
        s = pairwise_similarity(a2, b, sim)
        out[f"{sim}_ap"] = average_precision(s, y)
        out.update({f"{sim}_{k}": v for k, v in best_threshold_metrics(s, y).items()})
    return out


# ----------------------------------------------------------------------------------------------------------------
# Bitext mining
# ----------------------------------------------------------------------------------------------------------------


def _mean_top_k(x: np.ndarray, y: np.ndarray, k: int, chunk_size: int) -> np.ndarray:
    """For each row of unit-norm ``x``, the mean cosine to its ``k`` nearest rows of ``y``: ``[len(x)]``."""
    k = min(k, y.shape[0])
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], chunk_size):
        s = x[start:start + chunk_size] @ y.T  # [c, D] @ [D, M] -> [c, M]
        top = np.partition(s, s.shape[1] - k, axis=1)[:, -k:]  # [c, k]
        out[start:start + chunk_size] = top.mean(axis=1)
    return out


def margin_scores_argmax(src: Any, tgt: Any, k: int = 4, chunk_size: int = 1024) -> np.ndarray:
    """For each source, the target maximising the ratio margin of Artetxe & Schwenk (2019), "Margin-based parallel
    corpus mining with multilingual sentence embeddings":

    ``margin(x, y) = cos(x, y) / (sum_{z in NN_k(x)} cos(x, z) / 2k + sum_{v in NN_k(y)} cos(y, v) / 2k)``

    where ``NN_k(x)`` are the ``k`` nearest targets of ``x`` and ``NN_k(y)`` the ``k`` nearest sources of ``y``.
    Chunked: memory ``O(chunk_size * len(tgt))``. Returns target indices ``[len(src)]``.
    """
    _check_k(k)
    x = _normalize(_as_2d(src, "source embeddings"))
    y = _normalize(_as_2d(tgt, "target embeddings"))
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"source dim {x.shape[1]} != target dim {y.shape[1]}")
    rx = _mean_top_k(x, y, k, chunk_size) / 2.0  # [S]
    ry = _mean_top_k(y, x, k, chunk_size) / 2.0  # [T]
    best = np.empty(x.shape[0], dtype=np.int64)
    for start in range(0, x.shape[0], chunk_size):
        s = x[start:start + chunk_size] @ y.T  # [c, T]
        den = rx[start:start + chunk_size, None] + ry[None, :]  # [c, T]
        best[start:start + chunk_size] = np.argmax(s / np.where(np.abs(den) < 1e-12, 1e-12, den), axis=1)
    return best


def bitext_mining_metrics(
    src: Any,
    tgt: Any,
    gold: Sequence[int] | None = None,
    scoring: Literal["cosine", "margin"] = "cosine",
    margin_k: int = 4,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Bitext mining: each source sentence retrieves its nearest target; compare with the gold translation.

    ``gold[i]`` is the index of the translation of source ``i`` among the targets (default ``i``; the targets may
    contain extra distractors). ``scoring="cosine"`` takes the target of highest cosine; ``"margin"`` the target of
    highest ratio margin (:func:`margin_scores_argmax`). Returns ``accuracy`` (fraction of sources whose nearest
    target is the gold one) and MTEB's ``precision``, ``recall`` and ``f1``: scikit-learn scores with
    ``y_true = gold``, ``y_pred = predictions``, ``average="weighted"``, ``zero_division=0``. With every target gold
    for exactly one source these are per-source means: recall = accuracy, precision_i = [correct_i] / (number of
    sources predicting gold_i), F1_i = 2 p_i r_i / (p_i + r_i).
    """
    x = _as_2d(src, "source embeddings")
    y = _as_2d(tgt, "target embeddings")
    if gold is None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"{x.shape[0]} sources but {y.shape[0]} targets; give `gold` when they differ")
        g = np.arange(x.shape[0])
    else:
        g = np.asarray(gold)
        if g.ndim != 1 or g.size != x.shape[0]:
            raise ValueError(f"gold has {g.size} entries but there are {x.shape[0]} sources")
        if g.dtype.kind not in "iu" or g.min() < 0 or g.max() >= y.shape[0]:
            raise ValueError(f"gold must hold target indices in [0, {y.shape[0]})")
    if scoring == "cosine":
        pred = top_k_similarity(x, y, 1, "cosine", chunk_size)[1][:, 0]
    elif scoring == "margin":
        pred = margin_scores_argmax(x, y, margin_k, chunk_size)
    else:
        raise ValueError(f"scoring must be 'cosine' or 'margin', got {scoring!r}")
    correct = pred == g
    # support-weighted precision/recall/F1 over the gold classes (as sklearn average="weighted", zero_division=0)
    n_tgt = y.shape[0]
    support = np.bincount(g, minlength=n_tgt).astype(np.float64)  # [T] gold count per target
    tp = np.bincount(g[correct], minlength=n_tgt).astype(np.float64)  # [T]
    n_pred = np.bincount(pred, minlength=n_tgt).astype(np.float64)  # [T]
    keep = support > 0  # the classes of y_true
    support, tp, n_pred = support[keep], tp[keep], n_pred[keep]
    p = np.divide(tp, n_pred, out=np.zeros_like(tp), where=n_pred > 0)
    r = tp / support
    f = np.divide(2 * p * r, p + r, out=np.zeros_like(tp), where=(p + r) > 0)
    total = support.sum()
    return {
        "accuracy": float(correct.mean()),
        "precision": float((support @ p) / total),
        "recall": float((support @ r) / total),
        "f1": float((support @ f) / total),
    }
