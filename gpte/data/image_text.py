"""Real offline image–caption pairs: Openclipart clip art, Twemoji and Noto Color Emoji (see data_cards/image-text.md).

Three sources, none of which needs the internet beyond the Debian and npm registries:

``openclipart``
    The Debian package ``openclipart-png`` (public-domain clip art, about 8,100 PNGs under
    ``/usr/share/openclipart/png/<category>/<subfolders...>/<name>.png``). The caption is built from the path:
    the cleaned file name followed by the folder words, most specific first, e.g.
    ``science/astronomy/full_moon_dan_gerhards_01.png`` → ``"full moon (astronomy, science)"``
    (see :func:`clean_openclipart_name` for the rules; author names are detected from the data).
``twemoji``
    The npm package ``emoji-datasource-twitter`` (Twemoji graphics, CC-BY 4.0; data MIT), fetched with
    ``npm pack`` into the cache folder. The caption is the emoji's Unicode name lowercased, followed by its short
    name in parentheses when that adds words: ``"electric torch (flashlight)"``.
``noto-emoji``
    The same emoji list drawn with the Debian font ``fonts-noto-color-emoji`` (SIL OFL 1.1) by Pillow, once, into
    the cache folder: a second visual style with the same captions. Sequences the font cannot draw are skipped.

Every function takes ``cache_dir`` (default ``~/.cache/gpte/data``, or the environment variable ``GPTE_DATA_DIR``).
:func:`split_by_caption` splits deterministically by a hash of the caption text, so both emoji styles of a name and
repeated clip-art names land in the same split (and, by default, byte-identical images too).
"""


from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from gpte.data.emoji import _fetch_twemoji, emoji_caption, noto_emoji_pairs, twemoji_pairs
from gpte.data.image_caption import (
    APT_PACKAGES,
    EMOJI_CATEGORIES,
    NOTO_FONT,
    OPENCLIPART_ROOT,
    SOURCES,
    TWEMOJI_PACKAGE,
    TWEMOJI_VERSION,
    ImageCaption,
    _apt_command,
    data_dir,
)
from gpte.data.openclipart import (
    clean_openclipart_name,
    detect_authors,
    openclipart_caption,
    openclipart_pairs,
)

__all__ = [
    "EMOJI_CATEGORIES",
    "SOURCES",
    "NOTO_FONT",
    "OPENCLIPART_ROOT",
    "TWEMOJI_PACKAGE",
    "TWEMOJI_VERSION",
    "ImageCaption",
    "caption_key",
    "clean_openclipart_name",
    "data_dir",
    "detect_authors",
    "emoji_caption",
    "image_caption_pairs",
    "install_data",
    "noto_emoji_pairs",
    "openclipart_caption",
    "openclipart_pairs",
    "split_by_caption",
    "twemoji_pairs",
]

logger = logging.getLogger(__name__)

# All sources, splits, installation
# ----------------------------------------------------------------------------------------------------------------


def _check_sources(sources: Iterable[str]) -> list[str]:
    sources = list(sources)
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown image-text source(s) {unknown}: choose from {list(SOURCES)}")
    return sources


def image_caption_pairs(sources: Iterable[str] = SOURCES, cache_dir: str | Path | None = None) -> list[ImageCaption]:
    """The pairs of the chosen sources together, sorted by id (deterministic)."""
    loaders = {
        "openclipart": lambda: openclipart_pairs(),
        "twemoji": lambda: twemoji_pairs(cache_dir),
        "noto-emoji": lambda: noto_emoji_pairs(cache_dir),
    }
    pairs = [pair for source in dict.fromkeys(_check_sources(sources)) for pair in loaders[source]()]
    return sorted(pairs, key=lambda p: p.id)


def caption_key(caption: str) -> str:
    """The caption reduced for splitting: parenthesised context dropped, lowercase, words only.

    "Jigsaw Red (jigsaw, shapes)" and "jigsaw red" share the key "jigsaw red", so one name never spans two splits
    (the same clip art filed under two folders, or an emoji and its short name).
    """
    text = re.sub(r"\([^)]*\)", " ", caption.lower())
    return " ".join(re.findall(r"\w+", text))


def _file_digest(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).digest()
    except OSError:
        return None


def _group_keys(pairs: Sequence[ImageCaption], group_identical_images: bool) -> list[str]:
    """Each pair's split key: its caption key, or with ``group_identical_images`` the smallest caption key among
    all pairs linked to it by a shared key or byte-identical image file (union-find)."""
    keys = [caption_key(p.caption) for p in pairs]
    if not group_identical_images:
        return keys
    parent = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first_key: dict[bytes, str] = {}
    for pair, key in zip(pairs, keys, strict=True):
        digest = _file_digest(pair.image)
        if digest is None:
            continue
        other = first_key.setdefault(digest, key)
        a, b = find(key), find(other)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return [find(k) for k in keys]


def split_by_caption(
    pairs: Iterable[ImageCaption],
    test_fraction: float = 0.1,
    val_fraction: float = 0.0,
    group_identical_images: bool = True,
) -> dict[str, list[ImageCaption]]:
    """Deterministic "train"/"val"/"test" split by the sha256 of :func:`caption_key`; order within a split is kept.

    A key's hash, read as a number in [0, 1), below ``test_fraction`` sends it to "test", below
    ``test_fraction + val_fraction`` to "val", else to "train", so no caption text is shared between splits. With
    ``group_identical_images`` (default) pairs whose image files are byte-identical (Openclipart files the same
    picture under several names) are also kept together: such a group is placed by its smallest caption key.
    Unreadable image files are not grouped. "val" is empty when ``val_fraction`` is 0.
    """
    for name, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"split_by_caption: {name}={value} must be in [0, 1)")
    if test_fraction + val_fraction >= 1.0:
        raise ValueError(f"split_by_caption: test_fraction + val_fraction = {test_fraction + val_fraction} must be < 1")
    pairs = list(pairs)
    splits: dict[str, list[ImageCaption]] = {"train": [], "val": [], "test": []}
    for pair, key in zip(pairs, _group_keys(pairs, group_identical_images), strict=True):
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        u = int.from_bytes(digest[:8], "big") / 2**64
        split = "test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"
        splits[split].append(pair)
    return splits


def _source_present(source: str) -> bool:
    if source == "openclipart":
        return OPENCLIPART_ROOT.is_dir()
    return NOTO_FONT.is_file()


def install_data(sources: Iterable[str] = SOURCES, cache_dir: str | Path | None = None) -> None:
    """Install what the chosen sources need: the Debian packages (as root) and the Twemoji npm package.

    Runs ``apt-get install -y --no-install-recommends ...`` for missing Debian files when running as root; otherwise
    raises ``PermissionError`` naming the exact command (after fetching Twemoji). Raises ``FileNotFoundError`` when
    apt-get or npm is missing.
    """
    sources = _check_sources(sources)
    if "twemoji" in sources or "noto-emoji" in sources:
        _fetch_twemoji(cache_dir)
    packages = [APT_PACKAGES[s] for s in sources if s in APT_PACKAGES and not _source_present(s)]
    if not packages:
        return
    command = _apt_command(packages)
    if shutil.which("apt-get") is None:
        raise FileNotFoundError(f"apt-get not found: install the Debian package(s) {packages} ({command}) by hand")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise PermissionError(f"installing {packages} needs root: run `sudo {command}`")
    args = command.split()
    logger.info("running %s", command)
    if subprocess.run(args, check=False).returncode != 0:
        logger.info("apt-get install failed: running apt-get update and trying again")
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(args, check=True)

