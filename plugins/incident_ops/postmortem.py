"""Write an incident's postmortem draft: the model writes the narrative when configured, the store the facts.

The narrative follows the final report's rules (include.llm_output.parse_report): the model rewrites
the plain report, and an answer that drops the incident id or the outcome is not used.

A model's narrative is kept in the incident store under a digest of the plain report it was written
from, so downloads reuse it until the record changes. The API server asks the model for at most
`MAX_MODEL_CALLS` drafts at once (a call may take minutes in the shared thread pool); past that a download
gets the draft from the record at once, saying so, rather than an error: the facts are what a reader
needs first, and the narrative comes with a later download.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.store import IncidentStore

log = logging.getLogger(__name__)
POSTMORTEM_PROMPT = "postmortem.v1"
STEP = "postmortem"
MAX_MODEL_CALLS = 2
_model_calls = threading.BoundedSemaphore(MAX_MODEL_CALLS)
FROM_THE_RECORD = "the product, from the record (no model answer)"
MODEL_BUSY = "the product, from the record (the model is busy with other drafts: download again shortly)"


def write_postmortem(store: IncidentStore, incident_id: str, *, run_url: str) -> str:
    """Return the Markdown postmortem draft of an incident (raises NotFound)."""
    from include.postmortem import postmortem_markdown
    from include.reports import final_report_text
    from include.store import utcnow

    incident = store.incidents.get(incident_id)
    approvals = [a.to_json() for a in store.approvals.find(run_id=incident.run_id)]
    plain = final_report_text(
        incident=incident,
        timeline=store.incidents.timeline(incident_id),
        actions=store.actions.for_incident(incident_id),
        approvals=approvals,
    )
    narrative, written_by = _narrative(store, incident_id, plain)
    return postmortem_markdown(
        store.incident_document(incident_id),
        narrative=narrative,
        written_by=written_by,
        run_url=run_url,
        now=utcnow(),
    )


def _narrative(store: IncidentStore, incident_id: str, plain: str) -> tuple[str | None, str]:
    """Return the model's narrative and who wrote the draft: kept, asked for, or none (busy or no answer)."""
    from incident_ops.analysis import write_report_with_record
    from include.postmortem import draft_digest

    digest = draft_digest(plain, prompt_id=POSTMORTEM_PROMPT)
    kept = store.postmortems.narrative(incident_id, digest)
    if kept is not None:
        return kept
    if not _model_calls.acquire(blocking=False):
        log.info(
            "Postmortem of %s drafted from the record: %d model calls running", incident_id, MAX_MODEL_CALLS
        )
        return None, MODEL_BUSY
    try:
        # Reading a draft changes nothing on the timeline: the call is logged (by the analysis module).
        text, record = write_report_with_record(plain, prompt_id=POSTMORTEM_PROMPT, step=STEP)
    finally:
        _model_calls.release()
    if record.get("analyzer") != "llm":
        return None, FROM_THE_RECORD  # not kept: the next download asks the model again
    written_by = f"the model ({record.get('model')})"
    store.postmortems.keep(incident_id, digest, text, written_by)
    return text, written_by
