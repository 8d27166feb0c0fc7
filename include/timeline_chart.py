"""The geometry of an incident's timeline chart: what happened, on which lane, where on the time axis.

Pure: it takes the incident document (include.incident_document) and its messages and returns marks
with coordinates; the page's template draws them as SVG (server-side, escaped by Jinja2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from include.incident_stats import human_duration
from include.vocabulary import ActionState, TimelineKind

LANES: tuple[str, ...] = ("Alert", "Responders", "AI steps", "Approval", "Actions", "Resolution")
ALERT, RESPONDERS, AI, APPROVAL, ACTIONS, RESOLUTION = range(len(LANES))
WIDTH = 960
LEFT = 110  # room for the lane names
RIGHT = 30
TOP = 10
LANE_HEIGHT = 46
AXIS_HEIGHT = 30
LABEL_CHARS = 26
TICKS = 6


@dataclass(frozen=True)
class Point:
    """One thing that happened: when, on which lane, what (and for an AI step, how long it took)."""

    at: datetime
    lane: int
    kind: str
    label: str
    seconds: float | None = None


@dataclass(frozen=True)
class Mark:
    """A point drawn on the chart, with its label placed above or below it."""

    x: float
    y: float
    kind: str
    label: str
    title: str
    label_y: float


@dataclass(frozen=True)
class Span:
    """A duration drawn as a bar (an AI step from its start to its answer)."""

    x: float
    y: float
    width: float
    title: str


@dataclass(frozen=True)
class Tick:
    """A time-axis tick and its label (time since the start)."""

    x: float
    label: str


@dataclass(frozen=True)
class Chart:
    """Everything the template needs to draw the chart."""

    width: int
    height: int
    left: int
    right: float
    axis_y: float
    lanes: list[tuple[float, str]]
    marks: list[Mark]
    spans: list[Span]
    ticks: list[Tick]
    start: datetime
    end: datetime
    ongoing: bool


def _parse(value: Any) -> datetime | None:
    """Return a timestamp as an aware datetime (naive ones, as SQLite returns them, are UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _event_point(event: dict[str, Any]) -> Point | None:
    """Return the chart point of a timeline entry, or None for entries the chart leaves to the table."""
    at, kind = _parse(event.get("at")), event.get("kind", "")
    detail = event.get("detail") or {}
    if at is None:
        return None
    by = detail.get("by")
    if kind == "llm_call":
        seconds = max(0.0, float(detail.get("latency_ms") or 0) / 1000)
        answered = "model" if detail.get("analyzer") == "llm" else "fallback"
        label = f"{detail.get('step', 'AI')} ({answered}, {human_duration(seconds)})"
        return Point(at, AI, "ai", label, seconds)
    simple = {
        TimelineKind.OPENED: (ALERT, "alert", "Incident opened"),
        TimelineKind.DUPLICATE: (ALERT, "alert", "Repeat of the alert"),
        TimelineKind.ALERT_ACKNOWLEDGED: (ALERT, "alert", "Acknowledged at the sender"),
        TimelineKind.ALERT_RESOLVED: (ALERT, "alert", "Resolved at the sender"),
        TimelineKind.ACKNOWLEDGED: (RESPONDERS, "ack", f"Acknowledged by {by}" if by else "Acknowledged"),
        TimelineKind.DIAGNOSED: (AI, "ai", f"Diagnosed: {detail.get('severity', '')}"),
        TimelineKind.APPROVAL_POLICY: (
            APPROVAL,
            "approval",
            "Approval needed" if detail.get("reasons") else "No approval needed",
        ),
        TimelineKind.VOTE: (
            APPROVAL,
            "vote",
            f"{detail.get('decision', 'vote')} by {detail.get('identity', '?')}",
        ),
        TimelineKind.VOTE_REFUSED: (APPROVAL, "refused", f"Vote refused: {detail.get('identity', '?')}"),
        TimelineKind.ESCALATED: (ACTIONS, "escalation", "Escalated"),
        TimelineKind.TICKET_OPENED: (ACTIONS, "action", "Ticket opened"),
        TimelineKind.CONTAINMENT_NONE: (ACTIONS, "action", "No containment"),
        TimelineKind.LOGGED: (ACTIONS, "action", "Logged"),
        TimelineKind.TASK_FAILED: (ACTIONS, "failure", "Task failed"),
        TimelineKind.RESOLVED: (RESOLUTION, "resolution", f"Resolved: {detail.get('outcome', '')}"),
    }
    if kind in simple:
        lane, css, label = simple[kind]
        return Point(at, lane, css, label)
    if kind == "approval_requested":
        return Point(at, APPROVAL, "approval", f"Approval requested: {detail.get('action', '')}")
    if kind.startswith("approval_"):
        return Point(at, APPROVAL, "approval", f"Approval {kind.removeprefix('approval_')}")
    if kind.startswith("action_"):
        state = kind.removeprefix("action_")
        return Point(
            at,
            ACTIONS,
            "action" if state == ActionState.DONE else "failure",
            f"{detail.get('action', 'action')} {state}",
        )
    return None


def timeline_points(document: dict[str, Any], messages: Sequence[dict[str, Any]] = ()) -> list[Point]:
    """Return the chart's points for an incident document and its messages, in time order."""
    points: list[Point] = []
    started, opened = _parse(document.get("started_at")), _parse(document.get("opened_at"))
    if started is not None and opened is not None and started < opened:
        points.append(Point(started, ALERT, "alert", "Alert started"))
    for event in document.get("timeline") or []:
        point = _event_point(event)
        if point is not None:
            points.append(point)
    # Stores from before the "approval_requested" entry have only the record's creation time.
    logged = any(e.get("kind") == "approval_requested" for e in document.get("timeline") or [])
    for record in [] if logged else document.get("approvals") or []:
        requested = _parse(record.get("created_at"))
        if requested is not None:
            points.append(
                Point(requested, APPROVAL, "approval", f"Approval requested: {record.get('action')}")
            )
    for message in messages:
        sent = _parse(message.get("sent_at")) or _parse(message.get("created_at"))
        if sent is not None and str(message.get("key", "")).endswith(":page"):
            points.append(Point(sent, RESPONDERS, "page", "On-call paged"))
    return sorted(points, key=lambda p: p.at)


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def layout(points: list[Point], *, now: datetime, resolved: bool) -> Chart:
    """Place the points on the chart: time on x (start to resolution, or to now while open), lanes on y."""
    plot = WIDTH - LEFT - RIGHT
    starts = [p.at - timedelta(seconds=p.seconds or 0) for p in points] or [now]
    start = min(starts)
    end = max([p.at for p in points] + ([] if resolved else [now]))
    span = max((end - start).total_seconds(), 1.0)

    def x(at: datetime) -> float:
        return round(LEFT + (at - start).total_seconds() / span * plot, 1)

    def lane_y(lane: int) -> float:
        return TOP + lane * LANE_HEIGHT + LANE_HEIGHT / 2

    marks, spans, per_lane = [], [], [0] * len(LANES)
    for point in points:
        y = lane_y(point.lane)
        # Alternate labels above and below the line so that neighbours overlap less.
        above = per_lane[point.lane] % 2 == 0
        per_lane[point.lane] += 1
        title = f"{point.at.strftime('%H:%M:%S')} {point.label}"
        marks.append(Mark(x(point.at), y, point.kind, _short(point.label), title, y - 9 if above else y + 17))
        if point.seconds:
            begin = x(point.at - timedelta(seconds=point.seconds))
            spans.append(Span(begin, y - 5, max(x(point.at) - begin, 2.0), title))
    axis_y = TOP + len(LANES) * LANE_HEIGHT
    ticks = [
        Tick(round(LEFT + plot * i / (TICKS - 1), 1), "+" + human_duration(span * i / (TICKS - 1)))
        for i in range(TICKS)
    ]
    ticks[0] = Tick(LEFT, start.strftime("%H:%M:%S UTC"))
    return Chart(
        width=WIDTH,
        height=int(axis_y + AXIS_HEIGHT),
        left=LEFT,
        right=WIDTH - RIGHT,
        axis_y=axis_y,
        lanes=[(lane_y(i), name) for i, name in enumerate(LANES)],
        marks=marks,
        spans=spans,
        ticks=ticks,
        start=start,
        end=end,
        ongoing=not resolved,
    )
