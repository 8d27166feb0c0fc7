"""Who is calling: Airflow's own authentication (JWT as a Bearer token or the UI's `_token` cookie)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

log = logging.getLogger(__name__)

# The channel a vote is recorded with: a Bearer token is an API client, the cookie is the browser.
API_CHANNEL = "api"
WEB_CHANNEL = "web"


@dataclass(frozen=True)
class Caller:
    """An authenticated Airflow user and how they reached us.

    :param user: The auth manager's user object.
    :param username: The Airflow username (the approver identity).
    :param role: The SimpleAuthManager role, when the auth manager has one.
    :param channel: ``api`` for a Bearer token, ``web`` for the UI's session cookie.
    """

    user: BaseUser
    username: str
    role: str | None
    channel: str


async def optional_caller(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> Caller | None:
    """Return the caller, or None when the request carries no valid Airflow credential."""
    try:
        # Airflow's own dependency: an explicit Bearer token wins, otherwise the `_token` cookie
        # (already validated by the API server's JWT refresh middleware when present).
        user = await get_user(request=request, _oauth_token=None, bearer_credentials=bearer)
    except HTTPException:
        # Airflow answers 403 for a token it cannot validate; for this API every failed login is a
        # 401 (send valid credentials), and the page shows its login link instead.
        return None
    uses_bearer = bearer is not None and bearer.scheme.lower() == "bearer"
    return Caller(
        user=user,
        username=user.get_name(),
        role=getattr(user, "role", None),
        channel=API_CHANNEL if uses_bearer else WEB_CHANNEL,
    )


async def require_caller(caller: Caller | None = Depends(optional_caller)) -> Caller:
    """Return the caller or answer 401."""
    if caller is None:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Not authenticated: log in to Airflow, or send a JWT from POST /auth/token "
            "as a Bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return caller


OptionalCallerDep = Annotated[Caller | None, Depends(optional_caller)]
CallerDep = Annotated[Caller, Depends(require_caller)]


def check_same_origin(request: Request) -> None:
    """Refuse a cookie-authenticated write that a browser sent from another site (CSRF).

    The cookie is SameSite=Lax and the body must be JSON, which already stops plain cross-site forms;
    this also stops same-site neighbours (other ports or subdomains) that a browser treats as "site".
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site and fetch_site not in ("same-origin", "none"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="cross-origin request refused")
    origin = request.headers.get("origin")
    if not origin:
        return
    allowed = {request.headers.get("host", "")}
    from incident_ops.config import airflow_base_url

    allowed.add(urlsplit(airflow_base_url()).netloc)
    if urlsplit(origin).netloc not in allowed:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="cross-origin request refused")


def login_url(next_path: str) -> str:
    """Return the auth manager's login page, coming back to `next_path` afterwards."""
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager().get_url_login(next_url=next_path)


def readable_dag_ids(caller: Caller, dag_ids: set[str]) -> set[str]:
    """Return the DAG ids among `dag_ids` whose runs the caller may read."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    manager = get_auth_manager()
    return {
        dag_id
        for dag_id in dag_ids
        if manager.is_authorized_dag(
            method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=caller.user
        )
    }


def require_dag_read(caller: Caller, dag_id: str) -> None:
    """Answer 403 unless the caller may read the runs of `dag_id`."""
    if dag_id not in readable_dag_ids(caller, {dag_id}):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"you may not read runs of DAG {dag_id}")
