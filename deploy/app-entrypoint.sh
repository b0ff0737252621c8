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

if [ "$(id -u)" != 0 ]; then
    exec "$@"
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
