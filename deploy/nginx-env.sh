#!/bin/sh
# nginx's settings, derived from the app's own (the values nginx.conf's template placeholders take).
# docker-compose.yml runs nginx through this script; tests/test_stack.py runs it too, to configure
# the real nginx it starts, so that both read the settings by the same rules as the app:
#
#   MAX_UPLOAD_BYTES      -> NGINX_MAX_BODY      (+ 65536 for the multipart envelope, as
#   API_MAX_UPLOAD_BYTES  -> NGINX_API_MAX_BODY     Settings.max_request_bytes)
#   ZIP_MAX_BYTES         -> NGINX_ZIP_MAX_BODY
#   ZIP_READ_TIMEOUT_SECONDS -> NGINX_ZIP_TIMEOUT  (how long nginx waits for the app's answer to a ZIP)
#   EXPORT_TIMEOUT_SECONDS -> NGINX_EXPORT_TIMEOUT (read and send timeouts of the export routes)
#   PRIVATE_IMAGES        -> IMAGES_AUTH_REQUEST, IMAGES_CACHE_CONTROL
#   METRICS_PUBLIC        -> NGINX_METRICS_PUBLIC (true or false: /metrics from outside, or a 404)
#   STORAGE               -> IMAGES_MISSING (local: a direct link with no file is a 404; s3: nginx
#                            asks the app, which reads the bucket, and keeps the answer a minute)
#   APP_MORE_UPSTREAMS    -> APP_MORE_SERVERS (more app instances, "host:port host:port", beside
#                            APP_UPSTREAM in nginx's upstream; compose's --profile s3: app-2:8001)
#   NGINX_ACCESS_LOG      (default /var/log/nginx/access.log, the image's link to stdout)
#   NGINX_CACHE_DIR       (default /var/cache/nginx-imagehost: where that minute's copies are kept)
#
# Booleans follow imagehost.settings._bool: true, 1, yes, on / false, 0, no, off, empty, in any
# case and with surrounding blanks. Anything else stops here: nginx never guesses "public" for a
# value the app might read as private.
#
# Usage: sh nginx-env.sh COMMAND [ARG...]   (exports the variables, then execs COMMAND)
set -eu

fail() {
    echo "nginx-env.sh: $*" >&2
    exit 64
}

trim() {
    printf '%s' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

# Prints true or false for a boolean setting, or stops with the setting named.
boolean() {
    case $(trim "$2" | tr '[:upper:]' '[:lower:]') in
        1 | true | yes | on) echo true ;;
        0 | false | no | off | "") echo false ;;
        *) fail "$1 must be true or false, not '$2'" ;;
    esac
}

# A whole number of at least 1, without leading zeros (sh arithmetic reads 010 as octal).
bytes() {
    value=$(trim "$2")
    case $value in
        "" | *[!0-9]*) fail "$1 must be a whole number, not '$2'" ;;
    esac
    value=${value#"${value%%[!0]*}"}
    [ -n "$value" ] || fail "$1 must be at least 1"
    echo "$value"
}

# Each value is assigned on its own: a failed $(...) then stops the script (set -e).
MULTIPART_SLACK_BYTES=65536
max_upload=$(bytes MAX_UPLOAD_BYTES "${MAX_UPLOAD_BYTES-5242880}")
api_max_upload=$(bytes API_MAX_UPLOAD_BYTES "${API_MAX_UPLOAD_BYTES-20971520}")
zip_max=$(bytes ZIP_MAX_BYTES "${ZIP_MAX_BYTES-524288000}")
zip_timeout=$(bytes ZIP_READ_TIMEOUT_SECONDS "${ZIP_READ_TIMEOUT_SECONDS-600}")
export_timeout=$(bytes EXPORT_TIMEOUT_SECONDS "${EXPORT_TIMEOUT_SECONDS-600}")
private=$(boolean PRIVATE_IMAGES "${PRIVATE_IMAGES:-}")
NGINX_METRICS_PUBLIC=$(boolean METRICS_PUBLIC "${METRICS_PUBLIC:-}")
NGINX_MAX_BODY=$((max_upload + MULTIPART_SLACK_BYTES))
NGINX_API_MAX_BODY=$((api_max_upload + MULTIPART_SLACK_BYTES))
NGINX_ZIP_MAX_BODY=$((zip_max + MULTIPART_SLACK_BYTES))
NGINX_ZIP_TIMEOUT=${zip_timeout}s
NGINX_EXPORT_TIMEOUT=${export_timeout}s
if [ "$private" = true ]; then
    IMAGES_AUTH_REQUEST=/_auth/images
    IMAGES_CACHE_CONTROL="private, max-age=31536000, immutable"
else
    IMAGES_AUTH_REQUEST=off
    IMAGES_CACHE_CONTROL="public, max-age=31536000, immutable"
fi
case $(trim "${STORAGE:-}" | tr '[:upper:]' '[:lower:]') in
    "" | local) IMAGES_MISSING=/_no_such_image ;;
    s3) IMAGES_MISSING=@images_from_app ;;
    *) fail "STORAGE must be local or s3, not '${STORAGE}'" ;;
esac
APP_MORE_SERVERS=
for upstream in $(printf '%s' "${APP_MORE_UPSTREAMS:-}" | tr ',' ' '); do
    case $upstream in
        *[!A-Za-z0-9.:-]* | *: | :* | *[!0-9]) fail "APP_MORE_UPSTREAMS takes host:port entries, not '$upstream'" ;;
        *:*) APP_MORE_SERVERS="${APP_MORE_SERVERS}server $upstream; " ;;
        *) fail "APP_MORE_UPSTREAMS takes host:port entries, not '$upstream'" ;;
    esac
done
NGINX_ACCESS_LOG=${NGINX_ACCESS_LOG:-/var/log/nginx/access.log}
NGINX_CACHE_DIR=${NGINX_CACHE_DIR:-/var/cache/nginx-imagehost}
export NGINX_MAX_BODY NGINX_API_MAX_BODY NGINX_ZIP_MAX_BODY NGINX_ZIP_TIMEOUT NGINX_EXPORT_TIMEOUT IMAGES_AUTH_REQUEST IMAGES_CACHE_CONTROL NGINX_ACCESS_LOG NGINX_METRICS_PUBLIC IMAGES_MISSING NGINX_CACHE_DIR APP_MORE_SERVERS

[ "$#" -gt 0 ] || fail "usage: nginx-env.sh COMMAND [ARG...]"
exec "$@"
