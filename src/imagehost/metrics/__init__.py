"""Prometheus metrics: the instruments the services record into, and GET /metrics."""
