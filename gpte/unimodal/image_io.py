"""Robust image loading: any file, bytes, array or PIL image in, an RGB :class:`PIL.Image.Image` out.

:func:`load_image` normalises everything an image encoder may be handed:

* EXIF orientation is applied (``ImageOps.exif_transpose``), so a phone photo stored sideways comes out upright;
* transparency (``RGBA``, ``LA``, ``PA``, palette or greyscale images with a ``transparency`` entry) is composited
  onto white: ``out = alpha * rgb + (1 - alpha) * 255``;
* greyscale (``L``), 1-bit, ``CMYK`` and other 8-bit modes are converted by Pillow;
* 16-bit (``I;16``), 32-bit integer (``I``) and float (``F``) images are scaled to 8 bits by their own range:
  ``out = round(255 * (x - min) / (max - min))`` over the finite pixels (a constant image becomes black);
* animated GIF/WebP/APNG files give their first frame;
* images whose longer side exceeds ``max_side`` are shrunk to it, keeping the aspect ratio: JPEGs are first decoded
  at a reduced scale (``Image.draft``, DCT scaling by 1/2, 1/4 or 1/8), then ``Image.thumbnail`` finishes the job.

Every failure is an :class:`ImageInputError` naming the item and the reason (missing file, directory, permission,
unidentified format, truncated or corrupt data, decompression bomb); no raw Pillow exception escapes. Decoding is
forced with ``Image.load()`` so that truncated files fail here rather than later in a worker.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gpte.shared.errors import GpteError

__all__ = ["IMAGE_EXTENSIONS", "ImageInputError", "describe_source", "iter_image_files", "load_image"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff"})

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_HIGH_DEPTH_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})


class ImageInputError(GpteError, ValueError):
    """An image that cannot be loaded; ``source`` describes the item, ``reason`` says why."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"cannot load image {source}: {reason}")

    def __reduce__(self) -> tuple[Any, ...]:  # picklable across worker processes despite the two-argument init
        return type(self), (self.source, self.reason)


def describe_source(source: Any) -> str:
    """A short human description of an image input, for error messages."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    if isinstance(source, bytes | bytearray):
        return f"<{len(source)} bytes>"
    if isinstance(source, np.ndarray):
        return f"<array of shape {source.shape}, dtype {source.dtype}>"
    if isinstance(source, Image.Image):
        name = getattr(source, "filename", "") or ""
        return name or f"<PIL image {source.mode} {source.width}x{source.height}>"
    return f"<{type(source).__name__}>"


def load_image(source: Any, *, max_side: int = 4096) -> Image.Image:
    """Load ``source`` as an RGB image whose longer side is at most ``max_side`` pixels.

    ``source`` is a path (``str`` or ``os.PathLike``), the encoded bytes of an image file (``bytes``/``bytearray``),
    a :class:`PIL.Image.Image` (used at its current frame; a new image is returned) or a ``uint8`` array of shape ``HxW``,
    ``HxWx1``, ``HxWx3`` (RGB) or ``HxWx4`` (RGBA). See the module docstring for the conversions applied.

    Raises :class:`ImageInputError` (with ``source`` and ``reason``) for anything that is not a loadable image.
    """
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1:
        raise ValueError(f"max_side must be a positive integer (got {max_side!r})")
    desc = describe_source(source)
    try:
        with warnings.catch_warnings():
            # Pillow only *warns* between MAX_IMAGE_PIXELS and twice that; treat the warning as the error it signals.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return _load(source, desc, max_side)
    except ImageInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageInputError(desc, _bomb_reason(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageInputError(desc, "not an image, or a format Pillow cannot identify") from exc
    except FileNotFoundError as exc:
        raise ImageInputError(desc, "no such file") from exc
    except IsADirectoryError as exc:
        raise ImageInputError(desc, "is a directory, not an image file") from exc
    except PermissionError as exc:
        raise ImageInputError(desc, "permission denied (the file is not readable)") from exc
    except MemoryError as exc:
        raise ImageInputError(desc, "out of memory while decoding (the image is too large)") from exc
    except Exception as exc:  # any other decoder failure (OSError, SyntaxError, struct.error, ...)
        raise ImageInputError(desc, f"corrupt or unreadable image data ({type(exc).__name__}: {exc})") from exc


def _bomb_reason(exc: BaseException) -> str:
    limit = Image.MAX_IMAGE_PIXELS
    found = re.search(r"\((\d+) pixels\)", str(exc))
    size = f" of {int(found.group(1))} pixels" if found else ""
    return (f"possible decompression bomb: the image{size} is larger than Pillow's limit of {limit} pixels "
            "(Image.MAX_IMAGE_PIXELS); raise that limit only for files you trust")


def _load(source: Any, desc: str, max_side: int) -> Image.Image:
    if isinstance(source, Image.Image):
        return _finish(source, desc, max_side, owned=False)
    if isinstance(source, np.ndarray):
        return _finish(_from_array(source, desc), desc, max_side, owned=True)
    if isinstance(source, bytes | bytearray):
        if not source:
            raise ImageInputError(desc, "empty data (0 bytes)")
        with Image.open(io.BytesIO(bytes(source))) as img:
            return _finish(img, desc, max_side, owned=True)
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        if isinstance(text, bytes):
            text = os.fsdecode(text)
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
            raise ImageInputError(desc, "a URL, and gpte never downloads: fetch the file and pass its local path")
        path = Path(text).expanduser()
        if path.is_dir():
            raise ImageInputError(desc, "is a directory, not an image file")
        if not path.exists():
            raise ImageInputError(desc, "no such file")
        if path.stat().st_size == 0:
            raise ImageInputError(desc, "empty file (0 bytes)")
        with Image.open(path) as img:
            return _finish(img, desc, max_side, owned=True)
    raise ImageInputError(desc, f"unsupported input type {type(source).__name__}: expected a path, bytes, "
                                "a PIL image or a uint8 array")


def _from_array(arr: np.ndarray, desc: str) -> Image.Image:
    if arr.dtype != np.uint8:
        raise ImageInputError(desc, f"arrays must be uint8 (got {arr.dtype}); scale to 0..255 first")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 2:
        mode = "L"
    elif arr.ndim == 3 and arr.shape[2] in (3, 4):
        mode = "RGB" if arr.shape[2] == 3 else "RGBA"
    else:
        raise ImageInputError(desc, f"expected an array of shape HxW, HxWx3 or HxWx4 (got {arr.shape})")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageInputError(desc, f"empty image (shape {arr.shape})")
    return Image.fromarray(np.ascontiguousarray(arr), mode=mode)


def _finish(img: Image.Image, desc: str, max_side: int, *, owned: bool) -> Image.Image:
    """Decode, orient, convert to RGB and bound the size of ``img``; return a new image."""
    if img.width == 0 or img.height == 0:
        raise ImageInputError(desc, f"empty image ({img.width}x{img.height})")
    if owned and getattr(img, "is_animated", False):
        img.seek(0)  # the first frame of an animation (a caller's PIL image is used at its current frame)
    if owned and img.format == "JPEG" and max(img.size) > max_side:
        scale = max_side / max(img.size)
        img.draft(None, (math.ceil(img.width * scale), math.ceil(img.height * scale)))
    try:
        img.load()
    except (OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error) as exc:
        raise ImageInputError(desc, f"truncated or corrupt image data ({exc})") from exc
    out = ImageOps.exif_transpose(img)  # always a new image (a copy when there is nothing to rotate)
    out = _to_rgb(out, desc)
    if max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if out is img:  # never hand back (or later mutate) the caller's own object
        out = out.copy()
    return out


def _to_rgb(img: Image.Image, desc: str) -> Image.Image:
    mode = img.mode
    if mode in _HIGH_DEPTH_MODES:
        return _scale_to_8bit(img).convert("RGB")
    if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if mode == "RGB":
        return img
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageInputError(desc, f"unsupported image mode {mode!r} ({exc})") from exc


def _scale_to_8bit(img: Image.Image) -> Image.Image:
    """``round(255 * (x - min) / (max - min))`` over the finite pixels; a constant image becomes black."""
    arr = np.asarray(img).astype(np.float64)
    finite = np.isfinite(arr)
    if not finite.any():
        return Image.new("L", img.size, 0)
    lo, hi = float(arr[finite].min()), float(arr[finite].max())
    arr = np.where(finite, arr, lo)
    scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def iter_image_files(folder: str | os.PathLike[str], recursive: bool = True) -> Iterator[Path]:
    """The image files under ``folder`` (extensions in :data:`IMAGE_EXTENSIONS`, any case), sorted.

    Hidden folders and files (names starting with ``.``, e.g. ``.git`` or macOS ``._photo.jpg`` resource forks) are
    skipped. Symlinked directories are not followed (one pointing inside ``folder`` adds nothing new, one pointing
    outside it is out of scope and may loop); symlinked files are listed when their target is a file.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"image folder {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"image folder {root} is not a directory")
    return iter(_walk_images(root, recursive))


def _walk_images(root: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=_log_walk_error):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")] if recursive else []
        for name in filenames:
            path = Path(dirpath, name)
            if not name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file():
                found.append(path)
    return sorted(found)


def _log_walk_error(exc: OSError) -> None:
    logger.warning("skipping unreadable folder %s: %s", exc.filename, exc.strerror or exc)
