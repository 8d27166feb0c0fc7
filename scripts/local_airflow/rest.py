"""Call an Airflow API server's REST API: tokens, DAGs, runs and their task states, and waits on them."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import ApiError, LocalAirflowError
from .polling import T, poll

TERMINAL_RUN_STATES = frozenset({"success", "failed"})


class AirflowApi:
    """REST calls and waits against one API server; a subclass says where it is and whether it lives."""

    def __init__(self) -> None:
        self.default_token: str | None = None
        # Loopback only: never let an http_proxy variable route our calls elsewhere.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def api_url(self) -> str:
        """Return the address this process uses to reach the API server."""
        raise NotImplementedError

    def check_alive(self) -> None:
        """Raise if the server is known to be gone; every wait calls it between polls."""

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        *,
        auth: bool = True,
        timeout: float = 30.0,
    ) -> tuple[int, Any]:
        """Call the API server and return (status, decoded JSON or text); the default token if none given."""
        headers = {"Accept": "application/json"}
        bearer = token or (self.default_token if auth else None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        url = self.api_url + path
        request = urllib.request.Request(url, data=data, method=method.upper(), headers=headers)
        try:
            with self._opener.open(request, timeout=timeout) as response:
                return response.status, _decode(response.read())
        except urllib.error.HTTPError as err:
            return err.code, _decode(err.read())

    def _get_quietly(self, path: str) -> tuple[int, Any]:
        """GET without a token, mapping connection failures to status 0."""
        try:
            return self.api("GET", path, auth=False, timeout=5)
        except (OSError, http.client.HTTPException):  # URLError is an OSError
            return 0, None

    def _expect(self, method: str, path: str, body: Any = None, ok: Iterable[int] = (200,)) -> Any:
        """Call the API and return the body, raising ApiError on any other status."""
        status, answer = self.api(method, path, body)
        if status not in tuple(ok):
            raise ApiError(method, path, status, answer)
        return answer

    def token(self, username: str, password: str) -> str:
        """Log in through `POST /auth/token` and return the JWT."""
        status, answer = self.api(
            "POST", "/auth/token", {"username": username, "password": password}, auth=False
        )
        if status != 201 or not isinstance(answer, dict):
            raise ApiError("POST", "/auth/token", status, answer)
        return answer["access_token"]

    def wait_for_dag(
        self, dag_id: str, timeout: float = 120.0, *, fail_on_import_error: bool = False
    ) -> dict[str, Any]:
        """Wait until the DAG has been parsed and return it; optionally stop at the first import error."""
        path = f"/api/v2/dags/{_q(dag_id)}"

        def parsed() -> dict[str, Any] | None:
            self.check_alive()
            status, answer = self.api("GET", path)
            if status == 200:
                return answer
            if fail_on_import_error and self.import_errors():
                raise LocalAirflowError(f"DAG {dag_id!r} is not loaded. {self.import_errors_text()}")
            return None

        try:
            return poll(parsed, timeout, f"DAG {dag_id!r} to be parsed", interval=1.0)
        except TimeoutError as err:
            raise TimeoutError(f"{err}\n{self.import_errors_text()}") from err

    def import_errors(self) -> list[dict[str, Any]]:
        """Return the DAG import errors Airflow reports."""
        status, answer = self.api("GET", "/api/v2/importErrors?limit=20")
        return answer.get("import_errors", []) if status == 200 and isinstance(answer, dict) else []

    def import_errors_text(self) -> str:
        """Return the DAG import errors Airflow reports, as text."""
        errors = self.import_errors()
        if not errors:
            return "Airflow reports no DAG import errors."
        return "DAG import errors:\n" + "\n".join(f"{e['filename']}:\n{e['stack_trace']}" for e in errors)

    def unpause(self, dag_id: str) -> dict[str, Any]:
        """Unpause the DAG."""
        path = f"/api/v2/dags/{_q(dag_id)}?update_mask=is_paused"
        return self._expect("PATCH", path, {"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, run_id: str | None = None) -> dict:
        """Start a manual run and return it."""
        body: dict[str, Any] = {"logical_date": None, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        return self._expect("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", body)

    def wait_for_run(
        self,
        dag_id: str,
        run_id: str,
        states: Iterable[str] = ("success",),
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Wait until the run reaches one of states; fail at once if it ends in another."""
        wanted = set(states)
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}"

        def finished() -> dict[str, Any] | None:
            self.check_alive()
            run = self._expect("GET", path)
            if run["state"] in wanted:
                return run
            if run["state"] in TERMINAL_RUN_STATES:
                raise LocalAirflowError(
                    f"run {run_id} ended {run['state']}, wanted {sorted(wanted)}; "
                    f"tasks: {self.task_states(dag_id, run_id)}"
                )
            return None

        return poll(finished, timeout, f"run {run_id} to reach {sorted(wanted)}")

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """Return {task_id: state} of a run (mapped instances as task_id[index])."""
        states: dict[str, str | None] = {}
        base = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        offset, limit = 0, 100
        while True:
            page = self._expect("GET", f"{base}?limit={limit}&offset={offset}")
            for ti in page["task_instances"]:
                index = ti.get("map_index", -1)
                states[ti["task_id"] if index == -1 else f"{ti['task_id']}[{index}]"] = ti["state"]
            offset += limit
            if offset >= page["total_entries"]:
                return states

    def wait_until(
        self, check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.5
    ) -> T:
        """Poll check until it returns something other than None; fail at once if a process died."""

        def checked() -> T | None:
            self.check_alive()
            return check()

        return poll(checked, timeout, what, interval)


def _decode(raw: bytes) -> Any:
    """Decode a response body: JSON when possible, else text, None when empty."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _q(segment: str) -> str:
    """Quote one path segment (run ids hold ':' and '+')."""
    return urllib.parse.quote(segment, safe="")


def url_host(host: str) -> str:
    """Bracket an IPv6 literal for use in a URL."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
