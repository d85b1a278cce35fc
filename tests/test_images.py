"""The image pipeline on real files made with Pillow: types, limits, orientation, metadata."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import struct
import tempfile
import time
import warnings
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from PIL import ExifTags, Image, ImageCms, ImageFile

from server.images import (
    Derivative,
    ImageRejected,
    ProcessedImage,
    heic_supported,
    process_image,
    sniff,
)
from tests.support.photos import MARKER_TOP_LEFT, MARKER_TOP_RIGHT, make_photo

MAX_PIXELS = 50_000_000
RED, GREEN, BLUE, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)


def run(src: Path, tmp_path: Path, **kwargs: int) -> ProcessedImage:
    """process_image into a fresh folder under tmp_path."""
    kwargs.setdefault("max_pixels", MAX_PIXELS)
    return process_image(src, Path(tempfile.mkdtemp(dir=tmp_path)), **kwargs)


def rejected(src: Path, tmp_path: Path, **kwargs: int) -> ImageRejected:
    out = Path(tempfile.mkdtemp(dir=tmp_path))
    kwargs.setdefault("max_pixels", MAX_PIXELS)
    with pytest.raises(ImageRejected) as info:
        process_image(src, out, **kwargs)
    assert not any(out.iterdir()), "a rejected image left files behind"
    assert str(info.value), "a rejection needs a reason people can read"
    return info.value


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def derivative(result: ProcessedImage, name: str) -> Derivative:
    (found,) = [d for d in result.derivatives if d.name == name]
    return found


def near(pixel: tuple[int, ...], colour: tuple[int, ...], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def jpeg_header_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every JPEG segment before the image data starts."""
    assert data[:2] == b"\xff\xd8"
    segments, pos = [], 2
    while True:
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segments.append((marker, data[pos + 4 : pos + 2 + length]))
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            return segments
        pos += 2 + length


APP1_EXIF_XMP, APP2_ICC, APP13_IPTC, COMMENT = 0xE1, 0xE2, 0xED, 0xFE


def assert_clean_jpeg(path: Path) -> None:
    """No EXIF, GPS, XMP, IPTC, ICC or comment, by Pillow's reading and by the raw segments."""
    with Image.open(path) as image:
        assert image.format == "JPEG"
        assert dict(image.getexif()) == {}
        assert not set(image.info) & {"exif", "xmp", "icc_profile", "comment", "photoshop"}
    segments = jpeg_header_segments(path.read_bytes())
    markers = {marker for marker, _ in segments}
    assert not markers & {APP1_EXIF_XMP, APP2_ICC, APP13_IPTC, COMMENT}, sorted(markers)
    header = b"".join(payload for _, payload in segments)
    for needle in (b"Exif", b"GPS", b"xmp", b"ICC_PROFILE", b"TusCam"):
        assert needle not in header


def test_phone_photo_is_rotated_stripped_and_bounded(tmp_path: Path) -> None:
    src = make_photo(tmp_path / "photo.jpg", 4032, 3024, orientation=6, gps=True)
    with Image.open(src) as original:  # the test means something only if the source has them
        assert original.getexif()[ExifTags.Base.Orientation] == 6
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    data = src.read_bytes()

    result = run(src, tmp_path)

    assert result.content_type == "image/jpeg"
    assert (result.width, result.height) == (3024, 4032)
    assert result.size == len(data)
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert [d.name for d in result.derivatives] == ["display", "thumb"]
    for item, box in ((derivative(result, "display"), 1600), (derivative(result, "thumb"), 400)):
        assert (item.width, item.height) == (box * 3 // 4, box)
        assert item.content_type == "image/jpeg"
        assert item.size == item.path.stat().st_size
        with Image.open(item.path) as image:
            assert image.size == (item.width, item.height)
            image = image.convert("RGB")
            w, h = image.size
            inset = max(2, w // 40)
            # Orientation 6 turns the stored picture a quarter clockwise.
            assert near(image.getpixel((w - inset, inset)), MARKER_TOP_LEFT)
            assert near(image.getpixel((w - inset, h - inset)), MARKER_TOP_RIGHT)
            assert not near(image.getpixel((inset, inset)), MARKER_TOP_LEFT)
        assert_clean_jpeg(item.path)


# Where the stored top-left and top-right corners are seen for each EXIF orientation.
CORNERS = {
    1: ("top_left", "top_right"),
    2: ("top_right", "top_left"),
    3: ("bottom_right", "bottom_left"),
    4: ("bottom_left", "bottom_right"),
    5: ("top_left", "bottom_left"),
    6: ("top_right", "bottom_right"),
    7: ("bottom_right", "top_right"),
    8: ("bottom_left", "top_left"),
}


def corner_pixel(image: Image.Image, corner: str) -> tuple[int, ...]:
    w, h = image.size
    inset = max(2, min(w, h) // 40)
    x = inset if corner.endswith("left") else w - inset
    y = inset if corner.startswith("top") else h - inset
    return image.convert("RGB").getpixel((x, y))


@pytest.mark.parametrize("orientation", sorted(CORNERS))
def test_every_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    src = make_photo(tmp_path / "photo.jpg", 640, 480, orientation=orientation, gps=False)
    result = run(src, tmp_path)
    sideways = orientation >= 5
    assert (result.width, result.height) == ((480, 640) if sideways else (640, 480))
    left_marker_at, right_marker_at = CORNERS[orientation]
    with Image.open(derivative(result, "display").path) as display:
        assert display.size == (result.width, result.height)
        assert near(corner_pixel(display, left_marker_at), MARKER_TOP_LEFT)
        assert near(corner_pixel(display, right_marker_at), MARKER_TOP_RIGHT)


def marked_picture(size: tuple[int, int] = (800, 600)) -> Image.Image:
    """Green with the photo's corner markers, for formats make_photo does not write."""
    picture = Image.new("RGB", size, GREEN)
    picture.paste(MARKER_TOP_LEFT, (0, 0, 100, 100))
    picture.paste(MARKER_TOP_RIGHT, (size[0] - 100, 0, size[0], 100))
    return picture


def orientation_exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitudeRef] = "N"
    return exif


@pytest.mark.parametrize(("fmt", "content_type"), [("PNG", "image/png"), ("WEBP", "image/webp")])
def test_png_and_webp_with_exif_are_rotated_and_stripped(
    tmp_path: Path, fmt: str, content_type: str
) -> None:
    params: dict[str, object] = {"exif": orientation_exif(6)}
    if fmt == "WEBP":
        params["lossless"] = True
    src = write(tmp_path, "upload.bin", encoded(marked_picture(), fmt, **params))
    result = run(src, tmp_path)
    assert result.content_type == content_type
    assert (result.width, result.height) == (600, 800)
    display = derivative(result, "display")
    assert (display.width, display.height) == (600, 800)
    with Image.open(display.path) as image:
        assert near(corner_pixel(image, "top_right"), MARKER_TOP_LEFT)
        assert near(corner_pixel(image, "bottom_left"), GREEN)
    thumb = derivative(result, "thumb")
    assert (thumb.width, thumb.height) == (300, 400)
    for item in result.derivatives:
        assert_clean_jpeg(item.path)


def test_type_comes_from_the_bytes_not_the_name(tmp_path: Path) -> None:
    src = write(tmp_path, "holiday.jpg", encoded(marked_picture(), "PNG"))
    assert run(src, tmp_path).content_type == "image/png"


def half_transparent(mode: str) -> Image.Image:
    picture = Image.new("RGBA", (600, 400), (0, 0, 0, 0))
    picture.paste((255, 0, 0, 255), (300, 0, 600, 400))
    if mode == "P":
        return picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    return picture if mode == "RGBA" else picture.convert(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_transparency_is_flattened_onto_white(tmp_path: Path, mode: str) -> None:
    picture = half_transparent(mode)
    params = {"transparency": picture.getpixel((0, 0))} if mode == "P" else {}
    src = write(tmp_path, "logo.png", encoded(picture, "PNG", **params))
    with Image.open(src) as check:
        assert check.mode == mode and (mode != "P" or "transparency" in check.info)
    result = run(src, tmp_path)
    for item in result.derivatives:
        with Image.open(item.path) as image:
            rgb = image.convert("RGB")
            assert near(rgb.getpixel((2, 2)), WHITE, tolerance=8)
            opaque = RED if mode != "LA" else (76, 76, 76)  # LA holds red as its grey value
            assert near(rgb.getpixel((image.width - 3, image.height // 2)), opaque, 12)


def test_sixteen_bit_grey_keeps_its_tones(tmp_path: Path) -> None:
    grey = Image.new("I;16", (64, 64), 40000)  # 40000/65535 of white, about 156 of 255
    src = write(tmp_path, "scan.png", encoded(grey, "PNG"))
    result = run(src, tmp_path)
    with Image.open(derivative(result, "display").path) as image:
        assert abs(image.convert("L").getpixel((32, 32)) - 156) <= 3


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cyan = Image.new("CMYK", (320, 240), (255, 0, 0, 0))
    src = write(tmp_path, "print.jpg", encoded(cyan, "JPEG", quality=95))
    result = run(src, tmp_path)
    with Image.open(derivative(result, "display").path) as image:
        assert image.mode == "RGB"
        assert near(image.getpixel((160, 120)), (0, 255, 255), tolerance=24)


def test_xmp_comment_and_icc_never_reach_a_derivative(tmp_path: Path) -> None:
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><exif:GPSLatitude>52,31N</exif:GPSLatitude>'
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    params = {"xmp": xmp + b"</x:xmpmeta>", "comment": b"TusCam at 52N 13E", "icc_profile": icc}
    src = write(tmp_path, "tagged.jpg", encoded(marked_picture(), "JPEG", **params))
    with Image.open(src) as original:
        assert {"xmp", "comment", "icc_profile"} <= set(original.info)
    result = run(src, tmp_path)
    for item in result.derivatives:
        assert_clean_jpeg(item.path)
        with Image.open(item.path) as image:  # an sRGB profile changes no colour when dropped
            assert near(corner_pixel(image, "top_left"), MARKER_TOP_LEFT, tolerance=24)


def s15fixed16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def icc_xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ \0\0\0\0" + s15fixed16(x) + s15fixed16(y) + s15fixed16(z)


D50 = (0.9642, 1.0, 0.8249)
SRGB_PRIMARIES = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def rgb_icc_profile(description: str, red: tuple[float, ...], green: tuple[float, ...]) -> bytes:
    """A minimal ICC v2 matrix/gamma RGB display profile with the given primaries."""
    text = description.encode("ascii") + b"\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + bytes(78)
    gamma = b"curv\0\0\0\0" + struct.pack(">IH", 1, round(2.2 * 256))
    tags = [
        (b"desc", desc),
        (b"wtpt", icc_xyz(*D50)),
        (b"rXYZ", icc_xyz(*red)),
        (b"gXYZ", icc_xyz(*green)),
        (b"bXYZ", icc_xyz(*SRGB_PRIMARIES[2])),
        (b"rTRC", gamma),
        (b"gTRC", gamma),
        (b"bTRC", gamma),
    ]
    first = 128 + 4 + 12 * len(tags)
    table, body = b"", b""
    for signature, data in tags:
        data += bytes(-len(data) % 4)
        table += signature + struct.pack(">II", first + len(body), len(data))
        body += data
    header = (
        struct.pack(">I", first + len(body))
        + bytes(4)
        + b"\x02\x10\0\0mntrRGB XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(28)
        + b"".join(s15fixed16(v) for v in D50)
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + body


def test_colours_in_another_profile_are_converted_to_srgb(tmp_path: Path) -> None:
    # A profile whose red is sRGB's green: converted pixels turn green, untouched ones stay red.
    swapped = rgb_icc_profile("red and green swapped", SRGB_PRIMARIES[1], SRGB_PRIMARIES[0])
    picture = Image.new("RGB", (800, 600), RED)
    src = write(tmp_path, "wide.jpg", encoded(picture, "JPEG", quality=95, icc_profile=swapped))
    result = run(src, tmp_path)
    for item in result.derivatives:
        assert_clean_jpeg(item.path)
        with Image.open(item.path) as image:
            assert near(image.getpixel((10, 10)), GREEN, tolerance=24)


def test_a_broken_icc_profile_costs_only_the_profile(tmp_path: Path) -> None:
    params = {"icc_profile": b"not a colour profile" * 8}
    src = write(tmp_path, "odd.jpg", encoded(marked_picture(), "JPEG", **params))
    result = run(src, tmp_path)
    with Image.open(derivative(result, "display").path) as image:
        assert "icc_profile" not in image.info
        assert near(corner_pixel(image, "bottom_left"), GREEN, tolerance=24)


@pytest.mark.parametrize(
    ("size", "display", "thumb"),
    [((300, 200), (300, 200), (300, 200)), ((1000, 500), (1000, 500), (400, 200))],
)
def test_small_images_are_never_enlarged(
    tmp_path: Path, size: tuple[int, int], display: tuple[int, int], thumb: tuple[int, int]
) -> None:
    src = write(tmp_path, "small.jpg", encoded(marked_picture(size), "JPEG"))
    result = run(src, tmp_path)
    assert (result.width, result.height) == size
    for name, expected in (("display", display), ("thumb", thumb)):
        item = derivative(result, name)
        with Image.open(item.path) as image:
            assert (item.width, item.height) == image.size == expected


def test_custom_sizes_bound_the_longest_side(tmp_path: Path) -> None:
    src = make_photo(tmp_path / "photo.jpg", 1200, 900, orientation=1, gps=False)
    result = run(src, tmp_path, display_size=500, thumb_size=100)
    assert [(d.width, d.height) for d in result.derivatives] == [(500, 375), (100, 75)]


def test_multi_picture_jpeg_from_phones_is_a_jpeg(tmp_path: Path) -> None:
    first, second = marked_picture(), Image.new("RGB", (800, 600), BLUE)
    src = write(tmp_path, "mpo.jpg", encoded(first, "MPO", save_all=True, append_images=[second]))
    with Image.open(src) as check:
        assert check.format == "MPO"
    result = run(src, tmp_path)
    assert result.content_type == "image/jpeg"
    with Image.open(derivative(result, "display").path) as image:
        assert near(corner_pixel(image, "bottom_left"), GREEN)


def test_animated_png_gives_its_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (200, 100), RED), Image.new("RGB", (200, 100), BLUE)]
    src = write(
        tmp_path, "anim.png", encoded(frames[0], "PNG", save_all=True, append_images=frames[1:])
    )
    with Image.open(src) as check:
        assert check.n_frames == 2
    result = run(src, tmp_path)
    with Image.open(derivative(result, "display").path) as image:
        assert near(image.getpixel((100, 50)), RED)


def svg() -> bytes:
    return b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>'


def pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n"


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    brands = major + b"\0\0\0\0" + b"".join(compatible)
    return struct.pack(">I", 8 + len(brands)) + b"ftyp" + brands + b"\0" * 64


@pytest.mark.parametrize(
    ("name", "make", "code", "word"),
    [
        ("svg", svg, "unsupported_type", "SVG"),
        ("gif", lambda: encoded(marked_picture(), "GIF"), "unsupported_type", "GIF"),
        ("tiff", lambda: encoded(marked_picture(), "TIFF"), "unsupported_type", "TIFF"),
        ("bmp", lambda: encoded(marked_picture(), "BMP"), "unsupported_type", "BMP"),
        ("pdf", pdf, "unsupported_type", "PDF"),
        ("avif", lambda: ftyp(b"avif", b"mif1", b"avif"), "unsupported_type", "AVIF"),
        ("mp4", lambda: ftyp(b"isom", b"mp41"), "unsupported_type", "ISO"),
        ("text", lambda: b"Dear estate agent,\nthe photos follow.\n" * 20, "not_an_image", "text"),
        ("random", lambda: os.urandom(64 * 1024), "not_an_image", "not an image"),
        ("empty", lambda: b"", "not_an_image", "empty"),
    ],
)
def test_other_files_are_refused_with_a_code(
    tmp_path: Path, name: str, make: object, code: str, word: str
) -> None:
    data = make()  # type: ignore[operator]
    if name == "random":
        data = b"\x13\x37" + data  # no magic number may start it by chance
    error = rejected(write(tmp_path, f"upload.{name}", data), tmp_path)
    assert error.code == code
    assert word.lower() in str(error).lower()


def test_heic_is_accepted_only_with_its_decoder() -> None:
    head = ftyp(b"heic", b"mif1", b"heic")
    if heic_supported():
        assert sniff(head) == "image/heic"
    else:
        with pytest.raises(ImageRejected) as info:
            sniff(head)
        assert info.value.code == "unsupported_type"
        assert "HEIC" in str(info.value)


@pytest.fixture
def small_photo(tmp_path: Path) -> bytes:
    return make_photo(tmp_path / "source.jpg", 800, 600, orientation=1).read_bytes()


@pytest.mark.parametrize("cut", [0.5, 0.1, 0.001])
def test_cut_off_jpeg_is_truncated(tmp_path: Path, small_photo: bytes, cut: float) -> None:
    src = write(tmp_path, "cut.jpg", small_photo[: max(4, int(len(small_photo) * cut))])
    assert rejected(src, tmp_path).code == "truncated"


def test_truncated_stays_truncated_when_pillow_is_told_to_allow_it(
    tmp_path: Path, small_photo: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    src = write(tmp_path, "cut.jpg", small_photo[: len(small_photo) // 2])
    assert rejected(src, tmp_path).code == "truncated"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True, "the process-wide switch must be given back"


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_cut_off_png_and_webp_are_truncated(tmp_path: Path, fmt: str) -> None:
    data = encoded(make_noisy(), fmt)
    assert rejected(write(tmp_path, "cut", data[: len(data) // 2]), tmp_path).code == "truncated"


def make_noisy() -> Image.Image:
    return Image.frombytes("RGB", (256, 256), os.urandom(256 * 256 * 3))


def png_chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + payload) if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png(width: int, height: int, idat: bytes, ihdr_crc: int | None = None) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr, ihdr_crc)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def test_damaged_files_are_corrupt(tmp_path: Path) -> None:
    rows = b"".join(b"\0" + bytes(range(96)) * 3 for _ in range(32))  # 96x32 RGB, filter 0
    assert run(write(tmp_path, "ok.png", png(96, 32, zlib.compress(rows))), tmp_path)
    bad_data = write(tmp_path, "bad.png", png(96, 32, b"\x78\x9c" + os.urandom(200)))
    assert rejected(bad_data, tmp_path).code == "corrupt"
    bad_header = write(tmp_path, "crc.png", png(96, 32, zlib.compress(rows), ihdr_crc=1))
    assert rejected(bad_header, tmp_path).code == "corrupt"


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header is rewritten to claim another size."""
    data = bytearray(encoded(Image.new("RGB", (16, 16), RED), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [png(100_000, 100_000, zlib.compress(b"\0" * 1000)), jpeg_claiming(60_000, 60_000)],
    ids=["png", "jpeg"],
)
def test_decompression_bomb_is_refused_from_its_header(tmp_path: Path, data: bytes) -> None:
    src = write(tmp_path, "bomb", data)
    started = time.perf_counter()
    error = rejected(src, tmp_path)
    # Liveness only: decoding 10 billion pixels would take minutes and exhaust memory.
    assert time.perf_counter() - started < 2.0
    assert error.code == "too_many_pixels"
    assert f"{MAX_PIXELS:,}" in str(error)


def test_max_pixels_is_the_limit(tmp_path: Path) -> None:
    src = write(tmp_path, "square.png", encoded(Image.new("RGB", (100, 100), RED), "PNG"))
    assert run(src, tmp_path, max_pixels=10_000).width == 100
    assert rejected(src, tmp_path, max_pixels=9_999).code == "too_many_pixels"
    # Past twice the limit Pillow's own guard raises inside Image.open: same answer.
    assert rejected(src, tmp_path, max_pixels=4_000).code == "too_many_pixels"


def test_pillow_guard_follows_max_pixels_and_stays_quiet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    src = write(tmp_path, "square.png", encoded(Image.new("RGB", (100, 100), RED), "PNG"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run(src, tmp_path, max_pixels=MAX_PIXELS).width == 100
        assert rejected(src, tmp_path, max_pixels=6_000).code == "too_many_pixels"
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == 1_000


def test_results_and_rejections_cross_a_process_pool(tmp_path: Path) -> None:
    good = make_photo(tmp_path / "good.jpg", 800, 600)
    bad = write(tmp_path, "bad.jpg", good.read_bytes()[:5000])
    with ProcessPoolExecutor(max_workers=1) as pool:
        result = pool.submit(process_image, good, tmp_path / "a", max_pixels=MAX_PIXELS).result()
        failure = pool.submit(process_image, bad, tmp_path / "b", max_pixels=MAX_PIXELS)
        with pytest.raises(ImageRejected) as info:
            failure.result()
    assert info.value.code == "truncated"
    assert (result.width, result.height) == (600, 800)
    assert all(item.path.is_file() for item in result.derivatives)
    assert pickle.loads(pickle.dumps(info.value)).code == "truncated"
