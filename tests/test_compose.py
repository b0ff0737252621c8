"""docker-compose.yml, .env.example, README and deploy/ agree with the app's own settings.

No Docker here: these read the files and run the committed shell scripts. `just compose-test`
starts the real stack.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
import yaml

from imagehost.settings import Settings, SettingsError, _bool
from tests.live import PROJECT_ROOT

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
NGINX_ENV = PROJECT_ROOT / "deploy" / "nginx-env.sh"


def nginx_env(**settings: str) -> subprocess.CompletedProcess[str]:
    """deploy/nginx-env.sh, as compose's nginx entrypoint runs it, printing what it exports."""
    return subprocess.run(
        ["sh", str(NGINX_ENV), "env"], env={"PATH": "/usr/bin:/bin", **settings}, capture_output=True, text=True
    )


def exported(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


SPELLINGS = ["True", "TRUE", "true", "1", "yes", "on", " On ", "false", "False", "0", "off", "no", "", "garbage", "2"]


@pytest.mark.parametrize("value", SPELLINGS)
def test_nginx_reads_private_images_by_the_apps_rule(value):
    done = nginx_env(PRIVATE_IMAGES=value)
    try:
        private = _bool(value, "PRIVATE_IMAGES")
    except SettingsError:
        # The app refuses it, so nginx does too (and says why) instead of guessing "public".
        assert done.returncode != 0
        assert "PRIVATE_IMAGES must be true or false" in done.stderr
        assert done.stdout == ""
        return
    values = exported(done)
    if private:
        assert values["IMAGES_AUTH_REQUEST"] == "/_auth/images"
        assert values["IMAGES_CACHE_CONTROL"].startswith("private,")
    else:
        assert values["IMAGES_AUTH_REQUEST"] == "off"
        assert values["IMAGES_CACHE_CONTROL"].startswith("public,")


def test_nginx_reads_private_images_as_the_app_does_when_compose_sends_its_default():
    assert exported(nginx_env())["IMAGES_AUTH_REQUEST"] == "off"
    assert Settings.from_env({}).private_images is False


@pytest.mark.parametrize("value", ["1000", "010", " 2048 ", "5242880"])
def test_nginx_body_limits_are_the_apps(value):
    values = exported(nginx_env(MAX_UPLOAD_BYTES=value, API_MAX_UPLOAD_BYTES=value))
    settings = Settings.from_env({"MAX_UPLOAD_BYTES": value, "API_MAX_UPLOAD_BYTES": value})
    assert int(values["NGINX_MAX_BODY"]) == settings.max_request_bytes
    assert int(values["NGINX_API_MAX_BODY"]) == settings.api_max_request_bytes
    zip_settings = Settings.from_env({"ZIP_MAX_BYTES": value, "ZIP_READ_TIMEOUT_SECONDS": value})
    zip_values = exported(nginx_env(ZIP_MAX_BYTES=value, ZIP_READ_TIMEOUT_SECONDS=value))
    assert int(zip_values["NGINX_ZIP_MAX_BODY"]) == zip_settings.zip_max_request_bytes
    assert zip_values["NGINX_ZIP_TIMEOUT"] == f"{int(zip_settings.zip_read_timeout_seconds)}s"


@pytest.mark.parametrize("value", ["five", "0", "-1", "1e6", "$(id)", ""])
def test_nginx_refuses_body_limits_the_app_refuses(value):
    done = nginx_env(MAX_UPLOAD_BYTES=value)
    assert done.returncode != 0
    assert "MAX_UPLOAD_BYTES must be" in done.stderr
    with pytest.raises(SettingsError):
        Settings.from_env({"MAX_UPLOAD_BYTES": value})


def test_compose_runs_nginx_through_the_script_with_the_settings_it_reads():
    nginx = COMPOSE["services"]["nginx"]
    assert "/docker-entrypoint.sh" in nginx["entrypoint"]
    script = next(v for v in nginx["volumes"] if v.startswith("./deploy/nginx-env.sh:"))
    assert script.endswith(":ro") and script.split(":")[1] in nginx["entrypoint"]
    app = COMPOSE["services"]["app"]["environment"]
    for name in (
        "MAX_UPLOAD_BYTES",
        "API_MAX_UPLOAD_BYTES",
        "ZIP_MAX_BYTES",
        "ZIP_READ_TIMEOUT_SECONDS",
        "PRIVATE_IMAGES",
    ):
        assert nginx["environment"][name] == app[name], name
    # envsubst touches exactly the template's own placeholders.
    template = (PROJECT_ROOT / "nginx.conf").read_text(encoding="utf-8")
    placeholders = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", template))
    envsubst_filter = nginx["environment"]["NGINX_ENVSUBST_FILTER"].replace("$$", "$")  # compose's escape
    allowed = set(re.fullmatch(r"\^\((.*)\)\$", envsubst_filter).group(1).split("|"))
    assert placeholders == allowed


# --- one source of truth for the settings -------------------------------------------------------------


class RecordingEnvironment(Mapping[str, str]):
    """An empty environment that remembers every name Settings.from_env asks it for."""

    def __init__(self) -> None:
        self.names: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.names.add(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        self.names.add(str(name))
        return False

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.names.add(name)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def settings_the_app_reads() -> set[str]:
    environment = RecordingEnvironment()
    Settings.from_env(environment)
    return environment.names


def test_the_recorder_sees_the_settings():
    names = settings_the_app_reads()
    assert {"DATABASE_URL", "PRIVATE_IMAGES", "ROLE_ADMIN", "SESSION_IDLE_MINUTES", "BACKUP_KEEP"} <= names


def env_example_names() -> set[str]:
    text = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))


def readme_settings_names() -> set[str]:
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", row)}


def compose_environment() -> dict[str, str]:
    """The app's environment in compose; the scheduler (which extends it) adds its own."""
    services = COMPOSE["services"]
    return {**services["app"]["environment"], **services["scheduler"]["environment"]}


def test_every_setting_the_app_reads_is_passed_by_compose():
    missing = settings_the_app_reads() - set(compose_environment())
    assert not missing, f"docker-compose.yml does not pass {sorted(missing)} to the app"


def test_every_setting_compose_takes_from_env_is_in_env_example():
    passed = compose_environment()
    # Settings compose fixes itself (container paths, nginx's downloads) are not the operator's.
    from_dotenv = {name for name, value in passed.items() if "${" in str(value)}
    missing = from_dotenv - env_example_names()
    assert not missing, f".env.example does not list {sorted(missing)}"
    fixed = set(passed) - from_dotenv
    assert fixed == {"IMAGES_DIR", "LOG_DIR", "BACKUP_DIR", "ACCEL_DOWNLOADS"}


def test_every_setting_the_app_reads_is_in_the_readme():
    missing = settings_the_app_reads() - readme_settings_names()
    assert not missing, f"README's settings table does not list {sorted(missing)}"


def test_env_example_lists_nothing_compose_ignores():
    services = COMPOSE["services"]
    text = (PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8")
    interpolated = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", text))
    # Build arguments and names only the Dockerfile or compose itself reads count as used.
    unused = env_example_names() - interpolated
    assert not unused, f".env.example lists {sorted(unused)}, which docker-compose.yml never reads"
    assert services["app"]["environment"]["DATABASE_URL"].startswith("${DATABASE_URL")


# --- the app image's entrypoint: the app runs as the owner of the mounted folders ---------------------

ENTRYPOINT = PROJECT_ROOT / "deploy" / "app-entrypoint.sh"


@pytest.fixture
def container_root():
    """A private /etc (so the users the entrypoint adds stay out of this machine's) and three folders."""
    import os
    import shutil

    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("needs root, unshare and setpriv (util-linux)")
    import tempfile

    # Outside pytest's own temporary folders (mode 700): the app's user must reach the folders.
    root = Path(tempfile.mkdtemp(prefix="imagehost-entrypoint-"))
    root.chmod(0o755)
    shutil.copytree("/etc", root / "etc", symlinks=True, ignore_dangling_symlinks=True)
    for name in ("images", "logs", "backups"):
        (root / "srv" / name).mkdir(parents=True)
    yield root
    shutil.rmtree(root)


def run_entrypoint(
    root, *command: str, as_name: str = "app-entrypoint.sh", path_first=None, **env: str
) -> subprocess.CompletedProcess[str]:
    script = root / as_name
    script.write_bytes(ENTRYPOINT.read_bytes())
    inner = 'mount --bind "$1" /etc && shift && exec sh "$@"'
    env = {
        "PATH": f"{path_first}:" * bool(path_first) + "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "IMAGES_DIR": str(root / "srv" / "images"),
        "LOG_DIR": str(root / "srv" / "logs"),
        "BACKUP_DIR": str(root / "srv" / "backups"),
        "IMAGEHOST_SECRETS_DIR": str(root / "secrets"),
        "DATABASE_URL": "postgresql://u:p@db:5432/images_db",
        "SECRET_KEY": "from-env",
        **env,
    }
    return subprocess.run(
        ["unshare", "--mount", "sh", "-c", inner, "sh", str(root / "etc"), str(script), *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def own(root, uid: int, gid: int) -> None:
    import os

    for name in ("images", "logs", "backups"):
        os.chown(root / "srv" / name, uid, gid)


@pytest.mark.parametrize(("uid", "gid"), [(1000, 1000), (501, 20), (4321, 0), (33, 33), (1000, 20)])
def test_the_app_runs_as_whoever_owns_the_folders(container_root, uid, gid):
    own(container_root, uid, gid)
    logs = container_root / "srv" / "logs"
    done = run_entrypoint(container_root, "sh", "-c", f'id -u; id -g; id -un; touch "{logs}/app.log.lock"')
    assert done.returncode == 0, done.stderr
    got_uid, got_gid, name = done.stdout.split()
    assert (int(got_uid), int(got_gid)) == (uid, gid)
    assert name  # a user name exists for the uid (libpq and Python look it up)
    assert (logs / "app.log.lock").stat().st_uid == uid
    assert (logs.stat().st_uid, logs.stat().st_gid) == (uid, gid)  # nothing was chowned
    # The machine's own user list is untouched.
    assert f"imagehost-{uid}:" not in Path("/etc/passwd").read_text()


def test_a_clone_made_as_root_runs_as_root(container_root):
    own(container_root, 0, 0)
    done = run_entrypoint(container_root, "id", "-u")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_folders_with_different_owners_are_refused_with_what_to_do(container_root):
    own(container_root, 1000, 1000)
    import os

    backups = container_root / "srv" / "backups"
    os.chown(backups, 0, 0)
    backups.chmod(0o755)
    done = run_entrypoint(container_root, "true")
    assert done.returncode != 0
    assert str(backups) in done.stderr and "chown -R 1000:1000 images logs backups" in done.stderr


def test_imagehost_command_runs_the_cli_as_the_owner(container_root):
    """`docker compose exec app imagehost backup`: exec starts as root; the backup must not be root's."""
    own(container_root, 1234, 1234)
    fake_python = container_root / "bin" / "python"
    fake_python.parent.mkdir()
    fake_python.write_text('#!/bin/sh\necho "$(id -u) $*"\n')
    fake_python.chmod(0o755)
    done = run_entrypoint(container_root, "backup", as_name="imagehost", path_first=fake_python.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1234 -m imagehost backup"


# --- secrets that .env leaves empty ------------------------------------------------------------------


def test_secrets_left_empty_are_made_once_and_reach_the_app(container_root):
    own(container_root, 1000, 1000)
    secrets = container_root / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "postgres_password").write_text("p@ss/word:1")  # as db made it (or an operator's own)
    show = ("sh", "-c", 'echo "$SECRET_KEY"; echo "$DATABASE_URL"')
    first = run_entrypoint(container_root, *show, SECRET_KEY="", DATABASE_URL="", POSTGRES_PASSWORD="")
    assert first.returncode == 0, first.stderr
    key, url = first.stdout.split()
    assert re.fullmatch(r"[0-9a-f]{64}", key)
    assert url == "postgresql://imagehost:p%40ss%2Fword%3A1@db:5432/images_db"
    assert "made SECRET_KEY" in first.stderr and str(secrets / "secret_key") in first.stderr
    assert (secrets / "secret_key").stat().st_mode & 0o777 == 0o600
    again = run_entrypoint(container_root, *show, SECRET_KEY="", DATABASE_URL="", POSTGRES_PASSWORD="")
    assert again.stdout.split()[0] == key and "made" not in again.stderr  # made once, kept
    # What .env sets wins.
    chosen = run_entrypoint(container_root, *show, SECRET_KEY="mine", DATABASE_URL="", POSTGRES_PASSWORD="pw")
    assert chosen.stdout.split() == ["mine", "postgresql://imagehost:pw@db:5432/images_db"]


def test_without_any_database_password_the_app_says_what_is_missing(container_root):
    own(container_root, 1000, 1000)
    (container_root / "secrets").mkdir()
    done = run_entrypoint(container_root, "true", DATABASE_URL="", POSTGRES_PASSWORD="")
    assert done.returncode != 0
    assert "no DATABASE_URL or POSTGRES_PASSWORD in .env" in done.stderr


def test_db_makes_its_password_once_when_env_has_none(tmp_path):
    db = COMPOSE["services"]["db"]
    assert db["environment"]["POSTGRES_PASSWORD"] == "${POSTGRES_PASSWORD:-}"
    assert "secrets:/run/imagehost-secrets" in db["volumes"]
    assert "secrets:/run/imagehost-secrets" in COMPOSE["services"]["app"]["volumes"]
    script = db["entrypoint"][2].replace("$$", "$").replace("/run/imagehost-secrets", str(tmp_path))
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "docker-entrypoint.sh").write_text('#!/bin/sh\necho "password=$POSTGRES_PASSWORD args=$*"\n')
    (fake / "docker-entrypoint.sh").chmod(0o755)

    def start(password: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", "-c", script, *db["entrypoint"][3:], *db["command"]],
            env={"PATH": f"{fake}:/usr/bin:/bin", "POSTGRES_PASSWORD": password},
            capture_output=True,
            text=True,
        )

    first = start("")
    assert first.returncode == 0, first.stderr
    made = (tmp_path / "postgres_password").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", made)
    assert f"password={made} args=postgres" in first.stdout
    assert (tmp_path / "postgres_password").stat().st_mode & 0o777 == 0o600
    assert f"password={made} " in start("").stdout  # the same one at every start
    assert "password=chosen " in start("chosen").stdout
