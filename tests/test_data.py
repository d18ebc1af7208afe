"""JSONL datasets and the batch sampler: formats, errors naming file and line, distinct texts, determinism."""

from __future__ import annotations

import json

import pytest

from gpte.shared.data import BatchSampler, ContrastiveDataset, DataError, DatasetSpec, Example, load_jsonl


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_formats_pairs_triplets_groups_and_scores(tmp_path):
    path = _write(tmp_path / "code.jsonl", [
        {"query": "q1", "positive": "p1"},
        {"anchor": "q2", "positive": "p2", "negative": "n2"},
        {"query": "q3", "positive": "p3", "negatives": ["n3a", "n3b"], "task": "other"},
        {"query": "q4", "positive": "p4", "score": 0.25},
    ])
    ds = load_jsonl(DatasetSpec(str(path), query_instruction="Find code: "))
    assert ds.name == "code" and len(ds) == 4 and ds.query_instruction == "Find code: "
    assert ds.examples[1] == Example("q2", "p2", ("n2",), "code")
    assert ds.examples[2].negatives == ("n3a", "n3b") and ds.examples[2].task == "other"
    assert ds.examples[3].score == 0.25


@pytest.mark.parametrize(("row", "message"), [
    ({"positive": "p"}, "missing field 'query'"),
    ({"query": "q"}, "missing field 'positive'"),
    ({"query": "", "positive": "p"}, "'query' must be a non-empty string"),
    ({"query": "q", "positive": "p", "negatives": "n"}, "'negatives' must be a list"),
    ({"query": "q", "positive": "p", "score": "high"}, "'score' must be a number"),
    ("[1, 2]", "expected a JSON object"),
    ("{broken", "not JSON"),
])
def test_bad_rows_name_file_and_line(tmp_path, row, message):
    path = _write(tmp_path / "d.jsonl", [{"query": "ok", "positive": "fine"}, row])
    with pytest.raises(DataError, match=rf"d\.jsonl:2: .*{message}"):
        load_jsonl(path)


def _dataset(n, name="d", dup_every=0, tasks=("t",)):
    examples = []
    for i in range(n):
        positive = "shared positive" if dup_every and i % dup_every == 0 else f"p{i}"
        examples.append(Example(f"q{i}", positive, (), tasks[i % len(tasks)]))
    return ContrastiveDataset(examples, name)


def test_batches_never_hold_a_text_twice_and_are_deterministic():
    ds = _dataset(200, dup_every=10)  # 20 examples share one positive
    sampler = BatchSampler([ds], batch_size=8, seed=3)
    batches = sampler.batches(0)
    for b in batches:
        texts = [t for ex in b.examples([ds]) for t in (ex.query, ex.positive)]
        assert len(texts) == len(set(texts))
        assert len(b.indices) == 8
    used = sorted(i for b in batches for i in b.indices)
    assert len(used) == len(set(used)) >= 176  # each shared positive goes to a different batch; few are dropped
    assert [b.indices for b in sampler.batches(0)] == [b.indices for b in batches]
    assert [b.indices for b in sampler.batches(1)] != [b.indices for b in batches]


def test_group_by_task_and_mixing():
    a = _dataset(64, "a", tasks=("x", "y"))
    b = _dataset(16, "b")
    sampler = BatchSampler([a, b], batch_size=4, seed=0)
    batches = sampler.batches(0)
    assert sum(1 for x in batches if x.dataset == 0) == 16 and sum(1 for x in batches if x.dataset == 1) == 4
    for x in batches:
        assert len({ex.task for ex in x.examples([a, b])}) == 1
    mixed = BatchSampler([a], batch_size=4, seed=0, group_by_task=False).batches(0)
    assert any(len({ex.task for ex in x.examples([a])}) == 2 for x in mixed)
    with pytest.raises(ValueError, match="at least 2"):
        BatchSampler([a], batch_size=1)
