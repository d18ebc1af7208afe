"""Evaluators on fake embedders with hand-made vectors (exact expected scores), figures, results.json, bad input."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys

import numpy as np
import pytest

from gpte.shared import plots as P
from gpte.shared.evaluation import (
    BitextMiningEvaluator,
    ClassificationEvaluator,
    ClusteringEvaluator,
    PairClassificationEvaluator,
    RetrievalEvaluator,
    STSEvaluator,
    evaluate,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FakeEmbedder:
    """Looks each input up in a table: ``queries`` for encode_query, ``docs`` for encode_document.

    Queries are missing from ``docs`` (and vice versa), so using the wrong method raises KeyError.
    """

    modality = "text"

    def __init__(self, queries: dict[str, list[float]], docs: dict[str, list[float]] | None = None) -> None:
        self.queries = {k: np.asarray(v, dtype=np.float32) for k, v in queries.items()}
        self.docs = {k: np.asarray(v, dtype=np.float32) for k, v in (docs or {}).items()}
        self.calls: list[tuple[str, int]] = []

    @property
    def embed_dim(self) -> int:
        return len(next(iter(self.queries.values())))

    def encode_query(self, texts, **kw):
        self.calls.append(("query", len(texts)))
        return np.stack([self.queries[t] for t in texts])

    def encode_document(self, texts, **kw):
        self.calls.append(("document", len(texts)))
        return np.stack([self.docs[t] for t in texts])

    def encode(self, texts, **kw):
        raise AssertionError("the evaluators under test should call encode_query / encode_document")

    def identity(self):
        return {"name": "fake", "dim": self.embed_dim}


# ---------------------------------------------------------------------------------------------------------------
# retrieval
# ---------------------------------------------------------------------------------------------------------------

CORPUS = {"d1": "doc one", "d2": "doc two", "d3": "doc three", "d4": "doc four"}
QUERIES = {"q1": "query one", "q2": "query two"}
QRELS = {"q1": {"d3": 1}, "q2": {"d4": 2, "d2": 1}}


def _retrieval_model() -> FakeEmbedder:
    eye = np.eye(4)
    docs = {CORPUS[f"d{i + 1}"]: eye[i].tolist() for i in range(4)}
    queries = {"query one": [0.8, 0.5, 0.3, 0.1],  # ranks d1, d2, d3, d4
               "query two": [0.1, 0.2, 0.3, 0.9]}  # ranks d4, d3, d2, d1
    return FakeEmbedder(queries, docs)


def _expected_ndcg10() -> float:
    q1 = 1 / math.log2(4)  # the only relevant document at rank 3
    q2 = (2 + 1 / math.log2(4)) / (2 + 1 / math.log2(3))  # d4 (grade 2) at 1, d2 (grade 1) at 3
    return (q1 + q2) / 2


def test_retrieval_exact_scores_and_outputs(tmp_path):
    model = _retrieval_model()
    ev = RetrievalEvaluator(QUERIES, CORPUS, QRELS, k_values=(1, 3, 10))
    scores = ev(model, output_dir=tmp_path)
    assert scores["main_score"] == pytest.approx(_expected_ndcg10())
    assert scores["ndcg@10"] == scores["main_score"]
    assert scores["mrr@10"] == pytest.approx((1 / 3 + 1) / 2)
    assert scores["recall@1"] == pytest.approx((0 + 1 / 2) / 2)
    assert scores["recall@3"] == pytest.approx(1.0)
    assert scores["map@10"] == pytest.approx((1 / 3 + (1 + 2 / 3) / 2) / 2)
    assert scores["n_queries"] == 2 and scores["n_documents"] == 4
    assert ("query", 2) in model.calls and ("document", 4) in model.calls

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["scores"] == scores  # round trip
    assert saved["model"] == {"name": "fake", "dim": 4}
    assert saved["task"] == "RetrievalEvaluator"
    assert saved["figures"] == ["recall_at_k.png"]
    png = (tmp_path / "recall_at_k.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE
    assert len(png) > 5000


def test_retrieval_main_metric_choice_and_dot():
    model = _retrieval_model()
    ev = RetrievalEvaluator(QUERIES, CORPUS, QRELS, k_values=(1, 3), main_metric="mrr@3", similarity="dot")
    assert ev(model)["main_score"] == pytest.approx((1 / 3 + 1) / 2)
    assert RetrievalEvaluator(QUERIES, CORPUS, QRELS, k_values=(1, 3)).main_metric == "ndcg@3"
    with pytest.raises(ValueError, match="main_metric 'ndcg@5'"):
        RetrievalEvaluator(QUERIES, CORPUS, QRELS, k_values=(1, 3), main_metric="ndcg@5")


def test_retrieval_unknown_qrels_warned_and_counted(caplog):
    qrels = {"q1": {"d3": 1, "d_missing": 1}, "q2": {"d4": 2, "d2": 1}, "q_missing": {"d1": 1}}
    with caplog.at_level(logging.WARNING, logger="gpte.shared.evaluation"):
        ev = RetrievalEvaluator(QUERIES, CORPUS, qrels, k_values=(1, 3, 10))
    assert "1 of 3 qrels queries are not in `queries`" in caplog.text
    assert "qrels name 1 documents (1 judgements) that are not in the corpus" in caplog.text
    scores = ev(_retrieval_model())
    assert scores["n_qrels_unknown_docs"] == 1
    assert scores["n_qrels_unknown_queries"] == 1
    assert scores["recall@10"] == pytest.approx((1 / 2 + 1) / 2)  # the unknown document can never be found


def test_retrieval_bad_input():
    with pytest.raises(ValueError, match="corpus is empty"):
        RetrievalEvaluator(QUERIES, {}, QRELS)
    with pytest.raises(TypeError, match="queries must be a dict"):
        RetrievalEvaluator(["query one"], CORPUS, QRELS)
    with pytest.raises(ValueError, match="none of the 1 qrels query ids"):
        RetrievalEvaluator(QUERIES, CORPUS, {"qx": {"d1": 1}})
    with pytest.raises(ValueError, match=r"qrels\['q1'\]\['d3'\] = nan"):
        RetrievalEvaluator(QUERIES, CORPUS, {"q1": {"d3": float("nan")}})


def test_nan_embeddings_named():
    model = _retrieval_model()
    model.docs["doc two"][:] = np.nan
    with pytest.raises(ValueError, match=r"RetrievalEvaluator: model.encode_document returned NaN .* 1 of 4 documents"):
        RetrievalEvaluator(QUERIES, CORPUS, QRELS)(model)


def test_retrieval_on_tiny_random_model(test_bert, tmp_path):
    corpus = {f"d{i}": f"document number {i} about topic {i % 3}" for i in range(12)}
    queries = {f"q{i}": f"topic {i}" for i in range(3)}
    qrels = {f"q{i}": {f"d{i}": 1, f"d{i + 3}": 2} for i in range(3)}
    scores = RetrievalEvaluator(queries, corpus, qrels, k_values=(1, 5, 10))(test_bert, output_dir=tmp_path)
    assert 0.0 <= scores["main_score"] <= 1.0
    assert scores["recall@10"] >= scores["recall@5"] >= scores["recall@1"]
    assert json.loads((tmp_path / "results.json").read_text())["model"]["dim"] == test_bert.embed_dim


# ---------------------------------------------------------------------------------------------------------------
# STS, pair classification
# ---------------------------------------------------------------------------------------------------------------


def _cos_pairs(c: np.ndarray) -> tuple[list[tuple[str, str]], FakeEmbedder]:
    """Pairs (anchor, b_i) whose cosine is exactly c_i (up to float32); the repeated anchor is embedded once."""
    table = {"anchor": [1.0, 0.0]}
    table.update({f"b{i}": [float(ci), float(np.sqrt(1 - ci**2))] for i, ci in enumerate(c)})
    return [("anchor", f"b{i}") for i in range(len(c))], FakeEmbedder(table)


def test_sts_exact_and_figure(tmp_path):
    c = np.array([0.1, 0.4, 0.5, 0.9, 0.95])
    pairs, model = _cos_pairs(c)
    gold = [0.0, 1.0, 2.5, 4.0, 5.0]
    scores = STSEvaluator(pairs, gold)(model, output_dir=tmp_path)
    assert scores["main_score"] == pytest.approx(1.0)
    assert scores["cosine_pearson"] == pytest.approx(np.corrcoef(c, gold)[0, 1], rel=1e-5)
    assert "dot_spearman" in scores and "euclidean_spearman" in scores
    assert model.calls == [("query", 1), ("query", 5)]  # duplicates embedded once, query side by default
    png = (tmp_path / "sts.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 5000
    reversed_scores = STSEvaluator(pairs, gold[::-1])(model)
    assert reversed_scores["main_score"] == pytest.approx(-1.0)


def test_sts_bad_input():
    with pytest.raises(ValueError, match="pairs=2, scores=3"):
        STSEvaluator([("a", "b"), ("c", "d")], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="1 gold scores are NaN"):
        STSEvaluator([("a", "b"), ("c", "d")], [1.0, float("nan")])
    with pytest.raises(ValueError, match="pairs is empty"):
        STSEvaluator([], [])
    with pytest.raises(ValueError, match="every pair must be"):
        STSEvaluator([("a", "b"), ("c",)], [1.0, 2.0])
    with pytest.raises(ValueError, match="2 distinct values"):
        STSEvaluator([("a", "b"), ("c", "d")], [1.0, 1.0])


def test_pair_classification_exact_and_histogram(tmp_path):
    pairs, model = _cos_pairs(np.array([0.9, 0.8, 0.7, 0.6, 0.5]))
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    scores = PairClassificationEvaluator(a, b, [1, 0, 1, 0, 0])(model, output_dir=tmp_path)
    assert scores["main_score"] == pytest.approx(5 / 6)
    assert scores["cosine_accuracy"] == pytest.approx(4 / 5)
    assert scores["cosine_f1"] == pytest.approx(0.8)
    assert scores["cosine_f1_threshold"] == pytest.approx(0.65, abs=1e-6)
    png = (tmp_path / "pair_scores.png").read_bytes()
    assert png[:8] == PNG_SIGNATURE and len(png) > 5000
    assert json.loads((tmp_path / "results.json").read_text())["scores"] == scores


def test_pair_classification_bad_input():
    with pytest.raises(ValueError, match="a=2, b=1, labels=2"):
        PairClassificationEvaluator(["x", "y"], ["z"], [0, 1])
    with pytest.raises(ValueError, match="labels must be 0/1"):
        PairClassificationEvaluator(["x", "y"], ["z", "w"], [0, 3])
    with pytest.raises(ValueError, match="both positive"):
        PairClassificationEvaluator(["x", "y"], ["z", "w"], [1, 1])
    with pytest.raises(ValueError, match="labels contain NaN"):
        PairClassificationEvaluator(["x", "y"], ["z", "w"], [1.0, float("nan")])


# ---------------------------------------------------------------------------------------------------------------
# classification, clustering, bitext
# ---------------------------------------------------------------------------------------------------------------


def _cluster_table() -> tuple[dict[str, list[float]], list[str], list[str]]:
    centers = {"sport": [5.0, 0, 0], "food": [0, 5.0, 0], "tech": [0, 0, 5.0]}
    rng = np.random.default_rng(0)
    table, texts, labels = {}, [], []
    for label, c in centers.items():
        for i in range(6):
            t = f"{label} {i}"
            table[t] = (np.asarray(c) + 0.1 * rng.normal(size=3)).tolist()
            texts.append(t)
            labels.append(label)
    return table, texts, labels


def test_classification_exact():
    table, texts, labels = _cluster_table()
    table["odd one"] = table["sport 0"]  # looks like sport, labelled food
    model = FakeEmbedder(table)
    train = [i for i in range(len(texts)) if i % 6 < 4]
    test = [i for i in range(len(texts)) if i % 6 >= 4]
    ev = ClassificationEvaluator([texts[i] for i in train], [labels[i] for i in train],
                                 [texts[i] for i in test], [labels[i] for i in test])
    assert ev(model)["main_score"] == 1.0
    ev_bad = ClassificationEvaluator([texts[i] for i in train], [labels[i] for i in train],
                                     [texts[i] for i in test] + ["odd one"], [labels[i] for i in test] + ["food"])
    scores = ev_bad(model)
    assert scores["main_score"] == pytest.approx(6 / 7)
    assert scores["n_test"] == 7
    with pytest.raises(ValueError, match="train_texts=2, train_labels=1"):
        ClassificationEvaluator(["a", "b"], [0], ["c"], [0])
    with pytest.raises(ValueError, match="at least 2 classes"):
        ClassificationEvaluator(["a", "b"], [0, 0], ["c"], [0])


def test_clustering_exact():
    table, texts, labels = _cluster_table()
    assert ClusteringEvaluator(texts, labels)(FakeEmbedder(table))["main_score"] == pytest.approx(1.0)
    shuffled = labels[1:] + labels[:1]  # gold labels no longer match the geometry
    assert ClusteringEvaluator(texts, shuffled)(FakeEmbedder(table))["main_score"] < 0.9
    with pytest.raises(ValueError, match="texts=2, labels=3"):
        ClusteringEvaluator(["a", "b"], [0, 1, 2])
    with pytest.raises(ValueError, match="at least 2 clusters"):
        ClusteringEvaluator(["a", "b"], [0, 0])


def test_bitext_permutation_exact():
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(8, 6))
    table = {f"src {i}": vecs[i].tolist() for i in range(8)}
    perm = rng.permutation(8)
    table.update({f"tgt {j}": (vecs[perm[j]] + 0.01).tolist() for j in range(8)})  # tgt j translates src perm[j]
    src = [f"src {i}" for i in range(8)]
    tgt = [f"tgt {j}" for j in range(8)]
    gold = np.argsort(perm).tolist()
    assert BitextMiningEvaluator(src, tgt, gold=gold)(FakeEmbedder(table))["main_score"] == 1.0
    assert BitextMiningEvaluator(src, tgt, gold=gold, scoring="margin", margin_k=2)(FakeEmbedder(table))["f1"] == 1.0
    wrong = BitextMiningEvaluator(src, tgt)(FakeEmbedder(table))  # identity alignment is wrong
    assert wrong["accuracy"] == pytest.approx(np.mean(perm == np.arange(8)))
    with pytest.raises(ValueError, match="src=8, tgt=7"):
        BitextMiningEvaluator(src, tgt[:7])
    with pytest.raises(ValueError, match="target indices"):
        BitextMiningEvaluator(src, tgt, gold=[9] * 8)


# ---------------------------------------------------------------------------------------------------------------
# evaluate(), figures without matplotlib
# ---------------------------------------------------------------------------------------------------------------


def test_evaluate_writes_per_task_and_summary(tmp_path):
    pairs, model = _cos_pairs(np.array([0.1, 0.4, 0.9]))
    model.queries.update(_retrieval_model().queries)
    model.docs.update(_retrieval_model().docs)
    evs = {
        "retrieval": RetrievalEvaluator(QUERIES, CORPUS, QRELS, k_values=(1, 10)),
        "sts": STSEvaluator(pairs, [1.0, 2.0, 3.0]),
    }
    out = evaluate(model, evs, output_dir=tmp_path, plots=False)
    assert set(out) == {"retrieval", "sts"}
    assert out["retrieval"]["main_score"] == pytest.approx(_expected_ndcg10())
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["results"] == out
    assert json.loads((tmp_path / "sts" / "results.json").read_text())["scores"] == out["sts"]
    assert not list(tmp_path.rglob("*.png"))  # plots=False
    with pytest.raises(ValueError, match="plain file name"):
        evaluate(model, {"../x": evs["sts"]})
    with pytest.raises(TypeError, match="not an Evaluator"):
        evaluate(model, {"x": object()})


def test_figures_skipped_with_hint_without_matplotlib(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        P.plot_recall_curve([0.5, 1.0], tmp_path / "x.png")
    with caplog.at_level(logging.WARNING, logger="gpte.shared.evaluation"):
        scores = RetrievalEvaluator(QUERIES, CORPUS, QRELS, k_values=(1, 10))(_retrieval_model(), output_dir=tmp_path)
    assert "pip install matplotlib" in caplog.text
    assert json.loads((tmp_path / "results.json").read_text())["scores"] == scores
    assert not list(tmp_path.glob("*.png"))


def test_import_does_not_pull_matplotlib_or_sklearn():
    code = ("import sys; import gpte.shared.evaluation, gpte.shared.plots, gpte.shared.metrics; "
            "bad = [m for m in ('matplotlib', 'sklearn', 'torch') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_plot_histogram_png(tmp_path):
    path = P.plot_score_histogram([0.8, 0.9, 0.85], [0.1, 0.3, 0.2, 0.4], tmp_path / "h.png", threshold=0.6)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 5000
    with pytest.raises(ValueError, match="no scores"):
        P.plot_score_histogram([], [], tmp_path / "e.png")
