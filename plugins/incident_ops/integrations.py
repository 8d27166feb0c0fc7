"""Which optional integrations are on, answered from their Airflow connections alone.

Importing a provider's hook costs a task process 0.2 to 0.6 s (the HTTP, Slack and PagerDuty hooks
load aiohttp, Jira's loads the Atlassian client), and every task is a fresh process. So callers ask
here first and import the hook only when its integration is on: a deployment without Jira never pays
for the Jira client.
"""

from __future__ import annotations

from incident_ops.connections import optional_connection
from include.names import JIRA_CONN_ID, PAGERDUTY_CONN_ID, SLACK_CONN_ID


def service_on(conn_id: str) -> bool:
    """Say whether an HTTP service's connection (inventory, device control, ticketing, LLM) is defined."""
    return optional_connection(conn_id) is not None


def slack_on(conn_id: str = SLACK_CONN_ID) -> bool:
    """Say whether the Slack connection exists with a token (SlackHook refuses one without)."""
    conn = optional_connection(conn_id)
    return conn is not None and bool(conn.password)


def pagerduty_on(conn_id: str = PAGERDUTY_CONN_ID) -> bool:
    """Say whether the PagerDuty Events connection exists with a routing key."""
    conn = optional_connection(conn_id)
    return conn is not None and bool(conn.password)


def jira_on(conn_id: str = JIRA_CONN_ID) -> bool:
    """Say whether the Jira connection exists with a host."""
    conn = optional_connection(conn_id)
    return conn is not None and bool(conn.host)
