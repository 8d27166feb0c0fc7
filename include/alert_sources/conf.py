"""The DAG run conf's keys, run ids and incident keys: what the API routes and the DAG agree on."""

from __future__ import annotations

import difflib
import hashlib
import os
from collections.abc import Iterable, Mapping
from typing import Any

from include.models import Alert

# The conf keys the DAG declares as Params: exactly the Alert's fields (a test keeps the two equal).
CONF_KEYS = frozenset(Alert.model_fields)
ALLOW_UNKNOWN_CONF_KEYS_ENV = "INCIDENT_ALLOW_UNKNOWN_CONF_KEYS"
_TRUE = frozenset({"1", "true", "yes", "on"})
UNKNOWN_DEVICE = "unknown"
UNKNOWN_ERROR = "ALERT"


def unknown_conf_keys_allowed(environ: Mapping[str, str] | None = None) -> bool:
    """Say whether the operator allows conf keys the DAG does not declare (the env switch)."""
    value = (os.environ if environ is None else environ).get(ALLOW_UNKNOWN_CONF_KEYS_ENV, "")
    return value.strip().lower() in _TRUE


def unknown_conf_keys(conf: Mapping[str, Any]) -> list[str]:
    """Return the keys of `conf` that the DAG does not declare, sorted."""
    return sorted(str(key) for key in conf if key not in CONF_KEYS)


def describe_unknown_keys(unknown: Iterable[str]) -> str:
    """Explain unknown conf keys with the likely intended key for each, for a 400 answer."""
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(CONF_KEYS), n=1, cutoff=0.6)
        parts.append(f"{key!r} (did you mean {close[0]!r}?)" if close else repr(key))
    return (
        f"unknown conf key(s): {', '.join(parts)}. Known keys: {', '.join(sorted(CONF_KEYS))}. "
        f"Set {ALLOW_UNKNOWN_CONF_KEYS_ENV}=true on every Airflow component to accept (and ignore) others."
    )


def run_id_for(source: str, incident_key: str, episode: str) -> str:
    """Return the deterministic DAG run id of one episode of an incident (same input, same id)."""
    digest = hashlib.sha256(f"{source}\x00{incident_key}\x00{episode}".encode()).hexdigest()[:24]
    return f"alert__{source}__{digest}"


def incident_key_for_fingerprint(fingerprint: str) -> str:
    """Return the incident key of an alert with this fingerprint (as Alert.incident_key computes it)."""
    return Alert(device_id=UNKNOWN_DEVICE, error=UNKNOWN_ERROR, fingerprint=fingerprint).incident_key
