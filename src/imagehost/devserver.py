"""`just run`: a local PostgreSQL (unless DATABASE_URL is set), the migrations, then the app (`serve`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from imagehost.devdb import migrate, start_embedded_postgres

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    env = dict(os.environ)
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = start_embedded_postgres(PROJECT_ROOT / "var" / "postgres")
        print("Local PostgreSQL (embedded-postgres) data: var/postgres", flush=True)
    # Without a configured key, keep one in var/ so sessions survive restarts of `just run`.
    if not env.get("SECRET_KEY"):
        key_file = PROJECT_ROOT / "var" / "secret_key"
        if not key_file.exists():
            import secrets

            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(32))
            key_file.chmod(0o600)
        env["SECRET_KEY"] = key_file.read_text().strip()
    migrate(env["DATABASE_URL"], PROJECT_ROOT)
    host, port = env.get("HOST", "127.0.0.1"), env.get("PORT", "8000")
    print(f"ImageHost on http://{host}:{port}", flush=True)
    # The same command as compose's (Dockerfile): WEB_CONCURRENCY app processes under uvicorn.
    command = [sys.executable, "-m", "imagehost", "serve", "--host", host, "--port", port]
    server = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)

    def stop(signal_number: int, _frame: object) -> None:
        # A `kill` of this process (not only Ctrl-C, which reaches the whole group) stops the app
        # first, then returns normally so that the local PostgreSQL is stopped too (atexit).
        server.send_signal(signal_number)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, stop)
    try:
        return server.wait()
    except KeyboardInterrupt:
        return server.wait()


if __name__ == "__main__":
    raise SystemExit(main())
