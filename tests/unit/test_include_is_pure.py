"""`include/` is pure Python: it never imports Airflow or the plugin package.

The DAG processor, the triggerer and the API server all import from `include/`; an Airflow import
there would make the domain logic untestable without Airflow and slow every parse.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INCLUDE = REPO / "include"
FORBIDDEN = ("airflow", "incident_ops")
SOURCES = sorted(INCLUDE.rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _forbidden_imports(path: Path) -> list[str]:
    """Return `line: import` for every import of a forbidden top-level package in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [f"{node.lineno}: {name}" for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def test_include_has_modules_to_check() -> None:
    # Guards the parametrized tests below against silently checking nothing.
    assert len(SOURCES) >= 8
    names = {str(p.relative_to(INCLUDE).with_suffix("")) for p in SOURCES}
    assert {"models", "store/approvals", "runbooks", "approval_policy"} <= names


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_airflow_import_in_source(path: Path) -> None:
    assert _forbidden_imports(path) == [], f"{path.relative_to(REPO)} imports Airflow or the plugin package"


def test_ast_check_catches_airflow_imports(tmp_path: Path) -> None:
    # The checker itself must see every import form, including ones nested in functions.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "import airflow\n"
        "from airflow.sdk import DAG\n"
        "def f():\n"
        "    import incident_ops.tasks as t\n"
        "    from incident_ops import config\n"
        "from . import airflow_like\n"
        "import airflowish\n",
        encoding="utf-8",
    )
    assert _forbidden_imports(sample) == [
        "2: airflow",
        "3: airflow.sdk",
        "5: incident_ops.tasks",
        "6: incident_ops",
    ]


def test_importing_every_include_module_loads_no_airflow() -> None:
    modules = [_module_name(p) for p in SOURCES]
    script = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        # Run the lazily imported paths too (runbooks import yaml on first use).
        "from include.models import Alert\n"
        "from include.rules_analyzer import analyze\n"
        "from include.inventory import lookup\n"
        "alert = Alert(device_id='PUMP-07B', error='PRESSURE_SPIKE_DETECTED')\n"
        "analyze(alert, lookup(alert.device_id))\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.split('.')[0] in ('airflow', 'incident_ops'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        # Only the repo root on the path: `plugins/` is not needed by include/ and must not be.
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded == [], f"importing include/ loaded {loaded}"
