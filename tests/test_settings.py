"""Settings from the environment, as compose passes them (empty strings for unset optional values)."""

from __future__ import annotations

import pytest

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
    ],
)
def test_bad_values_are_refused_with_the_setting_named(name, value):
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_the_body_limits_follow_the_upload_limits():
    settings = Settings.from_env({"MAX_UPLOAD_BYTES": "1000", "API_MAX_UPLOAD_BYTES": "2000"})
    assert settings.max_request_bytes == 1000 + 65536
    assert settings.api_max_request_bytes == 2000 + 65536
