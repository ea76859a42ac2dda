"""ASGI entry point for uvicorn workers: ``rapport_server.asgi:app`` (settings from env)."""

from .app import create_app

app = create_app()
