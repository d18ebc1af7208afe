"""OpenCLIPEmbedder: a random open_clip ViT-B-32 saved to local files, loaded back, compared with open_clip itself."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

open_clip = pytest.importorskip("open_clip")
from PIL import Image  # noqa: E402

import gpte  # noqa: E402
from gpte.multimodal.openclip import CONFIG_NAME, WEIGHTS_NAME, OpenCLIPCheckpointError, OpenCLIPEmbedder  # noqa: E402
from gpte.shared.errors import ModelNotFoundError  # noqa: E402

ARCH = "ViT-B-32"
TEXTS = ["a dog", "a cat"]


def _picture(seed: int = 0, size: tuple[int, int] = (320, 240)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), mode="RGB")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A random open_clip ViT-B-32, its weights as .safetensors and as a wrapped, prefixed .pt, and its outputs."""
    from open_clip.transform import PreprocessCfg, image_transform_v2
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = open_clip.create_model(ARCH, pretrained=None).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    folder = tmp_path_factory.mktemp("openclip")
    save_file(state, str(folder / "vit-b-32.safetensors"))
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, folder / "vit-b-32.pt")
    transform = image_transform_v2(PreprocessCfg(**model.visual.preprocess_cfg), is_train=False)
    with torch.no_grad():
        text = model.encode_text(open_clip.get_tokenizer(ARCH)(TEXTS), normalize=True)
        image = model.encode_image(transform(_picture()).unsqueeze(0), normalize=True)
    return {"folder": folder, "text": text, "image": image, "logit_scale": float(model.logit_scale.detach().exp())}


@pytest.fixture(scope="module")
def embedder(reference):
    return OpenCLIPEmbedder.from_checkpoint(ARCH, reference["folder"] / "vit-b-32.safetensors", device="cpu")


def test_matches_open_clip(embedder, reference):
    text = embedder.encode_text(TEXTS, output="torch")
    image = embedder.encode_image([_picture()], output="torch")
    torch.testing.assert_close(text, reference["text"], atol=1e-5, rtol=0)
    torch.testing.assert_close(image, reference["image"], atol=1e-5, rtol=0)
    assert embedder.embed_dim == 512 and text.shape == (2, 512)
    assert embedder.logit_scale == pytest.approx(reference["logit_scale"]) and embedder.logit_bias is None
    ident = embedder.identity()
    assert ident["name"] == ARCH and ident["modality"] == "multimodal" and ident["dim"] == 512
    assert len(ident["fingerprint"]) == 32 and ident["source"].endswith("vit-b-32.safetensors")
    assert isinstance(embedder.model, torch.nn.Module)
    assert embedder.embed_texts(["trainable"]).requires_grad  # a trainer can fine-tune .model


def test_torch_checkpoint_wrapped_and_prefixed(embedder, reference):
    from_pt = OpenCLIPEmbedder.from_checkpoint(ARCH, reference["folder"] / "vit-b-32.pt", device="cpu")
    ours, theirs = from_pt.model.state_dict(), embedder.model.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    weight = torch.nn.Parameter(torch.zeros(3))
    torch.nn.init.ones_(weight)  # parameter initialisation is skipped only while a checkpoint's model is built
    assert weight.detach().tolist() == [1.0, 1.0, 1.0]


def test_save_then_gpte_load(embedder, tmp_path):
    folder = embedder.save(tmp_path / "saved")
    assert sorted(p.name for p in folder.iterdir()) == sorted([CONFIG_NAME, WEIGHTS_NAME])
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["format"] == "gpte-openclip" and config["arch"] == ARCH and config["precision"] == "fp32"
    loaded = gpte.load(folder, device="cpu")
    assert isinstance(loaded, OpenCLIPEmbedder)
    np.testing.assert_allclose(loaded.encode_text(TEXTS[0]), embedder.encode_text(TEXTS[0]), atol=1e-6, rtol=0)
    np.testing.assert_allclose(loaded.encode_image(_picture(1)), embedder.encode_image(_picture(1)), atol=1e-6, rtol=0)
    before, after = embedder.identity(), loaded.identity()
    assert after["source"] == str(folder.resolve())
    assert {k: v for k, v in after.items() if k != "source"} == {k: v for k, v in before.items() if k != "source"}


def test_mixed_inputs(embedder, tmp_path):
    png = tmp_path / "picture.png"
    _picture(3).save(png)
    out = embedder.encode(["a photo of a dog", png, (_picture(4), "but in red")], output="torch")
    assert out.shape == (3, 512)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=0)
    images = embedder.encode_image([_picture(3), _picture(4)], output="torch")
    torch.testing.assert_close(out[1], images[0], atol=1e-5, rtol=0)
    fused = images[1] + embedder.encode_text("but in red", output="torch")
    torch.testing.assert_close(out[2], torch.nn.functional.normalize(fused, dim=-1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("checkpoint", ["openai", "laion2b_s34b_b79k", "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                                        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K", "https://example.org/clip.pt"])
def test_hub_names_are_refused(checkpoint):
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        OpenCLIPEmbedder.from_checkpoint(ARCH, checkpoint)


def test_hub_arch_is_refused(reference):
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        OpenCLIPEmbedder.from_checkpoint("hf-hub:timm/ViT-B-16-SigLIP", reference["folder"] / "vit-b-32.pt")


@pytest.mark.parametrize("arch", ["ViT-B-16-SigLIP", "roberta-ViT-B-32"])
def test_hub_tokenizer_arch_is_refused(arch, reference):
    with pytest.raises(ModelNotFoundError, match=rf"{arch}.*offline"):
        OpenCLIPEmbedder.from_checkpoint(arch, reference["folder"] / "vit-b-32.pt")


def test_unknown_arch_lists_close_matches(reference):
    with pytest.raises(ModelNotFoundError, match=r"'vit-b32' is not an open_clip architecture; close matches: .*ViT-B-32"):
        OpenCLIPEmbedder.from_checkpoint("vit-b32", reference["folder"] / "vit-b-32.pt")


def test_checkpoint_of_another_arch(reference):
    with pytest.raises(OpenCLIPCheckpointError, match=r"does not fit open_clip architecture 'ViT-S-32': \d+ tensors "
                                                       r"of the wrong shape \(.*visual\.proj: checkpoint \[768, 512\], "
                                                       r"ViT-S-32 expects \[384, 384\].*another architecture"):
        OpenCLIPEmbedder.from_checkpoint("ViT-S-32", reference["folder"] / "vit-b-32.safetensors", device="cpu")


def test_bad_files(tmp_path, reference):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        OpenCLIPEmbedder.from_checkpoint(ARCH, tmp_path / "missing.safetensors")
    (tmp_path / "weights.npz").write_bytes(b"x")
    with pytest.raises(OpenCLIPCheckpointError, match="unsupported file type '.npz'"):
        OpenCLIPEmbedder.from_checkpoint(ARCH, tmp_path / "weights.npz")
    with pytest.raises(OpenCLIPCheckpointError, match="is a folder.*vit-b-32.pt"):
        OpenCLIPEmbedder.from_checkpoint(ARCH, reference["folder"])
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors at all")
    with pytest.raises(OpenCLIPCheckpointError, match="junk.safetensors"):
        OpenCLIPEmbedder.from_checkpoint(ARCH, tmp_path / "junk.safetensors")
    torch.save({"epoch": 3}, tmp_path / "no-weights.pt")
    with pytest.raises(OpenCLIPCheckpointError, match="no-weights.pt.*not a state dict"):
        OpenCLIPEmbedder.from_checkpoint(ARCH, tmp_path / "no-weights.pt")
