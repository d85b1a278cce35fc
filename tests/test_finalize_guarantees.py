"""Finalize under pressure, over real HTTP on SQLite and PostgreSQL.

Two admins racing on one home (threads released together by a barrier, many rounds), the
database refusing a second attachment even when no code checks it, a real database error
half-way through a finalize, and the structured log lines a finalize and the pipeline write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.support.homes import (
    add_principal,
    create_home,
    finalize,
    log_events,
    query,
    ready_uploads,
    sql_engine,
    uploads_body,
)
from tests.support.server import ServerProcess

ROUNDS = 8
FAULT_GALLERY = "faulty"
FAULT_ROW = 20  # the 20th row inserted into that gallery fails inside the database


@pytest.fixture(scope="module")
def bob(server: ServerProcess, database_url: str) -> Iterator[httpx.Client]:
    """A second admin with its own token and its own uploads."""
    add_principal(database_url, "bob-concurrency", "bob-token")
    headers = {"Authorization": "Bearer bob-token"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as c:
        yield c


Finalize = tuple[httpx.Client, str, dict[str, Any]]


def race(*requests: Finalize) -> list[httpx.Response]:
    """Send the finalizes from threads released at the same instant; answers in order."""
    barrier = threading.Barrier(len(requests))
    answers: list[httpx.Response | None] = [None] * len(requests)

    def run(n: int, request: Finalize) -> None:
        barrier.wait(timeout=30)
        answers[n] = finalize(*request)

    threads = [threading.Thread(target=run, args=(n, r)) for n, r in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(a is not None for a in answers), "a finalize did not answer"
    return [a for a in answers if a is not None]


def upload_ids(home: dict[str, Any], gallery: str) -> list[str]:
    return [image["upload_id"] for image in home["galleries"].get(gallery, [])]


def attachments(database_url: str, upload_id: str) -> int:
    sql = "SELECT count(*) FROM gallery_images WHERE upload_id = :u"
    rows = query(database_url, sql, u=upload_id)
    return int(rows[0][0])


def test_two_admins_same_version_one_wins(
    client: httpx.Client, bob: httpx.Client, database_url: str
) -> None:
    home = create_home(client, "Contested")
    mine = ready_uploads(client, ROUNDS, seed=100)
    theirs = ready_uploads(bob, ROUNDS, seed=200)
    attached: list[str] = []
    for n in range(ROUNDS):
        version = home["version"]
        answers = race(
            *(
                (
                    admin,
                    home["id"],
                    uploads_body(
                        "main",
                        [*attached, upload],
                        expected_version=version,
                        home={"name": f"round {n} by {who}"},
                    ),
                )
                for admin, upload, who in ((client, mine[n], "alice"), (bob, theirs[n], "bob"))
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        winner = next(a for a in answers if a.status_code == 200).json()
        loser = next(a for a in answers if a.status_code == 409).json()
        assert loser["error"] == "version_conflict"
        assert loser["current_version"] == version + 1
        won_upload = upload_ids(winner, "main")[-1]
        lost_upload = theirs[n] if won_upload == mine[n] else mine[n]
        attached.append(won_upload)

        home = client.get(f"/api/homes/{home['id']}").json()
        # Nothing of the loser leaked in and nothing of the winner was lost.
        assert home == winner
        assert home["version"] == version + 1
        assert upload_ids(home, "main") == attached
        assert attachments(database_url, lost_upload) == 0
        assert attachments(database_url, won_upload) == 1


def test_racing_without_expected_version_serialises(client: httpx.Client) -> None:
    """Without `expected_version` both saves apply, one after the other: no update is lost."""
    home = create_home(client, "Serial")
    uploads = ready_uploads(client, 2 * ROUNDS, seed=300)
    for n in range(ROUNDS):
        version = home["version"]
        pair = uploads[2 * n : 2 * n + 2]
        bodies = [
            {"home": {"description": f"by {u}"}, "galleries": {f"g{k}": [{"upload_id": u}]}}
            for k, u in enumerate(pair)
        ]
        answers = race(*((client, home["id"], body) for body in bodies))
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        assert sorted(a.json()["version"] for a in answers) == [version + 1, version + 2]
        home = client.get(f"/api/homes/{home['id']}").json()
        assert home["version"] == version + 2
        # Each save named a different gallery: both galleries hold their upload.
        assert upload_ids(home, "g0") == [pair[0]] and upload_ids(home, "g1") == [pair[1]]
        last = max(answers, key=lambda a: int(a.json()["version"])).json()
        assert home["description"] == last["description"]


def test_one_upload_raced_into_two_homes(client: httpx.Client, database_url: str) -> None:
    homes = [create_home(client, f"twin {n}") for n in range(2)]
    uploads = ready_uploads(client, ROUNDS, seed=400)
    for n, upload in enumerate(uploads):
        # A gallery per round: a later round must not detach what an earlier one attached.
        body = uploads_body(f"round-{n}", [upload])
        answers = race(*((client, h["id"], body) for h in homes))
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        conflict = next(a for a in answers if a.status_code == 409).json()
        assert conflict["error"] == "upload_already_attached"
        assert attachments(database_url, upload) == 1
    placed = [
        image["upload_id"]
        for h in homes
        for images in client.get(f"/api/homes/{h['id']}").json()["galleries"].values()
        for image in images
    ]
    assert sorted(placed) == sorted(uploads)


def test_database_refuses_a_second_attachment(client: httpx.Client, database_url: str) -> None:
    """The unique upload_id holds even for a writer that skips every check of finalize."""
    home, other = create_home(client, "first"), create_home(client, "second")
    (upload,) = ready_uploads(client, 1, seed=500)
    image = finalize(client, home["id"], uploads_body("main", [upload])).json()
    row = {**image["galleries"]["main"][0]}
    engine = sql_engine(database_url)
    try:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO gallery_images (id, home_id, gallery, position, upload_id,"
                    " content_type, width, height, size, sha256, display_key, thumb_key,"
                    " created_at) VALUES (:id, :home, 'main', 0, :upload, 'image/jpeg', 1, 1,"
                    " 1, :sha, 'd', 't', CURRENT_TIMESTAMP)"
                ),
                {"id": "e" * 32, "home": other["id"], "upload": upload, "sha": row["sha256"]},
            )
    finally:
        engine.dispose()
    assert attachments(database_url, upload) == 1


def _install_fault(database_url: str) -> Callable[[], None]:
    """A real trigger that fails the insert of one row; returns what removes it."""
    position = FAULT_ROW - 1
    engine = sql_engine(database_url)
    if engine.dialect.name == "sqlite":
        install = [
            f"CREATE TRIGGER fault_finalize BEFORE INSERT ON gallery_images WHEN NEW.gallery ="
            f" '{FAULT_GALLERY}' AND NEW.position = {position}"
            " BEGIN SELECT RAISE(ABORT, 'injected fault'); END"
        ]
        remove = ["DROP TRIGGER fault_finalize"]
    else:
        install = [
            "CREATE FUNCTION fault_finalize() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'injected fault'; END $$",
            "CREATE TRIGGER fault_finalize BEFORE INSERT ON gallery_images FOR EACH ROW WHEN"
            f" (NEW.gallery = '{FAULT_GALLERY}' AND NEW.position = {position})"
            " EXECUTE FUNCTION fault_finalize()",
        ]
        remove = ["DROP TRIGGER fault_finalize ON gallery_images", "DROP FUNCTION fault_finalize"]

    def run(statements: list[str]) -> None:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))

    run(install)

    def uninstall() -> None:
        try:
            run(remove)
        finally:
            engine.dispose()

    return uninstall


def test_failure_half_way_changes_nothing(
    server: ServerProcess, client: httpx.Client, database_url: str
) -> None:
    home = create_home(client, "Fragile")
    old = ready_uploads(client, 3, seed=600)
    before = finalize(client, home["id"], uploads_body(FAULT_GALLERY, old)).json()
    old_images = before["galleries"][FAULT_GALLERY]
    new = ready_uploads(client, FAULT_ROW + 5, seed=610)
    # Replaces the gallery: the three old images would be detached and their files deleted.
    body = uploads_body(FAULT_GALLERY, new, home={"name": "never saved"})

    uninstall = _install_fault(database_url)
    try:
        res = finalize(client, home["id"], body)
    finally:
        uninstall()
    assert res.status_code == 500, res.text
    assert res.json()["error"] == "internal_error"
    failed = [e for e in log_events(server.log_text(), "finalize") if e["home_id"] == home["id"]]
    assert (failed[-1]["result"], failed[-1]["images"]) == ("error", FAULT_ROW + 5)

    assert client.get(f"/api/homes/{home['id']}").json() == before
    for upload in new:
        assert attachments(database_url, upload) == 0
        assert client.get(f"/api/uploads/{upload}").json()["status"] == "ready"
    pinned = query(database_url, "SELECT id, pinned, status FROM uploads")
    state = {row[0]: (bool(row[1]), row[2]) for row in pinned}
    assert all(state[u] == (True, "ready") for u in old)
    assert not any(state[u][0] for u in new)
    for image in old_images:
        for url in (image["url"], image["thumbnail_url"]):
            assert client.get(url).status_code == 200, url

    # The same request, once the database lets it through, applies and only then deletes.
    res = finalize(client, home["id"], body)
    assert res.status_code == 200, res.text
    assert upload_ids(res.json(), FAULT_GALLERY) == new
    assert res.json()["version"] == before["version"] + 1
    for image in old_images:
        assert client.get(image["url"]).status_code == 404


def test_structured_log_lines(server: ServerProcess, client: httpx.Client) -> None:
    home = create_home(client, "Logged")
    uploads = ready_uploads(client, 3, seed=700)
    assert finalize(client, home["id"], uploads_body("main", uploads)).status_code == 200
    assert finalize(client, home["id"], {"expected_version": 1}).status_code == 409

    lines = [e for e in log_events(server.log_text(), "finalize") if e["home_id"] == home["id"]]
    ok, conflict = lines[-2:]
    assert ok["result"] == "ok"
    assert (ok["galleries"], ok["images"], ok["attached"], ok["detached"]) == (1, 3, 3, 0)
    assert conflict["result"] == "version_conflict"
    for line in (ok, conflict):
        assert isinstance(line["ms"], int | float) and line["ms"] >= 0

    processed = {e["upload_id"]: e for e in log_events(server.log_text(), "image_processed")}
    for upload in uploads:
        line = processed[upload]
        assert line["result"] == "ready"
        assert isinstance(line["ms"], int | float) and line["ms"] > 0
