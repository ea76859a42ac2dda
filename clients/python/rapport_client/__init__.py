"""Rapport Python SDK: sign protocol objects locally and talk to a Rapport server."""

__version__ = "0.1.0"
