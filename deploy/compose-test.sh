#!/usr/bin/env bash
# `just compose-test`: the README's `docker compose up --build`, from a fresh copy of this tree, checked
# through nginx the way a new user would; as root's clone and as another user's (uid 4321).
#
#   COMPOSE_STANDINS=1   this machine has no container registry and may talk to loopback only:
#                        build stand-ins for python:3.11-slim, postgres:17 and nginx:1.27-alpine from
#                        Debian packages (deploy/standins/), start dockerd without any bridge if none
#                        runs, fetch Compose v2 if missing, and put every service on the host network
#                        (deploy/standins/compose.host.yml). Needs root and ports 80, 8000, 5432 free.
#   without it           the official images and compose's own networks (a user's CI); nginx is
#                        published on COMPOSE_TEST_PORT (default 8080).
#   COMPOSE_TEST_OWNERS  the owners of the copies to test, default "0 4321".
#   COMPOSE_TEST_TREE    HEAD (default: the last commit, as a fresh clone has it) or worktree (the
#                        files as they are now, uncommitted changes included). Outside git: the files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PROJECT=$(cd "$HERE/.." && pwd)
STANDINS=${COMPOSE_STANDINS:-}
OWNERS=${COMPOSE_TEST_OWNERS:-0 4321}
CACHE=${COMPOSE_TEST_CACHE:-/var/tmp/imagehost-compose-test}
NAME=imagehost-compose-test
WORK=$(mktemp -d "${TMPDIR:-/tmp}/$NAME.XXXXXX")
chmod 755 "$WORK"
STARTED_DOCKERD=""
started=$(date +%s)

say() { printf '[compose-test %4ss] %s\n' "$(($(date +%s) - started))" "$*"; }
fail() {
    say "FAILED: $*"
    exit 1
}

compose() { docker compose --progress quiet -p "$NAME" "${COMPOSE_FILES[@]}" "$@"; }

cleanup() {
    status=$?
    if [ -n "${CLONE:-}" ] && [ -d "${CLONE:-}" ]; then
        if [ "$status" != 0 ]; then
            (cd "$CLONE" && compose ps -a && compose logs --no-color --tail=80) || true
        fi
        (cd "$CLONE" && compose down -v --remove-orphans --timeout 20) >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK"
    if [ -n "$STARTED_DOCKERD" ]; then
        kill "$STARTED_DOCKERD" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 1; done
    fi
    say "$([ "$status" = 0 ] && echo passed || echo failed) in $(($(date +%s) - started)) s"
}
trap cleanup EXIT

# --- Docker, Compose v2 and (with stand-ins) the base images ---------------------------------------
if [ -n "$STANDINS" ]; then
    [ "$(id -u)" = 0 ] || fail "COMPOSE_STANDINS=1 needs root (apt-get, dockerd)"
    if ! command -v dockerd >/dev/null || ! command -v mmdebstrap >/dev/null; then
        say "installing docker.io and mmdebstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io mmdebstrap >/dev/null
    fi
    if ! docker info >/dev/null 2>&1; then
        say "starting dockerd (no bridge, no iptables)"
        mkdir -p /var/lib/docker/imagehost-compose-test
        setsid dockerd --bridge=none --iptables=false --ip-masq=false --ip6tables=false \
            --data-root /var/lib/docker/imagehost-compose-test >"$CACHE.dockerd.log" 2>&1 </dev/null &
        STARTED_DOCKERD=$!
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || fail "dockerd did not start: $(tail -5 "$CACHE.dockerd.log")"
    fi
    if ! docker compose version >/dev/null 2>&1; then
        export DOCKER_CONFIG="$CACHE/dockercfg"
        if ! docker compose version >/dev/null 2>&1; then
            say "fetching Compose v2 (Debian trixie's docker-compose)"
            TMPDIR="$CACHE" sh "$HERE/standins/get-compose-v2.sh" >/dev/null
            mkdir -p "$DOCKER_CONFIG" && cp -r "$CACHE/standin-dockercfg/." "$DOCKER_CONFIG/"
        fi
    fi
    for image in python:3.11-slim postgres:17 nginx:1.27-alpine; do
        if ! docker image inspect "$image" >/dev/null 2>&1; then
            if [ ! -f "$CACHE/rootfs/nginx.tar" ]; then
                say "making the stand-ins' root file systems (mmdebstrap)"
                OUT="$CACHE/rootfs" sh "$HERE/standins/make-rootfs.sh" >"$CACHE.rootfs.log" 2>&1 \
                    || fail "make-rootfs.sh: $(tail -5 "$CACHE.rootfs.log")"
            fi
            say "building the stand-in base images"
            ROOTFS="$CACHE/rootfs" sh "$HERE/standins/build.sh" >/dev/null
            break
        fi
    done
    for port in 80 8000 5432; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            fail "port $port is taken on this machine; the host-network stack needs it"
        fi
    done
    COMPOSE_FILES=(-f docker-compose.yml -f "$HERE/standins/compose.host.yml")
    BASE=http://127.0.0.1
else
    docker compose version >/dev/null 2>&1 || fail "Docker Compose v2 (docker compose) is needed"
    PORT=${COMPOSE_TEST_PORT:-8080}
    COMPOSE_FILES=(-f docker-compose.yml)
    BASE=http://127.0.0.1:$PORT
fi
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}
mkdir -p "$CACHE"

# Profiles whose images cannot be pulled or built here: their files at least must be valid.
(cd "$PROJECT" && KEYCLOAK_ADMIN_PASSWORD=x POSTGRES_PASSWORD=x DATABASE_URL=x SECRET_KEY=x \
    compose --profile keycloak config -q) || fail "docker compose --profile keycloak config"
(cd "$PROJECT" && METRICS_TOKEN=x POSTGRES_PASSWORD=x DATABASE_URL=x SECRET_KEY=x \
    compose --profile monitoring config -q) || fail "docker compose --profile monitoring config"
(cd "$PROJECT" && POSTGRES_PASSWORD=x DATABASE_URL=x SECRET_KEY=x STORAGE=s3 S3_ENDPOINT_URL=http://s3:9000 \
    S3_BUCKET=imagehost S3_ACCESS_KEY_ID=imagehost S3_SECRET_ACCESS_KEY=x APP_MORE_UPSTREAMS=app-2:8001 \
    compose --profile s3 config -q) || fail "docker compose --profile s3 config"

# --- the checks a new user would make -----------------------------------------------------------------
png() { # a small valid PNG, different for each seed
    python3 - "$1" <<'EOF'
import struct, sys, zlib
seed = int(sys.argv[1])
w, h = 24, 16
rows = b"".join(b"\0" + b"".join(bytes((seed * 40 % 256, x * 10 % 256, y * 15 % 256)) for x in range(w)) for y in range(h))
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
sys.stdout.buffer.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                        + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
EOF
}
json_field() { python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
expect_status() { # expected, then curl arguments
    local want=$1 got
    shift
    got=$(status_of "$@")
    [ "$got" = "$want" ] || fail "$* answered $got, not $want"
}
header_of() { curl -s -D - -o /dev/null "${@:2}" | tr -d '\r' | awk -v h="$(echo "$1" | tr A-Z a-z)" 'tolower($0) ~ "^"h":" {sub(/^[^:]*: /, ""); print}'; }

# Until every healthcheck passes (db, app, nginx) and the scheduler (no HTTP, no healthcheck) runs.
# Not `up --wait`: compose 2.26 counts a disabled healthcheck as a failure.
wait_healthy() {
    local deadline=$(($(date +%s) + 240)) service state
    while :; do
        local pending=""
        for service in db app nginx scheduler; do
            state=$(docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' \
                "$(compose ps -q "$service")" 2>/dev/null || echo "missing")
            case "$service:$state" in
                scheduler:"running none" | *:"running healthy") ;;
                *:exited* | *:dead* | *:restarting* | *unhealthy) fail "$service is $state" ;;
                *) pending="$pending $service($state)" ;;
            esac
        done
        [ -z "$pending" ] && return 0
        [ "$(date +%s)" -lt "$deadline" ] || fail "not healthy after 240 s:$pending"
        sleep 2
    done
}

up() {
    compose up --build --detach >"$WORK/up.log" 2>&1 || fail "docker compose up --build: $(tail -20 "$WORK/up.log")"
    wait_healthy
}

check_stack() {
    local owner=$1
    say "[$owner] home page, health, readiness"
    expect_status 200 "$BASE/health"
    expect_status 200 "$BASE/ready"
    curl -fsS "$BASE/" | grep -q "5 MB" || fail "the home page does not say 5 MB"

    say "[$owner] upload by curl and by the page's form"
    png 1 >"$WORK/one.png"
    png 2 >"$WORK/two.png"
    curl -fsS -H 'Accept: application/json' -F "file=@$WORK/one.png;filename=one.png" "$BASE/upload" >"$WORK/one.json" \
        || fail "upload by curl"
    url=$(json_field url <"$WORK/one.json")
    id=$(json_field id <"$WORK/one.json")
    delete_url=$(json_field delete_url <"$WORK/one.json")
    form=$(status_of -H 'Accept: text/html' -H "Origin: $BASE" -H "Referer: $BASE/upload" \
        -F "file=@$WORK/two.png;filename=two.png" "$BASE/upload")
    case $form in 200 | 201 | 303) ;; *) fail "the upload form's post answered $form" ;; esac

    say "[$owner] the direct link, served by nginx with its headers"
    curl -fsS "$url" -o "$WORK/served.png" && cmp -s "$WORK/one.png" "$WORK/served.png" || fail "direct link $url"
    [ "$(header_of content-type "$url")" = image/png ] || fail "direct link's Content-Type"
    [ "$(header_of x-content-type-options "$url")" = nosniff ] || fail "direct link's X-Content-Type-Options"
    header_of content-security-policy "$url" | grep -q sandbox || fail "direct link's sandbox CSP"
    header_of cache-control "$url" | grep -q immutable || fail "direct link's Cache-Control"
    if compose logs app --no-color | grep -q "GET /images/$(basename "$url")"; then
        fail "the app served the direct link (nginx should have)"
    fi

    say "[$owner] catalogue, list, download, delete"
    curl -fsS "$BASE/images/" | grep -q "one.png" || fail "the catalogue does not list one.png"
    curl -fsS "$BASE/images-list" | grep -q '"one.png"' || fail "/images-list does not list one.png"
    curl -fsS "$BASE/download/$id" -o "$WORK/download.png" && cmp -s "$WORK/one.png" "$WORK/download.png" \
        || fail "download"
    header_of content-disposition "$BASE/download/$id" | grep -q "one.png" || fail "download's file name"
    expect_status 200 -X DELETE "$delete_url"
    expect_status 404 "$url"
    key=${delete_url##*key=}
    # Docker hands a container's stdout to `compose logs` a moment after it is written: wait for it.
    logged=""
    for _ in $(seq 50); do
        if compose logs --no-color nginx | grep -q "DELETE /delete/$id?\[redacted\]"; then
            logged=yes
            break
        fi
        sleep 0.2
    done
    [ -n "$logged" ] || fail "nginx logged no delete"
    if compose logs --no-color app nginx | grep -qF "$key"; then
        fail "a delete key is in the access logs"
    fi

    say "[$owner] the scheduler's first backup came after the migrations"
    for _ in $(seq 60); do ls backups/backup_*.tar.gz >/dev/null 2>&1 && break; sleep 1; done
    first=$(ls backups/backup_*.tar.gz 2>/dev/null | head -1)
    [ -n "$first" ] || fail "no scheduled backup in ./backups"
    # Its dump holds every migration the app applied, and names the server's own version.
    manifest() { tar -xzOf "$1" --wildcards '*/manifest.json'; }
    sql() { compose exec -T db psql -U imagehost -d images_db -tAc "$1" | tr -d '[:space:]'; }
    migrations=$(sql 'SELECT count(*) FROM migration')
    in_backup=$(manifest "$first" | python3 -c 'import json, sys; print(json.load(sys.stdin)["database"]["rows"].get("migration", 0))')
    [ "$in_backup" = "$migrations" ] || fail "the first backup holds $in_backup of $migrations migrations"
    server=$(compose exec -T db psql -U imagehost -d images_db -tAc 'SHOW server_version' | awk '{print $1}')
    recorded=$(manifest "$first" | python3 -c 'import json, sys; print(json.load(sys.stdin)["database"]["server_version"])')
    [ "$recorded" = "$server" ] || fail "the manifest records PostgreSQL $recorded for a $server server"

    say "[$owner] backup by hand and restore, files owned by the clone's owner"
    png 3 >"$WORK/three.png"
    curl -fsS -H 'Accept: application/json' -F "file=@$WORK/three.png;filename=three.png" "$BASE/upload" \
        >"$WORK/three.json" || fail "upload before the backup"
    kept=$(json_field url <"$WORK/three.json")
    before=$(ls backups/backup_*.tar.gz | wc -l)
    compose exec -T app imagehost backup || fail "docker compose exec app imagehost backup"
    newest=$(ls -t backups/backup_*.tar.gz | head -1)
    [ "$(ls backups/backup_*.tar.gz | wc -l)" -gt "$before" ] || fail "the backup made no file"
    for file in "$newest" logs/app.log "images/$(basename "$kept")"; do
        [ "$(stat -c %u "$file")" = "$owner" ] || fail "$file belongs to uid $(stat -c %u "$file"), not $owner"
    done
    compose exec -T app imagehost restore "/srv/backups/$(basename "$newest")" --yes || fail "restore"
    curl -fsS "$kept" -o /dev/null || fail "the image kept in the backup is gone after the restore"

    say "[$owner] down and up: the data stays"
    compose down --timeout 30 || fail "docker compose down"
    up
    curl -fsS "$kept" -o /dev/null || fail "the image is gone after down and up"
    curl -fsS "$BASE/images-list" | grep -q '"three.png"' || fail "the list lost three.png after down and up"
}

for owner in $OWNERS; do
    say "[$owner] a fresh copy of the tree (what a clone would hold), owned by uid $owner"
    CLONE="$WORK/clone-$owner"
    mkdir -p "$CLONE"
    if ! git -C "$PROJECT" rev-parse --verify -q HEAD >/dev/null; then
        # Not a git checkout (an unpacked archive): the files, without local state.
        tar -C "$PROJECT" --exclude=./.venv --exclude=./var --exclude=./.env --exclude='./images/*' \
            --exclude='./logs/*' --exclude='./backups/*' --exclude=./test-artifacts -cf - . | tar -x -C "$CLONE"
    elif [ "${COMPOSE_TEST_TREE:-HEAD}" = worktree ]; then
        (cd "$PROJECT" && git ls-files -z --cached --others --exclude-standard \
            | xargs -0 cp -a --parents -t "$CLONE" 2>/dev/null) || true
    else
        (cd "$PROJECT" && git archive HEAD) | tar -x -C "$CLONE" || fail "git archive HEAD"
    fi
    [ -f "$CLONE/docker-compose.yml" ] || fail "the copy of the tree has no docker-compose.yml"
    chown -R "$owner:$owner" "$CLONE"
    cd "$CLONE"
    cp .env.example .env
    if [ "$owner" = "${OWNERS%% *}" ]; then
        # The first clone sets the two secrets itself; the others leave them to the first start.
        sed -i "s/^POSTGRES_PASSWORD=.*/POSTGRES_PASSWORD=$(python3 -c 'import secrets; print(secrets.token_hex(16))')/" .env
        sed -i "s/^SECRET_KEY=.*/SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_hex(32))')/" .env
    fi
    [ -n "$STANDINS" ] || sed -i "s/^HTTP_PORT=.*/HTTP_PORT=$PORT/" .env
    say "[$owner] docker compose up --build"
    up
    if ! grep -q '^SECRET_KEY=.' .env; then
        key=$(compose exec -T app cat /run/imagehost-secrets/secret_key) || fail "no secret_key in the secrets volume"
        [ "${#key}" = 64 ] || fail "the SECRET_KEY made at the first start is '$key'"
    fi
    check_stack "$owner"
    compose down -v --remove-orphans --timeout 30 >/dev/null 2>&1 || fail "docker compose down -v"
    cd "$WORK"
    rm -rf "$CLONE"
    CLONE=""
done
