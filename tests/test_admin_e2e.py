"""The admin page in Debian's headless Chromium against the real server: issue 4 end to end.

Each test runs client_js/e2e/admin-upload.mjs (playwright-core driving /usr/bin/chromium on a
phone-sized viewport): log in with the token, create a home, pick 30 photos for one gallery,
caption them, watch every progress bar reach 100 %, press Save once; then the API must show the
30 images in that order. The same runs through a flaky TCP proxy (cuts and stalls) with no user
action, and across a reload mid-upload, where the bytes sent again are counted against what the
server said was missing. scripts/install-browser and scripts/build-client provide the browser and
the page. Screenshots land in artifacts/ (docs/admin-upload.png is a copy for the README).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.flaky_proxy import FlakyProxy, KiB, Knobs
from tests.support.photos import make_photo
from tests.support.server import REPO, ServerProcess

CLIENT = REPO / "client_js"
DRIVER = CLIENT / "e2e" / "admin-upload.mjs"
ARTIFACTS = REPO / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
PHOTOS = 30
# Small enough that each 1600x1200 photo takes a few PATCHes, so "about one chunk" means something.
CHUNK = 256 * KiB
# The uploader's own default is 3; a reload can cost at most the chunk in flight of each of them.
CONCURRENCY = 3
GALLERY = "rooms"
# Chromium's own upload throttle (kbit/s) for runs that must catch the page mid-upload: loopback
# would finish 30 photos before the driver looks twice.
THROTTLE = ("--upload-kbps", "40000")


@pytest.fixture(scope="module")
def db_kind() -> str:
    # The page does not care which database is behind the API (test_homes_api covers both);
    # one kind keeps the browser runs within their time budget.
    return "sqlite"


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for n in range(PHOTOS):
        make_photo(folder / f"IMG_{n + 1:04d}.jpg", 1600, 1200, seed=n)
    return folder


@pytest.fixture(scope="module", autouse=True)
def browser_and_page() -> None:
    assert CHROMIUM.exists(), "run scripts/install-browser (Debian's chromium)"
    assert (CLIENT / "node_modules" / "playwright-core").is_dir(), "run scripts/build-client"
    assert (CLIENT / "dist" / "index.html").exists(), "run scripts/build-client"


@pytest.fixture
def flaky(server: ServerProcess) -> Iterator[FlakyProxy]:
    with FlakyProxy(("127.0.0.1", server.port), seed=4) as proxy:
        yield proxy


def drive(base: str, server: ServerProcess, photos: Path, *args: str) -> dict[str, Any]:
    """Run the browser driver once; its last stdout line is the JSON report."""
    ARTIFACTS.mkdir(exist_ok=True)
    command = ["node", str(DRIVER), "--base", base, "--token", server.token]
    command += ["--photos", str(photos), "--gallery", GALLERY, "--chunk-size", str(CHUNK), *args]
    done = subprocess.run(command, cwd=CLIENT, capture_output=True, text=True, timeout=200)
    lines = done.stdout.strip().splitlines()
    report: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    assert done.returncode == 0 and report.get("ok"), (
        f"driver failed ({done.returncode}): {report or done.stdout[-2000:]}\n"
        f"stderr: {done.stderr[-2000:]}\nserver log: {server.log_text()[-3000:]}"
    )
    if "timings" in report:
        print(f"admin e2e {args or 'clean'}: {json.dumps(report['timings'])}")
    return report


def check_saved_home(server: ServerProcess, photos: Path, report: dict[str, Any]) -> None:
    """What the page saved is what the API has: 30 processed images, in order, captioned."""
    assert report["all_bars_reached_100"], report
    assert report["saved_cards"] == PHOTOS
    assert report["version"] == 2  # created at 1, one finalize
    assert report["unlabelled_controls"] == []
    assert report["horizontal_overflow_px"] == 0  # usable on a phone: no sideways scrolling
    assert not [e for e in report["console_errors"] if "Uncaught" in e or "TypeError" in e]
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as api:
        home = api.get(f"/api/homes/{report['home_id']}").raise_for_status().json()
        images = home["galleries"][GALLERY]
        assert [image["caption"] for image in images] == [
            f"photo {n:02d}" for n in range(1, PHOTOS + 1)
        ]
        # make_photo writes EXIF orientation 6: the pipeline turned the 1600x1200 frames upright.
        assert {(image["width"], image["height"]) for image in images} == {(1200, 1600)}
        assert len({image["upload_id"] for image in images}) == PHOTOS
        media = api.get(images[0]["thumbnail_url"])
        assert media.status_code == 200 and media.headers["content-type"].startswith("image/")
    assert sum(p.stat().st_size for p in photos.iterdir()) > PHOTOS * 100 * KiB


def test_upload_thirty_photos_on_a_clean_link(server: ServerProcess, photos: Path) -> None:
    shot = ARTIFACTS / "admin-upload.png"
    shot.unlink(missing_ok=True)
    report = drive(server.url, server, photos, *THROTTLE, "--screenshot", str(shot))
    check_saved_home(server, photos, report)
    assert report["console_errors"] == []  # on a clean link nothing at all goes wrong
    assert report["screenshot"] and shot.read_bytes().startswith(b"\x89PNG")


def test_flaky_link_needs_no_user_action(
    server: ServerProcess, photos: Path, flaky: FlakyProxy
) -> None:
    # Half the connections die at a random point of their upload bytes; a fifth freeze for longer
    # than the uploader's stall watchdog waits. Page, API and tus all go through the same link.
    steady = Knobs(
        cut_probability=0.5,
        cut_after_bytes=(16 * KiB, 600 * KiB),
        stall_probability=0.2,
        stall_after_bytes=(8 * KiB, 600 * KiB),
        stall_seconds=4.0,
    )
    # Chromium keeps a handful of connections alive for the whole run, and a connection's fate is
    # drawn once: at one half, a run could see too few cuts to prove anything. So every connection
    # is doomed until the link has shown enough trouble, then the link settles to the mix above.
    flaky.knobs = replace(steady, cut_probability=1.0, stall_probability=0.5)
    enough = threading.Event()

    def settle_when_proven() -> None:
        while not enough.wait(0.05):
            if flaky.cuts >= 6 and flaky.stalls >= 2:
                flaky.knobs = steady
                return

    watcher = threading.Thread(target=settle_when_proven, daemon=True)
    watcher.start()
    base = f"http://127.0.0.1:{flaky.port}"
    try:
        report = drive(base, server, photos, "--stall-ms", "2500", "--timeout-ms", "150000")
    finally:
        enough.set()
        watcher.join()
    check_saved_home(server, photos, report)
    assert flaky.cuts >= 6, f"the proxy cut only {flaky.cuts} connections"
    assert flaky.stalls >= 2
    states = set(report["states_seen"])
    assert states & {"retrying", "stalled"}, f"no trouble seen by the page: {states}"
    print(f"flaky link: {flaky.connections} connections, {flaky.cuts} cuts, {flaky.stalls} stalls")


def test_reload_mid_upload_resumes_without_resending(
    server: ServerProcess, photos: Path, flaky: FlakyProxy
) -> None:
    # A pass-through proxy throttles nothing; it only counts what the browser sends.
    flaky.knobs = Knobs(enabled=False)
    base = f"http://127.0.0.1:{flaky.port}"
    report = drive(base, server, photos, *THROTTLE, "--reload-at", "0.35")
    check_saved_home(server, photos, report)
    reload = report["reload"]
    assert reload["draft_photos"] == PHOTOS  # every picked photo survived the reload
    assert reload["at_fraction"] < 0.9 and reload["unfinished_uploads"] > 0, reload
    assert 0 < reload["missing_bytes"] < sum(p.stat().st_size for p in photos.iterdir())
    resent = reload["patch_body_bytes"] - reload["missing_bytes"]
    print(
        f"reload at {reload['at_fraction']:.2f}: missing {reload['missing_bytes']} B, "
        f"sent {reload['patch_body_bytes']} B, re-sent {resent} B"
    )
    assert resent >= 0, reload
    # At most the chunk each running upload had on the wire is sent again.
    assert resent <= CONCURRENCY * CHUNK, reload
    total = sum(p.stat().st_size for p in photos.iterdir())
    assert flaky.bytes_up >= total  # every byte went through the proxy at least once
    # Beyond the photos: request headers and bodies of the page, API and tus (no re-sent body).
    print(f"proxy: {flaky.bytes_up - total} B up beyond the {total} B of photos")


def test_troubles_are_explained_and_every_home_is_reachable(
    server: ServerProcess, tmp_path: Path
) -> None:
    for n in range(2):
        make_photo(tmp_path / f"IMG_{n + 1:04d}.jpg", 800, 600, seed=n)
    (tmp_path / "notes.jpg").write_text("not a photo, only named like one\n" * 200)
    report = drive(server.url, server, tmp_path, "--scenario", "troubles")
    # Paging: two homes a page, more homes than that; "Load more" reaches each exactly once.
    assert report["homes_total"] > report["homes_first_page"] == 2
    assert report["homes_listed"] == report["homes_total"]
    assert report["homes_all_listed"] and report["homes_listed_once"]
    assert report["load_more_clicks"] >= report["homes_total"] // 2
    # A file that is no image: the server's reason, and Save waits for its removal.
    assert report["failed_name"] == "notes.jpg"
    assert report["failed_status"].startswith("Failed: ")
    assert "connection" not in report["failed_status"]  # the server's reason, not a guess
    assert "did not upload" in report["blocked_message"]
    # Conflict 1: the admin renamed, another admin changed the description. Reload keeps the
    # name typed here (marked, with the saved one shown) and takes the other description.
    first = report["first"]
    assert "Someone else saved this home" in first["conflict_message"]
    assert first["name"] == "Renamed in the browser"
    assert first["description"] == "Changed elsewhere"
    assert first["kept_notes"] == [f'Your edit, kept. Saved version: "{report["home_name"]}"']
    assert "Kept your changes: name." in first["reload_message"]
    assert "Took the other changes: description." in first["reload_message"]
    # Conflict 2, on saved photos: each admin recaptioned a different one; both captions stay.
    second = report["second"]
    assert second["captions"] == ["Mine, typed in the browser", "Theirs, saved elsewhere"]
    assert "Kept your changes: 1 caption(s)." in second["reload_message"]
    assert "Took the other changes: 1 caption(s)." in second["reload_message"]
    assert second["kept_notes"] == ["Your caption, kept over the saved one"]
    assert second["name"] == "Renamed in the browser"
    # created, other save, ours, other save, ours
    assert report["version"] == 5
    with httpx.Client(base_url=server.url, headers=server.auth, timeout=30) as api:
        home = api.get(f"/api/homes/{report['home_id']}").raise_for_status().json()
    assert home["name"] == "Renamed in the browser"
    assert home["description"] == "Changed elsewhere"
    assert [image["caption"] for image in home["galleries"][GALLERY]] == [
        "Mine, typed in the browser",
        "Theirs, saved elsewhere",
    ]
