"""The tus 1.0.0 protocol over real HTTP, on SQLite and PostgreSQL: every status the contract
names, each extension, and bad input that must store nothing."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zlib
from pathlib import Path

import httpx
import pytest

from tests.conftest import data_dir_of
from tests.support.server import REPO, ServerProcess
from tests.support.tus import OCTET, TUS, create, encode_metadata, head, offset_of, patch, upload


def stored_uploads(server: ServerProcess) -> set[str]:
    return set(os.listdir(data_dir_of(server) / "uploads"))


def b64digest(algorithm: str, data: bytes) -> str:
    if algorithm == "crc32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    else:
        digest = hashlib.new(algorithm, data).digest()
    return base64.b64encode(digest).decode()


# -- discovery and authentication ---------------------------------------------------------


def test_options_advertises_what_works(client: httpx.Client) -> None:
    response = client.options("/files/")
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert response.headers["Tus-Resumable"] == "1.0.0"
    extensions = set(response.headers["Tus-Extension"].split(","))
    assert extensions == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
    }
    assert int(response.headers["Tus-Max-Size"]) == 50 * 1024 * 1024
    assert set(response.headers["Tus-Checksum-Algorithm"].split(",")) >= {
        "sha1",
        "sha256",
        "md5",
        "crc32",
    }


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic abc", "Bearer"])
def test_missing_or_bad_token_is_401(server: ServerProcess, authorization: str | None) -> None:
    headers = {**TUS, "Upload-Length": "10"}
    if authorization is not None:
        headers["Authorization"] = authorization
    before = stored_uploads(server)
    response = httpx.post(f"{server.url}/files/", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "unauthorized"
    assert stored_uploads(server) == before


def test_tokens_from_the_cli_and_ownership(server: ServerProcess, client: httpx.Client) -> None:
    env = {**os.environ, **server.env}
    made = subprocess.run(
        [sys.executable, "-m", "server.cli", "token", "create", f"agent-{os.getpid()}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = made.stdout.strip()
    other = httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"})
    with other:
        url = upload(other, b"belongs to the agent")
        assert other.get(url).content == b"belongs to the agent"
        # The admin principal does not see the agent's upload, and vice versa.
        assert head(client, url).status_code == 404
        assert patch(client, url, 0, b"x").status_code == 404
        assert client.delete(url, headers=TUS).status_code == 404
        assert client.get(url).status_code == 404
        mine = upload(client, b"admin's")
        assert head(other, mine).status_code == 404
        revoked = subprocess.run(
            [sys.executable, "-m", "server.cli", "token", "revoke", f"agent-{os.getpid()}"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        assert revoked.returncode == 0


# -- creation -----------------------------------------------------------------------------


def test_create_then_head_echoes_everything(client: httpx.Client) -> None:
    metadata = {"filename": "façade.jpg", "filetype": "image/jpeg", "home_id": "7", "gallery": "x"}
    url = create(client, 1234, metadata)
    assert url.startswith(str(client.base_url) + "/files/")
    response = head(client, url)
    assert response.status_code == 200
    assert response.headers["Upload-Offset"] == "0"
    assert response.headers["Upload-Length"] == "1234"
    assert response.headers["Upload-Metadata"] == encode_metadata(metadata)
    assert response.headers["Cache-Control"] == "no-store"
    assert "GMT" in response.headers["Upload-Expires"]
    assert response.content == b""


def test_metadata_is_optional(client: httpx.Client) -> None:
    url = upload(client, b"no metadata at all")
    response = head(client, url)
    assert "Upload-Metadata" not in response.headers
    assert client.get(url).content == b"no metadata at all"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Upload-Length": "10", "Upload-Metadata": "filetype dGV4dC9odG1s"}, 415, None),
        ({"Upload-Length": "10", "Upload-Metadata": "filetype aW1hZ2Uvc3ZnK3htbA=="}, 415, None),
        ({"Upload-Length": str(50 * 1024 * 1024 + 1)}, 413, None),
        ({"Upload-Length": "10", "Upload-Metadata": "filename not-base64!"}, 400, None),
        ({"Upload-Length": "10", "Upload-Metadata": "a aGk=,a aGk="}, 400, None),
        ({"Upload-Length": "10", "Upload-Metadata": "bad key aGk="}, 400, None),
        ({"Upload-Length": "10", "Upload-Metadata": "x " + "QUFB" * 2000}, 400, None),
        ({"Upload-Length": "10", "Upload-Metadata": "filename /w=="}, 400, None),
        ({}, 400, None),
        ({"Upload-Length": "10", "Upload-Defer-Length": "1"}, 400, None),
        ({"Upload-Length": "-1"}, 400, None),
        ({"Upload-Length": "ten"}, 400, None),
        ({"Upload-Defer-Length": "2"}, 400, None),
        ({"Upload-Length": "10", "Tus-Resumable": "0.2.2"}, 412, None),
    ],
)
def test_creation_refuses_before_storing_anything(
    server: ServerProcess,
    client: httpx.Client,
    headers: dict[str, str],
    status: int,
    code: str | None,
) -> None:
    before = stored_uploads(server)
    response = client.post("/files/", headers={**TUS, **headers})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] and body["detail"]
    if status == 412:
        assert response.headers["Tus-Version"] == "1.0.0"
    assert stored_uploads(server) == before


def test_allowed_filetype_is_accepted(client: httpx.Client) -> None:
    for filetype in ("image/jpeg", "image/png", "image/webp"):
        create(client, 10, {"filetype": filetype})


def test_creation_with_upload(client: httpx.Client) -> None:
    data = b"first bytes travel with the POST"
    response = client.post(
        "/files/",
        content=data[:10],
        headers={**TUS, **OCTET, "Upload-Length": str(len(data))},
    )
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "10"
    url = response.headers["Location"]
    assert patch(client, url, 10, data[10:]).status_code == 204
    assert client.get(url).content == data


def test_creation_with_upload_checksum_mismatch_stores_nothing(
    server: ServerProcess, client: httpx.Client
) -> None:
    before = stored_uploads(server)
    response = client.post(
        "/files/",
        content=b"hello",
        headers={
            **TUS,
            **OCTET,
            "Upload-Length": "5",
            "Upload-Checksum": "sha1 " + b64digest("sha1", b"other"),
        },
    )
    assert response.status_code == 460
    assert stored_uploads(server) == before


def test_creation_with_body_but_wrong_content_type_is_415(client: httpx.Client) -> None:
    response = client.post(
        "/files/",
        content=b"hello",
        headers={**TUS, "Upload-Length": "5", "Content-Type": "text/plain"},
    )
    assert response.status_code == 415


def test_location_follows_the_host_header_and_ignores_forwarded(client: httpx.Client) -> None:
    response = client.post(
        "/files/",
        headers={
            **TUS,
            "Upload-Length": "1",
            "Host": "uploads.example:8443",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "evil.example",
            "Forwarded": "proto=https;host=evil.example",
        },
    )
    assert response.status_code == 201
    assert response.headers["Location"].startswith("http://uploads.example:8443/files/")


# -- PATCH --------------------------------------------------------------------------------


def test_patch_in_chunks_and_download(client: httpx.Client) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    url = upload(client, data, chunk=1024 * 1024)
    assert offset_of(client, url) == len(data)
    response = client.get(url)
    assert response.status_code == 200
    assert hashlib.sha256(response.content).digest() == hashlib.sha256(data).digest()
    assert "Upload-Expires" not in head(client, url).headers


def test_patch_status_codes(client: httpx.Client) -> None:
    url = create(client, 10)
    assert patch(client, url, 0, b"12345").status_code == 204
    # Wrong offset: 409 with the real offset, nothing stored.
    response = patch(client, url, 3, b"xx")
    assert response.status_code == 409
    assert response.json()["error"] == "offset_mismatch"
    assert response.headers["Upload-Offset"] == "5"
    # Replayed chunk at an old offset (what Chromium does after a cut keep-alive): clean 409.
    assert patch(client, url, 0, b"12345").status_code == 409
    # Wrong content type.
    response = client.patch(
        url, content=b"xx", headers={**TUS, "Upload-Offset": "5", "Content-Type": "text/plain"}
    )
    assert response.status_code == 415
    # Wrong or missing Tus-Resumable.
    response = client.patch(url, content=b"xx", headers={**OCTET, "Upload-Offset": "5"})
    assert response.status_code == 412
    # Missing or malformed offset.
    response = client.patch(url, content=b"xx", headers={**TUS, **OCTET})
    assert response.status_code == 400
    assert patch(client, url, 0, b"", Upload_Offset="-5").status_code == 400
    # A body longer than what remains: 413, and nothing of it kept.
    response = patch(client, url, 5, b"123456")
    assert response.status_code == 413
    assert offset_of(client, url) == 5
    assert patch(client, url, 5, b"67890").status_code == 204
    assert client.get(url).content == b"1234567890"
    # Complete: another byte is past the length.
    assert patch(client, url, 10, b"x").status_code == 413


def test_chunked_body_past_the_length_leaves_bytes_as_they_were(client: httpx.Client) -> None:
    url = create(client, 100_000)
    assert patch(client, url, 0, b"a" * 1000).status_code == 204

    def body():  # no Content-Length: the server finds out while streaming
        for _ in range(20):
            yield b"b" * 10_000

    response = client.patch(url, content=body(), headers={**TUS, **OCTET, "Upload-Offset": "1000"})
    assert response.status_code == 413
    assert offset_of(client, url) == 1000
    assert client.get(url).content == b"a" * 1000


@pytest.mark.parametrize(
    "bad_id",
    ["nope", "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "0" * 31 + "g", "A" * 32, "0" * 33],
)
def test_ids_that_are_not_ours_are_404(client: httpx.Client, bad_id: str) -> None:
    url = f"/files/{bad_id}"
    assert head(client, url).status_code == 404
    assert patch(client, url, 0, b"x").status_code == 404
    assert client.get(url).status_code == 404
    assert client.delete(url, headers=TUS).status_code == 404


def test_unknown_upload_is_404(client: httpx.Client) -> None:
    url = "/files/" + "0" * 32
    assert head(client, url).status_code == 404
    response = patch(client, url, 0, b"x")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "md5", "crc32"])
def test_checksum_good_and_bad(client: httpx.Client, algorithm: str) -> None:
    url = create(client, 8)
    good = patch(
        client, url, 0, b"abcd", Upload_Checksum=f"{algorithm} {b64digest(algorithm, b'abcd')}"
    )
    assert good.status_code == 204
    bad = patch(
        client, url, 4, b"efgh", Upload_Checksum=f"{algorithm} {b64digest(algorithm, b'xxxx')}"
    )
    assert bad.status_code == 460
    assert bad.json()["error"] == "checksum_mismatch"
    assert offset_of(client, url) == 4
    assert client.get(url).content == b"abcd"


def test_checksum_header_errors(client: httpx.Client) -> None:
    url = create(client, 8)
    assert patch(client, url, 0, b"abcd", Upload_Checksum="sha512 AAAA").status_code == 400
    assert patch(client, url, 0, b"abcd", Upload_Checksum="sha1 !!!").status_code == 400
    assert patch(client, url, 0, b"abcd", Upload_Checksum="sha1 AAAA").status_code == 400
    assert offset_of(client, url) == 0


def test_defer_length(client: httpx.Client) -> None:
    url = create(client, None)
    response = head(client, url)
    assert response.headers["Upload-Defer-Length"] == "1"
    assert "Upload-Length" not in response.headers
    assert patch(client, url, 0, b"hello ").status_code == 204
    # The length arrives with a later PATCH; it cannot be below the offset nor change.
    assert patch(client, url, 6, b"", Upload_Length="3").status_code == 400
    assert patch(client, url, 6, b"world", Upload_Length="11").status_code == 204
    assert patch(client, url, 11, b"", Upload_Length="12").status_code == 400
    response = head(client, url)
    assert response.headers["Upload-Length"] == "11"
    assert client.get(url).content == b"hello world"


def test_defer_length_respects_the_size_limit(client: httpx.Client) -> None:
    url = create(client, None)
    assert patch(client, url, 0, b"x", Upload_Length=str(50 * 1024 * 1024 + 1)).status_code == 413
    assert offset_of(client, url) == 0


# -- termination, concatenation, method override ------------------------------------------


def test_delete_then_404(server: ServerProcess, client: httpx.Client) -> None:
    url = upload(client, b"to be deleted")
    upload_id = url.rsplit("/", 1)[1]
    assert upload_id in stored_uploads(server)
    assert client.delete(url, headers=TUS).status_code == 204
    assert head(client, url).status_code == 404
    assert patch(client, url, 0, b"x").status_code == 404
    assert upload_id not in stored_uploads(server)


def test_concatenation(client: httpx.Client) -> None:
    first = create(client, 5, Upload_Concat="partial")
    second = create(client, 6, Upload_Concat="partial")
    assert head(client, first).headers["Upload-Concat"] == "partial"
    assert patch(client, second, 0, b" world").status_code == 204
    # A part that is not complete cannot be concatenated yet.
    response = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{first} {second}"})
    assert response.status_code == 400
    assert patch(client, first, 0, b"hello").status_code == 204
    response = client.post("/files/", headers={**TUS, "Upload-Concat": f"final;{first} {second}"})
    assert response.status_code == 201, response.text
    final = response.headers["Location"]
    info = head(client, final)
    assert info.headers["Upload-Length"] == "11"
    assert info.headers["Upload-Offset"] == "11"
    assert info.headers["Upload-Concat"].startswith("final;")
    assert client.get(final).content == b"hello world"
    assert patch(client, final, 11, b"!").status_code == 403
    # Bad final requests.
    for header in ("final;", "final;/files/nope", f"final;{final}", "whole"):
        response = client.post("/files/", headers={**TUS, "Upload-Concat": header})
        assert response.status_code == 400, header
    response = client.post(
        "/files/", headers={**TUS, "Upload-Concat": f"final;{first}", "Upload-Length": "5"}
    )
    assert response.status_code == 400


def test_method_override(client: httpx.Client) -> None:
    url = create(client, 4)
    response = client.post(
        url,
        content=b"abcd",
        headers={**TUS, **OCTET, "Upload-Offset": "0", "X-HTTP-Method-Override": "PATCH"},
    )
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "4"
    response = client.post(url, headers={**TUS, "X-HTTP-Method-Override": "DELETE"})
    assert response.status_code == 204
    assert head(client, url).status_code == 404


def test_methods_not_allowed(client: httpx.Client) -> None:
    assert client.put("/files/", headers=TUS).status_code == 405
    url = create(client, 1)
    assert client.put(url, headers=TUS).status_code == 405


def test_download_streams_partial_bytes(client: httpx.Client) -> None:
    url = create(client, 10, {"filename": "half.bin"})
    assert patch(client, url, 0, b"12345").status_code == 204
    response = client.get(url)
    assert response.content == b"12345"
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert "half.bin" in response.headers["Content-Disposition"]


def test_health(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/api/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_route_is_json_404(server: ServerProcess) -> None:
    response = httpx.get(f"{server.url}/api/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_uploads_dir_holds_only_real_uploads(server: ServerProcess) -> None:
    for name in stored_uploads(server):
        assert len(name) == 32 and all(c in "0123456789abcdef" for c in name)
    assert Path(data_dir_of(server) / "uploads").is_dir()
