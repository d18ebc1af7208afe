"""open_clip models (CLIP, OpenCLIP, MetaCLIP, DFN, MobileCLIP, ...) behind :class:`ImageTextEmbedder`, offline.

Any architecture that ``open_clip.list_models()`` knows is built from open_clip's own configuration with random
weights, then filled from a **local** checkpoint file (``.safetensors``, or ``.pt``/``.pth``/``.bin`` read with
``torch.load(weights_only=True)``); gpte never downloads, so hub names (``hf-hub:...``) and pretrained tags
(``"openai"``, ``"laion2b_s34b_b79k"``) are refused with a message saying so. Images go through open_clip's
evaluation transform for the architecture (resize, centre crop, normalise); texts through its tokenizer.

References: Radford et al. 2021, "Learning Transferable Visual Models From Natural Language Supervision" (CLIP);
Cherti et al. 2023, "Reproducible scaling laws for contrastive language-image learning" (OpenCLIP);
https://github.com/mlfoundations/open_clip.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gpte.multimodal.base import ImageTextEmbedder
from gpte.shared.errors import GpteError, ModelNotFoundError

__all__ = ["OpenCLIPEmbedder", "OpenCLIPCheckpointError", "CONFIG_NAME", "WEIGHTS_NAME"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "gpte-openclip.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
FORMAT = "gpte-openclip"
PRECISIONS = ("fp32", "fp16", "bf16", "pure_fp16", "pure_bf16")
PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


class OpenCLIPCheckpointError(GpteError, ValueError):
    """A checkpoint that cannot be read, or does not fit the architecture it is loaded into."""


class OpenCLIPEmbedder(ImageTextEmbedder):
    """An open_clip model as an image–text embedder; ``.model`` is the ``torch.nn.Module`` for fine-tuning.

    Build one with :meth:`from_checkpoint` (architecture name + local weights file) or :meth:`load` (a folder written
    by :meth:`save`, also reachable through ``gpte.load(folder)``).
    """

    def __init__(self, arch: str, model: torch.nn.Module, preprocess: Any, tokenizer: Any, *,
                 precision: str = "fp32", preprocess_cfg: Mapping[str, Any] | None = None, source: str = "") -> None:
        self.arch = arch
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.precision = precision
        self.preprocess_cfg = dict(preprocess_cfg or {})
        self.source = source
        self._dim = _output_dim(arch)
        self._weights_digest: str | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_checkpoint(cls, arch: str, checkpoint: str | os.PathLike[str], *, device: str | torch.device | None = None,
                        precision: str = "fp32", preprocess: Mapping[str, Any] | None = None) -> OpenCLIPEmbedder:
        """Build open_clip architecture ``arch`` and load its weights from the local file ``checkpoint``.

        ``checkpoint``: ``.safetensors`` or a ``torch.save`` file (``.pt``/``.pth``/``.bin``/``.ckpt``, read with
        ``weights_only=True``) holding a state dict, possibly under ``"state_dict"`` (open_clip training checkpoints)
        and with a ``module.`` prefix (DistributedDataParallel). Loading is strict: missing, unexpected and wrongly
        shaped tensors are reported together. ``precision``: one of open_clip's ``fp32``, ``fp16``, ``bf16``
        (low-precision weights, float32 layer norms), ``pure_fp16``, ``pure_bf16``. ``preprocess`` overrides parts of
        the image transform (``mean``, ``std``, ``interpolation``, ``resize_mode``); by default it is the one every
        published open_clip checkpoint of ``arch`` shares (e.g. MobileCLIP's unnormalised bilinear input), else
        open_clip's default (OpenAI mean and std, bicubic, shortest side).
        """
        import open_clip

        arch = _check_arch(arch)
        path = _check_checkpoint(arch, checkpoint)
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not supported; choose one of {', '.join(PRECISIONS)}")
        pp_cfg = _preprocess_cfg(arch, preprocess)
        device = torch.device(device) if device is not None else torch.device(
            "cuda" if torch.cuda.is_available() else "cpu")
        state = _read_state_dict(path)
        with _quiet_open_clip(), _skip_parameter_init():
            tokenizer = open_clip.get_tokenizer(arch)
            model, _, transform = open_clip.create_model_and_transforms(
                arch, pretrained=None, precision=precision, device=device, pretrained_image=False,
                pretrained_text=False, image_mean=pp_cfg["mean"], image_std=pp_cfg["std"],
                image_interpolation=pp_cfg["interpolation"], image_resize_mode=pp_cfg["resize_mode"])
        _load_strict(model, state, arch, path)
        del state
        model.eval()
        logger.info("loaded open_clip %s from %s (%s, %s)", arch, path, precision, device)
        return cls(arch, model, transform, tokenizer, precision=precision, preprocess_cfg=pp_cfg,
                   source=str(path.resolve()))

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device | None = None) -> OpenCLIPEmbedder:
        """Load a folder written by :meth:`save`."""
        path = Path(path)
        config_path = path / CONFIG_NAME
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelNotFoundError(f"{path} is not a gpte open_clip folder: {CONFIG_NAME} is missing") from None
        except json.JSONDecodeError as exc:
            raise OpenCLIPCheckpointError(f"{config_path} is not valid JSON: {exc}") from None
        if not isinstance(config, dict) or config.get("format") != FORMAT or "arch" not in config:
            raise OpenCLIPCheckpointError(f"{config_path} is not a {FORMAT} config (expected a JSON object with "
                                          f"format={FORMAT!r} and arch)")
        if not (path / WEIGHTS_NAME).is_file():
            raise ModelNotFoundError(f"{path} has {CONFIG_NAME} but no weights file {WEIGHTS_NAME}")
        embedder = cls.from_checkpoint(config["arch"], path / WEIGHTS_NAME, device=device,
                                       precision=config.get("precision", "fp32"), preprocess=config.get("preprocess"))
        embedder.source = str(path.resolve())
        return embedder

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``gpte-openclip.json`` and ``open_clip_model.safetensors`` to ``path`` atomically; return it.

        The folder is built beside ``path`` and swapped in on success (:func:`gpte.shared.fsio.atomic_directory`),
        so an interrupted save leaves the previous content in place.
        """
        from safetensors.torch import save_file

        from gpte.shared.fsio import atomic_directory

        path = Path(path)
        config = {"format": FORMAT, "arch": self.arch, "precision": self.precision,
                  "preprocess": _jsonable(self.preprocess_cfg), "embed_dim": self.embed_dim}
        with atomic_directory(path) as tmp:
            (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            save_file(_unshared_cpu_state(self.model), str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        self._weights_digest = None  # the weights may have changed (training) since the fingerprint was taken
        logger.info("saved open_clip %s to %s", self.arch, path)
        return path

    # ------------------------------------------------------------------ ImageTextEmbedder
    @property
    def embed_dim(self) -> int:
        return self._dim

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def logit_scale(self) -> float:
        """The multiplier of cosine similarities in the contrastive loss: ``exp`` of open_clip's learned log-scale."""
        return float(self.model.logit_scale.detach().float().exp().reshape(-1)[0])

    @property
    def logit_bias(self) -> float | None:
        """The learned bias of sigmoid-loss models (SigLIP-style), ``None`` for softmax-loss models."""
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.detach().float().reshape(-1)[0])

    def embed_texts(self, texts: list[str]) -> Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return self.model.encode_text(tokens)

    def embed_images(self, images: list[Any]) -> Tensor:
        import open_clip

        pixels = torch.stack([self.preprocess(image) for image in images])
        dtype = open_clip.get_input_dtype(self.precision)
        return self.model.encode_image(pixels.to(self.device, dtype=dtype, non_blocking=True))

    def identity(self) -> dict[str, Any]:
        """name (the architecture), source, modality, dim and fingerprint; see :meth:`fingerprint`."""
        return {"name": self.arch, "source": self.source, "modality": self.modality, "dim": self.embed_dim,
                "fingerprint": self.fingerprint()}

    def fingerprint(self) -> str:
        """BLAKE2b-128 hex digest of the architecture, the image preprocessing and every weight tensor.

        Tensors are hashed by name and float32 value, so a save/load round trip keeps the fingerprint; the weights
        part is computed once and cached: call :meth:`refresh_fingerprint` after changing weights (training).
        """
        if self._weights_digest is None:
            self._weights_digest = _state_digest(self.model)
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps({"arch": self.arch, "preprocess": _jsonable(self.preprocess_cfg)},
                            sort_keys=True).encode())
        h.update(self._weights_digest.encode())
        return h.hexdigest()

    def refresh_fingerprint(self) -> str:
        """Recompute the weights digest from the tensors in memory (after training or editing weights)."""
        self._weights_digest = None
        return self.fingerprint()

    def __repr__(self) -> str:
        return f"OpenCLIPEmbedder(arch={self.arch!r}, dim={self.embed_dim}, precision={self.precision!r})"


# ---------------------------------------------------------------------- validation of arguments
def _check_arch(arch: str) -> str:
    import open_clip

    if not isinstance(arch, str) or not arch:
        raise ModelNotFoundError(f"arch must be an open_clip architecture name, got {arch!r}")
    if arch.startswith(("hf-hub:", "local-dir:")):
        raise ModelNotFoundError(
            f"arch {arch!r}: gpte never downloads and reads no open_clip hub or folder configs; pass a built-in "
            "architecture name (open_clip.list_models()) and the local weights file as checkpoint")
    known = open_clip.list_models()
    if arch not in known:
        folded = {name.lower(): name for name in known}
        close = difflib.get_close_matches(arch.lower(), list(folded), n=5, cutoff=0.6)
        hint = f"; close matches: {', '.join(folded[c] for c in close)}" if close else ""
        raise ModelNotFoundError(f"{arch!r} is not an open_clip architecture{hint} "
                                 f"(all {len(known)}: open_clip.list_models())")
    cfg = open_clip.get_model_config(arch) or {}
    text_cfg = cfg.get("text_cfg", {})
    needs = text_cfg.get("hf_tokenizer_name") or text_cfg.get("hf_model_name")
    if needs or "siglip" in arch.lower():
        what = f"the Hugging Face tokenizer/model {needs!r}" if needs else "a SentencePiece vocabulary"
        raise ModelNotFoundError(
            f"open_clip architecture {arch!r} needs {what} from the hub to build its text tower or tokenizer; gpte "
            "runs offline and never downloads, so this architecture is not supported (architectures with open_clip's "
            "built-in CLIP tokenizer, such as ViT-B-32 or ViT-L-14, work)")
    return arch


_HUB_LIKE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _check_checkpoint(arch: str, checkpoint: str | os.PathLike[str]) -> Path:
    import open_clip

    text = os.fspath(checkpoint)
    path = Path(text).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix != ".safetensors" and suffix not in TORCH_SUFFIXES:
            raise OpenCLIPCheckpointError(
                f"checkpoint {str(path)!r}: unsupported file type {suffix or '(no suffix)'!r}; gpte reads .safetensors "
                f"or a torch.save state dict ({', '.join(TORCH_SUFFIXES)})")
        return path
    if path.is_dir():
        found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".safetensors", *TORCH_SUFFIXES))
        if (path / CONFIG_NAME).is_file():
            hint = "it is a gpte open_clip save: open it with gpte.load(folder) or OpenCLIPEmbedder.load(folder)"
        else:
            hint = f"weight files in it: {', '.join(found)}" if found else "it holds no weight file"
        raise OpenCLIPCheckpointError(f"checkpoint {str(path)!r} is a folder, not a weights file; {hint}")
    tags = {t.lower() for t in open_clip.list_pretrained_tags_by_model(arch)}
    all_tags = {tag.lower() for _, tag in open_clip.list_pretrained()}
    if (text.startswith(("hf-hub:", "http://", "https://", "hf://", "s3://", "gs://")) or text.lower() in tags
            or text.lower() in all_tags or _HUB_LIKE.match(text)):
        raise ModelNotFoundError(
            f"checkpoint {text!r} looks like a hub name or a pretrained tag: gpte never downloads; download the "
            f"weights on a connected machine and pass the local file (.safetensors, .pt, .pth or .bin)")
    raise FileNotFoundError(f"checkpoint {text!r} does not exist (expected a local .safetensors, .pt, .pth or .bin "
                            f"file)")


def _preprocess_cfg(arch: str, override: Mapping[str, Any] | None) -> dict[str, Any]:
    """The eval-transform settings: ``override`` over those shared by ``arch``'s published tags, else the defaults."""
    import open_clip
    from open_clip.transform import PreprocessCfg

    default = PreprocessCfg()
    cfg: dict[str, Any] = {k: getattr(default, k) for k in PREPROCESS_KEYS}
    per_tag = {tuple(_hashable(open_clip.get_pretrained_cfg(arch, tag).get(k, cfg[k])) for k in PREPROCESS_KEYS)
               for tag in open_clip.list_pretrained_tags_by_model(arch)}
    if len(per_tag) == 1:
        cfg.update(zip(PREPROCESS_KEYS, per_tag.pop(), strict=True))
    elif per_tag:
        logger.info("open_clip's checkpoints of %s differ in preprocessing; using open_clip's default transform "
                    "(pass preprocess= to match yours)", arch)
    for key, value in (override or {}).items():
        if key not in PREPROCESS_KEYS:
            raise ValueError(f"preprocess key {key!r} is not supported; keys are {', '.join(PREPROCESS_KEYS)}")
        cfg[key] = value
    for key in ("mean", "std"):
        value = cfg[key]
        if not (isinstance(value, list | tuple) and len(value) == 3 and all(isinstance(v, int | float) for v in value)):
            raise ValueError(f"preprocess {key} must be three numbers (one per RGB channel), got {value!r}")
        cfg[key] = tuple(float(v) for v in value)
    return cfg


# ---------------------------------------------------------------------- weights
def _read_state_dict(path: Path) -> dict[str, Tensor]:
    """The state dict in ``path``: unwrapped from ``"state_dict"`` and stripped of wrapper prefixes."""
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            raw: Any = load_file(str(path), device="cpu")
        except SafetensorError as exc:
            raise OpenCLIPCheckpointError(f"checkpoint {str(path)!r} is not a readable safetensors file: {exc}") from None
    else:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle and zip errors of any kind: one message naming the file
            kind = "a TorchScript archive" if "TorchScript" in str(exc) else "not a plain state dict"
            raise OpenCLIPCheckpointError(
                f"checkpoint {str(path)!r} cannot be read with torch.load(weights_only=True): it is {kind} ({exc}). "
                "gpte loads tensors only; convert it once to a state dict saved with safetensors") from None
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not raw:
        raise OpenCLIPCheckpointError(f"checkpoint {str(path)!r} holds no state dict (got {type(raw).__name__})")
    bad = [str(k) for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, Tensor)]
    if bad:
        raise OpenCLIPCheckpointError(f"checkpoint {str(path)!r} is not a state dict: {len(bad)} entries are not "
                                      f"named tensors (first: {', '.join(bad[:5])})")
    state = dict(raw)
    for prefix in WRAPPER_PREFIXES:
        if all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _load_strict(model: torch.nn.Module, state: dict[str, Tensor], arch: str, path: Path) -> None:
    """Copy ``state`` into ``model``; raise listing every missing, unexpected or wrongly shaped tensor."""
    expected = model.state_dict()
    for key in ("logit_scale", "logit_bias"):  # scalar in some checkpoints, [1] in others (as open_clip allows)
        if key in state and key in expected and state[key].numel() == expected[key].numel():
            state[key] = state[key].reshape(expected[key].shape)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: checkpoint {list(state[k].shape)}, {arch} expects {list(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("of the wrong shape", wrong), ("missing", missing), ("unexpected", unexpected)):
            if items:
                more = f" and {len(items) - 5} more" if len(items) > 5 else ""
                parts.append(f"{len(items)} tensors {label} ({'; '.join(items[:5])}{more})")
        raise OpenCLIPCheckpointError(
            f"checkpoint {str(path)!r} does not fit open_clip architecture {arch!r}: {', '.join(parts)}. Is it a "
            f"checkpoint of another architecture?")
    model.load_state_dict(state, strict=True)


def _unshared_cpu_state(model: torch.nn.Module) -> dict[str, Tensor]:
    """CPU, contiguous tensors of ``model``'s state dict, each with its own storage (safetensors refuses sharing)."""
    out: dict[str, Tensor] = {}
    storages: set[int] = set()
    for name, tensor in model.state_dict().items():
        t = tensor.detach().to("cpu").contiguous()
        ptr = t.untyped_storage().data_ptr()
        out[name] = t.clone() if ptr in storages else t
        storages.add(ptr)
    return out


def _state_digest(model: torch.nn.Module) -> str:
    """BLAKE2b-128 of every state-dict tensor, by name, as float32 bytes."""
    h = hashlib.blake2b(digest_size=16)
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(f"{name}:{list(t.shape)}".encode())
        h.update(memoryview(t.numpy()).cast("B"))
    return h.hexdigest()


def _output_dim(arch: str) -> int:
    import open_clip

    dim = (open_clip.get_model_config(arch) or {}).get("embed_dim")
    if dim is None:
        raise ModelNotFoundError(f"open_clip architecture {arch!r} has no embed_dim in its configuration")
    return int(dim)


def _hashable(value: Any) -> Any:
    return tuple(float(v) for v in value) if isinstance(value, list | tuple) else value


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


_INIT_FUNCTIONS = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
                   "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")


@contextlib.contextmanager
def _skip_parameter_init() -> Iterator[None]:
    """Make ``torch.nn.init`` leave parameters as allocated while a model is built for a checkpoint.

    Random initialisation is wasted work when a strict load overwrites every parameter right after (it is two thirds
    of building ViT-B-32 on a CPU, and minutes for the largest models); buffers are still initialised, since a
    non-persistent buffer is not in the checkpoint. The same idea as ``no_init_weights`` in Hugging Face
    transformers. ``torch.nn.init`` is patched process-wide for the duration: do not build other models concurrently
    in another thread.
    """
    originals = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS if hasattr(torch.nn.init, name)}

    def skipping(original: Any) -> Any:
        def init(tensor: Tensor, *args: Any, **kwargs: Any) -> Tensor:
            return tensor if isinstance(tensor, torch.nn.Parameter) else original(tensor, *args, **kwargs)

        return init

    for name, original in originals.items():
        setattr(torch.nn.init, name, skipping(original))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(torch.nn.init, name, original)


# ---------------------------------------------------------------------- open_clip's root-logger messages
class _DemoteOpenCLIP(logging.Filter):
    """Drop records open_clip logs on the root logger (e.g. "Model initialized randomly", untrue once gpte loads the
    checkpoint); they are repeated at DEBUG on gpte's logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "open_clip" in record.pathname and record.levelno < logging.ERROR:
            logger.debug("open_clip: %s", record.getMessage())
            return False
        return True


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """While building a model or tokenizer: no open_clip messages on the root logger, and no implicit ``logging.basicConfig``
    (``logging.warning`` configures the root logger when it has no handler)."""
    root = logging.getLogger()
    demote, placeholder = _DemoteOpenCLIP(), logging.NullHandler()
    root.addFilter(demote)
    added = not root.handlers
    if added:
        root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeFilter(demote)
        if added:
            root.removeHandler(placeholder)
