"""Image encoders: a timm backbone plus its preprocessing, embedding images as pooled features.

:class:`ImagePreprocess` turns an RGB PIL image into the network input: resize the shorter side to ``resize``
(keeping the aspect ratio), take the central ``size x size`` crop (or, with ``resize=None``, resize straight to
``size x size``), then per channel ``x = (pixel / 255 - mean) / std``. With ``resize = size / crop_pct`` this is
timm's (and the TensorFlow reference's) centre-crop evaluation transform.

:class:`ImageEncoder` wraps a timm model. The embedding is timm's pre-logits output
(``forward_head(forward_features(x), pre_logits=True)``: global pooling after the last stage, the same vector as a
model created with ``num_classes=0``); the classifier, when the checkpoint has one, stays available through
:meth:`ImageEncoder.classify`. gpte never downloads: weights come from a local checkpoint only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from gpte.shared.errors import GpteError, InvalidInputError, ModelNotFoundError
from gpte.shared.fsio import atomic_directory

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CheckpointError", "ImageEncoder", "ImagePreprocess",
           "IMAGENET_MEAN", "IMAGENET_STD", "load_checkpoint"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "gpte-image.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "gpte-image-encoder"
FORMAT_VERSION = 1

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
_CHECKPOINT_SUFFIXES = (".safetensors", ".pth", ".pt", ".bin")

Output = Literal["numpy", "torch"]


class CheckpointError(GpteError, ValueError):
    """A checkpoint that does not fit the architecture (missing, unexpected or mis-shaped tensors) or cannot be read."""


# ---------------------------------------------------------------------------------------------------- preprocessing
@dataclass
class ImagePreprocess:
    """Centre-crop evaluation transform, ``[3, size, size]`` float32 out.

    1. ``resize`` set: scale so the shorter side is ``resize`` (longer side ``round(long * resize / short)``), then
       crop the central ``size x size`` square (offsets ``round((W - size) / 2)``, ``round((H - size) / 2)``).
       ``resize`` None: resize straight to ``size x size`` (aspect ratio not kept).
    2. ``x = (pixel / 255 - mean) / std`` per RGB channel (ImageNet statistics by default).
    """

    size: int = 224
    resize: int | None = 256
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"

    def __post_init__(self) -> None:
        self.mean = tuple(float(m) for m in self.mean)  # type: ignore[assignment]
        self.std = tuple(float(s) for s in self.std)  # type: ignore[assignment]
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"ImagePreprocess.size must be a positive integer (got {self.size!r})")
        if self.resize is not None and (isinstance(self.resize, bool) or not isinstance(self.resize, int)
                                        or self.resize < self.size):
            raise ValueError(f"ImagePreprocess.resize must be None or an integer >= size={self.size} "
                             f"(got {self.resize!r})")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError(f"ImagePreprocess.mean and std need 3 values, one per RGB channel "
                             f"(got mean={self.mean}, std={self.std})")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"ImagePreprocess.std must be positive (got {self.std})")
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(f"ImagePreprocess.interpolation must be one of {', '.join(_INTERPOLATIONS)} "
                             f"(got {self.interpolation!r})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["mean"], out["std"] = list(self.mean), list(self.std)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePreprocess:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown ImagePreprocess field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    @classmethod
    def from_timm_config(cls, cfg: dict[str, Any]) -> ImagePreprocess:
        """From a timm ``pretrained_cfg``: ``size = input_size[-1]``, ``resize = floor(size / crop_pct)``."""
        size = int(cfg.get("input_size", (3, 224, 224))[-1])
        crop_pct = float(cfg.get("crop_pct") or 1.0)
        resize = max(size, int(size / crop_pct)) if cfg.get("crop_mode", "center") == "center" else None
        interpolation = cfg.get("interpolation", "bicubic")
        return cls(size=size, resize=resize, mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
                   std=tuple(cfg.get("std", IMAGENET_STD)),
                   interpolation=interpolation if interpolation in _INTERPOLATIONS else "bicubic")

    def __call__(self, img: Image.Image) -> Tensor:
        from PIL import Image

        if img.mode != "RGB":
            img = img.convert("RGB")
        resample = getattr(Image.Resampling, self.interpolation.upper())
        if self.resize is None:
            img = img.resize((self.size, self.size), resample)
        else:
            w, h = img.size
            short = min(w, h)
            new = (self.resize, max(self.resize, round(h * self.resize / short))) if w == short else \
                (max(self.resize, round(w * self.resize / short)), self.resize)
            if new != img.size:
                img = img.resize(new, resample)
            w, h = img.size
            left, top = round((w - self.size) / 2), round((h - self.size) / 2)
            img = img.crop((left, top, left + self.size, top + self.size))
        x = torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return (x / 255.0 - mean) / std

    def batch(self, images: Sequence[Image.Image]) -> Tensor:
        """``[n, 3, size, size]``."""
        if not images:
            return torch.zeros(0, 3, self.size, self.size)
        return torch.stack([self(img) for img in images])


# ---------------------------------------------------------------------------------------------------- checkpoints
def _is_remote(name: str) -> bool:
    return bool(re.match(r"^(hf[-_]hub:|timm/|[a-zA-Z][a-zA-Z0-9+.-]*://)", name))


def load_checkpoint(checkpoint: str | os.PathLike[str]) -> dict[str, Tensor]:
    """A state dict from a local file: ``.safetensors`` (safetensors) or ``.pth``/``.pt``/``.bin``
    (``torch.load(weights_only=True)``). A folder holding one ``model.safetensors``/``pytorch_model.bin``/``*.pth``
    file is accepted too. Wrapped checkpoints (``{"state_dict": ...}``, ``{"model": ...}``) are unwrapped and a
    DistributedDataParallel ``module.`` prefix is stripped. Never downloads.
    """
    text = os.fspath(checkpoint)
    path = Path(text).expanduser()
    if not path.exists():
        why = "looks like a model-hub name or URL" if _is_remote(text) or "/" in text else "does not exist"
        raise ModelNotFoundError(f"checkpoint {text!r} {why}: gpte never downloads weights; fetch the checkpoint on a "
                                 "connected machine and pass the local file (.safetensors, .pth, .pt or .bin)")
    if path.is_dir():
        path = _checkpoint_in_folder(path)
    suffix = path.suffix.lower()
    if suffix not in _CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"checkpoint {path}: unsupported file type {suffix or '(none)'!r}; expected one of "
                              f"{', '.join(_CHECKPOINT_SUFFIXES)}")
    try:
        if suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {type(exc).__name__}: {exc}") from exc
    for key in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict) and not isinstance(state.get(key), Tensor):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} is not a state dict of tensors (got {type(state).__name__})")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def _checkpoint_in_folder(folder: Path) -> Path:
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_model.safetensors"):
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in _CHECKPOINT_SUFFIXES and p.is_file())
    if len(candidates) == 1:
        return candidates[0]
    raise CheckpointError(f"checkpoint folder {folder} holds {len(candidates)} weight files "
                          f"({', '.join(p.name for p in candidates[:5]) or 'none'}); pass the file itself")


def _classifier_prefixes(model: nn.Module) -> tuple[str, ...]:
    name = getattr(model, "pretrained_cfg", {}).get("classifier") or "classifier"
    return tuple(name) if isinstance(name, list | tuple) else (name,)


def _load_weights(model: nn.Module, state: dict[str, Tensor], what: str) -> None:
    """Strictly load ``state`` into ``model``; raise :class:`CheckpointError` listing a few offending keys."""
    own = model.state_dict()
    optional = {k for k in own if k.endswith("num_batches_tracked")}  # batch-norm counters, unused in eval
    missing = sorted(set(own) - set(state) - optional)
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                more = f" (+{len(keys) - 5} more)" if len(keys) > 5 else ""
                parts.append(f"{len(keys)} {label} ({', '.join(keys[:5])}{more})")
        if mismatched:
            shown = ", ".join(f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:5])
            parts.append(f"{len(mismatched)} with the wrong shape ({shown})")
        raise CheckpointError(f"{what} does not fit the model: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)


def _check_arch(arch: str) -> None:
    import timm

    if _is_remote(arch) or "/" in arch:
        raise ModelNotFoundError(f"image architecture {arch!r} looks like a model-hub name: gpte never downloads; "
                                 "pass a timm architecture name (e.g. 'resnet50') and a local checkpoint file")
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('.')[0]}*")[:8]
        hint = f"; similar: {', '.join(close)}" if close else ""
        raise ModelNotFoundError(f"{arch!r} is not a timm architecture (timm {timm.__version__}){hint}")


def _weights_digest(model: nn.Module) -> str:
    """blake2b-16 over every tensor of the state dict: name, dtype, shape and raw bytes, in name order."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------------- the encoder
class ImageEncoder(nn.Module):
    """A timm backbone as an image embedder; ``encode`` takes whatever :func:`load_image` takes.

    ``forward(pixels [n, 3, H, W]) -> [n, embed_dim]`` gives the pooled pre-logits features; ``classify`` gives the
    class logits when the checkpoint had a classifier (``num_classes > 0``).
    """

    modality = "image"

    def __init__(self, model: nn.Module, arch: str, preprocess: ImagePreprocess | None = None, *,
                 name: str | None = None, model_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.arch = arch
        self.preprocess = preprocess or ImagePreprocess()
        self.name = name or arch
        self.model_kwargs = dict(model_kwargs or {})
        self.source = ""
        self.max_side = 4096  # load_image's bound on decoded images
        self.channels_last = False  # NHWC activations: ~1.5x faster convolutions on CPU (oneDNN)
        self._weights_digest: str | None = None

    # ------------------------------------------------------------------ properties
    @property
    def embed_dim(self) -> int:
        """Width of the pooled features (timm's ``head_hidden_size``, else ``num_features``)."""
        return int(getattr(self.model, "head_hidden_size", None) or self.model.num_features)

    @property
    def num_classes(self) -> int:
        return int(getattr(self.model, "num_classes", 0) or 0)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ compute
    def forward(self, pixels: Tensor) -> Tensor:
        """``[n, 3, H, W]`` normalised pixels → ``[n, embed_dim]`` pooled features."""
        x = self.model.forward_features(self._prepare(pixels))
        return self.model.forward_head(x, pre_logits=True)

    def _prepare(self, pixels: Tensor) -> Tensor:
        pixels = pixels.to(device=self.device, dtype=self.dtype)
        return pixels.contiguous(memory_format=torch.channels_last) if self.channels_last else pixels

    def classify(self, images: Any) -> Tensor:
        """Class logits ``[n, num_classes]`` of a pixel tensor ``[n, 3, H, W]`` or of images (``load_image`` inputs)."""
        if self.num_classes == 0:
            raise ValueError(f"image encoder {self.name!r} has no classifier (its checkpoint had none, or it was "
                             "built with pretrained_classifier=False)")
        pixels = images if isinstance(images, Tensor) else self.preprocess.batch(self._load_all(images)[0])
        with self._evaluating(), torch.inference_mode():
            return self.model.forward_head(self.model.forward_features(self._prepare(pixels))).float()

    @contextlib.contextmanager
    def _evaluating(self) -> Iterator[None]:
        """Eval mode (no dropout, frozen batch-norm statistics) for the duration; the previous mode afterwards."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def encode(self, images: Any, batch_size: int = 32, normalize: bool = False,
               output: Output = "numpy") -> np.ndarray | Tensor:
        """Embed images: paths, encoded bytes, PIL images or uint8 arrays (one → ``[D]``, a sequence → ``[n, D]``).

        Images are loaded and preprocessed a batch at a time. Every unloadable item is reported at once in an
        :class:`~gpte.shared.errors.InvalidInputError` (the model stops running at the first bad item; loading goes
        on to find the rest). ``normalize`` scales each vector to unit L2 norm.
        """
        if output not in ("numpy", "torch"):
            raise ValueError(f"output must be 'numpy' or 'torch' (got {output!r})")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer (got {batch_size!r})")
        items, single = _as_items(images)
        parts: list[Tensor] = []
        problems: dict[int, str] = {}
        with self._evaluating(), torch.inference_mode():
            for start, loaded, bad in self._batches(items, batch_size):
                problems.update({start + i: why for i, why in bad.items()})
                if not problems:
                    parts.append(self(self.preprocess.batch(loaded)).float().cpu())
        if problems:
            raise InvalidInputError(problems, len(items))
        out = torch.cat(parts) if parts else torch.zeros(0, self.embed_dim)
        if normalize and out.numel():
            out = torch.nn.functional.normalize(out, dim=-1)
        if single:
            out = out[0]
        return out.numpy() if output == "numpy" else out

    def _batches(self, items: list[Any], batch_size: int) -> Iterator[tuple[int, list[Any], dict[int, str]]]:
        for start in range(0, len(items), batch_size):
            loaded, bad = self._load_all(items[start:start + batch_size], raise_errors=False)
            yield start, loaded, bad

    def _load_all(self, items: Any, raise_errors: bool = True) -> tuple[list[Any], dict[int, str]]:
        from gpte.unimodal.image_io import ImageInputError, load_image

        if not isinstance(items, list):
            items = _as_items(items)[0]
        loaded, bad = [], {}
        for i, item in enumerate(items):
            try:
                loaded.append(load_image(item, max_side=self.max_side))
            except ImageInputError as exc:
                bad[i] = f"{exc.source}: {exc.reason}"
        if bad and raise_errors:
            raise InvalidInputError(bad, len(items))
        return loaded, bad

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> str:
        """blake2b-16 hex of the architecture, the preprocessing and every weight tensor (see :func:`_weights_digest`).

        Equal fingerprints mean equal embeddings. The weights digest is computed once and cached: call
        :meth:`refresh_fingerprint` after changing weights in place.
        """
        if self._weights_digest is None:
            self._weights_digest = _weights_digest(self.model)
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps({"arch": self.arch, "model_kwargs": self.model_kwargs,
                             "preprocess": self.preprocess.to_dict()}, sort_keys=True).encode())
        h.update(self._weights_digest.encode())
        return h.hexdigest()

    def refresh_fingerprint(self) -> str:
        self._weights_digest = None
        return self.fingerprint()

    def identity(self) -> dict[str, Any]:
        """name, source, modality, dim, fingerprint: what an index records about the model that filled it."""
        return {"name": self.name, "source": self.source, "modality": self.modality, "dim": self.embed_dim,
                "fingerprint": self.fingerprint()}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``gpte-image.json`` and ``model.safetensors`` to ``path`` atomically (a crash leaves the old folder)."""
        from safetensors.torch import save_file

        path = Path(path).expanduser()
        config = {"format": FORMAT, "version": FORMAT_VERSION, "arch": self.arch, "name": self.name,
                  "model_kwargs": self.model_kwargs, "preprocess": self.preprocess.to_dict(),
                  "num_classes": self.num_classes, "embed_dim": self.embed_dim, "fingerprint": self.fingerprint()}
        tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in self.model.state_dict().items()}
        with atomic_directory(path) as tmp:
            save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt", "gpte": FORMAT})
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        logger.info("saved image encoder %s (%s) to %s", self.name, self.arch, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device | None = None,
             dtype: torch.dtype | None = None) -> ImageEncoder:
        """Load a folder written by :meth:`save`."""
        import timm

        path = Path(path).expanduser()
        cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
        for needed in (cfg_file, weights):
            if not needed.is_file():
                raise ModelNotFoundError(f"{path} is not a saved gpte image encoder: {needed.name} is missing")
        try:
            config = json.loads(cfg_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{cfg_file} cannot be read: {exc}") from exc
        if config.get("format") != FORMAT:
            raise CheckpointError(f"{cfg_file} has format {config.get('format')!r}, expected {FORMAT!r}")
        if int(config.get("version", 1)) > FORMAT_VERSION:
            raise CheckpointError(f"{cfg_file} has format version {config['version']}, newer than this gpte "
                                  f"({FORMAT_VERSION}); upgrade gpte")
        arch = config["arch"]
        _check_arch(arch)
        kwargs = dict(config.get("model_kwargs") or {})
        model = timm.create_model(arch, pretrained=False, num_classes=int(config.get("num_classes", 0)), **kwargs)
        _load_weights(model, load_checkpoint(weights), f"weights {weights}")
        encoder = cls(model.eval(), arch, ImagePreprocess.from_dict(config["preprocess"]), name=config.get("name"),
                      model_kwargs=kwargs)
        encoder._weights_digest = _weights_digest(model)
        if config.get("fingerprint") and encoder.fingerprint() != config["fingerprint"]:
            logger.warning("image encoder %s: fingerprint %s differs from the saved %s (weights or timm changed?)",
                           path, encoder.fingerprint(), config["fingerprint"])
        return encoder._place(device, dtype)

    @classmethod
    def from_timm(cls, arch: str, checkpoint: str | os.PathLike[str] | None = None, *,
                  preprocess: ImagePreprocess | dict[str, Any] | None = None,
                  device: str | torch.device | None = None, dtype: torch.dtype | None = None,
                  pretrained_classifier: bool = True, name: str | None = None,
                  model_kwargs: dict[str, Any] | None = None,
                  state_dict: dict[str, Tensor] | None = None) -> ImageEncoder:
        """Build ``timm.create_model(arch, pretrained=False)`` and load local weights.

        ``checkpoint`` is a local ``.safetensors``/``.pth``/``.pt``/``.bin`` file (see :func:`load_checkpoint`);
        ``state_dict`` passes tensors directly instead; with neither, the weights are random (logged). The
        classifier is kept when the weights have one and ``pretrained_classifier`` is true (``num_classes`` is read
        from its shape), otherwise the model is headless (``num_classes=0``). ``preprocess`` defaults to timm's
        pretrained config for ``arch`` (:meth:`ImagePreprocess.from_timm_config`).
        """
        import timm

        _check_arch(arch)
        if checkpoint is not None and state_dict is not None:
            raise ValueError("pass checkpoint or state_dict, not both")
        state = load_checkpoint(checkpoint) if checkpoint is not None else state_dict
        kwargs = dict(model_kwargs or {})
        model = timm.create_model(arch, pretrained=False, **kwargs)
        num_classes = 0
        if state is not None:
            heads = tuple(f"{p}." for p in _classifier_prefixes(model))
            head_keys = {k for k in state if k.startswith(heads)}
            weight = next((state[k] for k in sorted(head_keys) if k.endswith("weight")), None)
            if pretrained_classifier and head_keys:
                num_classes = int(weight.shape[0]) if weight is not None else model.num_classes
            else:
                state = {k: v for k, v in state.items() if k not in head_keys}
        if model.num_classes != num_classes:
            model.reset_classifier(num_classes)
        if state is None:
            logger.warning("image encoder %s: no checkpoint given, the weights are random", arch)
        else:
            _load_weights(model, state, f"checkpoint {os.fspath(checkpoint)}" if checkpoint else "the state dict")
        if preprocess is None:
            preprocess = ImagePreprocess.from_timm_config(dict(model.pretrained_cfg))
        elif isinstance(preprocess, dict):
            preprocess = ImagePreprocess.from_dict(preprocess)
        encoder = cls(model.eval(), arch, preprocess, name=name, model_kwargs=kwargs)
        if dtype is not None:
            encoder._weights_digest = _weights_digest(model)  # fingerprint the weights as loaded, before a cast
        return encoder._place(device, dtype)

    def _place(self, device: str | torch.device | None, dtype: torch.dtype | None) -> ImageEncoder:
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        self.to(device=device)
        if dtype is not None:
            self.to(dtype=dtype)
        if device.type == "cpu":
            self.model.to(memory_format=torch.channels_last)
            self.channels_last = True
        return self.eval()

    def extra_repr(self) -> str:
        return f"name={self.name!r}, arch={self.arch!r}, embed_dim={self.embed_dim}, num_classes={self.num_classes}"


def _as_items(images: Any) -> tuple[list[Any], bool]:
    """(list of items, whether a single item was given). A 4-d array is a batch of images."""
    from PIL import Image

    if isinstance(images, str | os.PathLike | bytes | bytearray | Image.Image):
        return [images], True
    if isinstance(images, np.ndarray):
        return (list(images), False) if images.ndim == 4 else ([images], True)
    if isinstance(images, Sequence) or hasattr(images, "__iter__"):
        return list(images), False
    return [images], True
