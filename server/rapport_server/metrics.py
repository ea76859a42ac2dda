"""Process metrics in the Prometheus text format (``GET /metrics``): counts only, no ids."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

STREAMS_OPEN = Gauge("rapport_sse_streams", "Event streams currently open")
STREAM_FRAMES = Counter("rapport_sse_frames_total", "Event frames written to streams")
WRITE_BATCHES = Counter("rapport_write_batches_total", "Committed write batches")
WRITE_UNITS = Counter("rapport_write_units_total", "Write units committed")
WEBHOOK_ATTEMPTS = Counter(
    "rapport_webhook_attempts_total", "Webhook delivery attempts", ["outcome"]
)

router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
