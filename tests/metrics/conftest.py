"""Scrapes parsed into samples, and the OIDC fixtures for the admin's session."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.accounts.conftest import make_oidc_client, provider, sign_in  # noqa: F401 (the OIDC fixtures)

METRICS_TOKEN = "metrics-token-for-tests"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """{(sample name, labels): value} of one scrape in Prometheus' text format."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(client, token: str = METRICS_TOKEN) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include these (0 when there is none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


def label_values(samples: Samples, name_prefix: str, label: str) -> set[str]:
    return {dict(have)[label] for (n, have) in samples if n.startswith(name_prefix) and label in dict(have)}
