# ImageHost's routine commands. No `just` installed? Use the launcher: ./just <recipe>
set shell := ["bash", "-euo", "pipefail", "-c"]

export PYTHONPATH := justfile_directory() / "src" + ":" + justfile_directory()
python := justfile_directory() / ".venv/bin/python"

# List the recipes
default:
    @just --list

# Create .venv and install the pinned dependencies (only when the requirements changed)
install:
    #!/usr/bin/env bash
    set -euo pipefail
    [ -x .venv/bin/python ] || python3 -m venv .venv
    stamp=.venv/.installed-requirements
    if [ ! -f "$stamp" ] || ! cmp -s <(cat requirements.txt requirements-dev.txt) "$stamp"; then
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
        cat requirements.txt requirements-dev.txt > "$stamp"
    fi

# Serve on http://127.0.0.1:8000 with a local PostgreSQL (HOST, PORT, DATABASE_URL override)
run: install
    {{python}} -m imagehost.devserver

# Apply the database migrations (to DATABASE_URL, else the local PostgreSQL of `just run`)
migrate: install
    #!/usr/bin/env bash
    set -euo pipefail
    # Without DATABASE_URL the command starts the local PostgreSQL of `just run` itself and holds it
    # while it runs (a server started by a separate process would stop when that process ends).
    if [ -z "${DATABASE_URL:-}" ]; then
        exec {{python}} -m imagehost --local-postgres var/postgres migrate
    fi
    exec {{python}} -m imagehost migrate

# Run the whole test suite (a throwaway PostgreSQL, the real nginx and Chromium when installed)
test *ARGS: install
    {{python}} -m pytest {{ARGS}}

# Lint and check formatting with ruff
lint: install
    .venv/bin/ruff check src tests migrations piccolo_conf.py
    .venv/bin/ruff format --check src tests migrations piccolo_conf.py

# Measure catalogue and upload speed (prints figures and ratios); `just bench --reference-only` runs
# only the side-by-side upload bench against the bare ASGI and naive Flask reference servers, and the
# direct links through the project's nginx against a bare nginx (with wrk: apt-get install wrk)
bench *ARGS: install
    {{python}} tests/bench.py {{ARGS}}

# Re-extract the interface strings and merge them into the Russian catalogue (then translate the new ones)
translations: install
    .venv/bin/pybabel extract -F babel.cfg -k N_ -k _ --no-location --omit-header -o var/messages.pot .
    .venv/bin/pybabel update -i var/messages.pot -d src/imagehost/locale -l ru --no-location --width 100

# Make missing thumbnails (after a restore or a change of THUMBNAIL_SIZES); --all remakes every one
thumbnails *ARGS: install
    #!/usr/bin/env bash
    set -euo pipefail
    # Without DATABASE_URL the command starts the local PostgreSQL of `just run` itself and holds it
    # while it runs (a server started by a separate process would stop when that process ends).
    if [ -z "${DATABASE_URL:-}" ]; then
        exec {{python}} -m imagehost --local-postgres var/postgres thumbnails {{ARGS}}
    fi
    exec {{python}} -m imagehost thumbnails {{ARGS}}

# Fuzz the image pipeline for SECONDS (CI: 60); failing inputs are kept in tests/fuzz/regressions/
fuzz SECONDS="60": install
    {{python}} tests/fuzz/run.py {{SECONDS}}

# Compare the database with the images folder (exit 1 on problems); --repair [--missing-rows=mark|remove] fixes
check *ARGS: install
    #!/usr/bin/env bash
    set -euo pipefail
    # Without DATABASE_URL the command starts the local PostgreSQL of `just run` itself and holds it
    # while it runs (a server started by a separate process would stop when that process ends).
    if [ -z "${DATABASE_URL:-}" ]; then
        exec {{python}} -m imagehost --local-postgres var/postgres check {{ARGS}}
    fi
    exec {{python}} -m imagehost check {{ARGS}}

# Back up the database and the images into BACKUP_DIR (DATABASE_URL, else the local PostgreSQL of `just run`)
backup: install
    #!/usr/bin/env bash
    set -euo pipefail
    # The command starts the local PostgreSQL itself and holds it while it runs: a server started by
    # a separate `python -c` would stop again as soon as that process exits (unless `just run` is up).
    if [ -z "${DATABASE_URL:-}" ]; then
        exec {{python}} -m imagehost --local-postgres var/postgres backup
    fi
    exec {{python}} -m imagehost backup

# Check a backup whole, then restore its database and images (asks first; --yes does not; --trust: unsigned)
restore FILE *ARGS: install
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -z "${DATABASE_URL:-}" ]; then
        exec {{python}} -m imagehost --local-postgres var/postgres restore {{quote(FILE)}} {{ARGS}}
    fi
    exec {{python}} -m imagehost restore {{quote(FILE)}} {{ARGS}}

# docker compose up --build from a fresh copy, checked through nginx, as root's and another user's clone (COMPOSE_STANDINS=1: local stand-in images, host network)
compose-test:
    ./deploy/compose-test.sh
