"""The gradient cache gives the gradients of the full batch: against the uncached step, with dropout on."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import gpte
from gpte.shared.gradcache import Tower, cached_step, plain_step, split_batch

QUERIES = ["sort a list", "open a file", "parse json", "hash bytes", "send an email", "zip files", "time a call"]
DOCS = ["Sort the items of a list in place.", "Open a file and return a stream.", "Deserialize a JSON document.",
        "Return the SHA-256 digest of data.", "Send a message over SMTP.", "Write a ZIP archive.",
        "Measure the execution time of small code snippets."]


def _info_nce(reps, scale):
    q, d = F.normalize(reps["q"], dim=-1), F.normalize(reps["d"], dim=-1)
    logits = scale * q @ d.T  # [B, B]
    return F.cross_entropy(logits, torch.arange(len(q)))


def _sigmoid(reps, scale, bias):
    q, d = F.normalize(reps["q"], dim=-1), F.normalize(reps["d"], dim=-1)
    logits = scale * q @ d.T + bias  # [B, B]
    labels = 2 * torch.eye(len(q)) - 1
    return -F.logsigmoid(labels * logits).sum() / len(q)


def _setup(seed=0):
    enc = gpte.load("test-bert", device="cpu", seed=seed)
    enc.train()  # dropout on (BERT's hidden and attention dropout 0.1)
    log_scale = torch.nn.Parameter(torch.tensor(2.3))
    bias = torch.nn.Parameter(torch.tensor(-1.0))
    towers = {"q": Tower(lambda b: enc(**b), enc.tokenize(QUERIES)), "d": Tower(lambda b: enc(**b), enc.tokenize(DOCS))}
    return enc, log_scale, bias, towers


def _grads(enc, *params):
    out = {n: p.grad.clone() for n, p in enc.named_parameters() if p.grad is not None}
    out.update({f"param{i}": p.grad.clone() for i, p in enumerate(params) if p.grad is not None})
    return out


@pytest.mark.parametrize("loss_name", ["infonce", "sigmoid"])
@pytest.mark.parametrize("chunk", [1, 3, 16])
def test_cached_equals_uncached_with_dropout(loss_name, chunk):
    results = []
    for cached in (False, True):
        enc, log_scale, bias, towers = _setup()
        if loss_name == "infonce":
            def loss_fn(reps, log_scale=log_scale):
                return _info_nce(reps, log_scale.exp())
        else:
            def loss_fn(reps, log_scale=log_scale, bias=bias):
                return _sigmoid(reps, log_scale.exp(), bias)
        torch.manual_seed(1234)
        if cached:
            loss = cached_step(loss_fn, towers, chunk_size=chunk)
        else:
            loss = plain_step(loss_fn, towers, chunk_size=chunk)
        results.append((loss, _grads(enc, log_scale, bias)))
    (loss_a, grads_a), (loss_b, grads_b) = results
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-5, atol=0)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 10
    for name in grads_a:
        ref = grads_a[name]
        err = (grads_b[name] - ref).norm() / ref.norm().clamp(min=1e-12)
        assert err <= 1e-5, (name, float(err))


def test_without_dropout_cached_equals_one_full_forward():
    results = []
    for cached in (False, True):
        enc, log_scale, _, towers = _setup()
        enc.eval()
        step = cached_step if cached else plain_step
        kwargs = {"chunk_size": 2} if cached else {}
        loss = step(lambda reps: _info_nce(reps, log_scale.exp()), towers, **kwargs)  # noqa: B023
        results.append((loss, _grads(enc, log_scale)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-6)
    ref = torch.cat([g.flatten() for g in results[0][1].values()])  # key biases have zero true gradient: compare all
    got = torch.cat([g.flatten() for g in results[1][1].values()])
    assert (got - ref).norm() / ref.norm() <= 1e-5


def test_frozen_tower_gets_no_gradient_and_trainable_one_does():
    enc, log_scale, _, towers = _setup()
    frozen = gpte.load("test-bert", device="cpu", seed=1).requires_grad_(False)
    towers["d"] = Tower(lambda b: frozen(**b), frozen.tokenize(DOCS))
    cached_step(lambda reps: _info_nce(reps, log_scale.exp()), towers, chunk_size=3)
    assert all(p.grad is None for p in frozen.parameters())
    assert enc.backbone.embeddings.word_embeddings.weight.grad is not None and log_scale.grad is not None


def test_non_finite_embeddings_name_the_step():
    def broken(batch):
        return torch.full((len(batch), 4), float("nan"))

    towers = {"q": Tower(broken, list(range(4))), "d": Tower(broken, list(range(4)))}
    with pytest.raises(FloatingPointError, match="'q' at step 7"):
        cached_step(lambda reps: reps["q"].sum(), towers, chunk_size=2, step=7)


def test_split_batch_trims_padding_columns():
    enc = gpte.load("test-bert", device="cpu")
    batch = enc.tokenize(["a", "a much longer text with many words in it"])
    first, second = split_batch(batch, 1)
    assert first["input_ids"].shape[1] < batch["input_ids"].shape[1] == second["input_ids"].shape[1]
    assert first["attention_mask"].all()
