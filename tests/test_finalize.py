"""Finalize over real HTTP on SQLite and PostgreSQL, local disk and S3: the happy path and every
error it promises."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.support.homes import (
    add_principal,
    create_home,
    create_upload,
    finalize,
    log_events,
    query,
    ready_uploads,
    small_jpeg,
    tus_upload,
    uploads_body,
    wait_processed,
)
from tests.support.server import ServerProcess

STORAGE_KINDS = ("local", "s3")


def gallery(home: dict[str, Any], name: str) -> list[dict[str, Any]]:
    images: list[dict[str, Any]] = home["galleries"][name]
    return images


def test_finalize_attaches_in_order_and_pins(client: httpx.Client, database_url: str) -> None:
    home = create_home(client)
    uploads = ready_uploads(client, 3, seed=10)
    body = {
        "expected_version": 1,
        "home": {"name": "Villa Sol", "description": "renovated"},
        "galleries": {
            "living-room": [
                {"upload_id": uploads[2], "caption": "sofa"},
                {"upload_id": uploads[0]},
            ],
            "garden": [{"upload_id": uploads[1]}],
        },
    }
    res = finalize(client, home["id"], body)
    assert res.status_code == 200, res.text
    done = res.json()
    assert done["version"] == 2
    assert (done["name"], done["description"], done["address"]) == ("Villa Sol", "renovated", "")
    living = gallery(done, "living-room")
    assert [i["upload_id"] for i in living] == [uploads[2], uploads[0]]
    assert [i["position"] for i in living] == [0, 1]
    assert [i["caption"] for i in living] == ["sofa", None]
    assert [i["upload_id"] for i in gallery(done, "garden")] == [uploads[1]]
    first = living[0]
    assert (first["width"], first["height"], first["content_type"]) == (64, 48, "image/jpeg")
    assert len(first["sha256"]) == 64 and first["size"] == len(small_jpeg(12))
    for image in (*living, *gallery(done, "garden")):
        for url in (image["url"], image["thumbnail_url"]):
            assert client.get(url).status_code == 200
    assert client.get(f"/api/homes/{home['id']}").json() == done

    pinned = query(database_url, "SELECT id FROM uploads WHERE pinned")
    assert set(uploads) <= {row[0] for row in pinned}
    # tus refuses to terminate an attached upload.
    res = client.delete(f"/files/{uploads[0]}", headers={"Tus-Resumable": "1.0.0"})
    assert res.status_code == 409
    assert res.json()["error"] == "upload_in_use"


def test_reorder_caption_move_detach(client: httpx.Client, database_url: str) -> None:
    home = create_home(client)
    a, b, c, d = ready_uploads(client, 4, seed=20)
    done = finalize(
        client,
        home["id"],
        {
            "galleries": {
                "kitchen": [{"upload_id": a, "caption": "oven"}, {"upload_id": b}],
                "bath": [{"upload_id": c}, {"upload_id": d}],
            }
        },
    ).json()
    ka, kb = gallery(done, "kitchen")
    bc, bd = gallery(done, "bath")

    # Only "kitchen" is named: bath keeps c, d; a is dropped (detached), b keeps its id and
    # gets a caption, d moves in from bath (bath closes the gap), a caption left out is kept.
    res = finalize(
        client,
        home["id"],
        {
            "expected_version": done["version"],
            "galleries": {
                "kitchen": [{"image_id": bd["id"]}, {"image_id": kb["id"], "caption": "sink"}]
            },
        },
    )
    assert res.status_code == 200, res.text
    after = res.json()
    assert after["version"] == done["version"] + 1
    kitchen = gallery(after, "kitchen")
    assert [i["id"] for i in kitchen] == [bd["id"], kb["id"]]
    assert [i["caption"] for i in kitchen] == [None, "sink"]
    assert [(i["id"], i["position"]) for i in gallery(after, "bath")] == [(bc["id"], 0)]
    assert kitchen[0]["url"] == bd["url"]

    # The detached image's files are gone after commit; the upload is unpinned and refused.
    for url in (ka["url"], ka["thumbnail_url"]):
        assert client.get(url).status_code == 404
    pinned = dict(query(database_url, "SELECT id, pinned FROM uploads WHERE id = :id", id=a))
    assert pinned[a] in (False, 0)
    status = client.get(f"/api/uploads/{a}").json()
    assert (status["status"], status["error_code"]) == ("failed", "detached")
    res = finalize(client, home["id"], uploads_body("kitchen", [a]))
    assert res.status_code == 422
    assert res.json()["uploads"] == [
        {"upload_id": a, "reason": "detached", "detail": status["error"]}
    ]

    # An empty list empties the gallery; resending an attached upload id keeps its image.
    res = finalize(client, home["id"], {"galleries": {"bath": [], "kitchen": [{"upload_id": b}]}})
    assert res.status_code == 200, res.text
    assert list(res.json()["galleries"]) == ["kitchen"]
    assert [i["id"] for i in gallery(res.json(), "kitchen")] == [kb["id"]]


def test_version_conflict(client: httpx.Client) -> None:
    home = create_home(client)
    assert finalize(client, home["id"], {"expected_version": 1}).status_code == 200
    res = finalize(client, home["id"], {"expected_version": 1, "home": {"name": "lost"}})
    assert res.status_code == 409
    body = res.json()
    assert (body["error"], body["current_version"]) == ("version_conflict", 2)
    assert client.get(f"/api/homes/{home['id']}").json()["name"] == "Villa"


def test_unknown_home(client: httpx.Client) -> None:
    res = finalize(client, "0" * 32, {"galleries": {}})
    assert res.status_code == 404
    assert res.json()["error"] == "home_not_found"


def test_upload_not_ready(client: httpx.Client) -> None:
    home = create_home(client)
    (ready,) = ready_uploads(client, 1, seed=30)
    receiving = create_upload(client, 100)
    res = finalize(client, home["id"], uploads_body("main", [ready, receiving]))
    assert res.status_code == 409
    body = res.json()
    assert body["error"] == "upload_not_ready"
    assert body["uploads"] == [{"upload_id": receiving, "status": "receiving"}]
    assert client.get(f"/api/homes/{home['id']}").json()["version"] == 1


def test_invalid_uploads_are_listed_with_reasons(
    server: ServerProcess, client: httpx.Client, database_url: str
) -> None:
    home = create_home(client)
    (ready,) = ready_uploads(client, 1, seed=40)
    broken = tus_upload(client, b"this is not an image at all" * 10)
    assert wait_processed(client, [broken])[broken]["status"] == "failed"
    add_principal(database_url, "carol-finalize", "carol-token")
    carol = httpx.Client(base_url=server.url, headers={"Authorization": "Bearer carol-token"})
    with carol:
        foreign = tus_upload(carol, small_jpeg(41))
        wait_processed(carol, [foreign])
    unknown = "f" * 32
    receiving = create_upload(client, 100)
    res = finalize(
        client, home["id"], uploads_body("main", [ready, broken, foreign, unknown, receiving])
    )
    assert res.status_code == 422, res.text
    body = res.json()
    assert body["error"] == "invalid_upload"
    reasons = {u["upload_id"]: u["reason"] for u in body["uploads"]}
    assert reasons == {broken: "not_an_image", foreign: "not_found", unknown: "not_found"}
    assert client.get(f"/api/homes/{home['id']}").json()["version"] == 1
    assert (
        query(database_url, "SELECT count(*) FROM gallery_images WHERE home_id = :h", h=home["id"])[
            0
        ][0]
        == 0
    )


def test_partial_upload_is_not_an_image(client: httpx.Client) -> None:
    home = create_home(client)
    data = small_jpeg(45)
    res = client.post(
        "/files/",
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Length": str(len(data)),
            "Upload-Concat": "partial",
        },
    )
    assert res.status_code == 201
    part = res.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    res = client.patch(
        f"/files/{part}",
        content=data,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert res.status_code == 204
    status = client.get(f"/api/uploads/{part}").json()
    assert (status["status"], status["concat"]) == ("complete", "partial")
    res = finalize(client, home["id"], uploads_body("main", [part]))
    assert res.status_code == 422
    assert res.json()["uploads"] == [{"upload_id": part, "reason": "partial_upload"}]


def test_upload_already_attached_elsewhere(client: httpx.Client) -> None:
    first, second = create_home(client, "one"), create_home(client, "two")
    (upload,) = ready_uploads(client, 1, seed=50)
    assert finalize(client, first["id"], uploads_body("main", [upload])).status_code == 200
    res = finalize(client, second["id"], uploads_body("main", [upload]))
    assert res.status_code == 409
    body = res.json()
    assert body["error"] == "upload_already_attached"
    assert body["uploads"] == [{"upload_id": upload, "home_id": first["id"]}]


def test_image_of_another_home_and_duplicates(client: httpx.Client) -> None:
    first, second = create_home(client, "one"), create_home(client, "two")
    up1, up2 = ready_uploads(client, 2, seed=60)
    image = gallery(finalize(client, first["id"], uploads_body("a", [up1])).json(), "a")[0]
    res = finalize(client, second["id"], {"galleries": {"a": [{"image_id": image["id"]}]}})
    assert res.status_code == 422
    assert res.json()["error"] == "invalid_image"
    assert res.json()["images"] == [{"image_id": image["id"], "reason": "not_in_home"}]

    for galleries in (
        {"a": [{"upload_id": up2}, {"upload_id": up2}]},
        {"a": [{"upload_id": up2}], "b": [{"upload_id": up2}]},
        {"a": [{"image_id": image["id"]}, {"upload_id": up1}]},
    ):
        res = finalize(client, first["id"], {"galleries": galleries})
        assert res.status_code == 422, galleries
        assert res.json()["error"] == "duplicate_image"
    assert client.get(f"/api/homes/{first['id']}").json()["version"] == 2


def test_malformed_finalize_bodies(client: httpx.Client) -> None:
    home = create_home(client)
    url = f"/api/homes/{home['id']}/finalize"
    res = client.post(url, content=b"{", headers={"content-type": "application/json"})
    assert (res.status_code, res.json()["error"]) == (400, "invalid_json")
    bad_bodies: list[Any] = [
        {"galleries": {"Living Room": []}},
        {"galleries": {"-x": []}},
        {"galleries": {"a" * 65: []}},
        {"galleries": {"a": [{}]}},
        {"galleries": {"a": [{"upload_id": "x", "image_id": "y"}]}},
        {"galleries": {"a": [{"upload_id": "../x"}]}},
        {"galleries": {"a": [{"upload_id": "x", "caption": 5}]}},
        {"galleries": {"a": {"upload_id": "x"}}},
        {"galleries": []},
        {"expected_version": "1"},
        {"expected_version": 0},
        {"home": {"name": ""}},
        {"home": {"version": 3}},
        {"unknown": True},
        "finalize",
    ]
    for body in bad_bodies:
        res = client.post(url, json=body)
        assert res.status_code == 422, (body, res.text)
        assert res.json()["error"] == "invalid_body"
        assert res.json()["problems"], body
    assert client.get(f"/api/homes/{home['id']}").json()["version"] == 1


def test_idempotency_key(client: httpx.Client) -> None:
    home = create_home(client)
    up1, up2 = ready_uploads(client, 2, seed=70)
    body = uploads_body("main", [up1], expected_version=1)
    first = finalize(client, home["id"], body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == 200
    again = finalize(client, home["id"], body, **{"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert client.get(f"/api/homes/{home['id']}").json()["version"] == 2

    other = finalize(client, home["id"], uploads_body("main", [up2]), **{"Idempotency-Key": "k-1"})
    assert other.status_code == 422
    assert other.json()["error"] == "idempotency_key_reused"
    # A refused request records nothing: its key stays free for the corrected request.
    stale = uploads_body("main", [up2], expected_version=1)
    assert finalize(client, home["id"], stale, **{"Idempotency-Key": "k-2"}).status_code == 409
    fresh = uploads_body("main", [up2], expected_version=2)
    assert finalize(client, home["id"], fresh, **{"Idempotency-Key": "k-2"}).status_code == 200
    replay = finalize(client, home["id"], fresh, **{"Idempotency-Key": "k-2"})
    assert replay.headers["idempotent-replayed"] == "true"
    assert client.get(f"/api/homes/{home['id']}").json()["version"] == 3
    # Keys belong to a principal's requests, not to a home: reusing one elsewhere is refused.
    elsewhere = create_home(client)
    res = finalize(client, elsewhere["id"], fresh, **{"Idempotency-Key": "k-2"})
    assert res.status_code == 422


def test_delete_home_releases_uploads_and_files(client: httpx.Client, database_url: str) -> None:
    home = create_home(client)
    uploads = ready_uploads(client, 2, seed=80)
    images = gallery(finalize(client, home["id"], uploads_body("g", uploads)).json(), "g")
    assert client.delete(f"/api/homes/{home['id']}").status_code == 204
    for image in images:
        assert client.get(image["url"]).status_code == 404
    rows = query(
        database_url, "SELECT pinned FROM uploads WHERE id IN (:a, :b)", a=uploads[0], b=uploads[1]
    )
    assert [bool(r[0]) for r in rows] == [False, False]
    # Unpinned again: the owner may terminate them.
    res = client.delete(f"/files/{uploads[0]}", headers={"Tus-Resumable": "1.0.0"})
    assert res.status_code == 204


def test_a_big_non_image_is_refused_by_its_first_bytes(
    server: ServerProcess, client: httpx.Client
) -> None:
    """6 MiB of zip: more than one S3 part, refused from its first 4 KiB, never copied out of
    storage for the decoder."""
    data = b"PK\x03\x04" + bytes(range(256)) * (6 * 4096)
    upload = tus_upload(client, data)
    status = wait_processed(client, [upload])[upload]
    assert (status["status"], status["error_code"]) == ("failed", "not_an_image")
    deadline = time.monotonic() + 10  # the event is logged just after the status is saved
    while not (events := [e for e in processed(server) if e["upload_id"] == upload]):
        assert time.monotonic() < deadline, "no image_processed event"
        time.sleep(0.05)
    assert [e["refused_by"] for e in events] == ["first_bytes"]


def processed(server: ServerProcess) -> list[dict[str, Any]]:
    return log_events(server.log_text(), "image_processed")
