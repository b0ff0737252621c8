"""A NUL character in the query string is the client's mistake (400), whatever route reads it:
PostgreSQL text cannot hold one, and it must never reach the driver as a 500."""

from __future__ import annotations

import pytest

JSON = {"Accept": "application/json"}


@pytest.mark.parametrize(
    "path",
    ["/images-list?uploader=%00x", "/images/?album_name=a%00b", "/albums?q=%00", "/export/images.csv?uploader=%00"],
)
def test_a_nul_in_the_query_is_a_400(client, path):
    response = client.get(path, headers=JSON)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["error"]
    russian = client.get(path, headers={**JSON, "Accept-Language": "ru"}).json()["error"]
    assert "NUL" in russian and "адресе" in russian
