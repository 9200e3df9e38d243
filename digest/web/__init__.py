"""The web application (Starlette): for now the SendGrid Event Webhook.

Serve it with uvicorn's factory mode, e.g.
``uvicorn --factory digest.web:main --host 127.0.0.1 --port 8000``.
"""

from __future__ import annotations

from starlette.applications import Starlette

from digest.app import App
from digest.web import webhooks


def create_app(app: App) -> Starlette:
    """The ASGI application for one :class:`~digest.app.App` (its settings and database)."""
    web = Starlette(routes=[*webhooks.routes(app)])
    web.state.app = app
    return web


def main() -> Starlette:
    """The application with settings from the environment and ``.env``."""
    return create_app(App())


__all__ = ["create_app", "main"]
