"""Settings from the environment, as compose passes them (empty strings for unset optional values)."""

from __future__ import annotations

import pytest

from imagehost import settings as settings_module
from imagehost.settings import Settings, SettingsError


def test_empty_values_from_compose_keep_the_defaults():
    settings = Settings.from_env(
        {"SECURE_COOKIES": "", "ANONYMOUS_BROWSE": "", "API_TOKENS": "", "PUBLIC_BASE_URL": "https://img.example.org/"}
    )
    assert settings.secure_cookies is True  # https public address
    assert settings.public_base_url == "https://img.example.org"
    assert settings.anonymous_browse is None and settings.api_tokens == ()


def test_lists_take_commas_or_json():
    assert Settings.from_env({"API_TOKENS": "a, b"}).api_tokens == ("a", "b")
    assert Settings.from_env({"API_TOKENS": '["a", "b"]'}).api_tokens == ("a", "b")
    assert Settings.from_env({"ALLOWED_FORMATS": "jpeg,png"}).allowed_formats == ("JPEG", "PNG")
    assert Settings.from_env({"THUMBNAIL_SIZES": "480,160,480"}).thumbnail_sizes == (160, 480)
    assert Settings.from_env({"THUMBNAIL_SIZES": ""}).thumbnail_sizes == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MAX_UPLOAD_BYTES", "five"),
        ("MAX_PIXELS", "0"),
        ("DEFAULT_LANGUAGE", "de"),
        ("STRIP_METADATA", "maybe"),
        ("DEFAULT_QUALITY", "99"),
        ("ALLOWED_FORMATS", " , "),
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "two"),
        ("WORKER_PROCESSES", "-1"),
    ],
)
def test_bad_values_are_refused_with_the_setting_named(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_body_limits_follow_the_upload_limits():
    settings = Settings.from_env({"MAX_UPLOAD_BYTES": "1000", "API_MAX_UPLOAD_BYTES": "2000"})
    assert settings.max_request_bytes == 1000 + 65536
    assert settings.api_max_request_bytes == 2000 + 65536


@pytest.mark.parametrize(
    ("cores", "web", "workers"),
    [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 2), (8, 4, 2), (16, 8, 2)],
)
def test_app_processes_and_their_workers_follow_the_cores(monkeypatch, cores, web, workers):
    monkeypatch.setattr(settings_module, "available_cores", lambda: cores)
    # compose passes both empty when .env leaves them out
    settings = Settings.from_env({"WEB_CONCURRENCY": "", "WORKER_PROCESSES": ""})
    assert (settings.web_concurrency, settings.worker_processes) == (web, workers)


def test_set_app_processes_share_out_the_cores_unless_the_workers_are_set(monkeypatch):
    monkeypatch.setattr(settings_module, "available_cores", lambda: 8)
    assert Settings.from_env({"WEB_CONCURRENCY": "8"}).worker_processes == 1
    assert Settings.from_env({"WEB_CONCURRENCY": "3"}).worker_processes == 2
    assert Settings.from_env({"WEB_CONCURRENCY": "1", "WORKER_PROCESSES": "0"}).worker_processes == 0
    assert Settings.from_env({"WEB_CONCURRENCY": " 5 "}).web_concurrency == 5


def test_an_instance_name_names_its_log():
    assert Settings.from_env({}).log_file_name == "app.log"
    assert Settings.from_env({"INSTANCE_NAME": " app-2 "}).log_file_name == "app-app-2.log"
    for bad in ("../x", "a b", "-x", "x" * 64):
        with pytest.raises(SettingsError, match="INSTANCE_NAME"):
            Settings.from_env({"INSTANCE_NAME": bad})
