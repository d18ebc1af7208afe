"""The record, constants and cache folder shared by the image–caption sources (:mod:`gpte.data.image_text`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["ImageCaption", "data_dir", "SOURCES", "EMOJI_CATEGORIES"]


logger = logging.getLogger(__name__)

SOURCES = ("openclipart", "twemoji", "noto-emoji")
# Unicode emoji groups usable as zero-shot classes ("Component", the five skin-tone swatches, is left out)
EMOJI_CATEGORIES = (
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
)

OPENCLIPART_ROOT = Path("/usr/share/openclipart/png")
NOTO_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
TWEMOJI_PACKAGE = "emoji-datasource-twitter"
TWEMOJI_VERSION = "16.0.0"
NOTO_SIZE = 109  # the CBDT bitmap strikes of Noto Color Emoji are 109 px; other sizes fail to load
APT_PACKAGES = {"openclipart": "openclipart-png", "noto-emoji": "fonts-noto-color-emoji"}


def _apt_command(packages: Iterable[str]) -> str:
    return "apt-get install -y --no-install-recommends " + " ".join(sorted(set(packages)))


def _npm_command() -> str:
    return f"npm pack {TWEMOJI_PACKAGE}@{TWEMOJI_VERSION}"


@dataclass(frozen=True)
class ImageCaption:
    """One image and its caption."""

    image: str  # absolute path of a PNG
    caption: str
    source: str  # "openclipart", "twemoji" or "noto-emoji"
    category: str  # openclipart: top-level folder; emoji: Unicode emoji group ("Smileys & Emotion" ...)
    subcategory: str = ""  # openclipart: the folders below the top level ("astronomy"); emoji: subgroup
    id: str = ""  # stable: "<source>:<path relative to the package root>" or "<source>:<code points>"

    def to_dict(self) -> dict:
        return asdict(self)


def data_dir(cache_dir: str | Path | None = None) -> Path:
    """The cache folder: ``cache_dir``, else ``$GPTE_DATA_DIR``, else ``~/.cache/gpte/data``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("GPTE_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "gpte" / "data"


