"""The long-lived objects one app instance shares between its routes.

Built once by the app's lifespan from Settings and stored on `app.state.services`; routes reach
them with `services(request)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection

from server.auth import Authenticator
from server.db import Database
from server.locks import Locker
from server.settings import Settings
from server.storage import MediaStore, UploadStore


@dataclass
class Services:
    settings: Settings
    db: Database
    uploads: UploadStore
    media: MediaStore
    locker: Locker
    auth: Authenticator


def services(conn: HTTPConnection) -> Services:
    svc: Services = conn.app.state.services
    return svc
