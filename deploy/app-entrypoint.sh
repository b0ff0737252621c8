#!/bin/sh
# The app image's entrypoint: run the command as whoever owns the mounted folders.
#
# The app writes into ./images, ./logs and ./backups, bind-mounted from the host, which belong to
# whoever cloned the project (root on a server, 1000 or 501 on a laptop, ...). Started as root, this
# finds the owner of IMAGES_DIR, gives that uid and gid a name in the container if they have none
# (any ids work: 0, 20, one the image already uses), checks that it can write into all three
# folders and then runs the command as that user with setpriv. Nothing is chowned, so `./just run`
# from the same clone keeps working. Started as another user (compose `user:`), it just runs it.
#
# Also installed as /usr/local/bin/imagehost: `docker compose exec app imagehost backup` runs
# `python -m imagehost backup` the same way, so its files get the same owner as the app's.
set -eu

fail() {
    echo "imagehost: $*" >&2
    exit 1
}

images=${IMAGES_DIR:-/srv/images}
logs=${LOG_DIR:-/srv/logs}
backups=${BACKUP_DIR:-/srv/backups}

if [ "$(basename "$0")" = imagehost ]; then
    set -- python -m imagehost "$@"
fi
[ "$#" -gt 0 ] || fail "no command given"

# Secrets .env leaves empty come from the secrets volume (compose mounts it here): the database
# password db made at its first start, and a SECRET_KEY made here once. Read as root (the files
# are root's, mode 600) and handed on in the environment.
secrets=${IMAGEHOST_SECRETS_DIR:-/run/imagehost-secrets}
load_secrets() {
    if [ -z "${SECRET_KEY:-}" ]; then
        if [ ! -s "$secrets/secret_key" ]; then
            (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secrets/secret_key.new" \
                && mv "$secrets/secret_key.new" "$secrets/secret_key")
            echo "imagehost: made SECRET_KEY, kept in the secrets volume ($secrets/secret_key)" >&2
        fi
        SECRET_KEY=$(cat "$secrets/secret_key")
        export SECRET_KEY
    fi
    if [ -z "${DATABASE_URL:-}" ]; then
        password=${POSTGRES_PASSWORD:-}
        if [ -z "$password" ]; then
            [ -s "$secrets/postgres_password" ] \
                || fail "no DATABASE_URL or POSTGRES_PASSWORD in .env, and no password made by the db service in $secrets"
            password=$(cat "$secrets/postgres_password")
        fi
        DATABASE_URL=$(python3 -c 'import sys; from urllib.parse import quote
user, password, host = sys.argv[1:]
print(f"postgresql://{quote(user, safe=str())}:{quote(password, safe=str())}@{host}/images_db")' \
            "${POSTGRES_USER:-imagehost}" "$password" "${POSTGRES_HOST:-db:5432}")
        export DATABASE_URL
    fi
}

if [ "$(id -u)" != 0 ]; then
    [ -n "${DATABASE_URL:-}" ] || fail "set DATABASE_URL (started as uid $(id -u), the secrets volume is not readable)"
    exec "$@"
fi
if [ -d "$secrets" ]; then
    load_secrets
fi

mkdir -p "$images" "$logs" "$backups"
uid=$(stat -c %u "$images")
gid=$(stat -c %g "$images")

if [ "$uid" = 0 ]; then
    # A clone made as root: the app runs as root too (inside the container only), as `just run`
    # from that clone would. To run it unprivileged, give the folders to another user on the host.
    export HOME=/root
    exec "$@"
fi

# A name for the ids (libpq and Python look the user up): reuse any the image has, else add one.
if ! getent group "$gid" >/dev/null; then
    groupadd --gid "$gid" "imagehost-$gid"
fi
if ! getent passwd "$uid" >/dev/null; then
    useradd --uid "$uid" --gid "$gid" --home-dir /tmp --no-create-home --shell /usr/sbin/nologin "imagehost-$uid"
fi
user=$(getent passwd "$uid" | cut -d: -f1)

for folder in "$images" "$logs" "$backups"; do
    if ! setpriv --reuid="$uid" --regid="$gid" --clear-groups -- test -w "$folder" -a -x "$folder"; then
        fail "$folder belongs to uid $(stat -c %u "$folder"), gid $(stat -c %g "$folder"), but the images
folder belongs to uid $uid, gid $gid, who cannot write into it. On the host, give the three folders
one owner, e.g. in the project folder: chown -R $uid:$gid images logs backups"
    fi
done

export HOME=/tmp USER="$user" LOGNAME="$user"
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
