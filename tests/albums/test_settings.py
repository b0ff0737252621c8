"""The ZIP settings: their defaults and their parsing from the environment."""

from __future__ import annotations

import pytest

from imagehost.settings import Settings, SettingsError


def test_defaults():
    settings = Settings.from_env({})
    assert settings.zip_max_bytes == 500 * 1024 * 1024
    assert settings.zip_read_timeout_seconds == 600.0
    assert settings.zip_max_entries == 2000
    assert settings.zip_max_uncompressed_bytes == 4 * 1024**3
    assert settings.zip_max_ratio == 100
    assert settings.zip_max_depth == 8
    assert settings.zip_max_request_bytes == settings.zip_max_bytes + 64 * 1024


def test_from_the_environment():
    settings = Settings.from_env(
        {
            "ZIP_MAX_BYTES": "1000000",
            "ZIP_READ_TIMEOUT_SECONDS": "30",
            "ZIP_MAX_ENTRIES": "10",
            "ZIP_MAX_UNCOMPRESSED_BYTES": "5000000",
            "ZIP_MAX_RATIO": "20",
            "ZIP_MAX_DEPTH": "3",
        }
    )
    assert (settings.zip_max_bytes, settings.zip_read_timeout_seconds) == (1_000_000, 30.0)
    assert (settings.zip_max_entries, settings.zip_max_uncompressed_bytes) == (10, 5_000_000)
    assert (settings.zip_max_ratio, settings.zip_max_depth) == (20, 3)


@pytest.mark.parametrize("name", ["ZIP_MAX_BYTES", "ZIP_MAX_ENTRIES", "ZIP_MAX_RATIO", "ZIP_MAX_DEPTH"])
@pytest.mark.parametrize("value", ["0", "-1", "many"])
def test_nonsense_is_refused(name, value):
    with pytest.raises(SettingsError):
        Settings.from_env({name: value})


def test_zip_wait_seconds():
    assert Settings.from_env({}).zip_wait_seconds == 50.0
    assert Settings.from_env({"ZIP_WAIT_SECONDS": "0"}).zip_wait_seconds == 0.0
    assert Settings.from_env({"ZIP_WAIT_SECONDS": "5"}).zip_wait_seconds == 5.0
    with pytest.raises(SettingsError):
        Settings.from_env({"ZIP_WAIT_SECONDS": "-1"})
