"""The `tusgallery` command: serve, migrate, tokens, cleanup."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence

from server.settings import Settings


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run(
        "server.app:app",
        host=args.host,
        port=args.port or settings.port,
        log_level=settings.log_level,
        # Bodies are short chunks; a stalled one is cut by the app's own read timeout.
        timeout_graceful_shutdown=20,
        # Forwarded headers are read by the app itself, only when TUSGALLERY_TRUST_FORWARDED=1.
        proxy_headers=False,
    )
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from server.db import Database
    from server.migrate import migrate

    db = Database(settings.database_url)
    migrate(db.engine)
    print(f"schema is up to date ({db.dialect})")
    return 0


def cmd_makemigration(settings: Settings, args: argparse.Namespace) -> int:
    from server.db import Database
    from server.migrate import make_revision, migrate

    db = Database(settings.database_url)
    migrate(db.engine)
    make_revision(db.engine, args.message)
    return 0


def cmd_token(settings: Settings, args: argparse.Namespace) -> int:
    from sqlmodel import select

    from server.auth import create_token, revoke_token
    from server.db import Database
    from server.migrate import migrate
    from server.models import ApiToken

    db = Database(settings.database_url)
    migrate(db.engine)
    with db.session(write=True) as session:
        if args.action == "create":
            if session.exec(select(ApiToken).where(ApiToken.name == args.name)).first():
                print(f"a token named {args.name!r} exists; revoke it first", file=sys.stderr)
                return 1
            print(create_token(session, args.name))
        elif args.action == "revoke":
            if not revoke_token(session, args.name):
                print(f"no active token named {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name}")
        else:
            for row in session.exec(select(ApiToken).order_by(ApiToken.name)):
                state = "revoked" if row.revoked_at else "active"
                print(f"{row.name}\t{state}\t{row.created_at.isoformat()}")
    return 0


def cmd_cleanup(settings: Settings, args: argparse.Namespace) -> int:
    from server.cleanup import run_cleanup

    report = asyncio.run(run_cleanup(settings))
    print(json.dumps(report))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tusgallery", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    serve.set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(func=cmd_migrate)
    mk = sub.add_parser("makemigration", help="(developers) autogenerate a migration")
    mk.add_argument("message")
    mk.set_defaults(func=cmd_makemigration)
    token = sub.add_parser("token", help="manage API tokens")
    token.add_argument("action", choices=["create", "revoke", "list"])
    token.add_argument("name", nargs="?", default="")
    token.set_defaults(func=cmd_token)
    sub.add_parser(
        "cleanup", help="remove expired uploads and orphaned stored objects"
    ).set_defaults(func=cmd_cleanup)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "token" and args.action != "list" and not args.name:
        print("token create/revoke needs a NAME", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")
    # Alembic announces every plugin it loads at INFO; only its migration steps are news.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    return int(args.func(Settings.from_env(), args))


if __name__ == "__main__":
    raise SystemExit(main())
