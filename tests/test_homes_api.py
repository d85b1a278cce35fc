"""Homes REST API over real HTTP, on SQLite and PostgreSQL: CRUD, auth, JSON errors, uploads."""

from __future__ import annotations

import httpx
import pytest

from tests.support.homes import (
    add_principal,
    create_home,
    create_upload,
    patch,
    small_jpeg,
    tus_upload,
    upload_status,
    wait_processed,
)
from tests.support.server import ServerProcess


def test_health_answers_without_a_token(server: ServerProcess) -> None:
    res = httpx.get(f"{server.url}/api/health")
    assert res.status_code == 200
    assert res.json() == {"status": "ok"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/homes"),
        ("POST", "/api/homes"),
        ("GET", "/api/homes/abc"),
        ("DELETE", "/api/homes/abc"),
        ("POST", "/api/homes/abc/finalize"),
        ("GET", "/api/uploads/abc"),
    ],
)
def test_api_needs_a_bearer_token(server: ServerProcess, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        res = httpx.request(method, server.url + path, headers=headers, json={"name": "x"})
        assert res.status_code == 401, (headers, res.text)
        assert res.headers["www-authenticate"].startswith("Bearer")
        assert res.json()["error"] == "unauthorized"


def test_create_read_list_delete(client: httpx.Client) -> None:
    res = client.post(
        "/api/homes", json={"name": "  Seaside ", "address": "1 Beach Rd", "description": "sun"}
    )
    assert res.status_code == 201, res.text
    home = res.json()
    assert res.headers["location"] == f"/api/homes/{home['id']}"
    assert home["name"] == "Seaside"
    assert (home["address"], home["description"], home["version"]) == ("1 Beach Rd", "sun", 1)
    assert home["galleries"] == {}

    assert client.get(f"/api/homes/{home['id']}").json() == home
    listed = client.get("/api/homes", params={"limit": 200}).json()
    assert home["id"] in [h["id"] for h in listed["homes"]]

    assert client.delete(f"/api/homes/{home['id']}").status_code == 204
    for res in (client.get(f"/api/homes/{home['id']}"), client.delete(f"/api/homes/{home['id']}")):
        assert res.status_code == 404
        assert res.json()["error"] == "home_not_found"


def test_list_pages(client: httpx.Client) -> None:
    ids = [create_home(client, f"page {n}")["id"] for n in range(3)]
    everything = [h["id"] for h in client.get("/api/homes", params={"limit": 200}).json()["homes"]]
    start = everything.index(ids[0])
    page = client.get("/api/homes", params={"limit": 2, "offset": start + 1}).json()
    assert [h["id"] for h in page["homes"]] == ids[1:3]
    for bad in ({"limit": "x"}, {"limit": "201"}, {"offset": "-1"}):
        res = client.get("/api/homes", params=bad)
        assert res.status_code == 400, bad
        assert res.json()["error"] == "invalid_query"


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (b"", 400, "invalid_json"),
        (b"{not json", 400, "invalid_json"),
        (b"\xff\xfe", 400, "invalid_json"),
        (b"[]", 422, "invalid_body"),
        (b'{"address": "no name"}', 422, "invalid_body"),
        (b'{"name": ""}', 422, "invalid_body"),
        (b'{"name": 5}', 422, "invalid_body"),
        (b'{"name": "x", "colour": "red"}', 422, "invalid_body"),
        (b'{"name": "' + b"x" * 201 + b'"}', 422, "invalid_body"),
    ],
)
def test_bad_create_bodies(client: httpx.Client, content: bytes, status: int, code: str) -> None:
    res = client.post("/api/homes", content=content, headers={"content-type": "application/json"})
    assert res.status_code == status, res.text
    body = res.json()
    assert body["error"] == code
    assert body["detail"]
    if status == 422:
        assert body["problems"] and all("path" in p and "message" in p for p in body["problems"])


def test_upload_status_through_its_life(client: httpx.Client) -> None:
    data = small_jpeg(1)
    upload_id = create_upload(client, len(data))
    assert upload_status(client, upload_id) == {
        "id": upload_id,
        "status": "receiving",
        "offset": 0,
        "length": len(data),
    }
    assert patch(client, upload_id, 0, data[:10]).status_code == 204
    assert upload_status(client, upload_id)["offset"] == 10
    assert patch(client, upload_id, 10, data[10:]).status_code == 204
    status = wait_processed(client, [upload_id])[upload_id]
    assert status["status"] == "ready"
    assert status["offset"] == status["length"] == len(data)
    image = status["image"]
    assert (image["width"], image["height"], image["content_type"]) == (64, 48, "image/jpeg")
    thumb = client.get(image["thumbnail_url"])
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"


def test_upload_status_is_owner_only(
    server: ServerProcess, client: httpx.Client, database_url: str
) -> None:
    upload_id = tus_upload(client, small_jpeg(2))
    add_principal(database_url, "bob-status", "bob-status-token")
    bob = {"Authorization": "Bearer bob-status-token"}
    for path in (f"/api/uploads/{upload_id}", "/api/uploads/does-not-exist"):
        res = httpx.get(server.url + path, headers=bob)
        assert res.status_code == 404
        assert res.json()["error"] == "upload_not_found"
    assert client.get("/api/uploads/does-not-exist").status_code == 404


def test_media_unknown_key_is_json_404(client: httpx.Client) -> None:
    for path in ("/media/nothing/1/display.jpg", "/media/../etc/passwd", "/media/"):
        res = client.get(path)
        assert res.status_code == 404, path
        assert res.json()["error"] in ("media_not_found", "not_found")
