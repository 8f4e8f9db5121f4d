"""Loading photos and masks: every mode becomes upright 8-bit RGB; every bad file is an InputError."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from rns.errors import InputError
from rns.io.imageio import bytes_content_hash, decode_image, image_content_hash, load_image, load_mask


def _gradient(height: int = 24, width: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 7 % 256, y * 9 % 256, (x + y) * 3 % 256], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(
    ("suffix", "fmt", "lossless"),
    [
        (".png", "PNG", True),
        (".bmp", "BMP", True),
        (".tif", "TIFF", True),
        (".webp", "WEBP", False),
        (".jpg", "JPEG", False),
    ],
)
def test_rgb_formats_load_as_rgb(tmp_path, suffix, fmt, lossless):
    pixels = _gradient()
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(pixels).save(path, format=fmt)
    image = load_image(path)
    assert image.mode == "RGB"
    assert image.size == (32, 24)
    loaded = np.asarray(image).astype(int)
    if lossless:
        np.testing.assert_array_equal(loaded, pixels)
    else:
        assert np.abs(loaded - pixels).mean() < 12


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16bit_greyscale_is_scaled_to_8bit(tmp_path, fmt):
    values = np.array([[0, 257, 65535], [32896, 1000, 65280]], dtype=np.uint16)
    path = tmp_path / f"deep.{fmt.lower()}"
    Image.fromarray(values).save(path, format=fmt)
    image = load_image(path)
    assert image.mode == "RGB"
    expected = np.rint(values / 257.0).astype(np.uint8)
    rgb = np.asarray(image)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], expected)


def test_greyscale_and_palette_become_rgb(tmp_path):
    grey = np.arange(24 * 32, dtype=np.uint8).reshape(24, 32)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    rgb = np.asarray(load_image(tmp_path / "grey.png"))
    np.testing.assert_array_equal(rgb[..., 1], grey)

    palette_image = Image.fromarray(_gradient()).quantize(colors=16)
    palette_image.save(tmp_path / "pal.png")
    expected = np.asarray(palette_image.convert("RGB"))
    np.testing.assert_array_equal(np.asarray(load_image(tmp_path / "pal.png")), expected)


def test_rgba_is_composited_on_white_by_default(tmp_path):
    rgba = np.zeros((4, 4, 4), dtype=np.uint8)
    rgba[..., 0] = 200  # red
    rgba[:2, :, 3] = 255  # top half opaque, bottom half fully transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    rgb = np.asarray(load_image(path))
    np.testing.assert_array_equal(rgb[0, 0], [200, 0, 0])
    np.testing.assert_array_equal(rgb[3, 3], [255, 255, 255])
    on_black = np.asarray(load_image(path, background=(0, 0, 0)))
    np.testing.assert_array_equal(on_black[3, 3], [0, 0, 0])


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "print.jpg"
    Image.fromarray(_gradient()).convert("CMYK").save(path, format="JPEG", quality=95)
    image = load_image(path)
    assert image.mode == "RGB"
    assert np.abs(np.asarray(image).astype(int) - _gradient()).mean() < 20


def test_exif_orientation_is_applied(tmp_path):
    # A 40 wide x 20 high image whose left half is white, marked "rotate 90 clockwise to display" (6).
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, :20] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, format="JPEG", exif=exif.tobytes(), quality=95)
    image = load_image(path)
    assert image.size == (20, 40)  # upright: now portrait
    upright = np.asarray(image).astype(int)
    # Rotating clockwise puts the former left half on top.
    assert upright[:20].mean() > 200
    assert upright[20:].mean() < 50


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.jpg does not exist"):
        load_image(tmp_path / "nope.jpg")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png is empty"):
        load_image(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("hello, I am text")
    with pytest.raises(InputError, match=r"notes\.jpg is not an image"):
        load_image(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        load_image(tmp_path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file(tmp_path, fmt):
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format=fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(InputError, match=r"cut\.(png|jpeg) is damaged"):
        load_image(path)


def test_too_large_is_refused_before_decoding(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (200, 100)).save(path)
    with pytest.raises(InputError, match=r"big\.png is too large \(200x100 pixels, limit 10,000\)"):
        load_image(path, max_pixels=10_000)
    assert load_image(path, max_pixels=20_000).size == (200, 100)
    assert load_image(path, max_pixels=None).size == (200, 100)


def test_error_message_is_one_line(tmp_path):
    path = tmp_path / "bad.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError) as caught:
        load_image(path)
    assert "\n" not in str(caught.value)
    assert str(path) in str(caught.value)


def test_palette_mask_keeps_indices_not_colours(tmp_path):
    ids = np.array([[0, 1, 2], [3, 255, 1]], dtype=np.uint8)
    mask = Image.frombytes("P", (3, 2), ids.tobytes())
    mask.putpalette([v for i in range(256) for v in (i, 255 - i, (i * 5) % 256)])
    mask.save(tmp_path / "mask.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "mask.png"), ids)


def test_greyscale_and_16bit_masks(tmp_path):
    ids = np.array([[0, 7], [255, 3]], dtype=np.uint8)
    Image.fromarray(ids).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "grey.png"), ids)

    wide = np.array([[0, 300], [1000, 65535]], dtype=np.uint16)
    Image.fromarray(wide).save(tmp_path / "wide.png")
    loaded = load_mask(tmp_path / "wide.png")
    assert loaded.dtype == np.int32
    np.testing.assert_array_equal(loaded, wide.astype(np.int32))


def test_rgb_masks(tmp_path):
    grey_as_rgb = np.repeat(np.array([[0, 4], [9, 1]], dtype=np.uint8)[..., None], 3, axis=-1)
    Image.fromarray(grey_as_rgb).save(tmp_path / "grey_rgb.png")
    np.testing.assert_array_equal(load_mask(tmp_path / "grey_rgb.png"), grey_as_rgb[..., 0])

    coloured = np.array([[[255, 0, 0], [0, 0, 0]], [[0, 255, 0], [255, 0, 0]]], dtype=np.uint8)
    Image.fromarray(coloured).save(tmp_path / "colour.png")
    with pytest.raises(InputError, match="colour.png is a colour"):
        load_mask(tmp_path / "colour.png")
    table = {(0, 0, 0): 0, (255, 0, 0): 1, (0, 255, 0): 2}
    np.testing.assert_array_equal(load_mask(tmp_path / "colour.png", colours=table), [[1, 0], [2, 1]])
    with pytest.raises(InputError, match=r"colour \(0, 255, 0\) at pixel \(x=0, y=1\)"):
        load_mask(tmp_path / "colour.png", colours={(0, 0, 0): 0, (255, 0, 0): 1})


def test_bad_mask_file(tmp_path):
    path = tmp_path / "mask.png"
    path.write_bytes(b"GIF89a nonsense")
    with pytest.raises(InputError, match=r"mask .*mask\.png"):
        load_mask(path)


def test_content_hash(tmp_path):
    first, second, third = tmp_path / "a.png", tmp_path / "b.png", tmp_path / "c.png"
    Image.fromarray(_gradient()).save(first)
    second.write_bytes(first.read_bytes())
    Image.fromarray(_gradient()[::-1].copy()).save(third)
    assert image_content_hash(first) == image_content_hash(second) == bytes_content_hash(first.read_bytes())
    assert image_content_hash(first) != image_content_hash(third)


def test_decode_image_matches_load_image(tmp_path):
    path = tmp_path / "p.png"
    Image.fromarray(_gradient()).save(path)
    np.testing.assert_array_equal(
        np.asarray(decode_image(path.read_bytes(), path)), np.asarray(load_image(path))
    )


def test_read_image_header_counts_pixels_without_decoding(tmp_path):
    import struct
    import zlib

    from rns.io.imageio import read_image_header

    def png(width: int, height: int) -> bytes:  # a header declaring the size, a token of pixel data
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))

    # A 200-byte PNG declaring 50000 x 50000 pixels: PIL alone raises DecompressionBombError (unless an
    # earlier load_image(max_pixels=None) lifted PIL's process-wide guard: then our own count refuses it).
    (tmp_path / "bomb.png").write_bytes(png(50_000, 50_000))
    with pytest.raises(InputError, match=r"bomb\.png is too large \((more pixels than PIL's safety limit|"
                                         r"50000x50000 pixels), limit 100,000,000 pixels\): downscale it"):
        read_image_header(tmp_path / "bomb.png")
    with pytest.raises(InputError, match=r"<bytes> is too large \(12000x12000 pixels, limit 100,000,000"):
        read_image_header(png(12_000, 12_000))
    assert read_image_header(png(300, 200)).upright_size == (300, 200)


def test_read_image_header_gives_the_upright_size(tmp_path):
    from rns.io.imageio import read_image_header

    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.fromarray(np.zeros((20, 40, 3), dtype=np.uint8)).save(path, format="JPEG", exif=exif.tobytes())
    header = read_image_header(path)
    assert (header.width, header.height, header.format) == (40, 20, "JPEG")
    assert header.upright_size == (20, 40) == load_image(path).size
    with pytest.raises(InputError, match=r"not an image PIL can read"):
        read_image_header(b"not an image", "label.txt")
