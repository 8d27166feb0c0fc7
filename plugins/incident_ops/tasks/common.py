"""What every task callable needs: its run's incident, the documents upstream tasks passed on, delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from include.names import DIAGNOSE, ENRICH, INGEST, WAIT_FOR_APPROVAL

if TYPE_CHECKING:
    from include.models import Alert, Analysis, ApprovalOutcome, Enrichment
    from include.store import IncidentStore


def store() -> IncidentStore:
    """Return the incident store."""
    from incident_ops.hooks.incident_store import get_store

    return get_store()


def incident_id(dag_run: Any) -> str:
    """Return the id of the incident the run handles."""
    from include.store import incident_id_for

    return incident_id_for(dag_run.dag_id, dag_run.run_id)


def alert(ti: Any) -> Alert:
    """Return the alert `ingest` validated."""
    from include.models import Alert

    return Alert.from_xcom(ti.xcom_pull(task_ids=INGEST))


def enrichment(ti: Any) -> Enrichment:
    """Return what `enrich` found about the device."""
    from include.models import Enrichment

    return Enrichment.from_xcom(ti.xcom_pull(task_ids=ENRICH))


def analysis(ti: Any) -> Analysis:
    """Return the analysis `ai_diagnose` decided on."""
    from include.models import Analysis

    return Analysis.from_xcom(ti.xcom_pull(task_ids=DIAGNOSE))


def outcome(ti: Any, *, required: bool = True) -> ApprovalOutcome | None:
    """Return wait_for_approval's outcome (None when it was skipped and not `required`)."""
    from incident_ops.triggers.approval_outcome import read_outcome

    value = ti.xcom_pull(task_ids=WAIT_FOR_APPROVAL)
    if value is None and not required:
        return None
    return read_outcome(value)


def deliver(dag_run: Any, *, key: str, purpose: str, text: str, blocks: list[dict] | None) -> dict[str, Any]:
    """Post a message in the incident's thread (once per run and `key`), or keep it in the outbox."""
    from incident_ops import config
    from incident_ops.messaging import deliver as deliver_message

    delivery = deliver_message(
        store(),
        incident_id=incident_id(dag_run),
        key=f"{dag_run.run_id}:{key}",
        channel=config.channel_for(purpose),
        text=text,
        blocks=blocks,
    )
    return {"key": delivery.key, "posted": delivery.sent, "channel": delivery.channel, "ts": delivery.ts}
