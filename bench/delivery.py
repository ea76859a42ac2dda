"""Delivery lag: send-ack → SSE receipt, and send-ack → webhook receipt."""

from __future__ import annotations

from typing import Any

import httpx

from bench import servers
from bench.report import Row, pending


def _routes(url: str) -> set[str]:
    spec = httpx.get(url + "/openapi.json", timeout=30).json()
    return set(spec.get("paths", {}))


def delivery_rows(ctx: Any, backend: str, srv: servers.Server, db_url: str) -> list[Row]:
    """Rows for the delivery lag figures, or pending rows while the endpoints are missing."""
    routes = _routes(srv.url)
    rows: list[Row] = []
    if "/v1/events" not in routes:
        rows.append(pending("delivery lag → SSE", backend, "GET /v1/events not in this server"))
    else:
        rows.append(pending("delivery lag → SSE", backend, "not measured yet"))
    if "/v1/webhook-endpoints" not in routes:
        rows.append(
            pending("delivery lag → webhook", backend, "webhook endpoints not in this server")
        )
    else:
        rows.append(pending("delivery lag → webhook", backend, "not measured yet"))
    return rows
