"""Benchmark the MQTT intake: message → run latency, and telemetry throughput with the triggerer's CPU.

    .venv/bin/python bench/bench_mqtt_intake.py [--alerts 10] [--rate 1000] [--seconds 20]
        [--broker 127.0.0.1:1883] [--keep-home]

Starts an embedded Airflow (scripts/local_airflow: api-server, scheduler, dag-processor, triggerer,
loopback only, a throw-away AIRFLOW_HOME) with connection `mqtt_default` on the broker, under topics
and a client id of this run's own. `incident_response` stays paused, so its runs wait queued and the
figures measure the intake rather than the workflow.

1. Latency: `--alerts` alerts, one at a time, each for a new device. For each: publish → asset event
   stored (its timestamp), → `incident_iot_intake` run created, → `incident_response` run created
   (its `queued_at`), all against the publish time on this machine's clock.
2. Throughput: telemetry within limits (`{"temperature_c": 40}`) at `--rate` messages a second for
   `--seconds`, QoS 1, from one publisher over many devices. A marker alert published last tells when
   the triggerer got through all of them (the broker keeps a publisher's order). Meanwhile the CPU
   time of the triggerer's process tree is read from /proc/<pid>/stat (utime + stime), before and
   after, and so is its idle CPU over the same span before the load. One alert is published halfway
   through the load: its publish → asset event latency shows whether the load slows other work.

Prints the figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scripts.local_airflow import LocalAirflow, poll  # noqa: E402
from scripts.local_airflow.processes import descendants  # noqa: E402
from tests.e2e.conftest import free_port  # noqa: E402

DAG_ID, IOT_DAG_ID, ASSET = "incident_response", "incident_iot_intake", "iot_device_alerts"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """Return the user + system CPU seconds of `pids` so far (fields 14 and 15 of /proc/<pid>/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICKS


def triggerer_pids(stack: LocalAirflow) -> list[int]:
    """Return the triggerer's process and its children (Airflow runs the triggers in a subprocess)."""
    root = stack.components["triggerer"].pid
    return [root, *descendants([root])]


def when(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Publisher:
    """One device-side MQTT client publishing at QoS 1."""

    def __init__(self, host: str, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:8]}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect(host, port)
        self.client.loop_start()

    def publish(self, topic: str, payload: dict[str, Any]) -> Any:
        return self.client.publish(topic, json.dumps(payload), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Bench:
    def __init__(self, stack: LocalAirflow, prefix: str, publisher: Publisher) -> None:
        self.stack, self.prefix, self.publisher = stack, prefix, publisher
        assets = stack.api("GET", f"/api/v2/assets?name_pattern={ASSET}")[1]["assets"]
        self.asset_id = next(a["id"] for a in assets if a["name"] == ASSET)

    def get(self, path: str) -> tuple[int, Any]:
        """GET from the API; a timeout on a busy machine is an answer to ask again, not the end."""
        try:
            return self.stack.api("GET", path, timeout=60)
        except OSError:
            return 0, None

    def topic(self, device: str, kind: str) -> str:
        return f"{self.prefix}/devices/{device}/{kind}"

    def asset_event(self, device: str) -> dict[str, Any] | None:
        path = f"/api/v2/assets/events?asset_id={self.asset_id}&limit=50&order_by=-timestamp"
        status, body = self.get(path)
        if status != 200:  # Airflow 3.3.2 answers 500 while an event's run is queued, not started
            return None
        for event in body["asset_events"]:
            if (((event.get("extra") or {}).get("payload") or {}).get("alert") or {}).get(
                "device_id"
            ) == device:
                return event
        return None

    def incident_run(self, device: str) -> dict[str, Any] | None:
        status, runs = self.get(f"/api/v2/dags/{DAG_ID}/dagRuns?limit=100&order_by=-run_after")
        if status != 200:
            return None
        return next((r for r in runs["dag_runs"] if (r.get("conf") or {}).get("device_id") == device), None)

    def intake_run(self, event: dict[str, Any]) -> dict[str, Any] | None:
        status, runs = self.get(f"/api/v2/dags/{IOT_DAG_ID}/dagRuns?limit=100&order_by=-run_after")
        if status != 200:
            return None
        after = when(event["timestamp"])
        created = [
            r for r in runs["dag_runs"] if r.get("queued_at") and when(r["queued_at"]) >= after - 0.001
        ]
        return min(created, key=lambda r: when(r["queued_at"])) if created else None

    def alert_latency(self, device: str) -> dict[str, float]:
        sent = time.time()
        self.publisher.publish(self.topic(device, "alerts"), {"error": "OVERHEATING"}).wait_for_publish(10)
        event = poll(lambda: self.asset_event(device), 60, f"the asset event of {device}", interval=0.05)
        run = poll(lambda: self.incident_run(device), 120, f"the incident run of {device}", interval=0.1)
        intake = self.intake_run(event)
        return {
            "asset_event": when(event["timestamp"]) - sent,
            "intake_run": (when(intake["queued_at"]) - sent) if intake else float("nan"),
            "incident_run": when(run["queued_at"]) - sent,
        }


def summary(values: list[float]) -> str:
    values = sorted(values)
    p95 = values[max(0, round(0.95 * len(values)) - 1)]
    return f"p50 {statistics.median(values):.2f} s, p95 {p95:.2f} s, max {values[-1]:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--alerts", type=int, default=10)
    parser.add_argument("--rate", type=int, default=1000, help="telemetry messages a second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--broker", default="127.0.0.1:1883")
    parser.add_argument("--keep-home", action="store_true")
    args = parser.parse_args()
    host, port = args.broker.rsplit(":", 1)
    prefix, client_id = f"bench-{uuid.uuid4().hex[:8]}", f"bench-airflow-{uuid.uuid4().hex[:8]}"
    extra = {
        "topics": [f"{prefix}/devices/+/alerts", f"{prefix}/devices/+/telemetry"],
        "client_id": client_id,
    }
    conn = {"conn_type": "mqtt", "host": host, "port": int(port), "extra": extra}
    home = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
    stack = LocalAirflow(
        home,
        free_port(),
        extra_env={"AIRFLOW_CONN_MQTT_DEFAULT": json.dumps(conn)},
        inherit_airflow_env=False,
    )
    publisher = None
    try:
        stack.prepare()
        stack.start()
        stack.wait_ready(240)
        stack.login("admin")
        for dag_id in (DAG_ID, IOT_DAG_ID):
            stack.wait_for_dag(dag_id, timeout=180, fail_on_import_error=True)
        stack.unpause(IOT_DAG_ID)
        publisher = Publisher(host, int(port))
        bench = Bench(stack, prefix, publisher)
        # The subscription is up once a first alert comes through.
        bench.alert_latency(f"WARMUP-{uuid.uuid4().hex[:6]}")

        latencies = [bench.alert_latency(f"LAT-{i}-{uuid.uuid4().hex[:6]}") for i in range(args.alerts)]
        print(f"Latency over {args.alerts} alerts, each publish ->")
        for key in ("asset_event", "intake_run", "incident_run"):
            print(f"  {key:>13} created: {summary([lat[key] for lat in latencies])}")

        pids = triggerer_pids(stack)
        idle_start = cpu_seconds(pids)
        time.sleep(args.seconds)
        idle_cpu = (cpu_seconds(pids) - idle_start) / args.seconds

        total = int(args.rate * args.seconds)
        mid_alert: dict[str, float] = {}

        def alert_midway() -> None:
            time.sleep(args.seconds / 2)
            mid_alert.update(bench.alert_latency(f"MID-{uuid.uuid4().hex[:6]}"))

        helper = threading.Thread(target=alert_midway)
        cpu_start, started = cpu_seconds(pids), time.monotonic()
        helper.start()
        for i in range(total):
            publisher.publish(bench.topic(f"SENSOR-{i % 200}", "telemetry"), {"temperature_c": 40.0})
            ahead = started + (i + 1) / args.rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        sent_for = time.monotonic() - started
        marker = f"END-{uuid.uuid4().hex[:6]}"
        publisher.publish(bench.topic(marker, "alerts"), {"error": "OVERHEATING"}).wait_for_publish(30)
        poll(lambda: bench.asset_event(marker), 300, "the marker alert after the telemetry", interval=0.2)
        done_in = time.monotonic() - started
        load_cpu = cpu_seconds(pids) - cpu_start
        helper.join(120)
        print(
            f"Telemetry within limits: {total} messages published in {sent_for:.1f} s "
            f"({total / sent_for:.0f}/s); all processed after {done_in:.1f} s ({total / done_in:.0f}/s)"
        )
        print(
            f"Triggerer CPU (process tree): idle {100 * idle_cpu:.1f} % of a core; under load "
            f"{100 * load_cpu / done_in:.1f} % of a core, "
            f"{1e6 * (load_cpu - idle_cpu * done_in) / total:.0f} µs a message above idle"
        )
        if mid_alert:
            print(f"An alert published during the load: asset event after {mid_alert['asset_event']:.2f} s")
        runs = stack.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns?limit=200")[1]["total_entries"]
        print(f"incident_response runs queued: {runs} (one per alert; no telemetry within limits)")
    except BaseException:
        print(stack.log_tails())
        raise
    finally:
        if publisher:
            publisher.close()
        stack.stop()
        if not args.keep_home:
            shutil.rmtree(home, ignore_errors=True)
        import subprocess

        # A clean connection under the client id ends the session the broker kept for it.
        subprocess.run(
            ["mosquitto_sub", "-h", host, "-p", port, "-i", client_id, "-t", f"{prefix}/x", "-E"], check=False
        )


if __name__ == "__main__":
    main()
