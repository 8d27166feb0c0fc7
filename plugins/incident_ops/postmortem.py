"""Write an incident's postmortem draft: the model writes the narrative when configured, the store the facts.

The narrative follows the final report's rules (include.llm_output.parse_report): the model rewrites
the plain report, and an answer that drops the incident id or the outcome is not used.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from include.store import IncidentStore

log = logging.getLogger(__name__)
POSTMORTEM_PROMPT = "postmortem.v1"
STEP = "postmortem"


def write_postmortem(store: IncidentStore, incident_id: str, *, run_url: str) -> str:
    """Return the Markdown postmortem draft of an incident (raises NotFound)."""
    from incident_ops.analysis import write_report_with_record
    from include.postmortem import postmortem_markdown
    from include.reports import final_report_text
    from include.store import utcnow

    incident = store.get_incident(incident_id)
    approvals = [a.to_json() for a in store.list_approvals(run_id=incident["run_id"])]
    plain = final_report_text(
        incident=incident,
        timeline=store.timeline(incident_id),
        actions=store.actions_for(incident_id),
        approvals=approvals,
    )
    text, record = write_report_with_record(plain, prompt_id=POSTMORTEM_PROMPT, step=STEP)
    by_model = record.get("analyzer") == "llm"
    # Reading a draft changes nothing: the call is logged (by the analysis module), not recorded.
    return postmortem_markdown(
        store.incident_document(incident_id),
        narrative=text if by_model else None,
        written_by=f"the model ({record.get('model')})"
        if by_model
        else "the product, from the record (no model answer)",
        run_url=run_url,
        now=utcnow(),
    )
