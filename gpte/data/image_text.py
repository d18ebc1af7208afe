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
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock

__all__ = [
    "EMOJI_CATEGORIES",
    "SOURCES",
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


# ----------------------------------------------------------------------------------------------------------------
# Openclipart: captions from paths
# ----------------------------------------------------------------------------------------------------------------

# Debian truncated long names to 24 characters (then "_NN"); a base of 23-25 characters was probably cut off.
_TRUNCATED_LENGTHS = range(23, 26)
_COUNTER = re.compile(r"_\d\d[a-z]?$")  # the copy counter "_01", "_02", "_01a", "_01r"
# author detection (see detect_authors)
AUTHOR_MIN_FILES = 5
AUTHOR_MIN_CATEGORIES = 3
AUTHOR_MIN_NAMES = 3  # different names among those files (the same clip art is often filed in several folders)
AUTHOR_MAX_TOKENS = 3
_AUTHOR_MAX_ELSEWHERE = 0.2  # names with the words elsewhere, at most this share of the names they end
_AUTHOR_EXTENSION = 0.6  # a longer author n-gram must end at least this share of the names its tail ends
# seeds: openclipart authors that the data rule misses (too few files, or always truncated)
AUTHOR_SEEDS = (
    "anthony liekens",
    "anton yu",
    "architetto francesco rollandin",
    "dan gerhards",
    "frederic moser",
    "jasper van de grond",
    "joel montes de",
    "johnny automat",
    "jonadab",
    "mateya",
    "matt todd",
    "matthew gates",
    "mo",
    "nurbldoff",
    "rollandin francesco architetto",
    "snuatautisticido",
    "susan park",
    "yves guillou",
)
# trailing words that pass the data rule but describe the picture (found by reading the detected list)
NOT_AUTHORS = frozenset({"shaded", "tank"})
# folders that say nothing about the picture: left out of captions (the category field keeps them)
_SILENT_FOLDERS = frozenset({"unsorted", "duplicates"})

_ABBREVIATIONS = {"bw": "black and white"}  # 100+ names end with "_bw"
_SUITS = {"c": "clubs", "d": "diamonds", "h": "hearts", "s": "spades"}
_RANKS = {"a": "ace", "j": "jack", "q": "queen", "k": "king"}
_CARD = re.compile(r"^([a-z]+)_([cdhs])_(a|[2-9]|10|j|q|k)$")
_JOKER = re.compile(r"^([a-z]+)_jk_([br])$")
_STAR = re.compile(r"^star_(\d+)pt(\d+)step$")


def _tokens(text: str) -> list[str]:
    """Lowercase words of a file or folder name, split at ``_ - . +``, spaces, camelCase and a number that follows
    3+ letters (``pinguino1`` → "pinguino 1", but ``m16`` and ``3d`` stay whole)."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"(?<=[^\W\d_]{3})(?=\d)", " ", text)
    return [t for t in re.split(r"[\W_]+", text.lower()) if t]


def _name_tokens(stem: str) -> tuple[list[str], bool]:
    """The words of a file name without copy counter and trailing numbers, and whether Debian truncated it."""
    base = _COUNTER.sub("", stem)
    tokens = _tokens(base)
    while tokens and tokens[-1].isdigit():  # "pinguino1", "boating_rules7", "back01": numbered variants
        tokens.pop()
    return tokens, len(base) in _TRUNCATED_LENGTHS


def _short(token: str) -> bool:
    """A variant letter or a cut-off fragment: 1-2 letters ("r", "aa")."""
    return len(token) <= 2 and not token.isdigit()


def detect_authors(
    relpaths: Iterable[str],
    min_files: int = AUTHOR_MIN_FILES,
    min_categories: int = AUTHOR_MIN_CATEGORIES,
    seeds: Iterable[str] = AUTHOR_SEEDS,
) -> set[tuple[str, ...]]:
    """Author names appended to Openclipart file names, found from the data (plus ``seeds``), as word tuples.

    A sequence of 1 to 3 words is an author when it ends names (after at least one other word, and possibly
    followed by a 1-2-letter variant such as ``_r`` or ``_aa``) in at least ``min_files`` files with at least
    ``AUTHOR_MIN_NAMES`` different names under at least ``min_categories`` different top-level folders; appears
    elsewhere in names (not at the end, or as a whole name) in at most a fifth as many names, so "blue" or "icon"
    are not authors; has no number; has 3+ letters when it is a single word; and, when it has several words, ends
    at least 60 % of the names that end with its shorter tail (so the picture words in "print benji pa" or
    "bw ganson" are not taken for part of the name). ``NOT_AUTHORS`` removes the few picture words that pass anyway.
    The seeds are added, and so are every author's tails that start with a word of 4+ letters (surnames:
    "rollandin", "grond"). Cut-off forms of a longer author ("architetto fra", "arc") are dropped from the result:
    :func:`clean_openclipart_name` recognises them in truncated names.
    """
    files: dict[tuple[str, ...], int] = defaultdict(int)
    names: dict[tuple[str, ...], set[str]] = defaultdict(set)  # distinct names: one clip art filed twice is one
    categories: dict[tuple[str, ...], set[str]] = defaultdict(set)
    elsewhere: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for rel in relpaths:
        parts = Path(rel).parts
        tokens, truncated = _name_tokens(Path(rel).stem)
        name = " ".join(tokens)
        # without a final variant letter ("_r", "_aa") or cut-off fragment ("..._architetto_f")
        core = tokens[:-1] if len(tokens) > 1 and _short(tokens[-1]) else tokens
        ends = {tuple(tokens)} if truncated else {tuple(tokens), tuple(core)}
        for n in range(1, AUTHOR_MAX_TOKENS + 1):
            for gram in {words[-n:] for words in ends if len(words) > n}:
                files[gram] += 1
                names[gram].add(name)
                categories[gram].add(parts[0] if len(parts) > 1 else "")
            inner = {tuple(core[i : i + n]) for i in range(len(core) - n)}
            if len(core) == n:
                inner.add(tuple(core))
            for gram in inner:
                elsewhere[gram].add(name)

    def passes(gram: tuple[str, ...]) -> bool:
        return (
            files[gram] >= min_files
            and len(names[gram]) >= AUTHOR_MIN_NAMES
            and len(categories[gram]) >= min_categories
            and len(elsewhere[gram]) <= _AUTHOR_MAX_ELSEWHERE * len(names[gram])
            and not any(word.isdigit() for word in gram)
            and (len(gram) > 1 or len(gram[0]) >= 3)
            and " ".join(gram) not in NOT_AUTHORS
        )

    authors = {
        gram
        for gram in files
        if passes(gram) and (len(gram) == 1 or len(names[gram]) >= _AUTHOR_EXTENSION * len(names[gram[1:]]))
    }
    seeded = {tuple(_tokens(seed)) for seed in seeds}
    authors |= seeded
    authors.update(a[i:] for a in list(authors) for i in range(1, len(a)) if len(a[i]) >= 4)
    return {a for a in authors if a in seeded or not any(b != a and _is_token_prefix(a, b) for b in authors)}


def _is_token_prefix(tail: Sequence[str], author: tuple[str, ...]) -> bool:
    """Whether ``tail`` is how ``author`` looks after truncation: equal words, the last one possibly cut short."""
    if not tail or len(tail) > len(author):
        return False
    *whole, last = tail
    return list(author[: len(whole)]) == whole and author[len(whole)].startswith(last)


def _author_tail(tokens: Sequence[str], truncated: bool, authors: set[tuple[str, ...]]) -> int:
    """How many trailing words are an author (or, in a truncated name, a cut-off one); 0 if none or all words."""
    longest = max((len(a) for a in authors), default=0)
    for n in range(min(longest, len(tokens) - 1), 0, -1):
        tail = tuple(tokens[-n:])
        if tail in authors or (truncated and any(_is_token_prefix(tail, a) for a in authors)):
            return n
    return 0


def _special_name(stem: str, folders: Sequence[str]) -> str | None:
    """Names whose parts are codes: playing cards (``white_h_9``) and star polygons (``star_67pt11step``)."""
    if "cards" in folders:
        if m := _CARD.match(stem):
            style, suit, rank = m.groups()
            return f"{_RANKS.get(rank, rank)} of {_SUITS[suit]} playing card, {style}"
        if m := _JOKER.match(stem):
            style, colour = m.groups()
            return f"{'red' if colour == 'r' else 'black'} joker playing card, {style}"
    if m := _STAR.match(stem):
        points, step = (int(g) for g in m.groups())
        return f"star polygon with {points} points, step {step}"
    return None


def clean_openclipart_name(relpath: str | Path, authors: set[tuple[str, ...]]) -> str:
    """The picture's name from its file name: the words left after removing counters, numbers and the author.

    Rules, in order: playing cards (``<style>_<suit>_<rank>`` in a ``cards`` folder) and star polygons
    (``star_<n>pt<k>step``) are spelled out; the copy counter (``_01``, ``_02a``, ``_01r``) is dropped; the rest is
    split into lowercase words at underscores, hyphens, dots, camelCase and before a number that follows 3+ letters;
    trailing numbers are dropped (``pinguino1`` → "pinguino"); a final 1-2-letter word is dropped when the name was
    truncated (a cut-off fragment) or follows an author (a variant: ``_r``, ``_aa``); then a trailing author from
    ``authors`` is removed, and when Debian truncated the name (23-25 characters before the counter) so is a cut-off
    start of one (``..._architetto_f``, ``..._matthew_``); "bw" becomes "black and white". At least one word is
    kept; "" when the name had no word.
    """
    rel = Path(relpath)
    special = _special_name(rel.stem, rel.parts[:-1])
    if special:
        return special
    tokens, truncated = _name_tokens(rel.stem)
    if len(tokens) > 1 and _short(tokens[-1]) and (truncated or _author_tail(tokens[:-1], False, authors)):
        tokens = tokens[:-1]
    n = _author_tail(tokens, truncated, authors)
    if n:
        tokens = tokens[:-n]
    while len(tokens) > 1 and tokens[-1].isdigit():
        tokens.pop()
    return " ".join(_ABBREVIATIONS.get(t, t) for t in tokens)


def _folder_words(folders: Sequence[str]) -> list[str]:
    words = []
    for folder in reversed(folders):  # most specific first
        tokens = _tokens(folder)
        while tokens and tokens[0].isdigit():  # "01_gift_certificate"
            tokens.pop(0)
        phrase = " ".join(tokens)
        if phrase and phrase not in _SILENT_FOLDERS and phrase not in words:
            words.append(phrase)
    return words


def openclipart_caption(relpath: str | Path, authors: set[tuple[str, ...]]) -> str:
    """``"<cleaned name> (<folder words, most specific first>)"``, or "" when the cleaned name is empty.

    ``science/astronomy/full_moon_dan_gerhards_01.png`` → ``"full moon (astronomy, science)"``; folder names
    ``unsorted`` and ``duplicates`` are left out, and so are the parentheses when no folder word is left.
    """
    rel = Path(relpath)
    name = clean_openclipart_name(rel, authors)
    if not name:
        return ""
    words = _folder_words(rel.parts[:-1])
    return f"{name} ({', '.join(words)})" if words else name


def openclipart_pairs(
    root: str | Path = OPENCLIPART_ROOT, authors: set[tuple[str, ...]] | None = None
) -> list[ImageCaption]:
    """Every PNG of the Openclipart package with its caption from the path; sorted by id.

    ``authors`` defaults to :func:`detect_authors` over the files found. Files whose cleaned name is empty are
    skipped (logged).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"openclipart: folder {root} not found; install the Debian package with "
            f"`{_apt_command(['openclipart-png'])}` (or gpte.data.image_text.install_data(['openclipart']))"
        )
    relpaths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.png") if p.is_file())
    if not relpaths:
        raise FileNotFoundError(f"openclipart: no PNG files under {root}")
    if authors is None:
        authors = detect_authors(relpaths)
        logger.info("openclipart: %d author names detected", len(authors))
    pairs, skipped = [], []
    for rel in relpaths:
        caption = openclipart_caption(rel, authors)
        if not caption:
            skipped.append(rel)
            continue
        parts = Path(rel).parts
        pairs.append(
            ImageCaption(
                image=str((root / rel).resolve()),
                caption=caption,
                source="openclipart",
                category=parts[0] if len(parts) > 1 else "",
                subcategory="/".join(parts[1:-1]),
                id=f"openclipart:{rel}",
            )
        )
    if skipped:
        logger.info("openclipart: %d files skipped (empty name), e.g. %s", len(skipped), skipped[:3])
    return pairs


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
