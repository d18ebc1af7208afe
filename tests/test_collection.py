"""Collection: an embedder and an index together, persisted and reopened with the model it was built with."""

from __future__ import annotations

import pytest

import gpte
from gpte.index import Collection, IndexMismatchError

DOCS = ["Return the lines of a text file.", "Sort a list in place.", "Open a network socket.", "Parse JSON text."]


@pytest.fixture
def coll(test_bert):
    c = Collection(test_bert, backend="exact")
    c.add(DOCS, ids=["lines", "sort", "socket", "json"], metadata=[{"kind": "io"}, {"kind": "algo"},
                                                                     {"kind": "io"}, {"kind": "format"}])
    return c


def test_search_finds_each_document_by_its_own_text(coll):
    for doc, want in zip(DOCS, ["lines", "sort", "socket", "json"], strict=True):
        assert coll.search(doc, k=1)[0].id == want  # same text as query and document: cosine 1
    hits = coll.search(DOCS, k=2)
    assert [h[0].id for h in hits] == ["lines", "sort", "socket", "json"]
    assert hits[0][0].metadata["text"] == DOCS[0]


def test_filter_and_delete(coll):
    hits = coll.search(DOCS[1], k=4, filter={"kind": "io"})
    assert {h.id for h in hits} == {"lines", "socket"}
    assert coll.delete(["socket"]) == 1
    assert {h.id for h in coll.search(DOCS[1], k=4, filter={"kind": "io"})} == {"lines"}


def test_bad_documents_skipped_or_raised(coll):
    with pytest.raises(ValueError, match="id 'b': empty"):
        coll.add(["fine", ""], ids=["a", "b"])
    assert "a" not in coll.index  # nothing of the failed batch was added
    assert coll.add(["fine", None, "also fine"], ids=["a", "b", "c"], on_error="skip") == ["a", "c"]


def test_save_open_round_trip_loads_recorded_model(tmp_path, coll):
    coll.save(tmp_path / "idx")
    again = Collection.open(tmp_path / "idx")  # the manifest names test-bert, a registered model
    assert again.model.identity()["fingerprint"] == coll.model.identity()["fingerprint"]
    assert [h.id for h in again.search(DOCS[2], k=1)] == ["socket"]


def test_open_with_another_model_names_the_difference(tmp_path, coll):
    coll.save(tmp_path / "idx")
    other = gpte.load("test-bert", seed=1, device="cpu")  # same shapes, other weights
    with pytest.raises(IndexMismatchError, match="fingerprint"):
        Collection.open(tmp_path / "idx", model=other)
