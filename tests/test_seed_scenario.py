"""The scenario tusgallery exists for, end to end over real HTTP on SQLite and PostgreSQL.

An admin creates a home, uploads 30 phone photos (12 MP JPEGs with EXIF orientation 6 and a GPS
position) through tus, waits for the pipeline, finalizes once and reads the home back: 30 images
in order, each derivative served publicly, rotated upright and stripped of every EXIF/GPS byte.
"""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image

from tests.support.homes import create_home, finalize, wait_processed
from tests.support.photos import MARKER_TOP_LEFT, MARKER_TOP_RIGHT, make_photo
from tests.support.server import ServerProcess
from tests.support.tus import upload

PHOTOS = 30
# Full-size photos are slow to draw on a busy 2-core machine: draw a third of them and make
# the rest distinct files (own sha256) by giving each copy its own JPEG comment.
DRAWN = 10
WIDTH, HEIGHT = 4032, 3024
CHUNK = 1024 * 1024


def _with_comment(jpeg: bytes, text: str) -> bytes:
    """The same picture with a COM segment right after SOI (a valid JPEG, other bytes)."""
    payload = text.encode()
    segment = b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload
    return jpeg[:2] + segment + jpeg[2:]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("photos")
    drawn = [
        make_photo(folder / f"{n}.jpg", WIDTH, HEIGHT, orientation=6, gps=True, seed=n).read_bytes()
        for n in range(DRAWN)
    ]
    return [_with_comment(drawn[n % DRAWN], f"photo {n}") for n in range(PHOTOS)]


def _near(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) < 60 for a, b in zip(pixel, colour, strict=False))


def _assert_clean_and_upright(data: bytes, longest: int) -> None:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    width, height = image.size
    # Orientation 6: the stored landscape frame is shown rotated a quarter turn clockwise.
    assert height > width and max(width, height) <= longest
    assert not image.getexif(), "EXIF survived"
    assert "exif" not in image.info and "xmp" not in image.info
    assert b"Exif\x00\x00" not in data  # no APP1 EXIF block anywhere, GPS lives inside it
    rgb = image.convert("RGB")
    inset = max(2, width // 40)
    # The stored top-left corner (red) ends up top-right, the stored top-right (blue) bottom-right.
    assert _near(rgb.getpixel((width - inset, inset)), MARKER_TOP_LEFT)
    assert _near(rgb.getpixel((width - inset, height - inset)), MARKER_TOP_RIGHT)


def test_thirty_phone_photos_end_to_end(
    server: ServerProcess, client: httpx.Client, photos: list[bytes]
) -> None:
    home = create_home(client, "Seaside Villa", address="1 Beach Road")
    upload_ids: list[str] = []
    for n, data in enumerate(photos):
        url = upload(
            client,
            data,
            chunk=CHUNK,
            filename=f"IMG_{n:04}.jpg",
            filetype="image/jpeg",
            home_id=home["id"],
            gallery="rooms",
        )
        upload_ids.append(url.rstrip("/").rsplit("/", 1)[-1])

    statuses = wait_processed(client, upload_ids, timeout=300)
    assert {s["status"] for s in statuses.values()} == {"ready"}, statuses

    body = {
        "expected_version": home["version"],
        "home": {"description": "thirty photos, one save"},
        "galleries": {
            "rooms": [{"upload_id": u, "caption": f"photo {n}"} for n, u in enumerate(upload_ids)]
        },
    }
    saved = finalize(client, home["id"], body)
    assert saved.status_code == 200, saved.text

    home = client.get(f"/api/homes/{home['id']}").json()
    assert home == saved.json()
    assert home["version"] == 2 and home["description"] == "thirty photos, one save"
    images = home["galleries"]["rooms"]
    assert [i["upload_id"] for i in images] == upload_ids
    assert [i["position"] for i in images] == list(range(PHOTOS))
    assert [i["caption"] for i in images] == [f"photo {n}" for n in range(PHOTOS)]
    assert len({i["sha256"] for i in images}) == PHOTOS
    for image, data in zip(images, photos, strict=True):
        assert (image["width"], image["height"]) == (HEIGHT, WIDTH)
        assert (image["content_type"], image["size"]) == ("image/jpeg", len(data))

    # Derivatives are public: fetched without the admin's token.
    with httpx.Client(base_url=server.url, timeout=30) as anonymous:
        for image in images:
            for url, longest in ((image["url"], 1600), (image["thumbnail_url"], 400)):
                assert url.startswith("/media/")
                served = anonymous.get(url)
                assert served.status_code == 200, url
                _assert_clean_and_upright(served.content, longest)
        # The original stays private to its owner.
        assert anonymous.get(f"/files/{upload_ids[0]}").status_code == 401
    original = client.get(f"/files/{upload_ids[0]}")
    assert original.status_code == 200 and original.content == photos[0]


def test_photos_fixture_is_phone_like(photos: list[bytes]) -> None:
    """What the scenario relies on: every file is a distinct 12 MP JPEG with orientation and GPS."""
    assert len(set(photos)) == PHOTOS
    image = Image.open(io.BytesIO(photos[PHOTOS - 1]))
    exif = image.getexif()
    assert image.size == (WIDTH, HEIGHT) and exif[0x0112] == 6
    assert exif.get_ifd(0x8825), "no GPS block"
