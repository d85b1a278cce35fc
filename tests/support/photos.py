"""Camera-like test photos made quickly: shared by the image, seed-scenario and browser tests."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import ExifTags, Image

# Solid squares in the stored image's top corners let a test see where EXIF rotation put them.
MARKER_TOP_LEFT = (255, 0, 0)
MARKER_TOP_RIGHT = (0, 0, 255)
# Where the GPS position of make_photo lies (degrees north, degrees east; seconds vary by seed).
GPS_DEGREES = (52.0, 13.0)

_GRAIN_TILE = 509  # odd, so the repeated grain does not line up with 8x8 JPEG blocks


def make_photo(
    path: Path,
    width: int = 4032,
    height: int = 3024,
    orientation: int = 6,
    gps: bool = True,
    seed: int = 0,
) -> Path:
    """Write a phone-like JPEG to `path` and return `path` (about 0.1 s for 12 MP).

    Smooth colour fields plus grain give the size and decode cost of a real phone photo (a pure
    noise image would be three times larger than anything a camera writes). The EXIF block has
    camera fields, `orientation` and, when `gps`, a GPS position. To stay cheap the picture is
    drawn at half size and doubled, so its grain comes in 2x2 pixel blocks.
    """
    rng = random.Random(seed)
    half = ((width + 1) // 2, (height + 1) // 2)
    colours = Image.frombytes("RGB", (16, 12), rng.randbytes(16 * 12 * 3))
    picture = colours.resize(half, Image.Resampling.BICUBIC)
    tile = Image.frombytes("RGB", (_GRAIN_TILE,) * 2, rng.randbytes(_GRAIN_TILE**2 * 3))
    grain = Image.new("RGB", half)
    for top in range(0, half[1], _GRAIN_TILE):
        for left in range(0, half[0], _GRAIN_TILE):
            grain.paste(tile, (left, top))
    picture = Image.blend(picture, grain, 0.12).resize((width, height), Image.Resampling.NEAREST)
    marker = max(1, min(width, height) // 8)
    picture.paste(MARKER_TOP_LEFT, (0, 0, marker, marker))
    picture.paste(MARKER_TOP_RIGHT, (width - marker, 0, width, marker))
    picture.save(path, "JPEG", quality=90, exif=_camera_exif(orientation, gps, rng))
    return path


def _camera_exif(orientation: int, gps: bool, rng: random.Random) -> Image.Exif:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "TusCam"
    exif[ExifTags.Base.Model] = "Estate 12"
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.DateTime] = "2026:11:29 10:00:00"
    if gps:
        position = exif.get_ifd(ExifTags.IFD.GPSInfo)
        position[ExifTags.GPS.GPSLatitudeRef] = "N"
        position[ExifTags.GPS.GPSLatitude] = (GPS_DEGREES[0], 31.0, round(rng.uniform(0, 59), 2))
        position[ExifTags.GPS.GPSLongitudeRef] = "E"
        position[ExifTags.GPS.GPSLongitude] = (GPS_DEGREES[1], 24.0, round(rng.uniform(0, 59), 2))
    return exif
