"""load_image and iter_image_files: every supported kind of input and every failure, on files made in tmp_path."""

from __future__ import annotations

import io
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

from gpte.unimodal.image_io import ImageInputError, iter_image_files, load_image  # noqa: E402


def _save(img: Image.Image, path: Path, **kwargs: object) -> Path:
    img.save(path, **kwargs)
    return path


def _pixel(img: Image.Image, xy: tuple[int, int] = (0, 0)) -> tuple[int, ...]:
    assert img.mode == "RGB"
    return tuple(img.getpixel(xy))


# ---------------------------------------------------------------------------------------------- conversions
def test_rgba_transparent_pixels_become_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 255))
    img.putpixel((0, 0), (0, 0, 0, 0))  # fully transparent black
    img.putpixel((1, 0), (0, 0, 0, 128))  # half transparent black → mid grey
    out = load_image(_save(img, tmp_path / "a.png"))
    assert _pixel(out, (0, 0)) == (255, 255, 255)
    assert all(120 <= c <= 135 for c in _pixel(out, (1, 0)))
    assert _pixel(out, (2, 2)) == (255, 0, 0)


def test_la_image_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("LA", (3, 3), (0, 0))
    out = load_image(_save(img, tmp_path / "la.png"))
    assert _pixel(out) == (255, 255, 255)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    img.putpixel((0, 0), 0)
    path = _save(img, tmp_path / "p.png", transparency=0)  # palette index 0 (black) is transparent
    assert Image.open(path).mode == "P"
    out = load_image(path)
    assert _pixel(out, (0, 0)) == (255, 255, 255)
    assert _pixel(out, (1, 1)) == (0, 255, 0)


def test_greyscale_and_one_bit(tmp_path: Path) -> None:
    grey = load_image(_save(Image.new("L", (5, 3), 77), tmp_path / "l.png"))
    assert grey.size == (5, 3) and _pixel(grey) == (77, 77, 77)
    bits = Image.new("1", (4, 4), 0)
    bits.putpixel((3, 3), 1)
    out = load_image(_save(bits, tmp_path / "b.png"))
    assert _pixel(out, (0, 0)) == (0, 0, 0) and _pixel(out, (3, 3)) == (255, 255, 255)


def test_16bit_image_scaled_by_its_own_range(tmp_path: Path) -> None:
    arr = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = np.asarray(load_image(_save(img, tmp_path / "deep.png")))
    assert out.dtype == np.uint8 and out.min() == 0 and out.max() == 255
    assert out[..., 0][0, 1] > 0  # not just clipped at the top: intermediate values survive
    # a narrow range is stretched too (not divided by 65535 into black)
    narrow = Image.fromarray(np.array([[1000, 1100], [1200, 1300]], dtype=np.uint16))
    got = np.asarray(load_image(narrow))[..., 0]
    assert got.min() == 0 and got.max() == 255


def test_float_image(tmp_path: Path) -> None:
    arr = np.array([[-1.0, 0.0], [0.5, 3.0]], dtype=np.float32)
    img = Image.fromarray(arr, mode="F")
    out = np.asarray(load_image(_save(img, tmp_path / "f.tif")))[..., 0]
    assert out[0, 0] == 0 and out[1, 1] == 255 and 0 < out[0, 1] < out[1, 0] < 255


def test_cmyk_jpeg(tmp_path: Path) -> None:
    img = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    out = load_image(_save(img, tmp_path / "cmyk.jpg", quality=95))
    r, g, b = _pixel(out, (8, 8))
    assert r > 200 and g < 60 and b < 60


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    path = _save(img, tmp_path / "rot.jpg", exif=exif.tobytes())
    assert Image.open(path).size == (40, 20)
    assert load_image(path).size == (20, 40)


def test_animated_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert getattr(Image.open(path), "n_frames", 1) == 3
    r, g, b = _pixel(load_image(path), (4, 4))
    assert r > 200 and g < 50 and b < 50


def test_animated_png_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((0, 0, 255), (255, 0, 0))]
    path = tmp_path / "anim.png"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50)
    assert _pixel(load_image(path), (4, 4)) == (0, 0, 255)


def test_huge_image_downscaled(tmp_path: Path) -> None:
    img = Image.new("RGB", (3000, 1200), (0, 128, 0))
    out = load_image(_save(img, tmp_path / "big.png"), max_side=500)
    assert out.size == (500, 200)
    jpeg = load_image(_save(img, tmp_path / "big.jpg"), max_side=700)  # reduced-scale JPEG decoding path
    assert max(jpeg.size) == 700 and abs(jpeg.size[0] / jpeg.size[1] - 2.5) < 0.02
    small = load_image(_save(Image.new("RGB", (30, 20)), tmp_path / "small.png"), max_side=500)
    assert small.size == (30, 20)  # never upscaled


def test_bytes_numpy_and_pil_inputs() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (6, 4), (1, 2, 3)).save(buf, format="PNG")
    assert _pixel(load_image(buf.getvalue())) == (1, 2, 3)
    assert _pixel(load_image(bytearray(buf.getvalue()))) == (1, 2, 3)

    arr = np.zeros((4, 6, 3), dtype=np.uint8)
    arr[..., 2] = 200
    out = load_image(arr)
    assert out.size == (6, 4) and _pixel(out) == (0, 0, 200)
    assert _pixel(load_image(np.full((3, 3), 9, dtype=np.uint8))) == (9, 9, 9)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)  # transparent
    assert _pixel(load_image(rgba)) == (255, 255, 255)

    src = Image.new("L", (3, 3), 50)
    out = load_image(src)
    assert out is not src and src.mode == "L" and _pixel(out) == (50, 50, 50)


def test_bad_arrays_rejected() -> None:
    with pytest.raises(ImageInputError, match="uint8"):
        load_image(np.zeros((4, 4, 3), dtype=np.float32))
    with pytest.raises(ImageInputError, match="shape"):
        load_image(np.zeros((4, 4, 2), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------- failures
def test_truncated_png_and_jpeg(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for suffix in ("png", "jpg"):
        full = _save(img, tmp_path / f"full.{suffix}")
        cut = tmp_path / f"cut.{suffix}"
        cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        with pytest.raises(ImageInputError) as info:
            load_image(cut)
        assert info.value.source == str(cut)
        assert info.value.reason.startswith("truncated or corrupt image data"), info.value.reason


def test_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _save(Image.new("RGB", (40, 40)), tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: above the limit, below twice it (a warning)
    with pytest.raises(ImageInputError) as info:
        load_image(path)
    assert "limit of 1000 pixels" in info.value.reason and "MAX_IMAGE_PIXELS" in info.value.reason
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # more than twice the limit: Pillow's own error
    with pytest.raises(ImageInputError, match="limit of 100 pixels"):
        load_image(path.read_bytes())


def test_text_file_named_png(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    with pytest.raises(ImageInputError) as info:
        load_image(path)
    assert "not an image" in info.value.reason
    assert str(info.value) == f"cannot load image {path}: {info.value.reason}"
    copy = pickle.loads(pickle.dumps(info.value))  # crosses process boundaries (DataLoader workers)
    assert (copy.source, copy.reason, str(copy)) == (info.value.source, info.value.reason, str(info.value))


def test_missing_path_directory_and_empty_file(tmp_path: Path) -> None:
    with pytest.raises(ImageInputError, match="no such file") as info:
        load_image(tmp_path / "nope.jpg")
    assert isinstance(info.value, ValueError)
    with pytest.raises(ImageInputError, match="directory"):
        load_image(tmp_path)
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageInputError, match="empty"):
        load_image(str(tmp_path / "empty.png"))
    with pytest.raises(ImageInputError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageInputError, match="unsupported input type"):
        load_image(12345)
    with pytest.raises(ImageInputError, match="never downloads"):
        load_image("https://example.com/cat.jpg")


@pytest.mark.skipif(sys.platform == "win32" or (hasattr(os, "geteuid") and os.geteuid() == 0),
                    reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (4, 4)), tmp_path / "locked.png")
    path.chmod(0)
    try:
        with pytest.raises(ImageInputError, match="permission"):
            load_image(path)
    finally:
        path.chmod(0o644)


def test_max_side_validated() -> None:
    with pytest.raises(ValueError, match="max_side"):
        load_image(np.zeros((2, 2), dtype=np.uint8), max_side=0)


# ---------------------------------------------------------------------------------------------- folders
def test_iter_image_files(tmp_path: Path) -> None:
    for rel in ("b.png", "a.JPG", "notes.txt", "sub/c.webp", "sub/deep/d.tiff", ".hidden/e.png", "sub/._f.jpg"):
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "g.png").write_bytes(b"x")
    (tmp_path / "link").symlink_to(outside, target_is_directory=True)

    found = [p.relative_to(tmp_path).as_posix() for p in iter_image_files(tmp_path)]
    assert found == ["a.JPG", "b.png", "sub/c.webp", "sub/deep/d.tiff"]
    flat = [p.name for p in iter_image_files(tmp_path, recursive=False)]
    assert flat == ["a.JPG", "b.png"]
    with pytest.raises(FileNotFoundError):
        iter_image_files(tmp_path / "missing")
    with pytest.raises(NotADirectoryError):
        iter_image_files(tmp_path / "b.png")
