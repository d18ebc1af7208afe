"""Openclipart (Debian ``openclipart-png``): captions cleaned from file paths, author names detected from the data.

See :mod:`gpte.data.image_text` for the whole set and ``data_cards/image-text.md`` for the rules and examples.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

from gpte.data.image_caption import (
    OPENCLIPART_ROOT,
    ImageCaption,
    _apt_command,
)

logger = logging.getLogger(__name__)

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


