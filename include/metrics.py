"""The Prometheus metrics of incident response, read from the incident store at scrape time.

A custom collector in a registry of its own: nothing is counted in process memory, so every
api-server process, and one just restarted, reports the same numbers (the store's).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from include.incident_stats import LATENCY_BUCKETS, SEVERITIES, Histogram, merged
from include.redaction import redact_value

if TYPE_CHECKING:
    from include.store import IncidentStore

PREFIX = "incident_response"


def _labels(*values: str) -> list[str]:
    # Label values leave the product: redacted like everything else that does.
    return [str(redact_value(value)) for value in values]


def _histogram(name: str, doc: str, histogram: Histogram, labels: list[str], values: list[str]) -> Metric:
    family = HistogramMetricFamily(f"{PREFIX}_{name}", doc, labels=labels, unit="seconds")
    family.add_metric(_labels(*values), buckets=histogram.buckets(), sum_value=histogram.total)
    return family


class StoreCollector(Collector):
    """Collect every incident_response_* metric from the store, one grouped query each."""

    def __init__(self, store: IncidentStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """Yield the metric families, reading the store now."""
        store = self.store
        incidents = CounterMetricFamily(
            f"{PREFIX}_incidents",
            "Incidents opened (counted once diagnosed), by severity and alert source",
            labels=["severity", "source"],
        )
        for (severity, source), count in sorted(store.stats.incident_totals().items()):
            incidents.add_metric(_labels(severity, source), count)
        yield incidents

        open_incidents = GaugeMetricFamily(
            f"{PREFIX}_open_incidents", "Incidents not resolved yet, by severity", labels=["severity"]
        )
        # Every severity is present, also at zero, so that alerts and graphs see the drop to none.
        counts = {severity: 0 for severity in SEVERITIES} | store.stats.open_incident_counts()
        for severity, count in sorted(counts.items()):
            open_incidents.add_metric(_labels(severity), count)
        yield open_incidents

        pending, overdue = store.stats.pending_approval_counts()
        yield GaugeMetricFamily(
            f"{PREFIX}_pending_approvals", "Approval requests waiting for a decision", pending
        )
        yield GaugeMetricFamily(
            f"{PREFIX}_pending_approvals_past_deadline",
            "Approval requests still pending after their deadline (expiry is late)",
            overdue,
        )

        approvals = CounterMetricFamily(
            f"{PREFIX}_approvals", "Approval requests decided, by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(store.stats.approval_outcomes().items()):
            approvals.add_metric(_labels(outcome), count)
        yield approvals

        yield _histogram(
            "time_to_acknowledge",
            "Seconds from an incident's arrival to its acknowledgement",
            store.stats.time_to_acknowledge(),
            [],
            [],
        )
        yield _histogram(
            "time_to_resolve",
            "Seconds from an incident's arrival to its resolution",
            store.stats.time_to_resolve(),
            [],
            [],
        )

        calls = CounterMetricFamily(
            f"{PREFIX}_model_calls",
            "AI steps that asked the model, by step and outcome (answered, or fallback to the rules)",
            labels=["step", "outcome"],
        )
        latency = HistogramMetricFamily(
            f"{PREFIX}_model_latency",
            "Latency of AI steps that asked the model, by step",
            labels=["step"],
            unit="seconds",
        )
        by_step: dict[str, list[Histogram]] = {}
        for (step, outcome), histogram in sorted(store.stats.model_calls().items()):
            calls.add_metric(_labels(step, outcome), histogram.count)
            by_step.setdefault(step, []).append(histogram)
        for step, histograms in by_step.items():
            total = merged(histograms, LATENCY_BUCKETS)
            latency.add_metric(_labels(step), buckets=total.buckets(), sum_value=total.total)
        yield calls
        yield latency

        webhooks = CounterMetricFamily(
            f"{PREFIX}_webhook_requests",
            "Alert webhook requests answered, by source and HTTP status",
            labels=["source", "status"],
        )
        for (source, status), count in sorted(store.stats.webhook_request_counts().items()):
            webhooks.add_metric(_labels(source, status), count)
        yield webhooks


def exposition(store: IncidentStore) -> bytes:
    """Return the metrics in the Prometheus text format, read from the store now."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(store))
    return generate_latest(registry)
