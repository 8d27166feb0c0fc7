"""The incident store's tables."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

incidents = sa.Table(
    "ir_incidents",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("incident_key", sa.String(64), nullable=False, index=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("device_id", sa.String(128), nullable=False),
    sa.Column("error", sa.String(128), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # open | acknowledged | resolved
    sa.Column("severity", sa.String(16)),
    sa.Column("alert", sa.JSON, nullable=False),
    sa.Column("analysis", sa.JSON(none_as_null=True)),  # NULL until the diagnosis
    sa.Column("outcome", sa.String(32)),
    sa.Column("slack_channel", sa.String(128)),
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("ticket_id", sa.String(128)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
    sa.Column("acknowledged_by", sa.String(128)),
    sa.Column("resolved_by", sa.String(128)),
    # The incident list reads the newest first, by state and severity, of the DAGs a user may read.
    sa.Index("ix_ir_incidents_created_at", "created_at"),
    sa.Index("ix_ir_incidents_state_severity", "state", "severity"),
    sa.Index("ix_ir_incidents_dag_id", "dag_id"),
)

events = sa.Table(
    "ir_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
)

approvals = sa.Table(
    "ir_approvals",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("risk", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("quorum", sa.Integer, nullable=False),
    sa.Column("approvers", sa.JSON),  # null: any Airflow user with the user role
    sa.Column("requested_by", sa.String(128)),
    sa.Column("forbid_self_approval", sa.Boolean, nullable=False, default=False),
    sa.Column("people", sa.JSON),  # {identity: person}, as the approvers configuration said
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("slack_channel", sa.String(128)),
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("touched_at", sa.DateTime(timezone=True)),
    # SHA-256 of the action, targets and parameters put to the approvers (include.approval_binding).
    sa.Column("action_digest", sa.String(64)),
)

votes = sa.Table(
    "ir_votes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("approval_id", sa.String(64), nullable=False, index=True),
    sa.Column("identity", sa.String(128), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # slack | web | api | system
    sa.Column("decision", sa.String(16), nullable=False),  # approve | reject
    sa.Column("comment", sa.Text),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("accepted", sa.Boolean, nullable=False),
    sa.Column("refused_because", sa.Text),
)

outbox = sa.Table(
    "ir_outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(250), nullable=False, unique=True),
    sa.Column("incident_id", sa.String(64), index=True),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("blocks", sa.JSON),
    sa.Column("state", sa.String(16), nullable=False),  # pending | sent | undelivered
    sa.Column("slack_ts", sa.String(64)),
    sa.Column("thread_ts", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("note", sa.Text),
)

actions = sa.Table(
    "ir_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("idempotency_key", sa.String(250), nullable=False, unique=True),
    sa.Column("incident_id", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("target", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # started | done | failed
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("result", sa.JSON),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

# Alert intake (the webhook): one row per DAG run started for an alert, so that repeats of the alert
# find their run, concurrent twins cannot both start one, and a resolve finds what to close.
alert_runs = sa.Table(
    "ir_alert_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("dag_id", sa.String(250), nullable=False),
    sa.Column("incident_key", sa.String(64), nullable=False, index=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(256)),
    sa.Column("episode", sa.String(64)),  # the alert's start time, or gen:<n> when the sender has none
    sa.Column("state", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
)

# One row per alert a sender keeps sending, by (source, fingerprint): when it was first and last seen,
# whether it fires, and the incident it belongs to (grouping several alerts into one incident).
alerts = sa.Table(
    "ir_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("fingerprint", sa.String(256), nullable=False),
    sa.Column("incident_id", sa.String(64), index=True),
    sa.Column("device_id", sa.String(128), nullable=False),
    sa.Column("error", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # firing | resolved
    sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("source", "fingerprint", name="uq_ir_alerts_source_fingerprint"),
    sa.Index("ix_ir_alerts_device_id", "device_id"),
    sa.Index("ix_ir_alerts_fingerprint", "fingerprint"),
)

# One row per incident key, written first by the transaction that opens an incident for an alert
# with a fingerprint: it serialises those transactions, so two runs of one alert cannot both open one.
incident_key_locks = sa.Table(
    "ir_incident_key_locks",
    metadata,
    sa.Column("incident_key", sa.String(64), primary_key=True),
    sa.Column("touched_at", sa.DateTime(timezone=True), nullable=False),
)

# Webhook requests answered, by sender and HTTP status: one row each, its count raised in place, so
# every api-server process (and a restart) reports the same totals to Prometheus.
webhook_requests = sa.Table(
    "ir_webhook_requests",
    metadata,
    sa.Column("source", sa.String(32), primary_key=True),
    sa.Column("status", sa.String(8), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Running totals of the Prometheus counters and histograms (include/store/totals.py): one row per
# series and histogram bucket, raised with what it counts, so a scrape reads these rows only.
metric_totals = sa.Table(
    "ir_metric_totals",
    metadata,
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("labels", sa.String(512), primary_key=True),  # the label values, a JSON list
    sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),  # -1: a plain counter
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Float, nullable=False),  # the sum of the bucket's observations
)

# Postmortem narratives the model wrote, one per incident and digest of what it was written from (the
# plain report and the prompt): a download reuses it while the incident's record is unchanged.
postmortems = sa.Table(
    "ir_postmortems",
    metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("narrative", sa.Text, nullable=False),
    sa.Column("written_by", sa.String(256), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
