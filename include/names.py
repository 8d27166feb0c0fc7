"""The names users, docs and outside checks rely on: the DAG, its tasks, connections, Variables.

Each is spelled here once; code refers to these constants, never to the literal.
"""

from __future__ import annotations

from typing import Final

DAG_ID: Final = "incident_response"
# The IoT intake: alerts and telemetry breaches from the MQTT broker, as events of one asset.
IOT_DAG_ID: Final = "incident_iot_intake"
IOT_ASSET: Final = "iot_device_alerts"
IOT_WATCHER: Final = "mqtt_device_alerts"

# Task ids of the DAG (callables pull each other's XComs by these).
INGEST: Final = "ingest"
ENRICH: Final = "enrich"
SUMMARIZE: Final = "ai_summarize"
DIAGNOSE: Final = "ai_diagnose"
ANALYZE_SEVERITY: Final = "analyze_severity"
PAGE_ONCALL: Final = "page_oncall"
CONTAINMENT: Final = "automated_containment"
APPROVAL_NEEDED: Final = "approval_needed"
REQUEST_APPROVAL: Final = "request_approval"
WAIT_FOR_APPROVAL: Final = "wait_for_approval"
APPROVAL_DECISION: Final = "approval_decision"
EXECUTE_FIX: Final = "execute_fix"
ESCALATE: Final = "escalate"
CREATE_TICKET: Final = "create_ticket"
DIAGNOSTIC_REPORT: Final = "diagnostic_report"
LOG_ONLY: Final = "log_only"
RESOLVE_INCIDENT: Final = "resolve_incident"
FINAL_REPORT: Final = "final_report"

# Task ids of the IoT intake DAG.
ADMIT_IOT_ALERTS: Final = "admit_alerts"
START_IOT_INCIDENTS: Final = "start_incidents"

# The asset state store key where the MQTT subscription reports its health.
MQTT_STATUS_KEY: Final = "mqtt_subscription"

# Airflow connections.
STORE_CONN_ID: Final = "incident_store"
SLACK_CONN_ID: Final = "slack_api_default"
LLM_CONN_ID: Final = "llm_default"
WEBHOOK_CONN_ID: Final = "incident_webhook"
METRICS_CONN_ID: Final = "incident_metrics"
DEVICE_CONTROL_CONN_ID: Final = "device_control_api"
INVENTORY_CONN_ID: Final = "device_inventory_api"
TICKETING_CONN_ID: Final = "ticketing_api"
MQTT_CONN_ID: Final = "mqtt_default"
# The PagerDuty provider's Events connection (password: the routing key; host: the Events API base URL).
PAGERDUTY_CONN_ID: Final = "pagerduty_events_default"
# The Atlassian Jira provider's connection (host, login, API token as password; `project` in the extra).
JIRA_CONN_ID: Final = "jira_default"

# Airflow Variables.
CHANNELS_VARIABLE: Final = "incident_slack_channels"
APPROVERS_VARIABLE: Final = "incident_approvers"
RESPONDERS_VARIABLE: Final = "incident_responders"

# Environment variables the product reads.
SLACK_SIGNING_SECRET_ENV: Final = "SLACK_SIGNING_SECRET"
# The Slack workspace (team id) allowed to send commands and clicks, when set (else the extra's team_id).
SLACK_TEAM_ID_ENV: Final = "SLACK_TEAM_ID"
WEBHOOK_TOKEN_ENV: Final = "INCIDENT_WEBHOOK_TOKEN"
METRICS_TOKEN_ENV: Final = "INCIDENT_METRICS_TOKEN"
DEADLINE_OVERRIDE_ENV: Final = "INCIDENT_APPROVAL_DEADLINE_SECONDS"
