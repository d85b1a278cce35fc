"""Real tus clients, unmodified, against the real server on SQLite and PostgreSQL.

tuspy (Python) and tus-js-client (Node, tests/clients) upload files; every stored file is read
back with GET /files/{id} and its sha256 compared with the source. Interruptions are real: the
flaky proxy (tests/support/flaky_proxy.py) resets TCP connections mid-body and freezes others,
and the tests check its counters so they cannot pass on a link that never failed.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.storage.filestorage import FileStorage

from tests.support.flaky_proxy import FlakyProxy, KiB, Knobs, MiB
from tests.support.server import ServerProcess
from tests.support.tus import decode_metadata, head, offset_of, stored_sha256
from tests.support.tus_js import run_tus_js

TUSPY_CHUNK = 256 * KiB


def write_source(path: Path, size: int, seed: int) -> Path:
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_stored(client: httpx.Client, url: str, source: Path) -> None:
    """The upload is complete and its stored bytes are the source's, byte for byte."""
    response = head(client, path_of(url))
    size = source.stat().st_size
    assert response.status_code == 200
    assert response.headers["Upload-Offset"] == response.headers["Upload-Length"] == str(size)
    assert stored_sha256(client, url) == sha256_of(source)


def path_of(url: str) -> str:
    """An upload URL made through a proxy, as a path on the server the test client talks to."""
    return urlsplit(url).path


def endpoint(port: int) -> str:
    return f"http://127.0.0.1:{port}/files/"


# -- tuspy ---------------------------------------------------------------------------------------

# Empty, tiny, exactly one chunk, and sizes that end in a partial chunk.
TUSPY_SIZES = [0, 1, 1000, TUSPY_CHUNK, 3 * TUSPY_CHUNK + 12_345, 2 * MiB + 7]


def test_tuspy_uploads_are_byte_exact_with_metadata(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    tus = TusClient(endpoint(server.port), headers=server.auth)
    for n, size in enumerate(TUSPY_SIZES):
        name = f"façade {n}.jpg"  # non-ASCII and a space: metadata values are base64 for a reason
        source = write_source(tmp_path / f"file-{n}", size, seed=n)
        metadata = {"filename": name, "filetype": "image/jpeg"}
        uploader = tus.uploader(str(source), chunk_size=TUSPY_CHUNK, metadata=metadata)
        uploader.upload()
        assert uploader.offset == size
        assert_stored(client, uploader.url, source)
        stored = head(client, path_of(uploader.url)).headers["Upload-Metadata"]
        assert decode_metadata(stored) == metadata


def test_tuspy_resumes_a_cut_upload_from_the_server_offset(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    size = 3 * MiB + 4321
    source = write_source(tmp_path / "photo.jpg", size, seed=99)
    urls = FileStorage(str(tmp_path / "tus-urls.json"))  # tuspy's own resume store
    # Every connection is doomed, but only a body gets this far: the link drops mid-PATCH.
    knobs = Knobs(cut_probability=1.0, cut_after_bytes=(700 * KiB, 1200 * KiB))
    with FlakyProxy(("127.0.0.1", server.port), seed=5, knobs=knobs) as proxy:
        tus = TusClient(endpoint(proxy.port), headers=server.auth)
        first = tus.uploader(
            str(source), chunk_size=2 * MiB, store_url=True, url_storage=urls,
            metadata={"filename": "photo.jpg"},
        )  # fmt: skip
        with pytest.raises(TusCommunicationError):
            first.upload()
        assert proxy.cuts == 1
        kept = offset_of(client, path_of(first.url))
        # The cut body's bytes that arrived were kept: not zero, not a chunk boundary.
        assert 0 < kept < 2 * MiB

        proxy.knobs.cut_probability = 0.0
        second = tus.uploader(str(source), chunk_size=2 * MiB, store_url=True, url_storage=urls)
        assert second.url == first.url
        assert second.offset == kept  # asked the server, did not start over
        second.upload()
        assert proxy.cuts == 1
    assert size < proxy.bytes_up < 2 * size
    assert_stored(client, second.url, source)


# -- tus-js-client -------------------------------------------------------------------------------

JS_FILES = 30
JS_CHUNK = 1 * MiB
JS_RETRY_DELAYS = [0, 100, 250, 500, 1000, 2000]


def js_sources(directory: Path, count: int, seed: int) -> list[Path]:
    rng = random.Random(seed)
    return [
        write_source(directory / f"img-{n:02d}.jpg", rng.randint(2 * MiB, 4 * MiB), seed * 1000 + n)
        for n in range(count)
    ]


def test_tus_js_client_uploads_30_files_through_a_flaky_link(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    sources = js_sources(tmp_path, JS_FILES, seed=1)
    # Node keeps connections alive across requests and the proxy draws a fate per connection, so
    # every connection dies after a random byte count: at least one cut per 4 MiB sent, whatever
    # the timing. Stalls freeze some of them (both directions) for a second first.
    knobs = Knobs(
        cut_probability=1.0,
        cut_after_bytes=(1 * KiB, 4 * MiB),
        stall_probability=0.4,
        stall_after_bytes=(0, 512 * KiB),
        stall_seconds=1.0,
    )
    with FlakyProxy(("127.0.0.1", server.port), seed=11, knobs=knobs) as proxy:
        run = run_tus_js(
            endpoint(proxy.port),
            server.token,
            sources,
            chunk_size=JS_CHUNK,
            retry_delays=JS_RETRY_DELAYS,
            filetype="image/jpeg",
        )
    assert run.returncode == 0, run.stderr
    # The link really failed, and the client really saw it fail.
    retries = sum(u["retries"] for u in run.uploads)
    assert proxy.cuts >= 10 and proxy.stalls >= 3 and retries >= 10, (
        proxy.cuts, proxy.stalls, retries
    )  # fmt: skip
    assert 0 in {status for u in run.uploads for status in u["retry_statuses"]}
    # A cut costs the client a HEAD, not the chunk: the server kept every byte that got through.
    assert proxy.bytes_up < 1.25 * sum(s.stat().st_size for s in sources)
    assert [u["file"] for u in run.uploads] == [str(s) for s in sources]
    for upload, source in zip(run.uploads, sources, strict=True):
        assert upload["ok"], upload
        assert_stored(client, upload["url"], source)


def test_tus_js_client_resumes_aborted_uploads_from_the_server_offset(
    server: ServerProcess, client: httpx.Client, tmp_path: Path
) -> None:
    sources = js_sources(tmp_path, 3, seed=2)
    total = sum(s.stat().st_size for s in sources)
    with FlakyProxy(("127.0.0.1", server.port), seed=3) as proxy:  # a clean link, for its count
        aborted = run_tus_js(
            endpoint(proxy.port), server.token, sources,
            chunk_size=512 * KiB, retry_delays=JS_RETRY_DELAYS, abort_after_bytes=1 * MiB,
        )  # fmt: skip
        assert aborted.returncode == 0, aborted.stderr
        assert all(u["aborted"] and u["offset"] == 1 * MiB for u in aborted.uploads)
        first_run = tmp_path / "first-run.json"
        first_run.write_text(json.dumps(aborted.report))

        resumed = run_tus_js(
            endpoint(proxy.port), server.token, sources,
            chunk_size=512 * KiB, retry_delays=JS_RETRY_DELAYS, resume=first_run,
        )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert [u["url"] for u in resumed.uploads] == [u["url"] for u in aborted.uploads]
    # Nothing sent twice: the resumed run started where the server was, not from byte 0.
    assert total < proxy.bytes_up < total + 256 * KiB  # the excess is request headers
    for upload, source in zip(resumed.uploads, sources, strict=True):
        assert upload["ok"], upload
        assert_stored(client, upload["url"], source)
