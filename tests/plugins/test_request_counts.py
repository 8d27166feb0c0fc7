"""Webhook answers are counted in memory and reach the store within about a second, without loss."""

from __future__ import annotations

import time

import pytest

from incident_ops.api import request_counts
from incident_ops.hooks.incident_store import get_store


@pytest.fixture
def store(incident_store_url):
    request_counts.flush_counts()  # nothing left over from another test
    return get_store()


def _wait_for(read, expected, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if read() == expected:
            return
        time.sleep(0.05)
    assert read() == expected


def test_counts_reach_the_store_without_a_scrape(store):
    for status in (202, 202, 401):
        request_counts._record("grafana", status)

    _wait_for(store.stats.webhook_request_counts, {("grafana", "202"): 2, ("grafana", "401"): 1})


def test_counts_survive_a_store_that_fails_for_a_while(store, monkeypatch):
    real = type(store.stats).count_webhook_requests
    failures = iter([True, True])

    def flaky(self, counts):
        if next(failures, False):
            raise ConnectionError("store down")
        return real(self, counts)

    monkeypatch.setattr(type(store.stats), "count_webhook_requests", flaky)
    request_counts._record("alertmanager", 202)
    request_counts.flush_counts()  # fails: kept
    request_counts._record("alertmanager", 202)
    request_counts.flush_counts()  # fails again: kept

    _wait_for(store.stats.webhook_request_counts, {("alertmanager", "202"): 2})
