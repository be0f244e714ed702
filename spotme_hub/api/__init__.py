"""The hub's HTTP API (FastAPI). `create_app` builds it; `serve` runs it in the hub's loop."""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
