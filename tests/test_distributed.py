"""Two gloo processes against one process on the global batch: loss, embedding and parameter gradients.

Convention checked (see gpte.shared.distributed): on rank r, ``mean_r loss_r`` is the global loss ``L``; the local
embeddings receive ``W · ∂L/∂e``; parameter gradients averaged over ranks (what DDP does) equal ``∂L/∂θ``.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _ranks import run_ranks
from torch import nn

from gpte.shared.distributed import (
    distributed_info_nce,
    distributed_sigmoid_loss,
    is_distributed,
    rank,
    shutdown,
    world_size,
)
from gpte.shared.losses import info_nce, sigmoid_loss
from gpte.shared.scale import LogitScale

WORLD, LOCAL_B, H, IN, DIM = 2, 4, 2, 6, 5
TIMEOUT_S = 60

CASES: dict[str, dict] = {
    "nce-gather-symmetric": dict(loss="info_nce", mode="gather", symmetric=True, negatives=True),
    "nce-local": dict(loss="info_nce", mode="local"),
    "nce-local-symmetric": dict(loss="info_nce", mode="local", symmetric=True, negatives=True),
    "nce-local-everything-blockwise": dict(
        loss="info_nce",
        mode="local",
        symmetric=True,
        negatives=True,
        qq_negatives=True,
        dd_negatives=True,
        ids=True,
        fn_margin=0.1,
        block_size=3,
    ),  # fmt: skip
    "nce-gather-guide": dict(loss="info_nce", mode="gather", negatives=True, guide=True, qq_negatives=True),
    "sigmoid-gather": dict(loss="sigmoid", mode="gather", negatives=True, ids=True),
    "sigmoid-ring": dict(loss="sigmoid", mode="ring", negatives=True, ids=True),
    "sigmoid-ring-blockwise": dict(loss="sigmoid", mode="ring", block_size=3),
}


class TinyModel(nn.Module):
    """A linear encoder with its own logit scale and bias: the smallest model that owns what the losses need."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = nn.Linear(IN, DIM).double()
        self.logit_scale = LogitScale(init_temperature=0.1, bias_init=-2.0).double()


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    n = WORLD * LOCAL_B
    return {
        "q": torch.randn(n, IN, generator=g, dtype=torch.float64),
        "d": torch.randn(n, IN, generator=g, dtype=torch.float64),
        "negatives": torch.randn(n, H, IN, generator=g, dtype=torch.float64),
        "guide_q": torch.randn(n, 3, generator=g, dtype=torch.float64),
        "guide_d": torch.randn(n, 3, generator=g, dtype=torch.float64),
        "guide_n": torch.randn(n, H, 3, generator=g, dtype=torch.float64),
        "ids": torch.tensor([0, 1, 2, 0, 3, 4, 1, 5]),  # duplicates within a rank and across ranks
    }


def _step(case: dict, shard: slice | None) -> dict[str, object]:
    """Encode (a shard of) the batch, compute the loss, backward; distributed when ``shard`` is given."""
    model, data = TinyModel(), _data()
    rows = shard if shard is not None else slice(None)
    emb = {k: model.encoder(data[k][rows]) for k in ("q", "d", "negatives")}
    for t in emb.values():
        t.retain_grad()
    scale, bias = model.logit_scale()
    kw: dict[str, object] = dict(positive_ids=data["ids"][rows] if case.get("ids") else None,
                                 block_size=case.get("block_size"))  # fmt: skip
    negs = emb["negatives"] if case.get("negatives") else None
    if case["loss"] == "info_nce":
        for key in ("symmetric", "qq_negatives", "dd_negatives", "fn_margin"):
            if key in case:
                kw[key] = case[key]
        if case.get("guide"):
            kw["guide"] = (data["guide_q"][rows], data["guide_d"][rows], data["guide_n"][rows])
        if shard is None:
            loss = info_nce(emb["q"], emb["d"], negs, scale=scale, **kw)
        else:
            loss = distributed_info_nce(emb["q"], emb["d"], negs, scale=scale, mode=case["mode"], **kw)
    elif shard is None:
        loss = sigmoid_loss(emb["q"], emb["d"], negs, scale=scale, bias=bias, **kw)
    else:
        loss = distributed_sigmoid_loss(emb["q"], emb["d"], negs, scale=scale, bias=bias, mode=case["mode"], **kw)
    loss.backward()
    params = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    if shard is not None:  # DDP's averaging of parameter gradients
        for g in params.values():
            dist.all_reduce(g)
            g /= world_size()
    grads = {k: t.grad.clone() if t.grad is not None else torch.zeros_like(t) for k, t in emb.items()}
    return {"loss": loss.detach(), "emb": grads, "params": params}


def _worker(rank_: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    # a file store: no TCP port to race for between choosing it and binding it
    dist.init_process_group("gloo", init_method=f"file://{Path(out_dir) / 'store'}", rank=rank_, world_size=WORLD,
                            timeout=timedelta(seconds=TIMEOUT_S))
    completed = False
    try:
        assert is_distributed() and rank() == rank_ and world_size() == WORLD
        shard = slice(rank_ * LOCAL_B, (rank_ + 1) * LOCAL_B)
        results = {name: _step(case, shard) for name, case in CASES.items()}
        part = Path(out_dir) / f"rank{rank_}.pt.part"
        torch.save(results, part)
        part.rename(part.with_suffix(""))  # complete or absent
        completed = True
    finally:
        shutdown(completed=completed)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("dist")
    run_ranks(_worker, (str(out),), WORLD, lambda r: (out / f"rank{r}.pt").exists(), TIMEOUT_S)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("name", list(CASES))
def test_two_processes_match_one(ranks, name):
    want = _step(CASES[name], None)
    got = [r[name] for r in ranks]
    torch.testing.assert_close(torch.stack([g["loss"] for g in got]).mean(), want["loss"], rtol=0, atol=1e-10)
    for r, g in enumerate(got):
        shard = slice(r * LOCAL_B, (r + 1) * LOCAL_B)
        for key, grad in g["emb"].items():
            torch.testing.assert_close(grad, WORLD * want["emb"][key][shard], rtol=0, atol=1e-10, msg=f"rank {r} {key}")
        assert g["params"].keys() == want["params"].keys()
        for key, grad in g["params"].items():
            torch.testing.assert_close(grad, want["params"][key], rtol=0, atol=1e-10, msg=f"rank {r} {key}")


def test_outside_a_process_group_falls_back_to_the_local_loss():
    g = torch.Generator().manual_seed(2)
    q, d = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    assert not is_distributed() and rank() == 0 and world_size() == 1
    torch.testing.assert_close(distributed_info_nce(q, d, symmetric=True), info_nce(q, d, symmetric=True))
    torch.testing.assert_close(distributed_sigmoid_loss(q, d, scale=10.0, bias=-10.0),
                               sigmoid_loss(q, d, scale=10.0, bias=-10.0))  # fmt: skip
    with pytest.raises(ValueError, match="mode"):
        distributed_info_nce(q, d, mode="ring")  # type: ignore[arg-type]
