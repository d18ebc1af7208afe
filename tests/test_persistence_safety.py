"""Concurrent writers, damaged pointers, interrupted directory swaps: nothing is lost and every error says why."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from gpte.index import Collection, IndexConflictError, IndexCorruptError, IndexInputError, create_index, open_index
from gpte.shared import fsio


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 8)).astype(np.float32)


def test_second_writer_of_an_opened_index_is_refused(tmp_path):
    idx = create_index(8, backend="exact")
    idx.add(["a"], _vectors(1))
    idx.save(tmp_path / "idx")
    first, second = open_index(tmp_path / "idx"), open_index(tmp_path / "idx")
    first.add(["x"], _vectors(1, 1))
    first.save(tmp_path / "idx")
    second.add(["y"], _vectors(1, 2))
    with pytest.raises(IndexConflictError, match="another writer saved in between"):
        second.save(tmp_path / "idx")
    assert set(open_index(tmp_path / "idx").ids()) == {"a", "x"}  # the first writer's update survived
    first.add(["z"], _vectors(1, 3))
    first.save(tmp_path / "idx")  # the first writer may go on saving
    assert set(open_index(tmp_path / "idx").ids()) == {"a", "x", "z"}


def test_damaged_current_pointer_keeps_versions_usable(tmp_path):
    idx = create_index(8, backend="exact")
    idx.add(["a"], _vectors(1))
    idx.save(tmp_path / "idx")
    idx.add(["b"], _vectors(1, 1))
    idx.save(tmp_path / "idx")
    (tmp_path / "idx" / "CURRENT").write_text("garbage")
    with pytest.raises(IndexCorruptError, match="version='previous'"):
        open_index(tmp_path / "idx")
    assert set(open_index(tmp_path / "idx", version="previous").ids()) == {"a", "b"}  # the newest intact version
    assert set(open_index(tmp_path / "idx", version=1).ids()) == {"a"}
    fresh = create_index(8, backend="exact")
    fresh.add(["c"], _vectors(1, 2))
    fresh.save(tmp_path / "idx")  # a save repairs the pointer
    assert open_index(tmp_path / "idx").ids() == ["c"]


def test_default_ids_never_reuse_deleted_ones(test_bert):
    coll = Collection(test_bert, backend="exact")
    assert coll.add(["one", "two", "three"]) == [0, 1, 2]
    coll.delete([0])
    assert coll.add(["four"]) == [3]
    assert coll.search("two", k=3)[0].id == 1


def test_exact_backend_refuses_gpu_for_quantised_codes():
    with pytest.raises(IndexInputError, match="int8 codes on the CPU"):
        create_index(8, backend="exact", precision="int8", device="cuda")


def test_interrupted_directory_swap_restores_the_old_directory(tmp_path, monkeypatch):
    target = tmp_path / "model"
    with fsio.atomic_directory(target) as tmp:
        (tmp / "weights").write_text("old")
    assert stat.S_IMODE(target.stat().st_mode) == fsio.umask_mode()  # not the 0o700 of a temporary directory
    real_replace = os.replace

    def failing_replace(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError("simulated crash while swapping in the new directory")
        return real_replace(src, dst)

    monkeypatch.setattr(fsio.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated crash"), fsio.atomic_directory(target) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary or aside folders left


def test_atomic_files_get_ordinary_permissions(tmp_path):
    fsio.atomic_write_bytes(tmp_path / "f", b"x")
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == fsio.umask_mode(0o666)


def test_extras_are_saved_and_checked_with_the_version(tmp_path):
    index = create_index(8, backend="exact")
    index.add(["a", "b"], _vectors(2))
    index.extras = {"table": {"a": [1, 2]}}
    vdir = index.save(tmp_path / "ix")
    assert open_index(tmp_path / "ix").extras == {"table": {"a": [1, 2]}}
    (vdir / "extras.json").write_text('{"table": {}}')
    with pytest.raises(IndexCorruptError, match="extras.json"):
        open_index(tmp_path / "ix")


def test_files_written_by_libraries_get_the_usual_mode(tmp_path):
    import torch
    from safetensors.torch import save_file

    with fsio.atomic_directory(tmp_path / "model") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp / "w.safetensors"))  # safetensors creates files 0o600
        (tmp / "sub").mkdir(mode=0o700)
    assert stat.S_IMODE((tmp_path / "model" / "w.safetensors").stat().st_mode) == fsio.umask_mode(0o666)
    assert stat.S_IMODE((tmp_path / "model" / "sub").stat().st_mode) == fsio.umask_mode()
