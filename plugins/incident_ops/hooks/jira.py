"""Open and comment on an incident's Jira issue with the Atlassian Jira provider's hook and connection.

The connection `jira_default` holds the host, the login and an API token as the password; its extra
names the `project` key (and, optionally, the `issue_type`, default Task). Every issue carries the
incident id as a label, so a retried task finds the issue it opened instead of opening another.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from airflow.providers.atlassian.jira.hooks.jira import JiraHook
from requests import HTTPError, RequestException

from incident_ops.hooks.errors import ServiceRejectedError, ServiceUnavailableError
from include.http_retry import is_transient_status
from include.names import JIRA_CONN_ID

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15
DEFAULT_ISSUE_TYPE = "Task"
# Labels and keys go into JQL: only these shapes, never free text.
_LABEL = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_PROJECT = re.compile(r"[A-Z][A-Z0-9_]{0,31}")


class IncidentJiraHook(JiraHook):
    """Find, open and comment on the Jira issue of an incident.

    :param jira_conn_id: The Jira connection (host, login, API token; `project` in the extra).
    """

    default_conn_name = JIRA_CONN_ID
    hook_name = "Jira (incidents)"

    def __init__(self, jira_conn_id: str = JIRA_CONN_ID) -> None:
        super().__init__(jira_conn_id=jira_conn_id)
        extra = self.get_connection(jira_conn_id).extra_dejson
        project = str(extra.get("project") or "")
        if not _PROJECT.fullmatch(project):
            raise ServiceRejectedError(jira_conn_id, 400)
        self.project = project
        self.issue_type = str(extra.get("issue_type") or DEFAULT_ISSUE_TYPE)
        self.get_conn().timeout = TIMEOUT_SECONDS

    def find_issue(self, label: str) -> str | None:
        """Return the key of the project's issue labelled `label`, or None."""
        if not _LABEL.fullmatch(label):
            raise ValueError(f"not a label: {label!r}")
        answer = self._call(
            lambda: self.get_conn().jql(
                f'project = "{self.project}" AND labels = "{label}" ORDER BY created ASC',
                fields=["key"],
                limit=1,
            )
        )
        issues = (answer or {}).get("issues") or []
        return str(issues[0]["key"]) if issues else None

    def create_issue(self, *, label: str, summary: str, description: str) -> str:
        """Open an issue in the project, labelled `label`; return its key."""
        fields = {
            "project": {"key": self.project},
            "issuetype": {"name": self.issue_type},
            "summary": summary[:250],
            "description": description,
            "labels": [label],
        }
        answer = self._call(lambda: self.get_conn().create_issue(fields=fields))
        return str(answer["key"])

    def add_comment(self, key: str, text: str) -> None:
        """Comment on an issue."""
        self._call(lambda: self.get_conn().issue_add_comment(key, text))

    def _call(self, send: Any) -> Any:
        """Run one Jira call; raise the typed service errors the retry policies key on."""
        try:
            return send()
        except HTTPError as exc:
            code = exc.response.status_code if exc.response is not None else 503
            log.warning("Jira refused a request: HTTP %s", code)
            if is_transient_status(code):
                raise ServiceUnavailableError(self.jira_conn_id, code) from None
            raise ServiceRejectedError(self.jira_conn_id, code) from None
        except RequestException as exc:
            log.warning("Jira could not be reached: %s", type(exc).__name__)
            raise ServiceUnavailableError(self.jira_conn_id, 503) from None
