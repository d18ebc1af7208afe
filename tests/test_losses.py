"""Every loss against a naive Python loop over the batch (fp64, seeded), plus masking, Matryoshka and bad input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gpte.shared.losses import (
    AnglELoss,
    CoSENTLoss,
    InfoNCELoss,
    KLDistillationLoss,
    Matryoshka,
    SigmoidLoss,
    angle_loss,
    cosent_loss,
    info_nce,
    kl_distillation,
    sigmoid_loss,
)
from gpte.shared.scale import LogitScale

B, D, H = 6, 8, 2


def _rand(*shape: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _rand(B, D, seed=0), _rand(B, D, seed=1), _rand(B, H, D, seed=2)


def _sim(x: torch.Tensor, y: torch.Tensor, similarity: str) -> torch.Tensor:
    return F.cosine_similarity(x, y, dim=0) if similarity == "cosine" else x @ y


def loop_info_nce(q, d, n=None, *, scale=20.0, similarity="cosine", symmetric=False, qq=False, dd=False, ids=None,
                  guide=None, margin=None):  # fmt: skip
    """InfoNCE written out candidate by candidate."""
    masking = guide is not None or margin is not None
    margin = 0.0 if margin is None else margin
    if guide is None:  # the model's own similarity
        gq, gd, gn = q, d, n

        def gsim(x, y):
            return _sim(x, y, similarity)
    else:
        gq, gd, gn = guide

        def gsim(x, y):
            return F.cosine_similarity(x, y, dim=0)

    def s(x, y):
        return scale * _sim(x, y, similarity)

    def dup(i, j):
        return ids is not None and bool(ids[i] == ids[j])

    forward, backward = [], []
    for i in range(len(q)):
        thr = gsim(gq[i], gd[i]) - margin if masking else None
        keep = lambda gi, gc, t=thr: t is None or not bool(gsim(gi, gc) > t)  # noqa: E731
        pos = s(q[i], d[i])
        cands = [pos]
        cands += [s(q[i], d[j]) for j in range(len(q)) if j != i and not dup(i, j) and keep(gq[i], gd[j])]
        if n is not None:
            cands += [s(q[i], n[k, h]) for k in range(n.shape[0]) for h in range(n.shape[1]) if keep(gq[i], gn[k, h])]
        if qq:
            cands += [s(q[i], q[j]) for j in range(len(q)) if j != i and not dup(i, j) and keep(gq[i], gq[j])]
        if dd:
            cands += [s(d[i], d[j]) for j in range(len(q)) if j != i and not dup(i, j) and keep(gd[i], gd[j])]
        forward.append(torch.logsumexp(torch.stack(cands), 0) - pos)
        back = [pos] + [s(d[i], q[j]) for j in range(len(q)) if j != i and not dup(i, j) and keep(gd[i], gq[j])]
        backward.append(torch.logsumexp(torch.stack(back), 0) - pos)
    loss = torch.stack(forward).mean()
    return 0.5 * (loss + torch.stack(backward).mean()) if symmetric else loss


def loop_sigmoid(q, d, n=None, *, scale, bias, similarity="cosine", ids=None):
    total = 0.0
    for i in range(len(q)):
        for j in range(len(d)):
            if j != i and ids is not None and ids[i] == ids[j]:
                continue
            z = 1.0 if i == j else -1.0
            total = total - F.logsigmoid(z * (scale * _sim(q[i], d[j], similarity) + bias))
        if n is not None:
            for k in range(n.shape[0]):
                for h in range(n.shape[1]):
                    total = total - F.logsigmoid(-(scale * _sim(q[i], n[k, h], similarity) + bias))
    return total / len(q)


def _grads(loss: torch.Tensor, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    return list(torch.autograd.grad(loss, inputs))


CASES = [
    dict(),
    dict(similarity="dot", scale=0.5),
    dict(symmetric=True),
    dict(negatives=True),
    dict(negatives=True, symmetric=True, similarity="dot", scale=0.3),
    dict(qq_negatives=True),
    dict(dd_negatives=True, negatives=True),
    dict(qq_negatives=True, dd_negatives=True, symmetric=True, negatives=True),
    dict(ids=True, symmetric=True, qq_negatives=True, dd_negatives=True),
    dict(fn_margin=0.05, negatives=True, symmetric=True),
    dict(fn_margin=0.0, similarity="dot", scale=0.3, qq_negatives=True),
    dict(guide=True, fn_margin=0.1, negatives=True, symmetric=True, qq_negatives=True, dd_negatives=True),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()) or "plain")
def test_info_nce_matches_loop(batch, case):
    q, d, n = (x.clone().requires_grad_() for x in batch)
    case = dict(case)
    negs = n if case.pop("negatives", False) else None
    ids = torch.tensor([0, 1, 2, 1, 3, 0]) if case.pop("ids", False) else None
    guide = (_rand(B, 5, seed=7), _rand(B, 5, seed=8), _rand(B, H, 5, seed=9)) if case.pop("guide", False) else None
    got = info_nce(q, d, negs, positive_ids=ids, guide=guide, **case)
    want = loop_info_nce(
        q, d, negs, scale=case.get("scale", 20.0), similarity=case.get("similarity", "cosine"),
        symmetric=case.get("symmetric", False), qq=case.get("qq_negatives", False), dd=case.get("dd_negatives", False),
        ids=ids, guide=None if guide is None else (guide[0], guide[1], guide[2]), margin=case.get("fn_margin"),
    )  # fmt: skip
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    inputs = [q, d] + ([n] if negs is not None else [])
    for a, b in zip(_grads(got, inputs), _grads(want, inputs), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_symmetric_is_mean_of_both_directions(batch):
    q, d, _ = batch
    one_way = info_nce(q, d)
    other_way = info_nce(d, q)  # documents as queries against all queries
    torch.testing.assert_close(info_nce(q, d, symmetric=True), 0.5 * (one_way + other_way))


def test_info_nce_equals_cross_entropy_and_learnable_scale_gets_gradient(batch):
    q, d, n = batch
    logit_scale = LogitScale(init_temperature=0.05).double()
    scale, bias = logit_scale()
    assert bias is None
    loss = info_nce(q, d, n, scale=scale)
    logits = 20.0 * F.normalize(q, dim=-1) @ torch.cat([F.normalize(d, dim=-1), F.normalize(n, dim=-1).flatten(0, 1)]).T
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.arange(B)))
    loss.backward()
    assert logit_scale.log_scale.grad is not None and torch.isfinite(logit_scale.log_scale.grad)


def test_positive_ids_mask_duplicates_but_not_the_positive():
    q = _rand(4, D, seed=3)
    d = _rand(4, D, seed=4)
    d[2] = d[0]  # row 2's positive duplicates row 0's
    ids = torch.tensor([5, 6, 5, 7])
    masked = info_nce(q, d, positive_ids=ids)
    logits = 20.0 * F.normalize(q, dim=-1) @ F.normalize(d, dim=-1).T
    logits[0, 2] = logits[2, 0] = float("-inf")
    torch.testing.assert_close(masked, F.cross_entropy(logits, torch.arange(4)), rtol=0, atol=1e-12)
    assert not torch.isclose(masked, info_nce(q, d))


def test_gist_guide_masks_the_known_false_negative():
    q, d = _rand(B, D, seed=5), _rand(B, D, seed=6)
    eye = torch.eye(B + 1, dtype=torch.float64)
    gq = eye[:B].clone()
    gd = eye[:B].clone()
    gd[0] = eye[0] + eye[B]  # the guide finds d_0 only a fair match for q_0 (cos 0.71) ...
    gd[2] = eye[0]  # ... and d_2 a perfect one: d_2 is a false negative of query 0, and the only one
    loss = info_nce(q, d, guide=(gq, gd, None))
    logits = 20.0 * F.normalize(q, dim=-1) @ F.normalize(d, dim=-1).T
    keep_row0 = [j for j in range(B) if j != 2]
    rows = [torch.logsumexp(logits[0, keep_row0], 0) - logits[0, 0]]
    rows += [torch.logsumexp(logits[i], 0) - logits[i, i] for i in range(1, B)]
    torch.testing.assert_close(loss, torch.stack(rows).mean(), rtol=0, atol=1e-12)
    assert not torch.isclose(loss, info_nce(q, d))
    # a margin of 0.5 lowers the bar to 0.71 − 0.5: every guide score above 0.21 is masked, still never the positive
    assert torch.isfinite(info_nce(q, d, guide=(gq, gd, None), fn_margin=0.5))


def test_guide_needs_negative_embeddings_when_negatives_are_given(batch):
    q, d, n = batch
    with pytest.raises(ValueError, match=r"guide\[2\]"):
        info_nce(q, d, n, guide=(q, d, None))


@pytest.mark.parametrize("negatives", [False, True])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_sigmoid_matches_loop(batch, negatives, similarity):
    q, d, n = (x.clone().requires_grad_() for x in batch)
    scale = torch.tensor(math.log(10.0), dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-10.0, dtype=torch.float64, requires_grad=True)
    ids = torch.tensor([0, 1, 2, 1, 3, 4])
    negs = n if negatives else None
    got = sigmoid_loss(q, d, negs, scale=scale.exp(), bias=bias, similarity=similarity, positive_ids=ids)
    want = loop_sigmoid(q, d, negs, scale=scale.exp(), bias=bias, similarity=similarity, ids=ids)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-10)
    inputs = [q, d, scale, bias]
    for a, b in zip(_grads(got, inputs), _grads(want, inputs), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


def test_sigmoid_scale_init():
    scale, bias = LogitScale.for_sigmoid()()
    assert math.isclose(float(scale.detach()), 10.0, rel_tol=1e-6) and float(bias.detach()) == -10.0
    capped, _ = LogitScale(init_temperature=0.001, max_scale=100.0)()
    assert float(capped.detach()) == 100.0
    frozen = LogitScale(learnable=False)
    assert list(frozen.parameters()) == [] and "log_scale" in frozen.state_dict()


def _loop_ranking(scores: list[float], labels: list[float], scale: float) -> torch.Tensor:
    terms = [torch.tensor(0.0, dtype=torch.float64)]
    for i in range(len(scores)):
        for j in range(len(scores)):
            if labels[i] > labels[j]:
                terms.append(scale * (scores[j] - scores[i]))
    return torch.logsumexp(torch.stack(terms), 0)


def test_cosent_matches_loop():
    a, b = _rand(B, D, seed=10), _rand(B, D, seed=11)
    labels = torch.tensor([0.1, 0.9, 0.5, 0.5, 0.0, 1.0], dtype=torch.float64)
    scores = [F.cosine_similarity(a[k], b[k], dim=0) for k in range(B)]
    want = _loop_ranking(scores, labels.tolist(), 20.0)
    torch.testing.assert_close(cosent_loss(a, b, labels), want, rtol=0, atol=1e-10)
    torch.testing.assert_close(CoSENTLoss(scale=20.0)(a, b, labels), want, rtol=0, atol=1e-10)


def test_angle_matches_complex_arithmetic():
    a, b = _rand(B, D, seed=12), _rand(B, D, seed=13)
    labels = torch.tensor([3, 1, 4, 1, 5, 2], dtype=torch.float64)
    half = D // 2
    scores = []
    for k in range(B):
        z = [complex(a[k, t], a[k, half + t]) for t in range(half)]
        w = [complex(b[k, t], b[k, half + t]) for t in range(half)]
        norm_ratio = math.sqrt(sum(abs(x) ** 2 for x in z)) / math.sqrt(sum(abs(x) ** 2 for x in w))
        u = [x / y / norm_ratio for x, y in zip(z, w, strict=True)]
        scores.append(torch.tensor(abs(sum(v.real + v.imag for v in u)), dtype=torch.float64))
    want = _loop_ranking(scores, labels.tolist(), 20.0)
    torch.testing.assert_close(angle_loss(a, b, labels), want, rtol=0, atol=1e-9)
    torch.testing.assert_close(AnglELoss()(a, b, labels), want, rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="even"):
        angle_loss(a[:, :7], b[:, :7], labels)


def test_kl_distillation_matches_manual():
    q, docs, teacher = _rand(B, D, seed=14), _rand(B, 3, D, seed=15), _rand(B, 3, seed=16)
    got = kl_distillation(q, docs, teacher, scale=20.0, teacher_temperature=2.0)
    total = 0.0
    for i in range(B):
        student = torch.stack([20.0 * F.cosine_similarity(q[i], docs[i, n], dim=0) for n in range(3)])
        p_t = torch.softmax(teacher[i] / 2.0, 0)
        total += float((p_t * (p_t.log() - torch.log_softmax(student, 0))).sum())
    assert math.isclose(float(got), total / B, rel_tol=1e-10)
    assert float(kl_distillation(q, docs, 20.0 * torch.einsum("bd,bnd->bn", F.normalize(q, dim=-1),
                                                               F.normalize(docs, dim=-1)), scale=20.0)) < 1e-12  # fmt: skip
    torch.testing.assert_close(KLDistillationLoss(teacher_temperature=2.0)(q, docs, teacher), got)


def test_matryoshka_is_the_weighted_sum_of_truncated_calls(batch):
    q, d, n = batch
    wrapped = Matryoshka(info_nce, dims=(8, 4, 2), weights=(1.0, 0.5, 0.25))
    got = wrapped(q, d, n, scale=10.0, symmetric=True, guide=(q, d, n))
    want = sum(
        w * info_nce(q[:, :m], d[:, :m], n[..., :m], scale=10.0, symmetric=True, guide=(q, d, n))
        for m, w in ((8, 1.0), (4, 0.5), (2, 0.25))
    )
    torch.testing.assert_close(got, want)
    module = Matryoshka(CoSENTLoss(), dims=(6, 2))
    labels = torch.arange(B, dtype=torch.float64)
    torch.testing.assert_close(module(a=q, b=d, labels=labels), cosent_loss(q[:, :6], d[:, :6], labels)
                               + cosent_loss(q[:, :2], d[:, :2], labels))  # fmt: skip
    with pytest.raises(ValueError, match="exceed"):
        Matryoshka(info_nce, dims=(16,))(q, d)


def test_modules_take_the_model_output_dict(batch):
    q, d, n = batch
    scale, bias = LogitScale.for_sigmoid().double()()
    output = {"q": q, "d": d, "negatives": n, "scale": scale, "bias": bias}
    torch.testing.assert_close(InfoNCELoss(symmetric=True)(**output), info_nce(q, d, n, scale=scale, symmetric=True))
    torch.testing.assert_close(SigmoidLoss()(**output), sigmoid_loss(q, d, n, scale=scale, bias=bias))
    torch.testing.assert_close(InfoNCELoss(scale=5.0)(q, d), info_nce(q, d, scale=5.0))
    with pytest.raises(ValueError, match="scale"):
        SigmoidLoss()(q, d)


# ---------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("loss", [info_nce, lambda q, d, *a: sigmoid_loss(q, d, *a, scale=10.0, bias=-10.0)])
def test_bad_input(batch, loss):
    q, d, n = batch
    bad = q.clone()
    bad[1, 3] = float("nan")
    bad[4, 0] = float("inf")
    with pytest.raises(ValueError, match=r"`q` holds NaN or infinite values in rows 1, 4"):
        loss(bad, d)
    bad_n = n.clone()
    bad_n[3, 1, 0] = float("-inf")
    with pytest.raises(ValueError, match=r"`negatives` holds NaN or infinite values in rows 3"):
        loss(q, d, bad_n)
    with pytest.raises(ValueError, match=r"\(6, 8\).*\(5, 8\)"):
        loss(q, d[:5])
    with pytest.raises(ValueError, match="negatives"):
        loss(q, d, n[:3])
    torch.testing.assert_close(loss(q, d, n[:, :0]), loss(q, d))  # H == 0 is no negatives


def test_bad_positive_ids_and_options(batch):
    q, d, _ = batch
    with pytest.raises(ValueError, match=r"positive_ids.*\(6,\)"):
        info_nce(q, d, positive_ids=torch.arange(5))
    with pytest.raises(ValueError, match=r"positive_ids"):
        sigmoid_loss(q, d, scale=1.0, bias=0.0, positive_ids=torch.zeros(6, 1))
    with pytest.raises(ValueError, match="similarity"):
        info_nce(q, d, similarity="euclid")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="block_size"):
        info_nce(q, d, block_size=0)
    with pytest.raises(ValueError, match="labels"):
        cosent_loss(q, d, torch.zeros(5))
    with pytest.raises(ValueError, match="teacher_scores"):
        kl_distillation(q, q[:, None].expand(-1, 3, -1), torch.zeros(6, 2), scale=1.0)
