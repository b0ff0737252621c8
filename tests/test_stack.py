"""The real nginx, configured by the project's own nginx.conf, in front of a live app: the compose stack without Docker.

nginx.conf is rendered the way the nginx image renders its templates (only the variables below are
substituted, with the values compose's own deploy/nginx-env.sh derives from the app's settings) and
wrapped in a minimal main config in a temporary folder.
"""

from __future__ import annotations

import http.client
import io
import os
import re
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import psutil
import pytest

from imagehost.images.controllers import IMAGE_SECURITY_HEADERS, IMMUTABLE, PRIVATE_IMMUTABLE
from tests.conftest import ADMIN_TOKEN, HTML, HTMX, png_bytes, run_sql
from tests.images.test_upload import MIB, exactly
from tests.live import PROJECT_ROOT, LiveApp, free_port, live_app, require, wait_until_healthy

pytestmark = pytest.mark.stack

NGINX_TEMPLATE = PROJECT_ROOT / "nginx.conf"
TEMPLATE_VARIABLES = (
    "NGINX_PORT",
    "APP_UPSTREAM",
    "IMAGES_ROOT",
    "NGINX_MAX_BODY",
    "NGINX_API_MAX_BODY",
    "NGINX_ZIP_MAX_BODY",
    "NGINX_ZIP_TIMEOUT",
    "NGINX_EXPORT_TIMEOUT",
    "IMAGES_AUTH_REQUEST",
    "IMAGES_CACHE_CONTROL",
    "NGINX_ACCESS_LOG",
    "NGINX_METRICS_PUBLIC",
    "IMAGES_MISSING",
    "NGINX_CACHE_DIR",
    "APP_MORE_SERVERS",
)
NGINX_ENV_SCRIPT = PROJECT_ROOT / "deploy" / "nginx-env.sh"
# The app's settings that nginx-env.sh reads (compose passes these to the nginx service).
NGINX_SETTINGS = (
    "MAX_UPLOAD_BYTES",
    "API_MAX_UPLOAD_BYTES",
    "ZIP_MAX_BYTES",
    "ZIP_READ_TIMEOUT_SECONDS",
    "EXPORT_TIMEOUT_SECONDS",
    "PRIVATE_IMAGES",
    "METRICS_PUBLIC",
    "STORAGE",
    "APP_MORE_UPSTREAMS",
)
CURL = {"Accept": "*/*", "User-Agent": "curl/8.14.1"}
TOO_LARGE = "The upload is larger than this server accepts."


def render_template(template: str, values: Mapping[str, str]) -> str:
    """What the nginx image's envsubst does: replace $NAME and ${NAME} for the given names only."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", replace, template)


def main_config(prefix: Path, server_file: Path, as_root: bool) -> str:
    """The image's own nginx.conf, cut down: everything that writes goes under `prefix`."""
    return f"""
{"user root;" if as_root else ""}
worker_processes 1;
pid "{prefix}/nginx.pid";
error_log "{prefix}/error.log" info;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
    access_log "{prefix}/http-access.log";
    client_body_temp_path "{prefix}/client_body";
    proxy_temp_path "{prefix}/proxy";
    fastcgi_temp_path "{prefix}/fastcgi";
    uwsgi_temp_path "{prefix}/uwsgi";
    scgi_temp_path "{prefix}/scgi";
    include "{server_file}";
}}
"""


def nginx_environment(app_env: Mapping[str, str], access_log: Path) -> dict[str, str]:
    """What deploy/nginx-env.sh (compose's nginx command) exports for the app's settings."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NGINX_ACCESS_LOG": str(access_log),
        "NGINX_CACHE_DIR": str(access_log.parent / "cache"),
    }
    env |= {name: app_env[name] for name in NGINX_SETTINGS if name in app_env}
    done = subprocess.run(["sh", str(NGINX_ENV_SCRIPT), "env"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    exported = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    return {name: exported[name] for name in TEMPLATE_VARIABLES if name in exported}


@contextmanager
def running_nginx(binary: str, prefix: Path, app: LiveApp, more: Sequence[LiveApp] = ()) -> Iterator[int]:
    """nginx with the project's nginx.conf in front of `app` and the instances `more` (APP_MORE_UPSTREAMS)."""
    prefix.mkdir()
    port = free_port()
    upstreams = {"APP_MORE_UPSTREAMS": ",".join(f"127.0.0.1:{other.port}" for other in more)} if more else {}
    values = {
        "NGINX_PORT": f"127.0.0.1:{port}",
        "APP_UPSTREAM": f"127.0.0.1:{app.port}",
        "IMAGES_ROOT": str(app.images_dir),
        # The rest as compose derives them: from the app's own settings, by deploy/nginx-env.sh.
        **nginx_environment({**app.env, **upstreams}, access_log=prefix / "access.log"),
    }
    template = NGINX_TEMPLATE.read_text(encoding="utf-8")
    unknown = {m.group(1) or m.group(2) for m in re.finditer(r"\$\{(\w+)\}|\$([A-Z_][A-Z0-9_]*)\b", template)}
    assert unknown <= set(TEMPLATE_VARIABLES), f"nginx.conf uses variables compose does not set: {unknown}"
    server_file = prefix / "default.conf"
    server_file.write_text(render_template(template, values), encoding="utf-8")
    main = prefix / "nginx.conf"
    main.write_text(main_config(prefix, server_file, as_root=os.geteuid() == 0), encoding="utf-8")
    with nginx_process(binary, prefix, main, f"http://127.0.0.1:{port}/health"):
        yield port


@contextmanager
def nginx_process(binary: str, prefix: Path, main: Path, ready_url: str) -> Iterator[subprocess.Popen]:
    """nginx (the master) on the main config `main`, writing under `prefix`, once `ready_url` answers 200."""
    command = [binary, "-p", str(prefix), "-c", str(main), "-e", str(prefix / "error.log")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    output = (prefix / "nginx.out").open("wb")
    process = subprocess.Popen([*command, "-g", "daemon off;"], stdout=output, stderr=subprocess.STDOUT)
    try:
        error_log = prefix / "error.log"
        wait_until_healthy(ready_url, process, "nginx", lambda: error_log.read_text(errors="replace"), 10)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()


@dataclass
class Stack:
    url: str
    port: int
    app: LiveApp
    workdir: Path

    def app_log(self) -> str:
        """uvicorn's output, access log included: every request that reached the app."""
        return (self.workdir / "uvicorn.out").read_text(encoding="utf-8", errors="replace")

    def upload(self, content: bytes, name: str, headers: Mapping[str, str] = CURL) -> httpx.Response:
        return httpx.post(
            f"{self.url}/upload",
            files={"file": (name, content, "application/octet-stream")},
            headers=dict(headers),
            timeout=30,
        )


API_TOKEN = "stack-api-token"
ZIP_LIMIT = 8 * MIB  # smaller than the default, so that the test's bodies stay small


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    run_sql(database_url, "TRUNCATE images RESTART IDENTITY CASCADE")
    workdir = tmp_path_factory.mktemp("stack")
    with (
        live_app(
            database_url,
            workdir,
            ACCEL_DOWNLOADS="true",
            ADMIN_TOKEN=ADMIN_TOKEN,
            API_TOKENS=API_TOKEN,
            ZIP_MAX_BYTES=str(ZIP_LIMIT),
        ) as app,
        running_nginx(binary, workdir / "nginx", app) as port,
    ):
        yield Stack(url=f"http://127.0.0.1:{port}", port=port, app=app, workdir=workdir)


@pytest.fixture(scope="module")
def picture(stack: Stack) -> tuple[dict, bytes]:
    content = png_bytes(40, 30, (10, 120, 200))
    response = stack.upload(content, "picture.png")
    assert response.status_code == 201, response.text
    return response.json(), content


def raw_get(port: int, path: str, method: str = "GET") -> tuple[int, http.client.HTTPMessage, bytes]:
    """Send the path exactly as written (httpx and browsers would resolve the dots first)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def assert_inert(headers: Mapping[str, str]) -> None:
    """The three headers that keep served user content from being anything but an image."""
    for name, value in IMAGE_SECURITY_HEADERS.items():
        assert headers.get(name) == value, f"{name}: {headers.get(name)!r}"


# --- direct links -------------------------------------------------------------------------------------


def test_an_upload_through_nginx_gives_a_link_nginx_serves_itself(stack):
    content = png_bytes(48, 32, (250, 200, 0))
    answer = stack.upload(content, "sunflower.png")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    # The app saw nginx's Host (with its port), so the link goes back through nginx.
    assert body["url"] == f"{stack.url}/images/{body['filename']}"
    assert body["delete_url"].startswith(f"{stack.url}/delete/{body['id']}?key=")

    # The htmx upload form (multipart, HX-Request) gets its result fragment through nginx too.
    fragment = stack.upload(png_bytes(8, 8), "small.png", headers={**HTMX, "HX-Current-URL": f"{stack.url}/upload"})
    assert fragment.status_code == 201
    assert "<html" not in fragment.text.lower()
    assert f"{stack.url}/images/" in fragment.text

    served = httpx.get(body["url"])
    assert served.status_code == 200
    assert served.content == content
    assert served.headers["content-type"] == "image/png"
    assert_inert(served.headers)
    assert served.headers["cache-control"] == IMMUTABLE
    assert "set-cookie" not in served.headers
    assert served.headers["server"] == "nginx"  # server_tokens off: no version

    # nginx answered it from the folder: the app never saw the request (its access log shows the upload).
    log = stack.app_log()
    assert '"POST /upload HTTP/1.1" 201' in log
    assert f"/images/{body['filename']}" not in log


def test_head_and_range_requests_carry_the_same_headers(stack, picture):
    body, content = picture
    head = httpx.head(body["url"])
    assert head.status_code == 200
    assert head.content == b""
    assert int(head.headers["content-length"]) == len(content)
    assert head.headers["content-type"] == "image/png"
    assert_inert(head.headers)
    assert head.headers["cache-control"] == IMMUTABLE

    part = httpx.get(body["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == content[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{len(content)}"
    assert part.headers["content-type"] == "image/png"
    assert_inert(part.headers)
    assert part.headers["cache-control"] == IMMUTABLE

    # nginx makes the 416 itself and runs its header filters twice, so `always` headers come out twice
    # ("nosniff, nosniff"); browsers read the first value, so what counts is that they are there.
    beyond = httpx.get(body["url"], headers={"Range": f"bytes={len(content) + 10}-"})
    assert beyond.status_code == 416
    for name, value in IMAGE_SECURITY_HEADERS.items():
        assert beyond.headers[name].split(", ")[0] == value


def test_unknown_names_and_paths_outside_the_store_are_404_with_the_security_headers(stack, picture):
    body, _ = picture
    images = stack.app.images_dir
    hidden = "HiddenHiddenHiddenHidden.png"
    (images / ".staging" / hidden).write_bytes(b"half-written upload")
    (images.parent / hidden).write_bytes(b"outside the image folder")
    paths = [
        "/images/AAAAAAAAAAAAAAAAAAAAAA.png",  # a valid-looking name with no file
        "/images/../etc/passwd",
        "/images/..%2Fetc%2Fpasswd",
        "/images/%2e%2e/etc/passwd",
        f"/images/../{hidden}",
        f"/images/.staging/{hidden}",
        "/images/.staging/",
        "/images/.staging",
        "/images/foo",
        "/images//etc/passwd",
        f"/images/{body['filename']}/../../{hidden}",
        f"/images/{body['filename']}x",
        f"/images/{body['filename'][:-4]}.PNG",
    ]
    for path in paths:
        for method in ("GET", "HEAD"):
            status, headers, content = raw_get(stack.port, path, method)
            assert status == 404, (method, path, status)
            assert_inert(headers)
            assert "immutable" not in (headers.get("cache-control") or ""), path
            assert b"root:" not in content and b"upload" not in content, path
    # Climbing above the root: nginx refuses the request line itself (400), before choosing a location.
    for path in (
        "/images/../../../../etc/passwd",
        "/images/..%2F..%2Fetc%2Fpasswd",
        "/images/%2e%2e/%2e%2e/etc/passwd",
    ):
        status, _, content = raw_get(stack.port, path)
        assert status == 400 and b"root:" not in content, path
    log = stack.app_log()
    assert "passwd" not in log and ".staging" not in log and hidden not in log

    # The download location is internal: only the app's X-Accel-Redirect reaches it.
    assert raw_get(stack.port, f"/_stored/{body['filename']}")[0] == 404
    assert raw_get(stack.port, f"/_stored/.staging/{hidden}")[0] == 404


# --- pages through nginx --------------------------------------------------------------------------------


def test_the_catalogue_its_pages_and_the_list_work_through_nginx(stack):
    run_sql(stack.app.env["DATABASE_URL"], "TRUNCATE images RESTART IDENTITY CASCADE")
    for number in range(11):
        answer = stack.upload(png_bytes(10 + number, 10, (number * 20, 40, 90)), f"catalogue-{number:02d}.png")
        assert answer.status_code == 201, answer.text

    first = httpx.get(f"{stack.url}/images/", headers=HTML)
    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/html")
    assert '<table class="catalogue"' in first.text
    assert "catalogue-10.png" in first.text and "catalogue-01.png" in first.text
    assert "catalogue-00.png" not in first.text

    moved = httpx.get(f"{stack.url}/images", headers=HTML)
    assert moved.status_code == 301
    assert moved.headers["location"] in {"/images/", f"{stack.url}/images/"}
    moved_with_page = httpx.get(f"{stack.url}/images?page=2", headers=HTML)
    assert moved_with_page.status_code == 301
    assert moved_with_page.headers["location"].endswith("/images/?page=2")

    second = httpx.get(f"{stack.url}/images/?page=2", headers=HTML, follow_redirects=False)
    assert second.status_code == 200
    assert "catalogue-00.png" in second.text  # the oldest is alone on page 2
    assert "catalogue-10.png" not in second.text

    fragment = httpx.get(f"{stack.url}/images/?page=2", headers=HTMX)
    assert fragment.status_code == 200
    assert 'id="catalogue"' in fragment.text and "<html" not in fragment.text.lower()
    assert "HX-Request" in fragment.headers.get("vary", "")

    listing = httpx.get(f"{stack.url}/images-list").json()
    assert listing["pagination"] == {"total_pages": 2, "total_items": 11}
    assert [item["original_name"] for item in listing["data"]] == [f"catalogue-{n:02d}.png" for n in range(10, 0, -1)]
    oldest = httpx.get(f"{stack.url}/images-list?page=2").json()["data"]
    assert [item["original_name"] for item in oldest] == ["catalogue-00.png"]
    # Every link in the list opens through nginx.
    assert httpx.get(oldest[0]["url"]).status_code == 200
    assert oldest[0]["url"].startswith(f"{stack.url}/images/")


# --- size limits ----------------------------------------------------------------------------------------


def test_a_body_over_the_limit_is_refused_by_nginx_with_a_readable_answer(stack):
    too_big = b"\x89PNG\r\n\x1a\n" + b"\0" * (6 * MIB)
    uploads_before = stack.app_log().count("POST /upload")

    scripted = stack.upload(too_big, "huge.png")
    assert scripted.status_code == 413
    assert scripted.headers["content-type"].startswith("application/json")
    assert scripted.json() == {"status": "error", "error": TOO_LARGE}

    htmx = stack.upload(too_big, "huge.png", headers=HTMX)
    assert htmx.status_code == 413
    assert htmx.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in htmx.text and TOO_LARGE in htmx.text and "<html" not in htmx.text

    browser = stack.upload(too_big, "huge.png", headers=HTML)
    assert browser.status_code == 413
    assert browser.headers["content-type"].startswith("text/html")
    assert "<html" in browser.text and TOO_LARGE in browser.text

    # nginx refused them all: none reached the app.
    assert stack.app_log().count("POST /upload") == uploads_before


def test_exactly_the_limit_passes_through_nginx_and_one_byte_more_gets_the_apps_answer(stack):
    at_limit = exactly(5 * MIB)
    accepted = stack.upload(at_limit, "limit.png")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["size"] == 5 * MIB
    assert httpx.get(accepted.json()["url"]).content == at_limit

    # Within nginx's limit (one file plus its envelope), so the app answers, naming the file and the limit.
    over = stack.upload(exactly(5 * MIB + 1), "over.png")
    assert over.status_code == 413
    assert "over.png" in over.json()["error"] and "5 MB" in over.json()["error"]


# --- downloads ------------------------------------------------------------------------------------------


def test_a_download_through_nginx_has_the_original_name_and_the_bytes(stack):
    name = "кот на крыше.png"
    content = png_bytes(20, 20, (90, 90, 90))
    body = stack.upload(content, name).json()
    assert body["original_name"] == name

    download = httpx.get(f"{stack.url}/download/{body['id']}")
    assert download.status_code == 200
    assert download.content == content  # sent by nginx: the app's own answer has an empty body
    disposition = download.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f"filename*=UTF-8''{quote(name, safe='')}" in disposition
    assert unquote(disposition.split("filename*=UTF-8''", 1)[1]) == name
    assert download.headers["content-type"] == "image/png"
    assert_inert(download.headers)
    assert "x-accel-redirect" not in download.headers
    assert f"GET /download/{body['id']} HTTP/1.1" in stack.app_log()

    assert httpx.get(f"{stack.url}/download/999999").status_code == 404


# --- a huge streamed body -------------------------------------------------------------------------------


@dataclass
class Refusal:
    status: int
    body: bytes
    sent: int
    peak_rss_growth: int


def send_chunked_upload(port: int, total: int, watched_pid: int) -> Refusal:
    """POST a multipart body of `total` bytes with Transfer-Encoding: chunked (no Content-Length).

    Stops sending as soon as the server answers or stops reading, and watches the app's memory meanwhile.
    """
    process = psutil.Process(watched_pid)
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    boundary = "stack-test-boundary"
    preamble = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="huge.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    head = (
        f"POST /upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nUser-Agent: curl/8.14.1\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    block = b"\0" * (256 * 1024)
    chunk = b"%x\r\n" % len(block) + block + b"\r\n"
    sent = 0
    received = b""
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    try:
        sock.sendall(head + b"%x\r\n" % len(preamble) + preamble + b"\r\n")
        try:
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered already
                sock.sendall(chunk)
                sent += len(block)
            else:
                epilogue = f"\r\n--{boundary}--\r\n".encode()
                sock.sendall(b"%x\r\n" % len(epilogue) + epilogue + b"\r\n0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading or closed: its answer is waiting
        sock.settimeout(10)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                received += data
                head_end = received.find(b"\r\n\r\n")
                if head_end >= 0:
                    length = re.search(rb"(?im)^content-length:\s*(\d+)", received[:head_end])
                    if length and len(received) >= head_end + 4 + int(length.group(1)):
                        break
        except (ConnectionResetError, TimeoutError):
            pass
    finally:
        sock.close()
        time.sleep(0.1)
        done.set()
        watcher.join()
    status_line = received.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), received[:200]
    return Refusal(
        status=int(status_line.split()[1]),
        body=received.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in received else b"",
        sent=sent,
        peak_rss_growth=peak - baseline,
    )


def test_a_50_mb_chunked_body_is_refused_without_the_app_holding_it(stack):
    total = 50 * 1000 * 1000
    direct = send_chunked_upload(stack.app.port, total, stack.app.process.pid)
    assert direct.status == 413, direct.body
    assert b"too large" in direct.body
    assert direct.peak_rss_growth < 20 * MIB, f"the app grew by {direct.peak_rss_growth / MIB:.1f} MB"

    through_nginx = send_chunked_upload(stack.port, total, stack.app.process.pid)
    assert through_nginx.status == 413, through_nginx.body
    assert TOO_LARGE.encode() in through_nginx.body
    assert through_nginx.peak_rss_growth < 20 * MIB


# --- thumbnails and the conversion API ---------------------------------------------------------------


def test_thumbnails_are_served_by_nginx_with_the_image_headers(stack):
    from PIL import Image as PILImage

    body = stack.upload(png_bytes(900, 600, (30, 160, 90)), "meadow.png").json()
    for size, expected in ((160, (160, 107)), (480, (480, 320))):  # 1280 >= 900: the original serves
        url = f"{stack.url}/images/thumbs/{size}/{body['filename']}.webp"
        served = httpx.get(url)
        assert served.status_code == 200, url
        assert served.headers["content-type"] == "image/webp"
        assert_inert(served.headers)
        assert served.headers["cache-control"] == IMMUTABLE
        with PILImage.open(io.BytesIO(served.content)) as thumbnail:
            assert thumbnail.format == "WEBP" and thumbnail.size == expected
    missing = httpx.get(f"{stack.url}/images/thumbs/160/AAAAAAAAAAAAAAAAAAAAAA.png.webp")
    assert missing.status_code == 404
    assert_inert(missing.headers)
    assert "/images/thumbs/" not in stack.app_log()  # nginx answered every one of them
    page = httpx.get(f"{stack.url}/i/{body['filename']}", headers=HTML)
    assert page.status_code == 200
    assert f"{stack.url}/images/thumbs/480/{body['filename']}.webp" in page.text
    assert not (stack.app.images_dir / "thumbs" / "1280" / f"{body['filename']}.webp").exists()


def test_the_conversion_api_takes_larger_files_through_nginx_than_uploads(stack):
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    PILImage.frombytes("RGB", (1500, 1500), bytes(range(256)) * (1500 * 1500 * 3 // 256 + 1)).save(buffer, "BMP")
    big = buffer.getvalue()
    assert 6 * MIB < len(big) < 20 * MIB
    refused = stack.upload(big, "big.bmp")
    assert refused.status_code == 413  # nginx's own limit for /upload
    converted = httpx.post(
        f"{stack.url}/api/images",
        files={"file": ("big.bmp", big)},
        data={"quality": "70", "x": "300"},
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=60,
    )
    assert converted.status_code == 201, converted.text
    body = converted.json()
    assert (body["width"], body["height"], body["source_format"]) == (300, 300, "BMP")
    assert httpx.get(body["url"]).headers["content-type"] == "image/jpeg"
    anonymous = httpx.post(f"{stack.url}/api/images", files={"file": ("x.png", png_bytes())})
    assert anonymous.status_code == 401


# --- PRIVATE_IMAGES: nginx asks the app before serving an original or a thumbnail ----------------


# Every spelling the app reads as true must close nginx too (compose once matched lower-case `true` only).
@pytest.fixture(scope="module", params=["True", "1"])
def private_stack(request, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    workdir = tmp_path_factory.mktemp("private-stack")
    # Sign-in on (nobody signs in here: the issuer is never asked), browsing closed to visitors.
    settings = {
        "PRIVATE_IMAGES": request.param,
        "OIDC_ISSUER": "http://127.0.0.1:9/realms/unused",
        "OIDC_CLIENT_ID": "imagehost",
        "API_TOKENS": API_TOKEN,
        "ACCEL_DOWNLOADS": "true",
    }
    with live_app(database_url, workdir, **settings) as app, running_nginx(binary, workdir / "nginx", app) as port:
        yield Stack(url=f"http://127.0.0.1:{port}", port=port, app=app, workdir=workdir)


def test_private_images_are_served_by_nginx_only_to_those_who_may_browse(private_stack):
    token = {"Authorization": f"Bearer {API_TOKEN}"}
    content = png_bytes(700, 350, (90, 40, 140))
    uploaded = private_stack.upload(content, "secret.png", headers={**CURL, **token})
    assert uploaded.status_code == 201, uploaded.text
    body = uploaded.json()
    thumbnail = f"{private_stack.url}/images/thumbs/160/{body['filename']}.webp"
    for url in (body["url"], thumbnail):
        refused = httpx.get(url)
        assert refused.status_code == 401, url
        assert_inert(refused.headers)
        assert refused.content != content
        allowed = httpx.get(url, headers=token)
        assert allowed.status_code == 200, url
        assert allowed.headers["cache-control"] == PRIVATE_IMMUTABLE
        assert_inert(allowed.headers)
    assert httpx.get(body["url"], headers=token).content == content
    # nginx still sent the file itself: the app saw only its yes-or-no questions.
    log = private_stack.app_log()
    assert "GET /_auth/images" in log and f"GET /images/{body['filename']}" not in log
    assert httpx.get(f"{private_stack.url}/download/{body['id']}").status_code == 401
    assert httpx.get(f"{private_stack.url}/download/{body['id']}", headers=token).content == content


# --- secrets out of the logs, one set of security headers -----------------------------------------


def test_delete_keys_reach_neither_nginxs_access_log_nor_the_apps(stack):
    body = stack.upload(png_bytes(12, 12, (1, 2, 3)), "secret-key.png").json()
    key = body["delete_url"].split("key=", 1)[1]
    assert len(key) >= 16
    referer = {"Referer": f"{stack.url}/delete/{body['id']}?key={key}"}
    assert httpx.get(f"{stack.url}/", headers={**HTML, **referer}).status_code == 200
    assert httpx.get(f"{stack.url}/images/?page=1&KEY={key}", headers=HTML).status_code == 200
    deleted = httpx.delete(f"{stack.url}/delete/{body['id']}?key={key}")
    assert deleted.status_code == 200, deleted.text
    assert httpx.get(body["url"]).status_code == 404

    access_log = (stack.workdir / "nginx" / "access.log").read_text(encoding="utf-8", errors="replace")
    assert f'DELETE /delete/{body["id"]}?[redacted] HTTP/1.1" 200' in access_log
    assert "GET /images/?[redacted] HTTP/1.1" in access_log
    assert '"GET / HTTP/1.1" 200' in access_log and '"[redacted]"' in access_log  # the Referer
    assert key not in access_log
    app_log = stack.app_log()
    assert f'DELETE /delete/{body["id"]}?[redacted] HTTP/1.1" 200' in app_log
    assert key not in app_log
    # Only the key goes: other queries stay readable in both logs.
    assert httpx.get(f"{stack.url}/images/?page=2", headers=HTML).status_code == 200
    assert "GET /images/?page=2 HTTP/1.1" in (stack.workdir / "nginx" / "access.log").read_text()
    assert "?page=2 HTTP/1.1" in stack.app_log()


def header_values(response: httpx.Response, name: str) -> list[str]:
    return response.headers.get_list(name)


def test_nginx_adds_no_security_headers_of_its_own_to_the_apps_pages(stack, picture):
    body, _ = picture
    for path in ("/", "/images/", "/upload", f"/i/{body['filename']}", "/no-such-page"):
        direct = httpx.get(f"{stack.app.url}{path}", headers=HTML)
        proxied = httpx.get(f"{stack.url}{path}", headers=HTML)
        assert proxied.status_code == direct.status_code, path
        for name in ("content-security-policy", "referrer-policy", "x-content-type-options"):
            # Exactly what the app sent: never a second copy from nginx (a browser enforces every CSP).
            assert header_values(proxied, name) == header_values(direct, name), (path, name)
            assert len(header_values(proxied, name)) <= 1, (path, name)
    # The app's own pages carry its policy, exactly once, through nginx.
    page = httpx.get(f"{stack.url}/", headers=HTML)
    policies = header_values(page, "content-security-policy")
    assert len(policies) == 1 and "default-src 'self'" in policies[0], policies
    assert header_values(page, "referrer-policy") == ["strict-origin-when-cross-origin"]
    assert header_values(page, "x-content-type-options") == ["nosniff"]


def test_what_nginx_serves_itself_keeps_its_sandbox_policy_once(stack, picture):
    body, _ = picture
    sandbox = IMAGE_SECURITY_HEADERS["Content-Security-Policy"]
    for url, status in (
        (body["url"], 200),
        (f"{stack.url}/images/AAAAAAAAAAAAAAAAAAAAAA.png", 404),
        (f"{stack.url}/images/thumbs/160/AAAAAAAAAAAAAAAAAAAAAA.png.webp", 404),
        (f"{stack.url}/images/foo", 404),
    ):
        answer = httpx.get(url)
        assert answer.status_code == status, url
        assert header_values(answer, "content-security-policy") == [sandbox], url
    too_big = stack.upload(b"\0" * (6 * MIB), "huge.png", headers=HTML)
    assert too_big.status_code == 413
    assert header_values(too_big, "content-security-policy") == ["default-src 'none'; frame-ancestors 'none'"]
    assert header_values(too_big, "x-content-type-options") == ["nosniff"]


# --- what the app hears from nginx -----------------------------------------------------------------


@contextmanager
def recording_upstream() -> Iterator[tuple[int, list[tuple[str, dict[str, str]]]]]:
    """A stand-in for the app that answers 200 to /health and 204 to everything else, noting headers."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[tuple[str, dict[str, str]]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, {name.lower(): value for name, value in self.headers.items()}))
            self.send_response(200 if self.path == "/health" else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], seen
    finally:
        server.shutdown()
        server.server_close()


def test_the_private_images_check_reaches_the_app_with_the_visitors_host_and_address(tmp_path):
    from types import SimpleNamespace

    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    (tmp_path / "images").mkdir()
    with recording_upstream() as (upstream_port, seen):
        app = SimpleNamespace(port=upstream_port, images_dir=tmp_path / "images", env={"PRIVATE_IMAGES": "on"})
        with running_nginx(binary, tmp_path / "nginx", app) as port:
            name = "AAAAAAAAAAAAAAAAAAAAAA.png"
            assert httpx.get(f"http://127.0.0.1:{port}/images/{name}").status_code == 404  # allowed; no file
    checks = [headers for path, headers in seen if path.startswith("/_auth/images")]
    assert len(checks) == 1, seen
    check = checks[0]
    assert check["x-original-uri"] == f"/images/{name}"
    # The same forwarded headers as every proxied request: the app sees the visitor's site and address.
    assert check["host"] == f"127.0.0.1:{port}"
    assert check["x-forwarded-for"] == "127.0.0.1" and check["x-real-ip"] == "127.0.0.1"
    assert check["x-forwarded-proto"] == "http"


def test_the_home_page_through_nginx_states_the_limit_as_the_upload_page_does(stack):
    home = httpx.get(f"{stack.url}/", headers=HTML)
    upload = httpx.get(f"{stack.url}/upload", headers=HTML)
    assert home.status_code == upload.status_code == 200
    assert "up to 5 MB" in home.text and "5 MB" in upload.text
    assert "5242880" not in home.text


def test_zip_archives_have_their_own_body_limit_in_nginx_as_in_the_app(stack):
    def post_zip(size: int) -> httpx.Response:
        return httpx.post(
            f"{stack.url}/api/upload",
            files={"zipfile": ("album.zip", b"PK\x03\x04" + b"\0" * (size - 4), "application/zip")},
            headers={**CURL, "Authorization": f"Bearer {API_TOKEN}"},
            timeout=60,
        )

    before = stack.app_log().count("POST /api/upload")
    # Over the upload limit, under the ZIP one: nginx lets it through and the app judges it.
    within = post_zip(6 * MIB)
    assert TOO_LARGE not in within.text, within.text
    assert stack.app_log().count("POST /api/upload") == before + 1
    # Over the ZIP limit: nginx refuses it itself, as for uploads.
    beyond = post_zip(ZIP_LIMIT + 128 * 1024)
    assert beyond.status_code == 413
    assert beyond.json() == {"status": "error", "error": TOO_LARGE}
    assert stack.app_log().count("POST /api/upload") == before + 1
