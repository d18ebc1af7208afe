"""Emoji with their names: Twemoji (npm ``emoji-datasource-twitter``) and Noto Color Emoji drawn by Pillow.

See :mod:`gpte.data.image_text` for the whole set and ``data_cards/image-text.md`` for sources and licences.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from filelock import FileLock

from gpte.data.image_caption import (
    NOTO_FONT,
    NOTO_SIZE,
    TWEMOJI_PACKAGE,
    TWEMOJI_VERSION,
    ImageCaption,
    _apt_command,
    _npm_command,
    data_dir,
)

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------------
# Twemoji (npm emoji-datasource-twitter)
# ----------------------------------------------------------------------------------------------------------------


def _twemoji_dir(cache_dir: str | Path | None) -> Path:
    return data_dir(cache_dir) / "twemoji" / f"{TWEMOJI_PACKAGE}-{TWEMOJI_VERSION}"


def _wanted_member(name: str) -> bool:
    return name in {"package/emoji.json", "package/package.json", "package/README.md", "package/LICENSE"} or (
        name.startswith("package/img/twitter/64/") and name.endswith(".png")
    )


def _extract_twemoji(tgz: Path, dest: Path) -> None:
    """Unpack emoji.json, the licence files and the 64-px images of ``tgz`` into ``dest`` (atomically)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        with tarfile.open(tgz, "r:gz") as tar:
            members = []
            for member in tar.getmembers():
                if not _wanted_member(member.name):
                    continue
                if not member.isfile() or member.name.startswith("/") or ".." in Path(member.name).parts:
                    raise ValueError(f"twemoji: unsafe member {member.name!r} in {tgz}")
                members.append(member)
            if not any(m.name == "package/emoji.json" for m in members):
                raise ValueError(f"twemoji: {tgz} has no package/emoji.json")
            if hasattr(tarfile, "data_filter"):
                tar.extractall(tmp, members=members, filter="data")
            else:  # Python < 3.11.4: the members were checked above
                tar.extractall(tmp, members=members)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _fetch_twemoji(cache_dir: str | Path | None) -> Path:
    """The unpacked package folder; unpacks the cached tgz or runs ``npm pack`` when it is missing."""
    dest = _twemoji_dir(cache_dir)
    if (dest / "package" / "emoji.json").is_file():
        return dest / "package"
    folder = dest.parent
    tgz = folder / f"{TWEMOJI_PACKAGE}-{TWEMOJI_VERSION}.tgz"
    npm = shutil.which("npm")
    if not tgz.is_file() and npm is None:
        raise FileNotFoundError(
            f"twemoji: {dest / 'package'} not found and npm is not installed; install Node.js/npm "
            f"(e.g. `apt-get install -y npm`), then run `cd {folder} && {_npm_command()}`"
        )
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / ".lock")):  # another process may be fetching the same package
        if (dest / "package" / "emoji.json").is_file():
            return dest / "package"
        if not tgz.is_file():
            logger.info("twemoji: fetching %s@%s with npm pack into %s", TWEMOJI_PACKAGE, TWEMOJI_VERSION, folder)
            result = subprocess.run(
                [npm, "pack", f"{TWEMOJI_PACKAGE}@{TWEMOJI_VERSION}"], cwd=folder, capture_output=True, text=True
            )
            if result.returncode != 0 or not tgz.is_file():
                raise FileNotFoundError(
                    f"twemoji: `{_npm_command()}` failed in {folder} (exit {result.returncode}): "
                    f"{(result.stderr or result.stdout).strip()[-500:]}"
                )
        logger.info("twemoji: unpacking %s", tgz)
        try:
            _extract_twemoji(tgz, dest)
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ValueError(f"twemoji: cannot unpack {tgz} ({exc}); delete it to fetch it again") from exc
    return dest / "package"


def _emoji_entries(package: Path) -> list[dict]:
    path = package / "emoji.json"
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"twemoji: cannot read {path}: {exc}") from exc
    if not isinstance(entries, list):
        raise ValueError(f"twemoji: {path} is not a JSON list")
    for i, entry in enumerate(entries):
        missing = [k for k in ("name", "unified", "category", "image") if not entry.get(k)]
        if missing:
            raise ValueError(f"twemoji: entry {i} of {path} lacks {', '.join(missing)}")
    return entries


def emoji_caption(name: str, short_names: Sequence[str] = ()) -> str:
    """The Unicode name lowercased, then the first short name that adds a word of 3+ letters, in parentheses.

    ``("ELECTRIC TORCH", ["flashlight"])`` → "electric torch (flashlight)"; ``("Spain Flag", ["es", "flag-es"])`` →
    "spain flag"; digits in short names are ignored (``tiger2``).
    """
    caption = " ".join(name.lower().split())
    words = set(re.findall(r"[^\W\d_]+", caption))
    for short in short_names:
        short_words = re.findall(r"[^\W\d_]+", short.lower())
        if any(len(w) >= 3 and w not in words for w in short_words):
            return f"{caption} ({' '.join(short_words)})"
    return caption


def _emoji_short_names(entry: dict) -> list[str]:
    names = list(entry.get("short_names") or [])
    if entry.get("short_name") and entry["short_name"] not in names:
        names.insert(0, entry["short_name"])
    return names


def twemoji_pairs(cache_dir: str | Path | None = None) -> list[ImageCaption]:
    """The base emoji of ``emoji-datasource-twitter`` (no skin-tone variants) with their 64-px Twemoji PNGs.

    Fetches the npm package into ``<cache_dir>/twemoji/`` when missing (``npm pack``, then unpacked). Entries whose
    image file is absent are skipped (logged). Sorted by id.
    """
    package = _fetch_twemoji(cache_dir)
    images = package / "img" / "twitter" / "64"
    pairs, missing = [], []
    for entry in _emoji_entries(package):
        path = images / entry["image"]
        if entry.get("has_img_twitter") is False or not path.is_file():
            missing.append(entry["unified"])
            continue
        pairs.append(
            ImageCaption(
                image=str(path.resolve()),
                caption=emoji_caption(entry["name"], _emoji_short_names(entry)),
                source="twemoji",
                category=entry["category"],
                subcategory=entry.get("subcategory") or "",
                id=f"twemoji:{entry['unified']}",
            )
        )
    if missing:
        logger.warning("twemoji: %d emoji without an image skipped, e.g. %s", len(missing), missing[:5])
    return sorted(pairs, key=lambda p: p.id)


# ----------------------------------------------------------------------------------------------------------------
# Noto Color Emoji rendered with Pillow
# ----------------------------------------------------------------------------------------------------------------


def _font_key(font: Path) -> str:
    digest = hashlib.sha256()
    with font.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def _load_font(font: Path):
    from PIL import ImageFont, features

    engine = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC
    if engine == ImageFont.Layout.BASIC:
        logger.warning("noto-emoji: Pillow has no raqm layout: flags and joined sequences will not render (skipped)")
    try:
        return ImageFont.truetype(str(font), NOTO_SIZE, layout_engine=engine)
    except OSError as exc:
        raise ValueError(f"noto-emoji: cannot load {font} at size {NOTO_SIZE}: {exc}") from exc


def _render(text: str, font):
    """The emoji drawn on a transparent canvas and cropped to its pixels; None when nothing was drawn."""
    from PIL import Image, ImageDraw

    left, top, right, bottom = ImageDraw.Draw(Image.new("RGBA", (1, 1))).textbbox(
        (0, 0), text, font=font, embedded_color=True
    )
    if right <= left or bottom <= top:
        return None
    image = Image.new("RGBA", (right - left + 4, bottom - top + 4), (0, 0, 0, 0))
    ImageDraw.Draw(image).text((2 - left, 2 - top), text, font=font, embedded_color=True)
    box = image.getbbox()
    return image.crop(box) if box else None


def _same_image(a, b) -> bool:
    from PIL import ImageChops

    return a is not None and b is not None and a.size == b.size and ImageChops.difference(a, b).getbbox() is None


def _render_noto(entries: list[dict], font_path: Path, out: Path) -> dict:
    """Draw every entry into ``out``; returns the manifest (rendered code points, skipped ones with reasons)."""
    font = _load_font(font_path)
    # the font draws a white flag with a question mark for a region it does not know ("ZZ" is no region)
    unknown_flag = _render("\U0001f1ff\U0001f1ff", font)
    max_width = 1.5 * font.getlength("\U0001f600")  # wider: the sequence fell apart into several glyphs
    out.mkdir(parents=True, exist_ok=True)
    rendered, skipped = [], {}
    start = time.perf_counter()
    for entry in entries:
        unified = entry["unified"]
        text = "".join(chr(int(cp, 16)) for cp in unified.split("-"))
        image = _render(text, font)
        if image is None:
            skipped[unified] = "empty bounding box"
        elif _same_image(image, unknown_flag):
            skipped[unified] = "unknown-flag placeholder"
        elif image.width > max_width:
            skipped[unified] = f"{image.width} px wide: not one glyph"
        else:
            image.save(out / f"{unified.lower()}.png", optimize=False)
            rendered.append(unified)
    seconds = time.perf_counter() - start
    logger.info("noto-emoji: %d drawn, %d skipped in %.1f s", len(rendered), len(skipped), seconds)
    return {
        "font": str(font_path),
        "size": NOTO_SIZE,
        "rendered": rendered,
        "skipped": skipped,
        "seconds": round(seconds, 2),
    }


def _cached_manifest(out: Path, wanted: set[str]) -> dict | None:
    """The manifest of an earlier rendering that covers ``wanted`` and whose PNGs are all there, else None."""
    path = out / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        rendered, skipped = manifest["rendered"], manifest["skipped"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("noto-emoji: ignoring unreadable %s (%s): drawing again", path, exc)
        return None
    if not wanted <= set(rendered) | set(skipped):
        return None
    if not all((out / f"{u.lower()}.png").is_file() for u in rendered):
        return None
    return manifest


def noto_emoji_pairs(cache_dir: str | Path | None = None, font: str | Path = NOTO_FONT) -> list[ImageCaption]:
    """The Twemoji entries drawn with Noto Color Emoji (same captions and categories); sorted by id.

    Renders once into ``<cache_dir>/noto-emoji/<font hash>/`` (cropped RGBA PNGs on a transparent background, about
    100-136 px) and re-uses them later; ``manifest.json`` there lists the code points drawn and those skipped
    because the font cannot draw them (empty bounding box, the unknown-flag placeholder, or several glyphs).
    """
    font = Path(font)
    if not font.is_file():
        raise FileNotFoundError(
            f"noto-emoji: font {font} not found; install it with `{_apt_command(['fonts-noto-color-emoji'])}`"
            " (or gpte.data.image_text.install_data(['noto-emoji']))"
        )
    try:
        import PIL  # noqa: F401
    except ImportError as exc:
        raise ImportError("noto-emoji: rendering needs Pillow: pip install 'gpte[image]'") from exc
    package = _fetch_twemoji(cache_dir)
    entries = _emoji_entries(package)
    out = data_dir(cache_dir) / "noto-emoji" / _font_key(font)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out.parent / f"{out.name}.lock")):  # draw once even when several processes ask at once
        manifest = _cached_manifest(out, {e["unified"] for e in entries})
        if manifest is None:
            manifest = _render_noto(entries, font, out)
            tmp = out / "manifest.json.tmp"
            tmp.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            os.replace(tmp, out / "manifest.json")
    if manifest["skipped"]:
        logger.info("noto-emoji: %d emoji the font cannot draw: %s", len(manifest["skipped"]), manifest["skipped"])
    drawn = set(manifest["rendered"])
    pairs = [
        ImageCaption(
            image=str((out / f"{e['unified'].lower()}.png").resolve()),
            caption=emoji_caption(e["name"], _emoji_short_names(e)),
            source="noto-emoji",
            category=e["category"],
            subcategory=e.get("subcategory") or "",
            id=f"noto-emoji:{e['unified']}",
        )
        for e in entries
        if e["unified"] in drawn
    ]
    return sorted(pairs, key=lambda p: p.id)


# ----------------------------------------------------------------------------------------------------------------
