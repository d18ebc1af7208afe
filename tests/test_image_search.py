"""ImageSearch over a small generated folder with the tiny test model: bad files, duplicates, incremental updates."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import gpte
from gpte.cli import main
from gpte.multimodal import ImageSearch


def _png(path, colour, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "pics"
    _png(root / "red.png", (220, 20, 20))
    _png(root / "green.png", (20, 200, 20))
    _png(root / "sub" / "blue.png", (20, 20, 230))
    (root / "sub" / "blue-copy.png").write_bytes((root / "sub" / "blue.png").read_bytes())  # a duplicate
    good = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(good, format="PNG")
    (root / "truncated.png").write_bytes(good.getvalue()[:60])
    (root / "fake.jpg").write_text("this is text")
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def lit():
    return gpte.load("test-lit")


def test_index_reports_bad_files_and_duplicates_and_searches(folder, lit):
    search = ImageSearch(folder, model=lit)
    report = search.index()
    assert report.images_indexed == 4
    assert report.duplicates == {"sub/blue.png": "sub/blue-copy.png"} or report.duplicates == {
        "sub/blue-copy.png": "sub/blue.png"}
    assert "truncated" in report.skipped["truncated.png"] or "corrupt" in report.skipped["truncated.png"]
    assert set(report.skipped) == {"truncated.png", "fake.jpg", "notes.txt"}
    hits = search.search(folder / "red.png", k=3)  # by image: the same picture first
    assert hits[0].id == "red.png" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert hits[0].path == str(folder / "red.png")
    blue = search.search(folder / "sub" / "blue.png", k=4)
    assert blue[0].metadata["duplicates"]  # the two copies come back as one hit listing the other path
    assert len({h.metadata["sha256"] for h in blue}) == len(blue)
    assert len(search.search("a red square", k=10)) == 3  # distinct images
    assert len(search.search((folder / "green.png", "but red"), k=2)) == 2


def test_incremental_update_and_reopen(folder, lit):
    search = ImageSearch(folder, model=lit)
    search.index()
    again = ImageSearch(folder, model=lit)
    report = again.index()
    assert report.images_indexed == 0 and report.images_unchanged == 4
    _png(folder / "green.png", (200, 200, 20), size=(41, 30))  # changed content
    (folder / "red.png").unlink()
    report = again.index()
    assert (report.images_indexed, report.images_removed) == (1, 1)
    reopened = ImageSearch(folder)  # the model comes from the index's manifest (test-lit is registered)
    assert len(reopened) == 3 and "red.png" not in {h.id for h in reopened.search("x", k=10)}
    files = reopened.collection.index.extras["image_files"]
    assert set(files) == {"green.png", "sub/blue.png", "sub/blue-copy.png"}


def test_symlinks_leaving_the_folder_are_skipped_unless_followed(folder, lit, tmp_path):
    outside = tmp_path / "elsewhere.png"
    _png(outside, (1, 2, 3))
    (folder / "link.png").symlink_to(outside)
    report = ImageSearch(folder, model=lit, index_dir=tmp_path / "a").index()
    assert report.skipped["link.png"] == "symbolic link leaving the folder"
    report = ImageSearch(folder, model=lit, index_dir=tmp_path / "b", follow_symlinks=True).index()
    assert "link.png" not in report.skipped and report.images_indexed == 5


def test_add_images_without_a_folder(tmp_path, lit):
    search = ImageSearch(index_dir=tmp_path / "idx", model=lit)
    arr = np.zeros((20, 20, 3), dtype=np.uint8)
    report = search.add([Image.new("RGB", (10, 10), (1, 2, 3)), arr, b"not an image"], ids=["a", "b", "c"],
                        metadata=[{"label": "x"}, None, None])
    assert report.images_indexed == 2 and set(report.skipped) == {"c"}
    assert search.search("anything", k=5)[0].id in {"a", "b"}
    assert ImageSearch(index_dir=tmp_path / "idx", model=lit).remove(["a"]) == 1
    with pytest.raises(ValueError, match="folder"):
        ImageSearch()


def test_cli_index_and_search_json(folder, capsys):
    assert main(["images", "index", str(folder), "--model", "test-lit"]) == 0
    assert "4 images indexed" in capsys.readouterr().out
    assert main(["images", "search", str(folder), "red", "-k", "2", "--json", "--model", "test-lit"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert len(hits) == 2 and {"id", "path", "score", "metadata"} <= set(hits[0])
    assert main(["images", "search", str(folder), "--image", str(folder / "green.png"), "-k", "1", "--json",
                 "--model", "test-lit"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "green.png"


def test_universal_embedders_get_the_query_instruction(folder):
    uni = gpte.load("test-universal")
    search = ImageSearch(folder, model=uni)
    assert search.index().images_indexed == 4
    hits = search.search(folder / "red.png", k=1)  # image → image: candidate prompt on both sides
    assert hits[0].id == "red.png" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    text = search.search("a red square", k=3)
    want = uni.encode_query("a red square", task="text-to-image")
    vec = search.collection.index.vectors([h.id for h in text])  # [3, D]
    np.testing.assert_allclose(vec @ want, [h.score for h in text], atol=1e-5)
    plain = uni.encode_query("a red square")  # no task: a different vector, so the instruction was used
    assert not np.allclose(vec @ plain, [h.score for h in text], atol=1e-3)


def test_index_reports_progress(folder, lit):
    seen = []
    ImageSearch(folder, model=lit, batch_size=2).index(progress=lambda done, total, rel: seen.append((done, total)))
    assert len(seen) >= 2 and seen[-1][0] == seen[-1][1] == 6  # every listed file looked at by the last call
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
