"""Operator commands: `python -m imagehost thumbnails [--all]` (also `just thumbnails`), `check [--repair]`,
`backup`, `restore FILE [--yes] [--trust]` and `schedule` (README: Operations); and `serve`, the app
itself under uvicorn with WEB_CONCURRENCY processes (compose and `just run` start it so)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from imagehost.logging import configure_logging
from imagehost.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imagehost", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    thumbnails = commands.add_parser("thumbnails", help="make missing thumbnails (after a restore or a new size)")
    thumbnails.add_argument("--all", action="store_true", help="remake every thumbnail, not only missing ones")
    thumbnails.add_argument(
        "--queue-only", action="store_true", help="leave every batch to the running instances' workers, make none here"
    )
    thumbnails.add_argument("--batch", type=int, metavar="N", help="images a task looks at (default 200)")
    parser.add_argument(
        "--local-postgres",
        metavar="PGDATA",
        type=Path,
        help="use (and start, for as long as the command runs) the embedded PostgreSQL of `just run` kept in PGDATA",
    )
    commands.add_parser("migrate", help="apply the Piccolo migrations (as compose does at start)")
    serve = commands.add_parser("serve", help="run the app: uvicorn with WEB_CONCURRENCY processes")
    serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="default: HOST or 127.0.0.1")
    serve.add_argument("--port", type=int, default=os.environ.get("PORT", "8000"), help="default: PORT or 8000")
    serve.add_argument(
        "--forwarded-allow-ips",
        default="127.0.0.1",
        help="proxies whose X-Forwarded-For/-Proto are trusted (uvicorn's option; compose: '*', nginx only)",
    )
    commands.add_parser("backup", help="back up the database and the images into BACKUP_DIR")
    restore = commands.add_parser("restore", help="check a backup, then restore its database and images")
    restore.add_argument("file", type=Path, help="a backup_YYYY-MM-DD_HHMMSS.tar.gz")
    restore.add_argument("--yes", action="store_true", help="do not ask before replacing the current data")
    restore.add_argument(
        "--trust", action="store_true", help="restore a backup not signed with BACKUP_SIGNING_KEY (made elsewhere)"
    )
    commands.add_parser("schedule", help="run backups and consistency scrubs forever (compose: the scheduler)")
    check = commands.add_parser("check", help="compare the database with the images folder; exit 1 on problems")
    check.add_argument("--repair", action="store_true", help="quarantine orphans, remake thumbnails, settle lost rows")
    check.add_argument("--missing-rows", choices=("mark", "remove"), help="with --repair: rows whose file is gone")
    arguments = parser.parse_args(argv)
    if arguments.command == "check" and arguments.missing_rows and not arguments.repair:
        parser.error("--missing-rows needs --repair")
    if arguments.command == "thumbnails" and arguments.batch is not None and arguments.batch < 1:
        parser.error("--batch takes a number of images, 1 or more")
    if arguments.local_postgres:
        from imagehost.devdb import start_embedded_postgres

        # In this process: the server stays up while its last user runs (and `just run` may be off).
        os.environ["DATABASE_URL"] = start_embedded_postgres(arguments.local_postgres)
    if arguments.command == "serve":
        from imagehost.serving import serve

        return serve(arguments.host, arguments.port, arguments.forwarded_allow_ips)
    if arguments.command == "migrate":
        from imagehost.devdb import migrate

        migrate(os.environ.get("DATABASE_URL", Settings().database_url), Path(__file__).resolve().parents[2])
        print("Migrations applied.")
        return 0
    settings = Settings.from_env()
    configure_logging(settings.log_dir, file_name=settings.log_file_name)
    if arguments.command == "thumbnails":
        from imagehost.images.thumbnail_jobs import thumbnails_command

        return thumbnails_command(
            settings, everything=arguments.all, queue_only=arguments.queue_only, batch=arguments.batch
        )
    if arguments.command == "check":
        from imagehost.ops.consistency import command_line

        return command_line(settings, repair=arguments.repair, missing_rows=arguments.missing_rows)
    if arguments.command == "backup":
        from imagehost.ops.backup import backup_command

        return backup_command(settings)
    if arguments.command == "restore":
        from imagehost.ops.backup import restore_command

        return restore_command(settings, arguments.file, assume_yes=arguments.yes, trust=arguments.trust)
    if arguments.command == "schedule":
        from imagehost.ops.scheduler import schedule_command

        return schedule_command(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
