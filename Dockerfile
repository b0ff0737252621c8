# The ImageHost app image: uvicorn serving the Litestar app. nginx (docker-compose.yml) sits in front.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/src:/app

# Behind a TLS-intercepting proxy or a package mirror, without editing this file (README: Docker):
#   EXTRA_CA_CERTS  PEM text of extra CA certificates to trust (public certificates, not secrets)
#   PIP_INDEX_URL   the package index to install from instead of PyPI
ARG EXTRA_CA_CERTS=""
ARG PIP_INDEX_URL=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
        printf '%s\n' "$EXTRA_CA_CERTS" > /usr/local/share/ca-certificates/imagehost-extra.crt \
        && update-ca-certificates; \
    fi

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN if [ -n "$EXTRA_CA_CERTS" ]; then export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; fi \
    && if [ -z "$PIP_INDEX_URL" ]; then unset PIP_INDEX_URL; fi \
    && pip install --no-cache-dir -r requirements.txt

COPY . .
# No user is baked in: the entrypoint starts as root, finds who owns the mounted folders (images,
# logs, backups: whoever cloned the project) and runs the app as that uid and gid with setpriv.
# `imagehost ARGS` (for `docker compose exec`) is `python -m imagehost ARGS` run the same way.
RUN install -m 755 deploy/app-entrypoint.sh /usr/local/bin/imagehost-entrypoint \
    && ln -s imagehost-entrypoint /usr/local/bin/imagehost \
    && mkdir -p /srv/images /srv/logs /srv/backups

EXPOSE 8000
ENTRYPOINT ["imagehost-entrypoint"]

# Liveness only (the process answers); compose's healthcheck asks /ready (database and folder too).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

# Migrate, then hand the process over to the app: uvicorn with WEB_CONCURRENCY processes on PORT
# (default 8000; exec: it gets the signals). Trusts the proxy headers of nginx, its only client on the compose network. The access
# log leaves out delete keys.
CMD ["sh", "-c", "piccolo migrations forwards all && exec python -m imagehost serve --host 0.0.0.0 --forwarded-allow-ips='*'"]
