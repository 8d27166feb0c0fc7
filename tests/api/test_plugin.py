"""The plugin as Airflow loads it from the plugins folder: the app, its mount point and the nav link."""

from __future__ import annotations

from tests.api.helpers import PREFIX, bearer


def test_plugins_manager_loads_the_plugin_from_the_plugins_folder(airflow_app):
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    assert not {path: e for path, e in errors.items() if "incident" in path}
    ours = [p for p in plugins if p.name == "incident_response"]
    assert len(ours) == 1
    assert ours[0].source is not None and str(ours[0].source).endswith("incident_response_plugin.py")
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert [a["url_prefix"] for a in apps if a["name"] == "Incident response"] == [PREFIX]


def test_api_modules_are_not_imported_as_plugins(airflow_app):
    # plugins/incident_ops/api/.airflowignore keeps Airflow from importing app.py as a module named "app".
    import sys

    from airflow import plugins_manager

    plugins_manager._get_plugins()
    for bare in ("app", "security", "schemas", "pages", "routes_slack", "routes_approvals", "routes_pages"):
        module = sys.modules.get(bare)
        assert module is None or "incident_ops" not in str(getattr(module, "__file__", "")), bare


def test_importing_the_plugin_does_not_build_the_app():
    import importlib
    import subprocess
    import sys

    importlib.import_module("incident_response_plugin")  # importable from the plugins folder
    script = (
        "import sys, incident_response_plugin\n"
        "heavy = ('fastapi', 'incident_ops.api', 'airflow.api_fastapi')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_nav_link_is_an_external_view_listed_by_the_plugins_api(client, tokens):
    response = client.get("/api/v2/plugins", headers=bearer(tokens["admin"]))
    assert response.status_code == 200, response.text
    [plugin] = [p for p in response.json()["plugins"] if p["name"] == "incident_response"]
    approvals, incidents = plugin["external_views"]
    assert approvals["name"] == "Incident approvals"
    assert approvals["href"] == f"{PREFIX}/approvals"
    assert approvals["destination"] == "nav"
    assert approvals["url_route"] == "incident-approvals"
    assert incidents["name"] == "Incidents"
    assert incidents["href"] == f"{PREFIX}/incidents"
    assert (incidents["destination"], incidents["url_route"]) == ("nav", "incidents")
    assert plugin["fastapi_apps"][0]["url_prefix"] == PREFIX


def test_root_redirects_to_the_list(client):
    response = client.get(f"{PREFIX}/", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == f"{PREFIX}/approvals"
