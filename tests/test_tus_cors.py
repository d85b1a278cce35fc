"""CORS for browser clients on another origin, and forwarded headers when trusted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess, server_env
from tests.support.tus import OCTET, TUS, create, patch

ORIGIN = "https://admin.example"
MUST_EXPOSE = {
    "location",
    "upload-offset",
    "upload-length",
    "upload-metadata",
    "upload-expires",
    "upload-defer-length",
    "upload-concat",
    "tus-resumable",
    "tus-version",
    "tus-extension",
    "tus-max-size",
}


@pytest.fixture(scope="module")
def cors_server(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("cors")
    env = server_env(
        database_url,
        data,
        {
            "TUSGALLERY_CORS_ORIGINS": f"{ORIGIN},https://other.example",
            "TUSGALLERY_TRUST_FORWARDED": "1",
        },
    )
    with ServerProcess(env, log_path=data / "server.log") as proc:
        yield proc


def assert_cors(response: httpx.Response) -> None:
    assert response.headers.get("access-control-allow-origin") == ORIGIN, dict(response.headers)
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert exposed >= MUST_EXPOSE


def test_preflight_needs_no_token(cors_server: ServerProcess) -> None:
    response = httpx.options(
        f"{cors_server.url}/files/",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization,tus-resumable,upload-offset",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "PATCH" in response.headers["access-control-allow-methods"]
    assert "upload-offset" in response.headers["access-control-allow-headers"].lower()


def test_unknown_origin_gets_no_cors(cors_server: ServerProcess) -> None:
    response = httpx.post(
        f"{cors_server.url}/files/",
        headers={**TUS, "Origin": "https://evil.example", "Upload-Length": "1", **cors_server.auth},
    )
    assert "access-control-allow-origin" not in response.headers


def test_every_answer_carries_cors_errors_included(cors_server: ServerProcess) -> None:
    headers = {"Origin": ORIGIN}
    with httpx.Client(base_url=cors_server.url, headers={**cors_server.auth, **headers}) as client:
        response = client.post("/files/", headers={**TUS, "Upload-Length": "4"})
        assert response.status_code == 201
        assert_cors(response)
        url = response.headers["Location"]
        ok = patch(client, url, 0, b"ab")
        assert ok.status_code == 204
        assert_cors(ok)
        conflict = patch(client, url, 0, b"ab")
        assert conflict.status_code == 409
        assert_cors(conflict)
        assert_cors(client.head(url, headers=TUS))
        assert_cors(patch(client, url, 2, b"abcdef"))  # 413
    unauthorized = httpx.patch(
        url, content=b"x", headers={**headers, **TUS, **OCTET, "Upload-Offset": "2"}
    )
    assert unauthorized.status_code == 401
    assert_cors(unauthorized)


def test_forwarded_headers_are_used_when_trusted(cors_server: ServerProcess) -> None:
    with httpx.Client(base_url=cors_server.url, headers=cors_server.auth) as client:
        response = client.post(
            "/files/",
            headers={
                **TUS,
                "Upload-Length": "1",
                "X-Forwarded-Proto": "https",
                "X-Forwarded-Host": "uploads.example.com",
            },
        )
        assert response.headers["Location"].startswith("https://uploads.example.com/files/")
        response = client.post(
            "/files/",
            headers={
                **TUS,
                "Upload-Length": "1",
                "Forwarded": 'for=1.2.3.4;proto=https;host="media.example"',
            },
        )
        assert response.headers["Location"].startswith("https://media.example/files/")
        # The URL it hands out is one the same client can use through the proxy's host.
        url = create(client, 1)
        assert url.startswith(cors_server.url)


def test_data_dir_untouched_by_rejected_requests(cors_server: ServerProcess) -> None:
    before = set((Path(cors_server.env["TUSGALLERY_DATA_DIR"]) / "uploads").iterdir())
    httpx.post(f"{cors_server.url}/files/", headers={**TUS, "Origin": ORIGIN, "Upload-Length": "1"})
    after = set((Path(cors_server.env["TUSGALLERY_DATA_DIR"]) / "uploads").iterdir())
    assert before == after
