"""Removal of expired uploads and of stored bytes no upload row refers to.

Run by `tusgallery cleanup` (cron, a PaaS scheduler, or by hand). Safe beside running servers:
each expired upload is removed under its lock, so a PATCH that races the expiry either finishes
first or finds the upload gone (404).
"""

from __future__ import annotations

import logging
from typing import Any

from server.db import utcnow
from server.locks import LockTimeout
from server.settings import Settings
from server.tus import records

log = logging.getLogger("tusgallery.cleanup")


async def run_cleanup(settings: Settings) -> dict[str, Any]:
    from server.app import build_services
    from server.migrate import migrate

    svc = build_services(settings)
    migrate(svc.db.engine)
    removed = 0
    busy = 0
    try:
        while True:
            batch = await svc.db.run(lambda s: records.expired(s, utcnow()))
            progress = 0
            for upload in batch:
                try:
                    async with svc.locker.hold(upload.id, settings.lock_timeout_seconds):
                        current = await svc.db.run(lambda s, i=upload.id: records.get(s, i))
                        if current is None or current.pinned or current.is_complete:
                            continue
                        if current.expires_at is None or current.expires_at > utcnow():
                            continue  # a PATCH extended it meanwhile
                        await svc.db.run(lambda s, i=upload.id: records.remove(s, i), write=True)
                        await svc.uploads.delete(current.id, current.storage_state)
                        removed += 1
                        progress += 1
                except LockTimeout:
                    busy += 1
            if progress == 0:
                break
        orphans = await svc.uploads.remove_orphans(
            lambda ids: svc.db.run(lambda s: set(records.get_many(s, list(ids))))
        )
    finally:
        await svc.locker.close()
        await svc.uploads.close()
        await svc.media.close()
        svc.db.dispose()
    report = {"expired_removed": removed, "busy_skipped": busy, "orphans_removed": orphans}
    log.info("cleanup %s", report)
    return report
