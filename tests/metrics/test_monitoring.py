"""The monitoring profile: the dashboard asks only for metrics the app exports, Prometheus scrapes
the app the way the app wants, compose's profile is valid, and nginx hides /metrics from outside."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from imagehost.settings import Settings, SettingsError, _bool
from tests.conftest import ADMIN_TOKEN, png_bytes, upload
from tests.live import PROJECT_ROOT, live_app, require
from tests.metrics.conftest import METRICS_TOKEN, parse, scrape

MONITORING = PROJECT_ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "imagehost.json"
COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
JSON = {"Accept": "application/json"}
PROMQL_WORDS = {"sum", "by", "rate", "increase", "histogram_quantile", "max", "min", "le", "without", "on"}


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    return queries


def metric_names(query: str) -> set[str]:
    """Every imagehost_* name a PromQL query reads (label values in quotes left out)."""
    unquoted = re.sub(r'"[^"]*"', '""', query)
    return set(re.findall(r"\bimagehost_[a-z0-9_]+", unquoted))


def exported_names(samples) -> set[str]:
    return {name for name, _ in samples}


def test_the_dashboard_reads_only_metrics_the_app_exports(make_client):
    client = make_client(metrics_token=METRICS_TOKEN)
    # Some traffic first: the HTTP metrics appear with the first request, the error counter with a 5xx.
    assert upload(client, png_bytes(), "seen.png", headers=JSON).status_code == 201
    assert upload(client, b"nope", "seen.txt", headers=JSON).status_code == 415
    client.get("/images/", headers=JSON)
    exported = exported_names(scrape(client))
    queries = dashboard_queries()
    assert len(queries) >= 15
    read = set().union(*(metric_names(query) for query in queries))
    # The HTTP error counter exists once a 5xx was answered; it is Litestar's, named like the others.
    missing = read - exported - {"imagehost_requests_error_total"}
    assert not missing, f"the dashboard reads metrics the app does not export: {sorted(missing)}"
    wanted = {
        "imagehost_uploads_total",
        "imagehost_upload_duration_seconds_bucket",
        "imagehost_requests_total",
        "imagehost_request_duration_seconds_bucket",
        "imagehost_workers_busy",
        "imagehost_database_pool_connections_in_use",
        "imagehost_zip_entries_total",
        "imagehost_last_backup_age_seconds",
    }
    assert wanted <= read


def test_prometheus_scrapes_the_app_on_the_compose_network_with_the_token():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text(encoding="utf-8"))
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["app:8000"]  # the app itself, never nginx
    assert job["authorization"]["type"] == "Bearer"
    token_file = job["authorization"]["credentials_file"]
    prometheus = COMPOSE["services"]["prometheus"]
    assert prometheus["profiles"] == ["monitoring"]
    assert prometheus["environment"]["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"
    assert token_file in prometheus["entrypoint"][2]  # the entrypoint writes the token there
    assert "./deploy/monitoring/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    assert COMPOSE["services"]["app"]["environment"]["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"


def test_grafana_is_provisioned_with_the_dashboard():
    grafana = COMPOSE["services"]["grafana"]
    assert grafana["profiles"] == ["monitoring"]
    for service in ("prometheus", "grafana"):
        image = COMPOSE["services"][service]["image"]
        assert re.fullmatch(r"(prom/prometheus|grafana/grafana):v?\d+\.\d+\.\d+", image), image
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in grafana["volumes"]}
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/imagehost.yml").read_text())
    dashboards_path = provider["providers"][0]["options"]["path"]
    assert (PROJECT_ROOT / mounts[dashboards_path]).resolve() == DASHBOARD.parent.resolve()
    assert (PROJECT_ROOT / mounts["/etc/grafana/provisioning"]).resolve() == (MONITORING / "grafana/provisioning")
    source = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert source["datasources"][0]["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "imagehost"


def docker_compose() -> list[str] | None:
    """`docker compose` as deploy/compose-test.sh finds it (also its own fetched Compose v2)."""
    if not shutil.which("docker"):
        return None
    cache = os.environ.get("COMPOSE_TEST_CACHE", "/var/tmp/imagehost-compose-test")
    for config in (None, f"{cache}/dockercfg"):
        env = {**os.environ, **({"DOCKER_CONFIG": config} if config else {})}
        done = subprocess.run(["docker", "compose", "version"], env=env, capture_output=True, text=True)
        if done.returncode == 0:
            return ["env", *([f"DOCKER_CONFIG={config}"] if config else []), "docker", "compose"]
    return None


def test_the_monitoring_profile_is_a_valid_compose_file():
    command = docker_compose()
    if command is None:
        pytest.skip("no `docker compose` (Compose v2) on this machine; deploy/compose-test.sh checks it where there is")
    env = {**os.environ, "METRICS_TOKEN": "x", "POSTGRES_PASSWORD": "x", "DATABASE_URL": "x", "SECRET_KEY": "x"}
    done = subprocess.run(
        [*command, "--profile", "monitoring", "config", "-q"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_compose_test_checks_the_profile_too():
    script = (PROJECT_ROOT / "deploy" / "compose-test.sh").read_text(encoding="utf-8")
    assert "--profile monitoring config -q" in script


# --- nginx ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["true", " On ", "1", "false", "", "no", "garbage"])
def test_nginx_reads_metrics_public_by_the_apps_rule(value):
    done = subprocess.run(
        ["sh", str(PROJECT_ROOT / "deploy" / "nginx-env.sh"), "env"],
        env={"PATH": "/usr/bin:/bin", "METRICS_PUBLIC": value},
        capture_output=True,
        text=True,
    )
    try:
        public = _bool(value, "METRICS_PUBLIC")
    except SettingsError:
        assert done.returncode != 0 and "METRICS_PUBLIC must be true or false" in done.stderr
        with pytest.raises(SettingsError):
            Settings.from_env({"METRICS_PUBLIC": value})
        return
    assert done.returncode == 0, done.stderr
    exported = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
    assert exported["NGINX_METRICS_PUBLIC"] == ("true" if public else "false")
    assert Settings.from_env({"METRICS_PUBLIC": value}).metrics_public is public
    nginx = COMPOSE["services"]["nginx"]["environment"]
    assert nginx["METRICS_PUBLIC"] == COMPOSE["services"]["app"]["environment"]["METRICS_PUBLIC"]


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    require(binary)
    return binary


METRICS_PATHS = ("/metrics", "/metrics/", "//metrics", "/metrics?x=1", "/metrics//", "/%6detrics")


@pytest.mark.parametrize("public", ["false", "true"])
def test_nginx_hides_metrics_unless_metrics_public(database_url, tmp_path: Path, nginx_binary, public):
    from tests.test_stack import running_nginx

    settings = {"METRICS_TOKEN": METRICS_TOKEN, "ADMIN_TOKEN": ADMIN_TOKEN, "METRICS_PUBLIC": public}
    with (
        live_app(database_url, tmp_path, WORKER_PROCESSES="0", **settings) as app,
        running_nginx(nginx_binary, tmp_path / "nginx", app) as port,
    ):
        outside = f"http://127.0.0.1:{port}"
        token = {"Authorization": f"Bearer {METRICS_TOKEN}"}
        for path in METRICS_PATHS:
            response = httpx.get(outside + path, headers=token, timeout=10)
            if public == "true":
                assert response.status_code == 200, path
                assert "imagehost_uploads_total" in response.text
            else:
                assert response.status_code == 404, path
                assert "imagehost_" not in response.text
                assert response.headers["x-content-type-options"] == "nosniff"
        # The token rule holds behind nginx as well.
        if public == "true":
            assert httpx.get(f"{outside}/metrics", timeout=10).status_code == 401
        else:
            assert httpx.get(f"{outside}/metrics", timeout=10).status_code == 404
        # A scraper on the compose network asks the app directly, whatever METRICS_PUBLIC says.
        direct = httpx.get(f"{app.url}/metrics", headers=token, timeout=10)
        assert direct.status_code == 200
        assert any(name == "imagehost_uploads_total" for name, _ in parse(direct.text))
        # Other routes are unchanged.
        assert httpx.get(f"{outside}/health", timeout=10).status_code == 200
