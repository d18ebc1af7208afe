"""Dual towers on the tiny random test model: encoding, locking, LoRA, a LiT step, save/load."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

import gpte
from gpte.multimodal.dual import DualTower
from gpte.multimodal.train import DualTrainConfig, fit, precompute_features, retrieval_metrics
from gpte.shared.errors import InvalidInputError


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (48 + i % 3, 64, 3), dtype=np.uint8)) for i in range(n)]


@pytest.fixture
def lit():
    return gpte.load("test-lit")


def test_encode_dispatches_texts_images_and_pairs(lit, tmp_path):
    img = _images(1)[0]
    img.save(tmp_path / "a.png")
    out = lit.encode(["a red square", tmp_path / "a.png", img, (img, "but blue")])
    assert out.shape == (4, 32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out[1], out[2], atol=1e-5)  # the file and the same PIL image
    np.testing.assert_allclose(out[0], lit.encode_text("a red square"), atol=1e-5)
    fused = lit.encode_image(img) + lit.encode_text("but blue")
    np.testing.assert_allclose(out[3], fused / np.linalg.norm(fused), atol=1e-5)
    assert not np.allclose(out[3], out[2], atol=1e-3)  # the text changes a composed query


def test_bad_inputs_are_named(lit, tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(InvalidInputError) as info:
        lit.encode(["fine", "", tmp_path / "notes.png", 3.5])
    assert set(info.value.problems) == {1, 2, 3}
    assert "empty" in info.value.problems[1] and "3.5" not in info.value.problems[3]


def test_locked_towers_get_no_gradient_and_lit_step_lowers_the_loss(lit):
    lit.lock(image=True, text=True)
    images, texts = _images(16), [f"picture number {i}" for i in range(16)]
    feats = precompute_features(lit, images, texts)
    assert feats[0].shape == (16, lit.image.embed_dim) and feats[1].shape == (16, lit.text.embed_dim)
    before = {n: p.detach().clone() for n, p in lit.named_parameters()}
    log = fit(lit, DualTrainConfig(batch_size=16, epochs=60, learning_rate=1e-2, log_every=10), features=feats)
    losses = [e["loss"] for e in log["log"]]
    assert losses[-1] < 0.5 * losses[0]
    for name, p in lit.named_parameters():
        changed = not torch.equal(p.detach(), before[name])
        if name.startswith(("image.", "text.")):
            assert not changed and p.grad is None, name  # a locked tower never receives a gradient
    assert any(not torch.equal(p, before[n]) for n, p in lit.named_parameters() if n.startswith("image_head"))


def test_unlocked_last_block_and_grad_cache_train_the_towers():
    lit = gpte.load("test-lit", loss="sigmoid").lock(image=1, text=1)
    trainable = {n for n, p in lit.named_parameters() if p.requires_grad}
    assert any(n.startswith("text.") and "layer.1." in n for n in trainable)
    assert not any(n.startswith("text.") and "layer.0." in n for n in trainable)
    assert any(n.startswith("image.") for n in trainable)
    images, texts = _images(8), [f"item {i}" for i in range(8)]
    before = {n: p.detach().clone() for n, p in lit.named_parameters()}
    log = fit(lit, DualTrainConfig(loss="sigmoid", batch_size=8, epochs=2, grad_cache_chunk=3, log_every=1),
              images=images, texts=texts)
    assert "bias" in log["log"][0]
    moved = {n for n, p in lit.named_parameters() if not torch.equal(p, before[n])}
    assert moved and moved <= trainable
    with pytest.raises(ValueError, match="locked towers"):
        fit(lit, DualTrainConfig(batch_size=8), features=(torch.zeros(8, 4), torch.zeros(8, 4)))


def test_lora_on_the_text_tower_only_trains_the_adapter(lit):
    from gpte.shared.adapters import LoraSpec

    lit.lock(image=True, text=True).add_lora("text", LoraSpec(r=2, target_modules=["query", "value"]))
    trainable = [n for n, p in lit.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n.startswith(("image_head", "text_head", "logit_scale"))
                             for n in trainable)


def test_save_and_load_round_trip(lit, tmp_path):
    lit.lock()
    feats = precompute_features(lit, _images(8), [f"t{i}" for i in range(8)])
    fit(lit, DualTrainConfig(batch_size=8, epochs=3), features=feats)
    query = ["a photo", _images(1, seed=3)[0]]
    expected = lit.encode(query)
    lit.save(tmp_path / "m")  # the image tower was built in-process: copied; test-bert is registered: referenced
    assert (tmp_path / "m" / "image" / "gpte-image.json").is_file() and not (tmp_path / "m" / "text").exists()
    assert '"registry": "test-bert"' in (tmp_path / "m" / "gpte-dual.json").read_text()
    again = gpte.load(tmp_path / "m")
    assert isinstance(again, DualTower)
    np.testing.assert_allclose(again.encode(query), expected, atol=1e-5)
    assert again.identity()["fingerprint"] == lit.identity()["fingerprint"]


def test_retrieval_metrics_count_shared_captions_as_correct():
    img = torch.eye(4)
    txt = torch.eye(4)
    caps = ["a", "b", "c", "c"]  # items 2 and 3 share a caption: either image is right for "c"
    txt[3] = txt[2]
    img[3] = img[0]  # image 3 looks like image 0: its best caption is "a", wrong
    out = retrieval_metrics(img, txt, caps)
    assert out["text_to_image_R@1"] == 1.0 and out["n_captions"] == 3  # "c" finds image 2, which counts
    assert out["image_to_text_R@1"] == 0.75 and out["image_to_text_R@5"] == 1.0


def test_image_text_recipes_are_recognised_and_name_bad_keys(tmp_path):
    from gpte.multimodal.recipe import is_image_text_recipe, load_image_text_recipe
    from gpte.shared.recipe import RecipeError

    good = tmp_path / "lit.toml"
    good.write_text('kind = "image-text"\n[model]\nimage_head = "mlp"\n[train]\nloss = "sigmoid"\nepochs = 3\n')
    assert is_image_text_recipe(good) and not is_image_text_recipe(tmp_path / "missing.toml")
    recipe = load_image_text_recipe(good)
    assert (recipe.model.image_head, recipe.model.loss, recipe.train.epochs) == ("mlp", "sigmoid", 3)
    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "image-text"\n[train]\nepochz = 3\n')
    with pytest.raises(RecipeError, match=r"unknown key 'epochz' in \[train\]"):
        load_image_text_recipe(bad)
    bad.write_text('kind = "image-text"\n[model]\nimage_head = "transformer"\n')
    with pytest.raises(RecipeError, match=r"\[model\]: image_head must be"):
        load_image_text_recipe(bad)
