"""Metrics against hand computations on small cases whose answers are known exactly."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from gpte.shared import metrics as M

# ---------------------------------------------------------------------------------------------------------------
# retrieval, one query
# ---------------------------------------------------------------------------------------------------------------


def test_mrr_first_relevant_at_rank_3():
    ranked = ["d1", "d2", "d3", "d4", "d5"]
    qrels = {"d3": 1, "d5": 1}
    assert M.reciprocal_rank(ranked, qrels, 10) == pytest.approx(1 / 3)
    assert M.reciprocal_rank(ranked, qrels, 2) == 0.0  # cut-off before the first relevant
    assert M.reciprocal_rank(ranked, {"d1": 0, "d4": 2}, 10) == pytest.approx(1 / 4)  # grade 0 is not relevant


def test_ndcg_graded_by_hand():
    qrels = {"a": 3, "b": 2, "c": 1}
    ranked = ["b", "x", "a", "c"]
    # linear gains, log2(i + 1) discount; ideal order a, b, c from the qrels
    dcg4 = 2 / 1 + 0 + 3 / 2 + 1 / math.log2(5)
    idcg4 = 3 / 1 + 2 / math.log2(3) + 1 / 2
    assert M.ndcg_at_k(ranked, qrels, 4) == pytest.approx(dcg4 / idcg4)  # 0.8254...
    assert M.ndcg_at_k(ranked, qrels, 2) == pytest.approx(2 / (3 + 2 / math.log2(3)))
    assert M.ndcg_at_k(["a", "b", "c"], qrels, 3) == pytest.approx(1.0)
    # a relevant document that is never retrieved still counts in the ideal DCG
    assert M.ndcg_at_k(["a"], {"a": 1, "z": 1}, 10) == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert M.ndcg_at_k(["a"], {"a": 0}, 10) == 0.0


def test_ndcg_matches_sklearn_when_all_judged():
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(0)
    grades = rng.integers(0, 4, size=20).astype(float)
    grades[0] = 3
    scores = rng.normal(size=20)
    ranked = [int(i) for i in np.argsort(-scores)]
    qrels = {i: g for i, g in enumerate(grades)}
    for k in (1, 5, 20):
        assert M.ndcg_at_k(ranked, qrels, k) == pytest.approx(ndcg_score([grades], [scores], k=k))


def test_map_recall_precision_hit_by_hand():
    qrels = {"a": 1, "c": 1, "e": 2}
    ranked = ["a", "b", "c", "d", "f"]
    assert M.average_precision_at_k(ranked, qrels, 5) == pytest.approx((1 / 1 + 2 / 3) / 3)  # 5/9
    assert M.average_precision_at_k(ranked, qrels, 1) == pytest.approx(1 / 3)
    assert M.recall_at_k(ranked, qrels, 3) == pytest.approx(2 / 3)
    assert M.recall_at_k(ranked, qrels, 1) == pytest.approx(1 / 3)
    assert M.precision_at_k(ranked, qrels, 3) == pytest.approx(2 / 3)
    assert M.precision_at_k(ranked, qrels, 10) == pytest.approx(2 / 10)  # divides by k, not by len(ranked)
    assert M.hit_at_k(["b", "a"], qrels, 1) == 0.0
    assert M.hit_at_k(["b", "a"], qrels, 2) == 1.0


def test_bad_k():
    with pytest.raises(ValueError, match="positive integer"):
        M.ndcg_at_k(["a"], {"a": 1}, 0)


# ---------------------------------------------------------------------------------------------------------------
# retrieval, aggregated
# ---------------------------------------------------------------------------------------------------------------


def test_retrieval_metrics_average_skip_and_missing(caplog):
    rankings = {"q1": ["d1", "d2", "d3"], "q2": ["d2", "d1"], "q3": ["d1"], "q_extra": ["d1"]}
    qrels = {
        "q1": {"d3": 1},  # RR 1/3
        "q2": {"d2": 1, "d9": 1},  # RR 1, recall@1 1/2
        "q3": {"d1": 0},  # no relevant document: skipped
        "q4": {"d1": 1},  # no ranking: scores 0
    }
    with caplog.at_level(logging.WARNING, logger="gpte.shared.metrics"):
        out = M.retrieval_metrics(rankings, qrels, k_values=(1, 3))
    assert out["n_queries"] == 3
    assert out["n_queries_skipped"] == 1
    assert out["n_queries_without_ranking"] == 1
    assert out["n_rankings_without_qrels"] == 1
    assert out["mrr@3"] == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert out["mrr@1"] == pytest.approx((0 + 1 + 0) / 3)
    assert out["recall@1"] == pytest.approx((0 + 0.5 + 0) / 3)
    assert out["hit_rate@3"] == pytest.approx(2 / 3)
    assert out["precision@3"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert set(out) >= {f"{m}@{k}" for m in ("ndcg", "mrr", "map", "recall", "precision", "hit_rate") for k in (1, 3)}
    text = caplog.text
    assert "1 of 4 queries in qrels have no relevant document" in text
    assert "1 of 3 evaluated queries have no ranking" in text


def test_retrieval_metrics_bad_input():
    with pytest.raises(ValueError, match="more than once"):
        M.retrieval_metrics({"q": ["a", "b", "a"]}, {"q": {"a": 1}})
    with pytest.raises(ValueError, match="not a finite number"):
        M.retrieval_metrics({"q": ["a"]}, {"q": {"a": float("nan")}})
    with pytest.raises(ValueError, match="qrels is empty"):
        M.retrieval_metrics({"q": ["a"]}, {})
    with pytest.raises(ValueError, match="none of the 1 queries"):
        M.retrieval_metrics({"q": ["a"]}, {"q": {"a": 0}})
    with pytest.raises(TypeError, match="is a string"):
        M.retrieval_metrics({"q": "abc"}, {"q": {"a": 1}})


def test_recall_curve():
    curve = M.recall_curve({"q1": ["a", "b", "c"], "q2": ["c", "x"]}, {"q1": {"b": 1, "c": 1}, "q2": {"c": 1}}, 4)
    np.testing.assert_allclose(curve, [(0 + 1) / 2, (0.5 + 1) / 2, (1 + 1) / 2, 1.0])


# ---------------------------------------------------------------------------------------------------------------
# exact top-k
# ---------------------------------------------------------------------------------------------------------------


def test_top_k_matches_brute_force_across_chunks():
    rng = np.random.default_rng(1)
    q, d = rng.normal(size=(23, 8)), rng.normal(size=(40, 8))
    d[7] = d[3]  # a tie: lower index first
    q[0] = d[3]
    scores, idx = M.top_k_similarity(q, d, 5, "cosine", chunk_size=4)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    dn = d / np.linalg.norm(d, axis=1, keepdims=True)
    full = qn @ dn.T
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(scores, np.take_along_axis(full, idx, axis=1), rtol=1e-5, atol=1e-6)
    assert idx[0, 0] == 3 and idx[0, 1] == 7
    _, idx_dot = M.top_k_similarity(q, d, 100, "dot", chunk_size=5)  # k > N: all documents
    assert idx_dot.shape == (23, 40)
    np.testing.assert_array_equal(idx_dot, np.argsort(-(q @ d.T).astype(np.float32), axis=1, kind="stable"))


def test_top_k_rejects_nan_and_dim_mismatch():
    with pytest.raises(ValueError, match="NaN or infinite values in 1 rows"):
        M.top_k_similarity(np.array([[1.0, np.nan]]), np.eye(2), 1)
    with pytest.raises(ValueError, match="query dim 3 != document dim 2"):
        M.top_k_similarity(np.ones((1, 3)), np.eye(2), 1)


# ---------------------------------------------------------------------------------------------------------------
# STS
# ---------------------------------------------------------------------------------------------------------------


def test_pearson_spearman_against_scipy_with_ties():
    from scipy import stats

    rng = np.random.default_rng(2)
    x = rng.integers(0, 5, size=50).astype(float)  # many ties
    y = x + rng.normal(size=50)
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert M.pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic)
    assert M.spearman([1, 2, 3, 4], [1, 4, 9, 16]) == pytest.approx(1.0)
    assert M.pearson([1, 2, 3, 4], [1, 4, 9, 16]) < 0.99
    assert M.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_sts_correlations_constructed():
    # pairs (e1, v_i) with cos = c_i; gold ranks the same way but nonlinearly
    c = np.array([0.1, 0.4, 0.5, 0.9])
    a = np.tile([1.0, 0.0], (4, 1))
    b = np.stack([c, np.sqrt(1 - c**2)], axis=1)
    gold = [0.0, 1.0, 4.0, 5.0]
    out = M.sts_correlations(a, b, gold, similarities=("cosine", "dot", "euclidean"))
    assert out["cosine_spearman"] == pytest.approx(1.0)
    assert out["cosine_pearson"] == pytest.approx(np.corrcoef(c, gold)[0, 1], rel=1e-6)
    assert out["dot_spearman"] == pytest.approx(1.0)
    assert out["euclidean_spearman"] == pytest.approx(1.0)  # negated distance: still increasing


def test_sts_bad_input():
    a = np.eye(3)
    with pytest.raises(ValueError, match="3 embedding pairs but 2 gold scores"):
        M.sts_correlations(a, a, [1, 2])
    with pytest.raises(ValueError, match="NaN or infinite"):
        M.sts_correlations(a, a, [1, np.nan, 2])
    with pytest.raises(ValueError, match="all 3 gold scores equal"):
        M.sts_correlations(a, a, [2, 2, 2])
    with pytest.raises(ValueError, match="same shape"):
        M.pairwise_similarity(a, np.eye(2))


# ---------------------------------------------------------------------------------------------------------------
# linear probe, clustering
# ---------------------------------------------------------------------------------------------------------------


def _blobs(n_per: int, centers: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([c + 0.05 * rng.normal(size=(n_per, centers.shape[1])) for c in centers])
    y = np.repeat(np.arange(len(centers)), n_per)
    return x, y


def test_linear_probe_exact():
    centers = np.array([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    xtr, ytr = _blobs(10, centers)
    xte = centers.copy()
    out = M.linear_probe(xtr, ytr, xte, [0, 1, 2])
    assert out == {"accuracy": 1.0, "f1_macro": 1.0}
    # a class-0 point labelled 1: predictions [0, 1, 2, 0] against [0, 1, 2, 1]
    out = M.linear_probe(xtr, ytr, np.r_[xte, xte[:1]], [0, 1, 2, 1])
    assert out["accuracy"] == pytest.approx(3 / 4)
    # classes 0: P=1/2 R=1 F1=2/3; 1: P=1 R=1/2 F1=2/3; 2: F1=1
    assert out["f1_macro"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert M.linear_probe(xtr, ytr, xte, [0, 1, 2], seed=3) == M.linear_probe(xtr, ytr, xte, [0, 1, 2], seed=3)


def test_linear_probe_bad_input():
    with pytest.raises(ValueError, match="1 class"):
        M.linear_probe(np.ones((3, 2)), [0, 0, 0], np.ones((1, 2)), [0])
    with pytest.raises(ValueError, match="train labels has 2 labels but there are 3 embeddings"):
        M.linear_probe(np.ones((3, 2)), [0, 1], np.ones((1, 2)), [0])


def test_clustering_v_measure_by_hand():
    centers = np.array([[10.0, 0], [0, 10.0], [-10.0, -10.0]])
    x, y = _blobs(8, centers)
    perm = np.random.default_rng(5).permutation(len(y))
    assert M.clustering_v_measure(x[perm], np.array(["a", "b", "c"])[y[perm]])["v_measure"] == pytest.approx(1.0)
    assert M.clustering_v_measure(x, y, algorithm="minibatch")["v_measure"] == pytest.approx(1.0)
    # two locations, labels split 2:1 in each -> contingency [[2, 1], [1, 2]]
    x2 = np.array([[0.0, 0], [0, 0], [0, 0], [10, 10], [10, 10], [10, 10]])
    y2 = ["a", "a", "b", "b", "b", "a"]
    h_cond = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))
    h = 1 - h_cond / math.log(2)  # homogeneity = completeness by symmetry, so V = h
    out = M.clustering_v_measure(x2, y2)
    assert out["v_measure"] == pytest.approx(h)
    assert out["n_clusters"] == 2
    with pytest.raises(ValueError, match="at least 2 gold labels"):
        M.clustering_v_measure(x2, ["a"] * 6)


# ---------------------------------------------------------------------------------------------------------------
# pair classification
# ---------------------------------------------------------------------------------------------------------------


def test_pair_classification_by_hand():
    scores = [0.9, 0.8, 0.7, 0.6, 0.5]
    labels = [1, 0, 1, 0, 0]
    # thresholds 0.9: P=1 R=1/2; 0.8: P=1/2 R=1/2; 0.7: P=2/3 R=1
    assert M.average_precision(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    best = M.best_threshold_metrics(scores, labels)
    assert best["accuracy"] == pytest.approx(4 / 5)  # predict only 0.9 positive
    assert best["accuracy_threshold"] == pytest.approx(0.85)
    assert best["f1"] == pytest.approx(0.8)  # 0.9, 0.8, 0.7 positive: TP 2, FP 1, FN 0
    assert best["f1_threshold"] == pytest.approx(0.65)
    assert best["precision"] == pytest.approx(2 / 3)
    assert best["recall"] == pytest.approx(1.0)


def test_average_precision_matches_sklearn_with_ties():
    from sklearn.metrics import average_precision_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=60)
    s = np.round(rng.normal(size=60) + y, 1)  # rounding creates ties
    assert M.average_precision(s, y) == pytest.approx(average_precision_score(y, s))


def test_best_accuracy_all_negative_operating_point():
    # 3 negatives score above the single positive: predicting nothing positive is best (accuracy 3/4)
    best = M.best_threshold_metrics([0.9, 0.8, 0.7, 0.1], [0, 0, 0, 1])
    assert best["accuracy"] == pytest.approx(3 / 4)
    assert best["accuracy_threshold"] > 0.9


def test_pair_classification_metrics_constructed_and_bad_labels():
    c = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    a = np.tile([1.0, 0.0], (5, 1))
    b = np.stack([c, np.sqrt(1 - c**2)], axis=1)
    out = M.pair_classification_metrics(a, b, [1, 0, 1, 0, 0])
    assert out["cosine_ap"] == pytest.approx(5 / 6)
    assert out["cosine_f1"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        M.pair_classification_metrics(a, b, [1, 0, 2, 0, 0])
    with pytest.raises(ValueError, match="both positives"):
        M.pair_classification_metrics(a, b, [1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match="got 4 labels for 5 scores"):
        M.pair_classification_metrics(a, b, [1, 0, 1, 0])


# ---------------------------------------------------------------------------------------------------------------
# bitext mining
# ---------------------------------------------------------------------------------------------------------------


def test_bitext_permutation_is_perfect():
    rng = np.random.default_rng(4)
    src = rng.normal(size=(30, 16))
    perm = rng.permutation(30)
    tgt = src[perm] + 0.01 * rng.normal(size=(30, 16))  # target j translates source perm[j]
    gold = np.argsort(perm)
    out = M.bitext_mining_metrics(src, tgt, gold=gold, chunk_size=7)
    assert out == {"accuracy": 1.0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert M.bitext_mining_metrics(src, tgt, gold=gold, scoring="margin", chunk_size=7)["f1"] == 1.0
    assert M.bitext_mining_metrics(src, tgt)["accuracy"] < 0.2  # wrong alignment is detected


def test_bitext_f1_by_hand_and_sklearn():
    from sklearn.metrics import f1_score, precision_score

    src = np.array([[1.0, 0, 0], [0.9, 0.1, 0], [0, 0, 1]])
    tgt = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1]])
    out = M.bitext_mining_metrics(src, tgt)  # predictions [0, 0, 2], gold [0, 1, 2]
    assert out["accuracy"] == pytest.approx(2 / 3)
    assert out["recall"] == pytest.approx(2 / 3)
    assert out["precision"] == pytest.approx((1 / 2 + 0 + 1) / 3)
    assert out["f1"] == pytest.approx((2 / 3 + 0 + 1) / 3)  # 5/9
    kw = {"average": "weighted", "zero_division": 0}
    assert out["f1"] == pytest.approx(f1_score([0, 1, 2], [0, 0, 2], **kw))
    assert out["precision"] == pytest.approx(precision_score([0, 1, 2], [0, 0, 2], **kw))


def _naive_margin_argmax(src: np.ndarray, tgt: np.ndarray, k: int) -> np.ndarray:
    x = src / np.linalg.norm(src, axis=1, keepdims=True)
    y = tgt / np.linalg.norm(tgt, axis=1, keepdims=True)
    cos = x @ y.T
    out = []
    for i in range(len(x)):
        best, arg = -np.inf, -1
        for j in range(len(y)):
            fx = np.sort(cos[i])[::-1][:k].sum() / (2 * k)
            fy = np.sort(cos[:, j])[::-1][:k].sum() / (2 * k)
            m = cos[i, j] / (fx + fy)
            if m > best:
                best, arg = m, j
        out.append(arg)
    return np.array(out)


def test_margin_fixes_a_hub():
    src = np.array([[8.0, 9, 3], [6, 9, 6], [8, 6, 7]])
    tgt = np.array([[3.0, 8, 1], [5, 7, 8], [5, 3, 3]])  # target 2 is a hub: cosine picks it for source 0
    cos = M.bitext_mining_metrics(src, tgt, scoring="cosine")
    margin = M.bitext_mining_metrics(src, tgt, scoring="margin", margin_k=2)
    assert cos["accuracy"] == pytest.approx(2 / 3)
    assert margin["accuracy"] == 1.0
    np.testing.assert_array_equal(M.margin_scores_argmax(src, tgt, k=2), [0, 1, 2])
    rng = np.random.default_rng(6)
    s, t = rng.random((12, 5)), rng.random((15, 5))
    np.testing.assert_array_equal(M.margin_scores_argmax(s, t, k=3, chunk_size=5), _naive_margin_argmax(s, t, 3))


def test_bitext_bad_input():
    with pytest.raises(ValueError, match="3 sources but 2 targets"):
        M.bitext_mining_metrics(np.eye(3), np.eye(3)[:2])
    with pytest.raises(ValueError, match="target indices"):
        M.bitext_mining_metrics(np.eye(3), np.eye(3), gold=[0, 1, 3])
    with pytest.raises(ValueError, match="source embeddings is empty"):
        M.bitext_mining_metrics(np.zeros((0, 3)), np.eye(3))
