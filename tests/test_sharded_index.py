"""`gpte index build` under two processes (torchrun's environment, gloo) builds the same index as one process."""

from __future__ import annotations

import json
import os
import socket

import numpy as np
import torch.multiprocessing as mp

from gpte.index import open_index


def _worker(rank, world, port, corpus, out):
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    import torch

    from gpte.cli import main

    torch.set_num_threads(1)
    code = main(["-q", "index", "build", str(corpus), "--out", str(out), "--backend", "exact", "--model", "test-bert",
                 "--device", "cpu"])
    if code != 0:
        raise SystemExit(code)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_build_the_same_index_as_one(tmp_path):
    from gpte.cli import main

    corpus = tmp_path / "c.jsonl"
    rows = [{"id": f"doc{i}", "text": f"document {i} about topic {i % 7}", "n": i} for i in range(37)]
    rows.append({"id": "bad", "text": "   "})  # skipped by whichever rank gets it
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["-q", "index", "build", str(corpus), "--out", str(tmp_path / "one"), "--backend", "exact",
                 "--model", "test-bert", "--device", "cpu"]) == 0
    mp.start_processes(_worker, args=(2, _free_port(), corpus, tmp_path / "two"), nprocs=2, join=True,
                       start_method="spawn")
    one, two = open_index(tmp_path / "one"), open_index(tmp_path / "two")
    assert sorted(one.ids()) == sorted(two.ids()) and len(two) == 37
    assert two.get("doc5")["n"] == 5
    ids = sorted(one.ids())
    vec_one = one._data[[one._row_of[i] for i in ids]]
    vec_two = two._data[[two._row_of[i] for i in ids]]
    np.testing.assert_allclose(vec_two, vec_one, atol=1e-5)
    assert not (tmp_path / ".two.shards").exists()  # shards cleaned up
