"""The composed universal backbone (image features as visual tokens in a text encoder) on tiny random parts.

The bases are the registered test models ``test-bert`` and ``test-image`` (seeded, built in-process), so a saved
composed model reloads them by name and checks their fingerprints, exactly as the shipped default does with MiniLM
and EfficientNet-Lite0.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import gpte
from gpte.data.image_caption import ImageCaption
from gpte.multimodal.composed import WEIGHTS_NAME, ComposedConfig, ComposedModelError, ComposedVLM
from gpte.multimodal.universal import UniversalEmbedder
from gpte.multimodal.universal_recipe import load_universal_recipe
from gpte.multimodal.universal_train import (
    CATEGORY_QUESTION,
    UniversalTrainConfig,
    evaluate_universal,
    fit_universal,
    fused_modal_examples,
)
from gpte.shared.gradcache import Tower, cached_step, plain_step
from gpte.shared.losses import info_nce


def _image(seed: int, size: int = 72) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def _embedder(lora_r: int = 4, **kw) -> UniversalEmbedder:
    torch.manual_seed(0)
    config = ComposedConfig(text_model="test-bert", image_model="test-image", lora_r=lora_r, lora_dropout=0.0, **kw)
    model = ComposedVLM.build(config)
    return UniversalEmbedder(model, model.processor, name="test-composed")


@pytest.fixture
def embedder() -> UniversalEmbedder:
    return _embedder()


def _pairs(n: int = 24) -> list[ImageCaption]:
    colours = ["red", "blue", "green"]
    return [ImageCaption(image=f"img{i}.png", caption=f"a {colours[i % 3]} thing number {i}",
                         source="twemoji" if i % 2 else "openclipart", category=colours[i % 3]) for i in range(n)]


def test_mixed_inputs_embed_through_visual_tokens(embedder):
    out = embedder.encode_query([_image(1), "a red car", (_image(1), "what is this")])
    assert out.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # the image reaches the embedding through the visual tokens: another image, another vector
    assert not np.allclose(embedder.encode_document(_image(1)), embedder.encode_document(_image(2)), atol=1e-4)
    batch = embedder.build_inputs([_image(1), "a red car"], "candidate")
    slots = (batch["input_ids"] == embedder.processor.image_token_id).sum(1).tolist()
    assert slots == [embedder.model.config.tokens_per_image, 0]
    assert batch["attention_mask"][:, 0].tolist() == [1, 1]  # right padding: text starts at position 0


def test_precomputed_features_equal_pixels(embedder):
    images = [_image(3), _image(4)]
    feats = embedder.model.image_features(embedder.processor.image_processor.batch(images))  # [2, T, C]
    assert feats.shape == (2, 5, embedder.model.config.image_feature_dim)
    with torch.no_grad():
        a = embedder.embed_items(images + [(images[0], "what is this")], "query", None)
        b = embedder.embed_items([feats[0], feats[1], (feats[0], "what is this")], "query", None)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_only_projector_and_adapter_train(embedder):
    trainable = {n for n, p in embedder.model.named_parameters() if p.requires_grad}
    assert any(n.startswith("projector.") for n in trainable)
    assert all(n.startswith("projector.") or "lora_" in n for n in trainable)
    assert not any(n.startswith("image.") for n in trainable)
    frozen_text = _embedder(lora_r=0)
    assert {n.split(".")[0] for n, p in frozen_text.model.named_parameters() if p.requires_grad} == {"projector"}


def test_projector_only_model_stores_only_the_projector(tmp_path):
    embedder = _embedder(lora_r=0)
    with torch.no_grad():
        embedder.model.projector[0].weight.mul_(1.5)
    want = embedder.encode_document(_image(2))
    path = embedder.save(tmp_path / "p")
    from safetensors.torch import load_file

    assert {k.split(".")[0] for k in load_file(str(path / WEIGHTS_NAME))} == {"projector"}
    np.testing.assert_allclose(UniversalEmbedder.load(path).encode_document(_image(2)), want, atol=1e-6)


def test_training_step_lowers_loss_and_saves_identically(tmp_path):
    embedder = _embedder()
    pairs = _pairs()
    feats = torch.randn(len(pairs), 5, embedder.model.config.image_feature_dim)
    examples = fused_modal_examples(pairs)
    probe = [ex for ex in examples if ex.task == "text-to-image"][:8]

    def probe_loss() -> float:
        with torch.no_grad():
            q = embedder.embed_items([ex.query_text for ex in probe], "query", "text-to-image")
            c = embedder.embed_items([feats[ex.candidate_image] for ex in probe], "candidate", "text-to-image")
            return float(info_nce(q, c, scale=20.0))

    before = probe_loss()
    fit_universal(embedder, probe, lambda i: feats[i], UniversalTrainConfig(batch_size=8, epochs=6, warmup_ratio=0,
                                                                            learning_rate=3e-3))
    assert probe_loss() < before
    inputs = ["a red car", _image(5), (_image(6), CATEGORY_QUESTION)]
    want = embedder.encode_query(inputs, task=None)
    path = embedder.save(tmp_path / "composed")
    from safetensors.torch import load_file

    keys = load_file(str(path / WEIGHTS_NAME)).keys()  # only the trained parts are stored: no base weights
    assert keys and all(k.startswith("projector.") or "lora_" in k for k in keys)
    again = gpte.load(str(path))
    assert isinstance(again, UniversalEmbedder) and again.adapter.name == "composed"
    np.testing.assert_allclose(again.encode_query(inputs, task=None), want, rtol=0, atol=1e-6)
    assert again.identity()["fingerprint"] == embedder.identity()["fingerprint"]


def test_full_text_tuning_saves_the_text_encoder(tmp_path):
    embedder = _embedder(lora_r=0, tune_text=True)
    assert all(p.requires_grad for p in embedder.model.text.parameters())
    with torch.no_grad():
        embedder.model.text.get_input_embeddings().weight.add_(0.1)  # a tuned text encoder
    want = embedder.encode_document("a red car")
    again = UniversalEmbedder.load(embedder.save(tmp_path / "full"))
    np.testing.assert_allclose(again.encode_document("a red car"), want, atol=1e-6)


def test_gradient_cache_matches_plain_step(embedder):
    pairs = _pairs(12)
    feats = torch.randn(len(pairs), 5, embedder.model.config.image_feature_dim)
    texts = [p.caption for p in pairs]
    ids = torch.arange(len(pairs))

    def grads(cached: bool) -> dict[str, torch.Tensor]:
        embedder.model.zero_grad(set_to_none=True)
        towers = {"q": Tower(lambda items: embedder.embed_items(items, "query", "text-to-image"), texts),
                  "c": Tower(lambda items: embedder.embed_items(items, "candidate", "text-to-image"), list(feats))}

        def loss(reps):
            return info_nce(reps["q"], reps["c"], scale=20.0, positive_ids=ids)

        embedder.model.train()  # dropout on: the cache must replay each sub-batch's random state
        torch.manual_seed(1)
        (cached_step(loss, towers, 5) if cached else plain_step(loss, towers, chunk_size=5))
        embedder.model.eval()
        return {n: p.grad.clone() for n, p in embedder.model.named_parameters() if p.grad is not None}

    plain, cached = grads(False), grads(True)
    assert plain.keys() == cached.keys() and any("lora_" in n for n in plain)
    for name in plain:
        torch.testing.assert_close(cached[name], plain[name], rtol=1e-4, atol=1e-6)


def test_gradient_cached_training_runs(embedder):
    pairs = _pairs(16)
    feats = torch.randn(len(pairs), 5, embedder.model.config.image_feature_dim)
    log = fit_universal(embedder, fused_modal_examples(pairs, ["image-to-text"]), lambda i: feats[i],
                        UniversalTrainConfig(batch_size=8, epochs=1, grad_cache_chunk=3, log_every=1))
    assert log["steps"] == 2 and all(np.isfinite(e["loss"]) for e in log["log"])


def test_fused_modal_examples():
    pairs = _pairs(6)
    examples = fused_modal_examples(pairs)
    tasks = [ex.task for ex in examples]
    assert tasks.count("text-to-image") == 6 and tasks.count("image-to-text") == 6
    category = [ex for ex in examples if ex.query_text == CATEGORY_QUESTION]
    assert len(category) == 6 and {ex.candidate_text for ex in category} == {"red", "blue", "green"}
    assert all(ex.query_image is not None and ex.candidate_image is None for ex in category)
    names = [ex for ex in examples if ex.task == "image-question" and ex.query_text != CATEGORY_QUESTION]
    assert len(names) == 3  # emoji only
    # same category → same group: never negatives of each other
    assert len({ex.group for ex in category}) == 3
    with pytest.raises(ValueError, match="unknown fused-modal task"):
        fused_modal_examples(pairs, ["caption-to-sound"])


def test_evaluate_reports_every_figure(embedder):
    pairs = _pairs(12)
    feats = torch.randn(len(pairs), 5, embedder.model.config.image_feature_dim)
    out = evaluate_universal(embedder, pairs, lambda i: feats[i])
    for key in ("text_to_image_R@1", "image_to_text_R@10", "emoji_category_acc", "clipart_category_acc"):
        assert 0.0 <= out[key] <= 1.0
    assert out["emoji_category_n"] == 6 and out["emoji_category_classes"] == 3


def test_errors_name_the_fix(embedder, tmp_path):
    with pytest.raises(ComposedModelError, match="only .* fit in max_length"):
        small = _embedder(max_length=6)  # [CLS] + 5 visual tokens + [SEP] do not fit
        small.encode_document((_image(1), "a long question about the picture with many words"))
    with pytest.raises(ComposedModelError, match="not in the text model's vocabulary"):
        ComposedVLM.build(ComposedConfig(text_model="test-bert", image_model="test-image", image_token="<img>"))
    with pytest.raises(ComposedModelError, match="placeholders"):
        embedder.processor(text=["[unused0] two"], images=[])
    path = embedder.save(tmp_path / "m")
    meta = json.loads((path / "composed.json").read_text())
    meta["config"]["text_fingerprint"] = "0" * 32
    (path / "composed.json").write_text(json.dumps(meta))
    with pytest.raises(ComposedModelError, match="text base 'test-bert' is not the one"):
        UniversalEmbedder.load(path)


def test_shipped_recipe_parses():
    recipe = load_universal_recipe("recipes/universal-lite0-minilm.toml")
    assert recipe.model.text_model == "minilm" and recipe.model.image_model == "efficientnet-lite0"
    assert recipe.compare_with == "lit-lite0-minilm" and recipe.model.storage_dtype == "float16"


def test_universal_recipe_keys_are_checked(tmp_path):
    from gpte.shared.recipe import RecipeError, recipe_kind

    bad = tmp_path / "bad.toml"
    bad.write_text('kind = "universal"\n[model]\ntext_model = "test-bert"\nvisual_tokens = 9\n')
    assert recipe_kind(bad) == "universal" and recipe_kind(tmp_path / "missing.toml") is None
    with pytest.raises(RecipeError, match=r"unknown key 'visual_tokens' in \[model\]"):
        load_universal_recipe(bad)
    bad.write_text('kind = "universal"\n[train]\nbatch_size = 1\n')
    with pytest.raises(RecipeError, match=r"\[train\]: batch_size must be >= 2"):
        load_universal_recipe(bad)


def test_second_stage_starts_from_a_saved_projector(tmp_path):
    first = _embedder(lora_r=0)
    with torch.no_grad():
        first.model.projector[0].weight.mul_(2.0)
    path = first.save(tmp_path / "stage1")
    second = _embedder(lora_r=4)
    second.model.load_projector(path)
    for a, b in zip(first.model.projector.parameters(), second.model.projector.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    other = _embedder(lora_r=4, grid=1)
    with pytest.raises(ComposedModelError, match="its grid .* differs"):
        other.model.load_projector(path)


def test_adapter_merges_for_inference_without_changing_embeddings():
    embedder = _embedder(lora_r=4)
    with torch.no_grad():  # a non-zero adapter
        for name, p in embedder.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    layers = [m for m in embedder.model.text.modules() if hasattr(m, "merged") and hasattr(m, "lora_A")]
    embedder.model.eval()
    assert all(m.merged for m in layers)
    merged = embedder.encode_query("a red car")
    embedder.model.train()
    assert not any(m.merged for m in layers)
    embedder.model.eval()
    embedder.model._merge_adapter(False)  # unmerged, without dropout: the adapter computed beside the base
    unmerged = embedder.encode_query("a red car")
    embedder.model._merge_adapter(True)
    np.testing.assert_allclose(merged, unmerged, atol=1e-5)
    again = embedder.encode_query("a red car")
    np.testing.assert_allclose(again, merged, atol=1e-6)  # merge → unmerge → merge leaves the base as it was
