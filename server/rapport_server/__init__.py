"""Rapport reference server: FastAPI routers → domain services → SQLAlchemy repositories."""

__version__ = "0.1.0"
