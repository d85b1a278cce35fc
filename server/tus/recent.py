"""Upload rows this process has just written, so the next PATCH of an upload skips reading its
row back from the database.

Reading the row is a transaction in a worker thread: about half of what the server spends on a
small PATCH (scripts/bench_support/changes.md). The row a PATCH has just committed is what the
next PATCH of the same upload would read, as long as nobody else changed it in between. That
holds where one process serves every request of an upload (`Locker.serves_one_process`): an
incomplete upload's row is then changed only by this process's PATCHes and DELETEs (which hold
the upload's lock, as reuse does) or removed once expired by `tusgallery cleanup`, and an
expired row is refused from its reused copy just as from the database.

Two guards cover a row changed behind our back anyway: a row is reused only when the client's
Upload-Offset matches it (else it is read afresh), and the progress UPDATE applies only at the
offset the PATCH started from (records.save_progress), so a stale row ends in 409 or 404 with
nothing recorded, never in a wrong offset. (Bytes that a second process appended meanwhile
would be cut by this process's writer, reuse or not: in-process locks do not keep two
processes apart, which is why they go with a single instance.)
"""

from __future__ import annotations

from server.models import Upload

DEFAULT_LIMIT = 1024


class RecentRows:
    """The last committed row of up to `limit` incomplete uploads; callers hold its lock."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._rows: dict[str, Upload] = {}

    def take(self, upload_id: str, owner: str, offset: int) -> Upload | None:
        """The kept row, if it belongs to `owner` and is at `offset`; it is no longer kept."""
        upload = self._rows.pop(upload_id, None)
        if upload is None or upload.owner != owner or upload.offset != offset:
            return None
        return upload

    def keep(self, upload: Upload) -> None:
        if upload.is_complete:
            return  # a complete upload's row belongs to the image pipeline and finalize now
        self._rows[upload.id] = upload
        if len(self._rows) > self._limit:
            # abandoned uploads age out first: dicts keep insertion order
            del self._rows[next(iter(self._rows))]

    def drop(self, upload_id: str) -> None:
        self._rows.pop(upload_id, None)
