"""Render the on-call page's Block Kit JSON, in each state, to docs/slack-page.html and a PNG screenshot.

A preview, not Slack: sections, context lines and buttons are drawn in Slack's layout from the very
blocks `include.slack_blocks.page_blocks` returns, so the picture follows the code. Run from the repo:

    .venv/bin/python docs/render_slack_blocks.py   # needs /usr/bin/chromium for the PNG
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from include.models import Alert, Analysis  # noqa: E402
from include.slack_blocks import page_blocks  # noqa: E402

DOCS = REPO / "docs"
INCIDENT = "inc-3f9a1c2b7d40"
ALERT = Alert(device_id="PUMP-07B", error="PRESSURE_SPIKE_DETECTED", source="alertmanager")
ANALYSIS = Analysis(
    severity="critical",
    summary="Outlet pressure on PUMP-07B rose to 9.4 bar (limit 8.0) within two minutes.",
    diagnosis="Pattern matches a stuck outlet valve: flow dropped while motor current stayed nominal.",
    recommended_action="restart_pump",
    confidence=0.82,
    analyzer="rules",
    runbook="pressure_spike",
)
RUN = "http://localhost:8080/dags/incident_response/runs/alert__alertmanager__3f9a"
STATES = [
    ("Paged", {"state": "open"}),
    ("After Acknowledge", {"state": "acknowledged", "acknowledged_by": "slack:U0ONCALL"}),
    (
        "After Escalate",
        {"state": "acknowledged", "acknowledged_by": "slack:U0ONCALL", "escalated_by": "slack:U0LEAD"},
    ),
    (
        "After Resolve",
        {
            "state": "resolved",
            "acknowledged_by": "slack:U0ONCALL",
            "escalated_by": "slack:U0LEAD",
            "resolved_by": "slack:U0ONCALL",
        },
    ),
]
# Slack's emoji as glyphs every font has (headless Chromium may have no emoji font).
EMOJI = {
    ":rotating_light:": '<span style="color:#e01e5a">●</span>',
    ":eyes:": '<span style="color:#1264a3">◉</span>',
    ":mega:": '<span style="color:#e8912d">▲</span>',
    ":white_check_mark:": '<span style="color:#007a5a">✔</span>',
}
CSS = """
body { font: 15px/1.45 -apple-system, "Segoe UI", Lato, sans-serif; background: #f4f4f4;
  margin: 0; padding: 16px; display: grid; grid-template-columns: 760px 760px; gap: 14px; }
.state { background: #fff; border: 1px solid #ddd; border-radius: 8px; padding: 12px 16px; }
h2 { font-size: 12px; text-transform: uppercase; color: #888; margin: 0 0 8px; letter-spacing: .05em; }
.bot { font-weight: 700; } .bot small { font-weight: 400; color: #888; margin-left: 6px; }
.section { margin: 4px 0; } .context { color: #616061; font-size: 13px; margin: 4px 0; }
code { background: #f6f6f6; border: 1px solid #e0e0e0; border-radius: 3px; padding: 0 3px;
  color: #c01343; font-size: 12px; }
a, .mention { color: #1264a3; text-decoration: none; }
.mention { background: #e8f5fa; border-radius: 3px; padding: 0 2px; }
.actions { margin-top: 8px; } .button { display: inline-block; border: 1px solid #bbb; border-radius: 4px;
  padding: 3px 12px; margin-right: 8px; font-weight: 700; font-size: 13px; background: #fff; }
.primary { background: #007a5a; color: #fff; border-color: #007a5a; }
.danger { background: #e01e5a; color: #fff; border-color: #e01e5a; }
"""


def mrkdwn(text: str) -> str:
    """Turn the little mrkdwn our blocks use into HTML (the text is already escaped for Slack)."""
    out = html.escape(html.unescape(text), quote=False)
    for code, char in EMOJI.items():
        out = out.replace(code, char)
    out = re.sub(r"&lt;@([A-Z0-9]+)&gt;", r'<span class="mention">@\1</span>', out)
    out = re.sub(r"&lt;(https?://[^|&]+)\|([^&]+)&gt;", r'<a href="\1">\2</a>', out)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*([^*\n]+)\*", r"<b>\1</b>", out)
    return out.replace("\n", "<br>")


def render_block(block: dict[str, Any]) -> str:
    """Return one block as HTML."""
    if block["type"] == "section":
        return f'<div class="section">{mrkdwn(block["text"]["text"])}</div>'
    if block["type"] == "context":
        return "".join(f'<div class="context">{mrkdwn(e["text"])}</div>' for e in block["elements"])
    if block["type"] == "actions":
        buttons = "".join(
            f'<span class="button {e.get("style", "")}" '
            f'title="action_id={e["action_id"]} value={e["value"]}">'
            f"{html.escape(e['text']['text'])}</span>"
            for e in block["elements"]
        )
        return f'<div class="actions">{buttons}</div>'
    raise ValueError(f"no preview for block type {block['type']}")


def main() -> None:
    """Write the HTML preview, the blocks as JSON, and (with Chromium) the screenshot."""
    parts, documents = [], {}
    for title, state in STATES:
        blocks = page_blocks(ALERT, ANALYSIS, run_url=RUN, incident_id=INCIDENT, **state)
        documents[title] = blocks
        body = "".join(render_block(b) for b in blocks)
        parts.append(
            f'<div class="state"><h2>{html.escape(title)}</h2>'
            f'<div class="bot">Incident response <small>APP</small></div>{body}</div>'
        )
    page = (
        f"<!doctype html><meta charset=utf-8><title>On-call page</title><style>{CSS}</style>{''.join(parts)}"
    )
    (DOCS / "slack-page.html").write_text(page, encoding="utf-8")
    (DOCS / "slack-page-blocks.json").write_text(json.dumps(documents, indent=2) + "\n", encoding="utf-8")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        print("No chromium: wrote the HTML preview only")
        return
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                "--window-size=1580,590",
                f"--screenshot={DOCS / 'slack-page.png'}",
                (DOCS / "slack-page.html").as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    print(f"Wrote {DOCS / 'slack-page.html'} and {DOCS / 'slack-page.png'}")


if __name__ == "__main__":
    main()
