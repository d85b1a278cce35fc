"""A PATCH never trusts an upload row that changed behind the server's back.

The server reuses the row its last PATCH wrote where one process serves every request of an
upload (SQLite, in-process locks), and records progress only at the offset the PATCH started
from. Here another database connection plays the other party: `tusgallery cleanup` in another
process removing the row, or another writer moving the offset on. The answer must be the
database's, and nothing of the stale chunk may be recorded.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import data_dir_of
from tests.support.server import ServerProcess
from tests.support.tus import create, head, offset_of, patch

DATA = bytes(range(20))


@pytest.fixture
def other_party(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def upload_id(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_row_removed_behind_the_server_answers_404(
    client: httpx.Client, other_party: Engine
) -> None:
    url = create(client, len(DATA))
    assert patch(client, url, 0, DATA[:10]).status_code == 204
    with other_party.begin() as conn:
        conn.execute(text("DELETE FROM uploads WHERE id = :id"), {"id": upload_id(url)})

    response = patch(client, url, 10, DATA[10:15])

    assert response.status_code == 404, response.text
    assert head(client, url).status_code == 404


def test_offset_moved_behind_the_server_answers_409_with_the_recorded_offset(
    client: httpx.Client, server: ServerProcess, other_party: Engine
) -> None:
    url = create(client, len(DATA))
    assert patch(client, url, 0, DATA[:10]).status_code == 204
    # another writer stores five bytes and records them
    with (data_dir_of(server) / "uploads" / upload_id(url)).open("ab") as file:
        file.write(DATA[10:15])
    with other_party.begin() as conn:
        conn.execute(
            text('UPDATE uploads SET "offset" = 15 WHERE id = :id'), {"id": upload_id(url)}
        )

    response = patch(client, url, 10, DATA[10:15])

    assert response.status_code == 409, response.text
    assert response.headers["Upload-Offset"] == "15"
    assert offset_of(client, url) == 15
    # the client resumes from what the server answered, and the upload completes at its length
    assert patch(client, url, 15, DATA[15:]).status_code == 204
    assert offset_of(client, url) == len(DATA)
    assert len(client.get(url).content) == len(DATA)
