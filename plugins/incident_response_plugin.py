"""Airflow plugin: the incident-response app at /incident-response and its "Incident approvals" nav link.

Every Airflow component imports the plugins folder, so this module stays light: the FastAPI app (and
Airflow's API security modules it needs) is built on the first request the API server routes to it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from airflow.configuration import conf
from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/incident-response"
APP_FACTORY = "incident_ops.api.app:create_app"
CONF_GUARD = "incident_ops.api.conf_guard:ConfGuardMiddleware"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """An ASGI app that imports and builds the real app on first use.

    :param factory: ``module:function`` returning the ASGI app.
    """

    def __init__(self, factory: str) -> None:
        self.factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    @property
    def app(self) -> Any:
        """Return the real app, building it once."""
        if self._app is None:
            with self._lock:
                if self._app is None:
                    import importlib

                    module_name, _, attr = self.factory.partition(":")
                    self._app = getattr(importlib.import_module(module_name), attr)()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


class LazyMiddleware:
    """An ASGI middleware that imports and builds the real one on the first request.

    :param app: The ASGI app the middleware wraps.
    :param factory: ``module:class`` of the middleware, called with ``app``.
    """

    def __init__(self, app: Any, factory: str) -> None:
        self.app = app
        self.factory = factory
        self._middleware: Any = None
        self._lock = threading.Lock()

    @property
    def middleware(self) -> Any:
        """Return the real middleware, building it once."""
        if self._middleware is None:
            with self._lock:
                if self._middleware is None:
                    import importlib

                    module_name, _, attr = self.factory.partition(":")
                    self._middleware = getattr(importlib.import_module(module_name), attr)(self.app)
        return self._middleware

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.middleware(scope, receive, send)


def _page_href(page: str) -> str:
    # The API server may live under a path ([api] base_url = https://host/airflow/).
    root = urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")
    return f"{root}{URL_PREFIX}/{page}"


class IncidentResponsePlugin(AirflowPlugin):
    """Serve the pages, the JSON API, Slack interactivity, webhooks and metrics; link the pages in the nav."""

    name = "incident_response"
    fastapi_apps = [{"app": LazyApp(APP_FACTORY), "url_prefix": URL_PREFIX, "name": "Incident response"}]
    # Refuses unknown conf keys when incident_response is triggered (REST API and UI); see conf_guard.
    fastapi_root_middlewares = [
        {
            "middleware": LazyMiddleware,
            "args": [],
            "kwargs": {"factory": CONF_GUARD},
            "name": "Conf key guard",
        }
    ]
    # Airflow 3's replacement for appbuilder_menu_items: with url_route the UI shows the page inside
    # its own frame at /plugin/incident-approvals (same origin, so the session cookie applies).
    external_views = [
        {
            "name": "Incident approvals",
            "href": _page_href("approvals"),
            "url_route": "incident-approvals",
            "destination": "nav",
            "category": "browse",
        },
        {
            "name": "Incidents",
            "href": _page_href("incidents"),
            "url_route": "incidents",
            "destination": "nav",
            "category": "browse",
        },
    ]
