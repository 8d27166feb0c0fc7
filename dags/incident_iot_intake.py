"""The `incident_iot_intake` DAG: devices' alerts and telemetry breaches from MQTT start incidents."""

from __future__ import annotations

from datetime import timedelta

from airflow.providers.standard.operators.python import PythonOperator
from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import DAG, Asset, AssetWatcher

from incident_ops.tasks import mqtt_alerts
from incident_ops.triggers.mqtt import MqttAlertTrigger
from include import names

DOC_MD = """
# IoT intake

Devices publish to the MQTT broker of connection `mqtt_default`. The watcher of asset
`iot_device_alerts` subscribes in the triggerer (no extra process): a message on
`…/devices/<device_id>/alerts` (the flat alert) or a reading on `…/devices/<device_id>/telemetry` over
a runbook's `warning_above` / `critical_above` becomes an asset event, and this DAG runs for it.
`admit_alerts` hands each alert to the same intake as the webhooks (one incident per alert episode;
`"status": "resolved"` closes it) and `start_incidents` creates the `incident_response` runs.

Without the connection the watcher idles: nothing is subscribed and this DAG never runs. The
subscription's health is in the asset's state store (`mqtt_subscription`).
"""

device_alerts = Asset(
    names.IOT_ASSET,
    watchers=[AssetWatcher(name=names.IOT_WATCHER, trigger=MqttAlertTrigger(conn_id=names.MQTT_CONN_ID))],
)

with DAG(
    dag_id=names.IOT_DAG_ID,
    schedule=[device_alerts],
    catchup=False,
    # On from the start: it idles until connection mqtt_default exists.
    is_paused_upon_creation=False,
    doc_md=DOC_MD,
    tags=["incident-response", "iot"],
) as dag:
    admit = PythonOperator(
        task_id=names.ADMIT_IOT_ALERTS,
        python_callable=mqtt_alerts.admit_alerts,
        retries=5,
        retry_delay=timedelta(seconds=5),
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(minutes=2),
    )
    TriggerDagRunOperator.partial(
        task_id=names.START_IOT_INCIDENTS,
        trigger_dag_id=names.DAG_ID,
        logical_date=None,
        skip_when_already_exists=True,
        retries=5,
        retry_delay=timedelta(seconds=5),
        retry_exponential_backoff=2.0,
        max_retry_delay=timedelta(minutes=2),
        on_failure_callback=mqtt_alerts.release_unstarted,
    ).expand_kwargs(admit.output)
