"""Refuse mistyped conf keys when `incident_response` is triggered through Airflow's REST API or UI.

Airflow validates a trigger's conf against the DAG's Params (a wrong value is a 400) but accepts keys
the DAG does not declare, and has no switch to refuse them. A mistyped `devce_id` would then start a
run that fails in `ingest`. This ASGI middleware, registered by the plugin in front of Airflow's app,
reads the body of `POST /api/v2/dags/incident_response/dagRuns` (the route the UI's trigger form calls
too) and answers 400 naming the unknown keys, before Airflow creates anything. Every other request goes
straight through: a method and path check, no body read.

`INCIDENT_ALLOW_UNKNOWN_CONF_KEYS=true` turns the check off (and makes `ingest` ignore such keys).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from incident_ops.api.body import Body, read_body
from include.alert_sources import describe_unknown_keys, unknown_conf_keys, unknown_conf_keys_allowed
from include.names import DAG_ID

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GUARDED_DAGS = frozenset({DAG_ID})
TRIGGER_PATH = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?$")
# Trigger bodies are buffered for the check up to this size; larger ones are refused (413).
MAX_BODY_BYTES = 1024 * 1024


class ConfGuardMiddleware:
    """ASGI middleware answering 400 to a trigger of a guarded DAG whose conf has undeclared keys.

    The check runs only for callers who may trigger the DAG (Airflow's own authentication and
    authorization, the same the route uses); anyone else gets Airflow's own 401 or 403.

    :param app: The ASGI app behind (Airflow's API server app).
    :param dag_ids: The DAGs whose conf keys are checked.
    """

    def __init__(self, app: ASGIApp, dag_ids: frozenset[str] | set[str] = GUARDED_DAGS) -> None:
        self.app = app
        self.dag_ids = frozenset(dag_ids)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        dag_id = self._guarded_trigger(scope)
        if dag_id is None or unknown_conf_keys_allowed():
            await self.app(scope, receive, send)
            return
        body = await read_body(receive, MAX_BODY_BYTES)
        if not body.complete and body.pending is None:
            # Unchecked, it would slip past: no conf of a guarded DAG comes near this size.
            await _answer(send, 413, f"the request body is over {MAX_BODY_BYTES} bytes")
            return
        if body.complete:
            unknown = _unknown_keys(body.data)
            if unknown and await _may_trigger(scope, dag_id):
                await _answer(send, 400, f"DAG {dag_id}: {describe_unknown_keys(unknown)}")
                return
        await self.app(scope, _replaying(body, receive), send)

    def _guarded_trigger(self, scope: Scope) -> str | None:
        """Return the DAG id when the request triggers a guarded DAG, else None (the cheap path)."""
        if scope.get("type") != "http" or scope.get("method") != "POST":
            return None
        path = scope.get("path", "")
        if not path.endswith(("/dagRuns", "/dagRuns/")):
            return None
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        match = TRIGGER_PATH.match(path) if path.startswith("/api/v2/") else None
        if match is None or match["dag_id"] not in self.dag_ids:
            return None
        return match["dag_id"]


def _replaying(body: Body, receive: Receive) -> Receive:
    """Return a receive callable that hands the app the bytes already read, then the rest."""
    queue: list[Message] = [{"type": "http.request", "body": body.data, "more_body": not body.complete}]
    if body.pending is not None:
        queue.append(body.pending)

    async def replay() -> Message:
        if queue:
            return queue.pop(0)
        return await receive()

    return replay


def _unknown_keys(body: bytes) -> list[str]:
    """Return the conf's undeclared keys; [] when the body is not a JSON object with an object conf."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return []  # Airflow answers malformed JSON itself
    conf = document.get("conf") if isinstance(document, dict) else None
    return unknown_conf_keys(conf) if isinstance(conf, dict) else []


async def _may_trigger(scope: Scope, dag_id: str) -> bool:
    """Say whether the caller may trigger the DAG, by Airflow's own auth (token or UI cookie)."""
    try:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
        from airflow.api_fastapi.core_api.security import get_user
        from fastapi.security import HTTPAuthorizationCredentials
        from starlette.requests import Request

        request = Request(scope)
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        bearer = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=credentials.strip())
            if scheme.lower() == "bearer" and credentials.strip()
            else None
        )
        user = await get_user(request=request, _oauth_token=None, bearer_credentials=bearer)
        return get_auth_manager().is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
        )
    except Exception:  # not authenticated (HTTPException) or anything else: Airflow decides
        return False


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
