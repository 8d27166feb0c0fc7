"""Size limits of an alert, shared by the Alert model, the DAG's Params and the webhook normaliser.

An alert travels in the run conf, the incident store, prompts and Slack messages, and each of its
notifications may start a run: every part of it is bounded, the same way wherever it enters.
"""

from __future__ import annotations

MAX_ID = 128  # device_id and error
MAX_MESSAGE = 4000
MAX_FINGERPRINT = 256
MAX_LABELS = 64
MAX_LABEL_KEY = 128
MAX_LABEL_VALUE = 512
MAX_METRICS = 64
MAX_METRIC_NAME = 128
# Each alert of a notification becomes a DAG run: a larger batch is refused, not half-started.
MAX_ALERTS_PER_NOTIFICATION = 100
