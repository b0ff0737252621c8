"""Errors mapped right: every domain error has its status; only the database driver's errors mean
"database unavailable"."""

from __future__ import annotations

import importlib
import pkgutil

import imagehost
from imagehost.errors import ImageHostError
from imagehost.web.errors import STATUS_CODES
from tests.conftest import ADMIN_TOKEN


def every_subclass(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | every_subclass(sub)
    return found


def test_every_domain_error_has_its_own_status_code():
    # Errors defined anywhere in the package count, not only in errors.py.
    for module in pkgutil.walk_packages(imagehost.__path__, "imagehost."):
        if not module.name.endswith(("__main__", "devserver")):
            importlib.import_module(module.name)
    subclasses = every_subclass(ImageHostError)
    assert len(subclasses) > 20  # the walk saw the errors
    missing = sorted(cls.__name__ for cls in subclasses if cls not in STATUS_CODES)
    assert missing == []
    assert all(400 <= STATUS_CODES[cls] < 600 for cls in subclasses)


def test_an_unmapped_domain_error_is_a_500_not_a_silent_400(client, monkeypatch):
    class NobodyMappedThis(ImageHostError):
        template = "unmapped"

    def broken(*_args, **_kwargs):
        raise NobodyMappedThis()

    monkeypatch.setattr("imagehost.api.controllers.tail_lines", broken)
    response = client.get("/logs", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 500


def test_an_os_error_outside_the_driver_is_no_database_outage(client, app_log, monkeypatch):
    """Reading app.log fails (as a permission error would: the tests run as root, which no file
    mode stops, so the read itself is made to fail): a 500, and the log says so, not "database"."""

    def unreadable(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", "app.log")

    monkeypatch.setattr("imagehost.api.controllers.tail_lines", unreadable)
    response = client.get("/logs", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code == 500
    assert "database" not in response.json()["error"].lower()
    log = "\n".join(app_log())
    assert "PermissionError" in log
    assert "database is unavailable" not in log and "lost" not in log.lower()
    # The database is fine: the next request works.
    assert client.get("/images-list").status_code == 200
