# The ImageHost app image: uvicorn serving the Litestar app. nginx (docker-compose.yml) sits in front.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app/src:/app

# The app writes into bind-mounted host folders (images, logs, backups): build with the uid/gid that
# owns them on the host (APP_UID/APP_GID in .env) so it can.
ARG APP_UID=1000
ARG APP_GID=1000
RUN groupadd --gid "${APP_GID}" imagehost \
    && useradd --uid "${APP_UID}" --gid imagehost --home-dir /app --no-create-home --shell /usr/sbin/nologin imagehost

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
RUN mkdir -p /srv/images /srv/logs /srv/backups \
    && chown imagehost:imagehost /srv/images /srv/logs /srv/backups

USER imagehost
EXPOSE 8000

# Liveness only (the process answers); compose's healthcheck asks /ready (database and folder too).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

# Migrate, then hand the process over to uvicorn (exec: it gets the signals). Trusts the proxy headers
# of nginx, its only client on the compose network. The access log leaves out delete keys.
CMD ["sh", "-c", "piccolo migrations forwards all && exec uvicorn --factory imagehost.app:app_from_environment --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips='*' --log-config deploy/uvicorn-logging.json"]
