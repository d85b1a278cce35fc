"""The image pipeline: check an uploaded file and make the copies the gallery serves.

`process_image` runs in a worker process (the app's ProcessPoolExecutor) once an upload's last byte
has landed. It is pure: a path in, files in `out_dir` out, no HTTP, database or storage.

What it guarantees:
- The type comes from the bytes, never from the client's metadata. Allowed: JPEG (MPO, the
  multi-picture JPEG many phones write, included), PNG, WebP, and HEIC only when `pillow-heif` is
  importable. GIF, TIFF, BMP, AVIF, SVG, PDF and the rest are refused as `unsupported_type`;
  anything that is not a known image is `not_an_image`. Of an animated PNG/WebP the first frame
  is used.
- The pixel count is checked from the header before a pixel is decoded, so a decompression bomb
  costs a header parse. Pillow's own bomb guard is pinned to the same limit for the call.
- A file cut short or damaged is refused (`truncated` / `corrupt`) even if some code in the process
  turned on Pillow's LOAD_TRUNCATED_IMAGES, which would let half an image pass.
- Derivatives are JPEGs with EXIF orientation applied and no metadata at all: no EXIF (so no GPS),
  no XMP, no comment, no ICC profile. Colours in a non-sRGB profile (Display P3 from phones, CMYK)
  are converted to sRGB, the web's default, so the copies need no profile. Transparency is
  flattened onto white. Small images are never enlarged.

Exceptions: `ImageRejected` means the file is at fault (the upload fails with that reason); any
other exception is a fault of the server (disk full, bug) and is worth a retry.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import os
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import ExifTags, Image, ImageFile

JPEG_QUALITY = 82
DERIVATIVE_CONTENT_TYPE = "image/jpeg"
_SNIFF_BYTES = 4096
_HASH_CHUNK = 1024 * 1024
# Where flattened transparency lands: the gallery pages are white.
_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Derivative:
    """One file written to out_dir."""

    name: str  # "display" or "thumb"
    path: Path
    width: int
    height: int
    content_type: str
    size: int


@dataclass(frozen=True)
class ProcessedImage:
    content_type: str  # of the original, sniffed from its bytes
    width: int  # after EXIF orientation is applied
    height: int
    size: int  # of the original bytes
    sha256: str
    derivatives: tuple[Derivative, ...]


class ImageRejected(Exception):
    """The file is not an image this service accepts: `code` is stable, str() is for people.

    Codes: not_an_image, unsupported_type, too_many_pixels, truncated, corrupt.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason

    def __reduce__(self) -> tuple[type[ImageRejected], tuple[str, str]]:
        # The worker pool pickles exceptions back to the app; the default would lose `code`.
        return type(self), (self.code, self.reason)


@functools.cache
def heic_supported() -> bool:
    """True when pillow-heif is installed; its opener is registered with Pillow on first call."""
    try:
        import pillow_heif  # type: ignore[import-not-found]
    except ImportError:
        return False
    pillow_heif.register_heif_opener()
    return True


def allowed_content_types() -> tuple[str, ...]:
    """The original types the pipeline accepts, for checks made before any byte is stored."""
    types = ("image/jpeg", "image/png", "image/webp")
    return (*types, "image/heic") if heic_supported() else types


# The Pillow plugin each allowed type may be opened with, so the bytes cannot be handed to another
# decoder than the one the sniffing chose.
_PILLOW_FORMATS = {
    "image/jpeg": ["JPEG"],
    "image/png": ["PNG"],
    "image/webp": ["WEBP"],
    "image/heic": ["HEIF"],
}

# Formats recognised by their first bytes only to refuse them with a clear name.
_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
    (b"%PDF-", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
)
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_AVIF_BRANDS = {b"avif", b"avis"}
_ALLOWED_NAMES = "JPEG, PNG or WebP"


def sniff(head: bytes) -> str:
    """The content type of an allowed image from its first bytes, else ImageRejected."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brands = _ftyp_brands(head)
        if brands & _AVIF_BRANDS:
            raise _unsupported("AVIF")
        if brands & _HEIC_BRANDS:
            if heic_supported():
                return "image/heic"
            raise _unsupported("HEIC (this server has no HEIC decoder)")
        raise _unsupported("an ISO media file (video or unknown image)")
    for magic, name in _REFUSED_MAGIC:
        if head.startswith(magic):
            raise _unsupported(name)
    if not head:
        raise ImageRejected("not_an_image", "the file is empty")
    if _is_svg(head):
        raise _unsupported("SVG (vector images can carry scripts)")
    if _is_text(head):
        raise ImageRejected("not_an_image", "the file is text, not an image")
    raise ImageRejected("not_an_image", "the file is not an image of a known type")


def _unsupported(name: str) -> ImageRejected:
    return ImageRejected("unsupported_type", f"{name} is not accepted; upload {_ALLOWED_NAMES}")


def _ftyp_brands(head: bytes) -> set[bytes]:
    box_size = int.from_bytes(head[:4], "big")
    end = min(box_size, len(head)) if box_size >= 16 else 16
    # The major brand, then the compatible brands after the 4-byte minor version.
    return {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    text = head.decode("utf-8", "ignore")  # "ignore": the sniffed block may cut a character
    return sum(ch.isprintable() or ch.isspace() for ch in text) >= 0.95 * len(head)


def _is_svg(head: bytes) -> bool:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return (text.startswith((b"<?xml", b"<!doctype svg", b"<svg", b"<!--"))) and b"<svg" in text


def process_image(
    src: Path,
    out_dir: Path,
    *,
    max_pixels: int,
    display_size: int = 1600,
    thumb_size: int = 400,
) -> ProcessedImage:
    """Check the image at `src` and write its display copy and thumbnail into `out_dir`.

    The display copy's longest side is at most `display_size`, the thumbnail's at most
    `thumb_size` (made from the display copy, not by a second decode).
    """
    with open(src, "rb") as fp:
        content_type = sniff(fp.read(_SNIFF_BYTES))
        fp.seek(0)
        with _pillow_guarded(max_pixels):
            width, height, display = _decode(fp, content_type, max_pixels, display_size)
        out_dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        try:
            display_file = _save_jpeg(display, "display", out_dir, written)
            display.thumbnail((thumb_size, thumb_size), Image.Resampling.BICUBIC)
            thumb_file = _save_jpeg(display, "thumb", out_dir, written)
            size, sha256 = _hash(fp)
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
    return ProcessedImage(
        content_type=content_type,
        width=width,
        height=height,
        size=size,
        sha256=sha256,
        derivatives=(display_file, thumb_file),
    )


@contextlib.contextmanager
def _pillow_guarded(max_pixels: int) -> Iterator[None]:
    """Pin Pillow's process-wide switches for one call (worker processes run one image at a time).

    Pillow's bomb check runs inside Image.open with its own limit: pinned to ours, it raises only
    above twice our limit (mapped to too_many_pixels) and its warning below that is ours to give.
    """
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = max_pixels
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


# What Pillow's plugins raise on bad bytes (struct.error when a header field is cut short).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)


def _decode(
    fp: BinaryIO, content_type: str, max_pixels: int, display_size: int
) -> tuple[int, int, Image.Image]:
    """Open, check and decode just enough for the display copy: (width, height, display image)."""
    try:
        image = Image.open(fp, formats=_PILLOW_FORMATS[content_type])
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(max_pixels, exc) from None
    except _DECODE_ERRORS as exc:
        raise _damaged(fp, content_type, exc) from None
    stored_width, stored_height = image.size
    icc = image.info.get("icc_profile")
    if stored_width * stored_height > max_pixels:
        raise _too_many_pixels(max_pixels, f"{stored_width}x{stored_height}")
    if stored_width < 1 or stored_height < 1:
        raise ImageRejected("corrupt", f"the header gives an empty size {image.size}")
    try:
        # draft() lets libjpeg decode at 1/2, 1/4 or 1/8 scale. It takes the size in stored
        # orientation and keeps the result at least that big, so ask for the aspect-correct fit.
        image.draft("RGB", _fit(image.size, display_size))
        # Loaded before the EXIF is read: for PNG, getexif() loads the pixels to reach an eXIf
        # chunk after the image data, and a decoding error must not pass as an EXIF problem.
        image.load()
        transpose = _ORIENTATION_TRANSPOSE.get(_orientation(image))
        image = _resampling_mode(image)
        # Scaled first, turned after: the square bound fits either orientation, and turning
        # the smaller image costs a third less.
        image.thumbnail((display_size, display_size), Image.Resampling.BICUBIC)
        if transpose is not None:
            image = image.transpose(transpose)
        image = _srgb(_flatten(image), icc)
    except _DECODE_ERRORS as exc:
        raise _damaged(fp, content_type, exc) from None
    if transpose in _SWAPS_SIDES:
        stored_width, stored_height = stored_height, stored_width
    return stored_width, stored_height, image


def _too_many_pixels(max_pixels: int, detail: object) -> ImageRejected:
    return ImageRejected(
        "too_many_pixels", f"the image has more than {max_pixels:,} pixels ({detail})"
    )


# What ImageOps.exif_transpose does for each EXIF orientation; done here directly so a broken
# EXIF block costs the orientation only, and no EXIF is copied along to be rewritten.
_ORIENTATION_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = {
    Image.Transpose.TRANSPOSE,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSVERSE,
    Image.Transpose.ROTATE_90,
}


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # EXIF is untrusted input: unreadable means "as stored", not a rejection
        return 1
    return value if isinstance(value, int) else 1


def _fit(size: tuple[int, int], longest: int) -> tuple[int, int]:
    width, height = size
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _resampling_mode(image: Image.Image) -> Image.Image:
    """Modes that resize badly (palette, 1-bit, 16-bit) become plain 8-bit colour first."""
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode == "1":
        return image.convert("L")
    if image.mode.startswith("I;16"):
        # Pillow clips 16-bit to 8-bit on convert; scaling keeps the tones.
        return image.point(lambda value: value / 256).convert("L")
    if image.mode in ("RGB", "L") and "transparency" in image.info:
        return image.convert("RGBA")
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """Transparency onto white, as JPEG has no alpha channel."""
    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La"):
        return image
    rgba = image.convert("RGBA")
    flat = Image.new("RGBA", rgba.size, _BACKGROUND)
    flat.alpha_composite(rgba)
    return flat.convert("RGB")


@functools.cache
def _srgb_profile() -> object:
    from PIL import ImageCms

    return ImageCms.createProfile("sRGB")


def _srgb(image: Image.Image, icc: bytes | None) -> Image.Image:
    """The image in sRGB 8-bit RGB or greyscale, so its JPEG needs no profile to look right."""
    if icc and image.mode in ("RGB", "CMYK"):
        from PIL import ImageCms

        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            is_srgb = "srgb" in ImageCms.getProfileDescription(profile).lower()
            if image.mode == "CMYK" or not is_srgb:
                return ImageCms.profileToProfile(image, profile, _srgb_profile(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # a broken profile costs colour accuracy, not the image: take the pixels as sRGB
    return image if image.mode in ("RGB", "L") else image.convert("RGB")


def _damaged(fp: BinaryIO, content_type: str, exc: BaseException) -> ImageRejected:
    """Tell Pillow's errors apart: the file ends too soon (truncated) or its data is bad."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, EOFError) or "truncated" in message.lower() or _ends_early(fp, content_type):
        return ImageRejected("truncated", f"the file ends before the image does ({message})")
    return ImageRejected("corrupt", f"the image data is damaged ({message})")


def _ends_early(fp: BinaryIO, content_type: str) -> bool:
    """Structural check for the formats whose decoders name any failure the same way."""
    size = os.fstat(fp.fileno()).st_size
    fp.seek(0)
    head = fp.read(32)
    fp.seek(max(0, size - 32))
    tail = fp.read(32)
    if content_type == "image/webp":
        return size < 8 + int.from_bytes(head[4:8], "little")
    if content_type == "image/png":
        return b"IEND" not in tail
    if content_type == "image/jpeg":
        return b"\xff\xd9" not in tail
    return False


def _save_jpeg(image: Image.Image, name: str, out_dir: Path, written: list[Path]) -> Derivative:
    path = out_dir / f"{name}.jpg"
    written.append(path)
    # Pillow writes some of `info` back (a JPEG comment, for one); a copy served must carry nothing.
    image.info.clear()
    image.save(path, "JPEG", quality=JPEG_QUALITY)
    return Derivative(
        name=name,
        path=path,
        width=image.width,
        height=image.height,
        content_type=DERIVATIVE_CONTENT_TYPE,
        size=path.stat().st_size,
    )


def _hash(fp: BinaryIO) -> tuple[int, str]:
    """Size and sha256 of the whole file, read in chunks so memory stays flat."""
    fp.seek(0)
    digest = hashlib.sha256()
    size = 0
    while chunk := fp.read(_HASH_CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()
