"""gpte.data.image_text: caption cleaning, Twemoji loading, Noto rendering, splits; offline, no Debian/npm data."""

from __future__ import annotations

import json
import random
import struct
import tarfile
import zlib
from pathlib import Path

import pytest

from gpte.data import image_text as it

# ---------------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------------


def _png(path: Path, rgb: tuple[int, int, int] = (200, 30, 30), size: int = 4) -> None:
    """A tiny valid RGB PNG (no Pillow needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * size for _ in range(size))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


# Real-looking Openclipart paths (names as Debian ships them) and the captions they must get.
CLIPART = {
    # an author found from the data: ends >= 5 files, >= 3 names, >= 3 top-level folders, never elsewhere
    "containers/box_juliane_krug_r.png": "box (containers)",
    "food/meats_and_eggs/hot_dog_juliane_krug_01.png": "hot dog (meats and eggs, food)",
    "recreation/party/balloon_juliane_krug_01.png": "balloon (party, recreation)",
    "people/clothing/hat_juliane_krug_01.png": "hat (clothing, people)",
    "people/clothing/hat_juliane_krug_02.png": "hat (clothing, people)",
    # truncated by Debian at 24 characters: the cut-off author fragment goes too
    "food/french_fries_juliane_kr_r.png": "french fries (food)",
    # seeds, cut off at any letter
    "science/astronomy/full_moon_dan_gerhards_01.png": "full moon (astronomy, science)",
    "science/medicine/siringa_architetto_franc_01.png": "siringa (medicine, science)",
    "science/medicine/medicina_dottore_archite_01.png": "medicina dottore (medicine, science)",
    "science/chemistry_flask_matthew__01.png": "chemistry flask (science)",
    # "blue" ends 5 names in 5 folders but also starts names: a picture word, not an author
    "shapes/arrows/arrow_blue.png": "arrow blue (arrows, shapes)",
    "computer/icons/folder_blue.png": "folder blue (icons, computer)",
    "signs_and_symbols/star_blue.png": "star blue (signs and symbols)",
    "food/berry_blue.png": "berry blue (food)",
    "people/shirt_blue.png": "shirt blue (people)",
    "shapes/blue_circle.png": "blue circle (shapes)",
    "food/blue_cheese.png": "blue cheese (food)",
    # copy counters, numbered variants, camelCase, codes, special names
    "shapes/jigsaw/jigsaw_red_01.png": "jigsaw red (jigsaw, shapes)",
    "shapes/jigsaw/jigsaw_red_12.png": "jigsaw red (jigsaw, shapes)",
    "unsorted/Pinguino1.png": "pinguino",
    "unsorted/aziendaVendite.png": "azienda vendite",
    "tools/weapons/m16_01.png": "m16 (weapons, tools)",
    "food/spaghetti_bw.png": "spaghetti black and white (food)",
    "recreation/games/cards/white/white_h_9.png": "9 of hearts playing card, white (white, cards, games, recreation)",
    "games/cards/simple/simple_jk_r.png": "red joker playing card, simple (simple, cards, games)",
    "games/cards/simple/simple_s_q.png": "queen of spades playing card, simple (simple, cards, games)",
    "shapes/stars/star_67pt11step.png": "star polygon with 67 points, step 11 (stars, shapes)",
    "special/examples/01_gift_certificate/hideaway.png": "hideaway (gift certificate, examples, special)",
    "shapes/callouts/cloud_r.png": "cloud r (callouts, shapes)",  # "r" is "right" here: kept
}
EMPTY_NAMES = ["shapes/01.png"]  # no word left: skipped


@pytest.fixture
def clipart_root(tmp_path: Path) -> Path:
    root = tmp_path / "png"
    for i, rel in enumerate([*CLIPART, *EMPTY_NAMES]):
        _png(root / rel, rgb=(i, 255 - i, 7))
    return root


EMOJI = [
    {"name": "GRINNING FACE", "unified": "1F600", "image": "1f600.png", "short_name": "grinning",
     "short_names": ["grinning"], "category": "Smileys & Emotion", "subcategory": "face-smiling"},
    {"name": "ELECTRIC TORCH", "unified": "1F526", "image": "1f526.png", "short_name": "flashlight",
     "short_names": ["flashlight"], "category": "Objects", "subcategory": "light & video"},
    {"name": "Egypt Flag", "unified": "1F1EA-1F1EC", "image": "1f1ea-1f1ec.png", "short_name": "flag-eg",
     "short_names": ["flag-eg"], "category": "Flags", "subcategory": "country-flag"},
]  # fmt: skip


def _fake_twemoji(cache: Path, entries: list[dict] = EMOJI) -> Path:
    package = cache / "twemoji" / f"{it.TWEMOJI_PACKAGE}-{it.TWEMOJI_VERSION}" / "package"
    package.mkdir(parents=True)
    (package / "emoji.json").write_text(json.dumps(entries))
    for i, entry in enumerate(entries):
        _png(package / "img" / "twitter" / "64" / entry["image"], rgb=(10 * i, 100, 200))
    return package


# ---------------------------------------------------------------------------------------------------------------
# Openclipart
# ---------------------------------------------------------------------------------------------------------------


def test_detect_authors_from_data_without_seeds():
    authors = it.detect_authors(list(CLIPART), seeds=())
    assert ("juliane", "krug") in authors
    assert ("blue",) not in authors  # also starts names
    assert ("red",) not in authors  # one folder only
    assert not any(len(a) == 1 and len(a[0]) < 3 for a in authors)
    # the cut-off form "juliane kr" is not an author of its own
    assert ("juliane", "kr") not in authors


def test_openclipart_captions(clipart_root: Path):
    pairs = it.openclipart_pairs(clipart_root)
    got = {p.id.removeprefix("openclipart:"): p.caption for p in pairs}
    assert got == CLIPART  # every caption exactly, and the empty name skipped
    assert [p.id for p in pairs] == sorted(p.id for p in pairs)
    moon = next(p for p in pairs if "full_moon" in p.id)
    assert moon.source == "openclipart"
    assert moon.category == "science" and moon.subcategory == "astronomy"
    assert Path(moon.image).is_absolute() and Path(moon.image).is_file()
    assert moon.id == "openclipart:science/astronomy/full_moon_dan_gerhards_01.png"


def test_openclipart_without_seeds_keeps_unknown_authors():
    authors = it.detect_authors(list(CLIPART), seeds=())
    assert (
        it.clean_openclipart_name("science/astronomy/full_moon_dan_gerhards_01.png", authors)
        == "full moon dan gerhards"
    )
    assert it.clean_openclipart_name("food/french_fries_juliane_kr_r.png", authors) == "french fries"


def test_openclipart_missing_root_names_the_install_command(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y --no-install-recommends openclipart-png"):
        it.openclipart_pairs(tmp_path / "nope")


# ---------------------------------------------------------------------------------------------------------------
# Twemoji
# ---------------------------------------------------------------------------------------------------------------


def test_emoji_caption():
    assert it.emoji_caption("ELECTRIC TORCH", ["flashlight"]) == "electric torch (flashlight)"
    assert it.emoji_caption("Spain Flag", ["es", "flag-es"]) == "spain flag"
    assert it.emoji_caption("TIGER", ["tiger2"]) == "tiger"
    assert it.emoji_caption("MOUSE FACE", ["mouse"]) == "mouse face"
    assert it.emoji_caption("THUMBS UP SIGN", ["+1", "thumbsup"]) == "thumbs up sign (thumbsup)"


def test_twemoji_from_package_folder(tmp_path: Path):
    _fake_twemoji(tmp_path)
    pairs = it.twemoji_pairs(cache_dir=tmp_path)
    assert [p.id for p in pairs] == ["twemoji:1F1EA-1F1EC", "twemoji:1F526", "twemoji:1F600"]
    by_id = {p.id: p for p in pairs}
    torch = by_id["twemoji:1F526"]
    assert torch.caption == "electric torch (flashlight)"
    assert (torch.category, torch.subcategory, torch.source) == ("Objects", "light & video", "twemoji")
    assert by_id["twemoji:1F1EA-1F1EC"].caption == "egypt flag"
    assert all(Path(p.image).is_file() for p in pairs)


def test_twemoji_cache_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _fake_twemoji(tmp_path)
    monkeypatch.setenv("GPTE_DATA_DIR", str(tmp_path))
    assert it.data_dir() == tmp_path
    assert len(it.twemoji_pairs()) == 3


def test_twemoji_unpacks_cached_tgz_without_the_sheets(tmp_path: Path):
    src = _fake_twemoji(tmp_path / "src")
    _png(src / "img" / "twitter" / "sheets" / "64.png")
    folder = tmp_path / "cache" / "twemoji"
    folder.mkdir(parents=True)
    with tarfile.open(folder / f"{it.TWEMOJI_PACKAGE}-{it.TWEMOJI_VERSION}.tgz", "w:gz") as tar:
        tar.add(src, arcname="package")
    pairs = it.twemoji_pairs(cache_dir=tmp_path / "cache")
    assert len(pairs) == 3
    unpacked = folder / f"{it.TWEMOJI_PACKAGE}-{it.TWEMOJI_VERSION}" / "package"
    assert (unpacked / "emoji.json").is_file()
    assert not (unpacked / "img" / "twitter" / "sheets").exists()


def test_twemoji_rejects_unsafe_archive(tmp_path: Path):
    src = _fake_twemoji(tmp_path / "src")
    folder = tmp_path / "cache" / "twemoji"
    folder.mkdir(parents=True)
    with tarfile.open(folder / f"{it.TWEMOJI_PACKAGE}-{it.TWEMOJI_VERSION}.tgz", "w:gz") as tar:
        tar.add(src, arcname="package")
        tar.add(src / "emoji.json", arcname="package/img/twitter/64/../../../../evil.png")
    with pytest.raises(ValueError, match="unsafe member"):
        it.twemoji_pairs(cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "evil.png").exists()


def test_twemoji_missing_without_npm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(it.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r"npm pack emoji-datasource-twitter@16\.0\.0"):
        it.twemoji_pairs(cache_dir=tmp_path)


def test_bad_emoji_json_names_the_entry(tmp_path: Path):
    _fake_twemoji(tmp_path, [{**EMOJI[0], "category": ""}])
    with pytest.raises(ValueError, match="entry 0 .* lacks category"):
        it.twemoji_pairs(cache_dir=tmp_path)


def test_emoji_categories():
    assert len(it.EMOJI_CATEGORIES) == 9 and "Component" not in it.EMOJI_CATEGORIES
    assert {e["category"] for e in EMOJI} <= set(it.EMOJI_CATEGORIES)


# ---------------------------------------------------------------------------------------------------------------
# Noto Color Emoji
# ---------------------------------------------------------------------------------------------------------------


def test_noto_missing_font_names_the_package(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="fonts-noto-color-emoji"):
        it.noto_emoji_pairs(cache_dir=tmp_path, font=tmp_path / "missing.ttf")


def _has_pillow() -> bool:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not it.NOTO_FONT.is_file() or not _has_pillow(), reason="needs fonts-noto-color-emoji and Pillow")
def test_noto_renders_once_and_skips_what_the_font_cannot_draw(tmp_path: Path):
    from PIL import Image

    entries = [
        *EMOJI,
        # U+1FAFF is unassigned: nothing is drawn
        {**EMOJI[0], "name": "NOTHING", "unified": "1FAFF", "image": "1faff.png"},
        # "ZZ" is no region: the font's unknown-flag placeholder
        {**EMOJI[2], "name": "ZZ Flag", "unified": "1F1FF-1F1FF", "image": "1f1ff-1f1ff.png"},
    ]
    _fake_twemoji(tmp_path, entries)
    pairs = it.noto_emoji_pairs(cache_dir=tmp_path)
    assert [p.id for p in pairs] == ["noto-emoji:1F1EA-1F1EC", "noto-emoji:1F526", "noto-emoji:1F600"]
    assert pairs[1].caption == "electric torch (flashlight)" and pairs[1].category == "Objects"
    image = Image.open(pairs[2].image)
    assert image.mode == "RGBA" and 90 <= image.width <= 140 and 90 <= image.height <= 140
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 16)) > 10  # a colour bitmap, not an outline
    manifest = json.loads(next((tmp_path / "noto-emoji").glob("*/manifest.json")).read_text())
    assert set(manifest["skipped"]) == {"1FAFF", "1F1FF-1F1FF"}
    mtime = Path(pairs[2].image).stat().st_mtime_ns
    assert [p.id for p in it.noto_emoji_pairs(cache_dir=tmp_path)] == [p.id for p in pairs]
    assert Path(pairs[2].image).stat().st_mtime_ns == mtime  # re-used, not drawn again


# ---------------------------------------------------------------------------------------------------------------
# all sources, splits, installation
# ---------------------------------------------------------------------------------------------------------------


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown image-text source.*'flickr'"):
        it.image_caption_pairs(["twemoji", "flickr"])


def _synthetic(n: int) -> list[it.ImageCaption]:
    return [it.ImageCaption(f"/nope/{i}.png", f"thing number {i}", "twemoji", "Objects", id=f"t:{i}") for i in range(n)]


def test_split_deterministic_and_disjoint(clipart_root: Path, tmp_path: Path):
    pairs = it.openclipart_pairs(clipart_root) + _synthetic(2000)
    # both emoji styles of one name
    pairs += [
        it.ImageCaption("/nope/a.png", "grinning face", "twemoji", "Smileys & Emotion", id="twemoji:1F600"),
        it.ImageCaption("/nope/b.png", "Grinning  Face", "noto-emoji", "Smileys & Emotion", id="noto-emoji:1F600"),
    ]
    splits = it.split_by_caption(pairs, test_fraction=0.1, val_fraction=0.1)
    assert set(splits) == {"train", "val", "test"}
    assert sum(len(v) for v in splits.values()) == len(pairs)
    shuffled = pairs[:]
    random.Random(0).shuffle(shuffled)
    again = it.split_by_caption(shuffled, test_fraction=0.1, val_fraction=0.1)
    assert {k: sorted(p.id for p in v) for k, v in again.items()} == {
        k: sorted(p.id for p in v) for k, v in splits.items()
    }
    keys = {k: {it.caption_key(p.caption) for p in v} for k, v in splits.items()}
    assert not keys["train"] & keys["test"] and not keys["train"] & keys["val"] and not keys["val"] & keys["test"]
    split_of = {p.id: k for k, v in splits.items() for p in v}
    assert split_of["twemoji:1F600"] == split_of["noto-emoji:1F600"]
    jigsaw = "openclipart:shapes/jigsaw/jigsaw_red_"
    assert split_of[jigsaw + "01.png"] == split_of[jigsaw + "12.png"]
    for name in ("test", "val"):
        assert 0.07 < sum(p.id.startswith("t:") for p in splits[name]) / 2000 < 0.13
    assert it.split_by_caption(pairs)["val"] == []


def test_split_keeps_identical_images_together(tmp_path: Path):
    pairs = []
    for i in range(60):
        _png(tmp_path / f"{i}a.png", rgb=(i, 1, 1))
        _png(tmp_path / f"{i}b.png", rgb=(i, 1, 1))  # same bytes, different caption
        pairs += [
            it.ImageCaption(str(tmp_path / f"{i}a.png"), f"help {i}", "openclipart", "computer", id=f"a{i}"),
            it.ImageCaption(str(tmp_path / f"{i}b.png"), f"question {i}", "openclipart", "computer", id=f"b{i}"),
        ]
    split_of = {p.id: k for k, v in it.split_by_caption(pairs, 0.3).items() for p in v}
    assert all(split_of[f"a{i}"] == split_of[f"b{i}"] for i in range(60))
    loose = {p.id: k for k, v in it.split_by_caption(pairs, 0.3, group_identical_images=False).items() for p in v}
    assert any(loose[f"a{i}"] != loose[f"b{i}"] for i in range(60))


@pytest.mark.parametrize(("test", "val"), [(-0.1, 0.0), (1.0, 0.0), (0.6, 0.5)])
def test_split_rejects_bad_fractions(test: float, val: float):
    with pytest.raises(ValueError, match="split_by_caption"):
        it.split_by_caption(_synthetic(3), test, val)


def test_caption_key():
    assert it.caption_key("Jigsaw Red (jigsaw, shapes)") == it.caption_key("jigsaw  red") == "jigsaw red"


def test_install_data_not_root_names_the_command(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(it, "_source_present", lambda source: False)
    monkeypatch.setattr(it.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(it.os, "geteuid", lambda: 1000, raising=False)
    with pytest.raises(PermissionError, match="sudo apt-get install -y --no-install-recommends openclipart-png"):
        it.install_data(["openclipart"])


def test_install_data_as_root_runs_apt(monkeypatch: pytest.MonkeyPatch):
    calls = []

    class Done:
        returncode = 0

    monkeypatch.setattr(it, "_source_present", lambda source: False)
    monkeypatch.setattr(it.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(it.os, "geteuid", lambda: 0, raising=False)
    monkeypatch.setattr(it.subprocess, "run", lambda args, **kw: calls.append(args) or Done())
    it.install_data(["openclipart"])
    assert calls == [["apt-get", "install", "-y", "--no-install-recommends", "openclipart-png"]]


def test_install_data_without_apt(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(it, "_source_present", lambda source: False)
    monkeypatch.setattr(it.shutil, "which", lambda name: None)
    with pytest.raises(FileNotFoundError, match="apt-get not found.*openclipart-png"):
        it.install_data(["openclipart"])


def test_twemoji_corrupt_tgz_says_to_delete_it(tmp_path: Path):
    folder = tmp_path / "twemoji"
    folder.mkdir()
    (folder / f"{it.TWEMOJI_PACKAGE}-{it.TWEMOJI_VERSION}.tgz").write_bytes(b"not a tarball")
    with pytest.raises(ValueError, match="cannot unpack .* delete it"):
        it.twemoji_pairs(cache_dir=tmp_path)
